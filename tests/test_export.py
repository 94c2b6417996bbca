"""Export of the student: ONNX and TorchScript match PyTorch at two sizes; bad inputs raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import Tensor, nn

from mgd_lightning.export import (
    LogitsOnly,
    export,
    export_onnx,
    export_torchscript,
    load_student,
    load_torchscript,
)
from mgd_lightning.models import DeepLabV3Plus, TeacherPair
from mgd_lightning.tasks import DistillationModule

SIZES = [(2, 3, 32, 48), (1, 3, 64, 40)]


def _tiny(seed: int = 0) -> DeepLabV3Plus:
    torch.manual_seed(seed)
    return DeepLabV3Plus("resnet10t", num_classes=3, head_channels=16)


@pytest.fixture(scope="module")
def network() -> DeepLabV3Plus:
    return _tiny()


def _reference(network: nn.Module, images: Tensor) -> np.ndarray:
    network.eval()
    with torch.no_grad():
        return network(images).logits.numpy()


def test_onnx_matches_pytorch_at_two_sizes(network: DeepLabV3Plus, tmp_path: Path) -> None:
    path = export_onnx(network.train(), tmp_path / "student.onnx", example_size=(32, 32))
    assert network.training  # mode given back
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["logits"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    for shape in SIZES:
        images = torch.randn(*shape, generator=generator)
        (logits,) = session.run(None, {"images": images.numpy()})
        assert logits.shape == (shape[0], 3, *shape[2:])
        np.testing.assert_allclose(logits, _reference(network, images), atol=1e-4, rtol=0)


def test_torchscript_matches_pytorch_at_two_sizes(network: DeepLabV3Plus, tmp_path: Path) -> None:
    path = export_torchscript(network, tmp_path / "student.pt", example_size=(32, 32), verify=True)
    loaded = load_torchscript(path)
    generator = torch.Generator().manual_seed(1)
    for shape in SIZES:
        images = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            logits = loaded(images).numpy()
        np.testing.assert_allclose(logits, _reference(network, images), atol=1e-4, rtol=0)


def test_unknown_format(network: DeepLabV3Plus, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`format`"):
        export(network, tmp_path / "a.tf", "tf")  # type: ignore[arg-type]


def test_distillation_module_exports_the_student_alone() -> None:
    student = _tiny(0)
    module = DistillationModule(student, teachers=TeacherPair(_tiny(1), _tiny(2)), num_classes=3)
    assert load_student(module) is student
    wrapped = LogitsOnly(student).eval()
    assert not any(name.startswith("teachers") for name in wrapped.state_dict())


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):
        export_onnx(missing, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_unwritable_destinations_are_named(network: DeepLabV3Plus, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        export_torchscript(network, blocker / "student.pt")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_onnx(network, tmp_path)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(network, tmp_path / "x.onnx", opset=0)
    with pytest.raises(ValueError, match="example_size"):
        export_onnx(network, tmp_path / "x.onnx", example_size=(0, 32))


class _Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, images: Tensor) -> Tensor:
        raise RuntimeError("boom")


def test_nothing_is_left_behind_on_error(tmp_path: Path) -> None:
    for function, name in ((export_onnx, "x.onnx"), (export_torchscript, "x.pt")):
        with pytest.raises(RuntimeError, match="boom"):
            function(_Broken(), tmp_path / name, example_size=(8, 8))
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_package_is_named(
    network: DeepLabV3Plus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name)
    )
    with pytest.raises(ImportError, match=r"mgd-lightning\[export\]"):
        export_onnx(network, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []
