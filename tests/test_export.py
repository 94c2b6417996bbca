"""Export of the student, as a library call and as ``mgd-lightning export`` from a checkpoint.

ONNX and TorchScript match PyTorch at two sizes; bad inputs raise or name the argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import Tensor, nn

from _tiny_config import SHORT_FIT, tiny_network, write_config
from _tiny_models import make_tiny
from mgd_lightning.cli import main
from mgd_lightning.export import (
    LogitsOnly,
    export,
    export_onnx,
    export_torchscript,
    load_student,
    load_torchscript,
)
from mgd_lightning.models import DeepLabV3Plus, TeacherPair, network_from_checkpoint
from mgd_lightning.tasks import DistillationModule

SIZES = [(2, 3, 32, 48), (1, 3, 64, 40)]


def _tiny(seed: int = 0) -> DeepLabV3Plus:
    return make_tiny(seed=seed)


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


# ---------------------------------------------------------------- mgd-lightning export
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fit")
    config = write_config(
        folder / "fit.yaml",
        model={"class_path": "mgd_lightning.tasks.SupervisedModule",
               "init_args": {"network": tiny_network(16)}},
        data={"num_train": 8, "num_val": 2, "num_test": 2, "labeled_ratio": 0.5},
        default_root_dir=str(folder / "runs"),
        **SHORT_FIT,
    )
    main(["fit", "--config", str(config)])
    path = folder / "runs" / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return path


def _inputs() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 32, 32, generator=generator), torch.randn(1, 3, 48, 64)]


def test_export_onnx_and_torchscript_match_the_checkpoint(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_path, ts_path = tmp_path / "s.onnx", tmp_path / "nested" / "s.pt"
    common = ["--checkpoint", str(checkpoint), "--example-size", "32"]
    onnx_args = ["--format", "onnx", "--opset", "17", "--verify", "--output", str(onnx_path)]
    assert main(["export", *common, *onnx_args]) == 0
    assert main(["export", *common, "--format", "torchscript", "--output", str(ts_path)]) == 0
    assert f"wrote {ts_path}" in capsys.readouterr().out
    student = network_from_checkpoint(checkpoint, load_weights=True).eval()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    scripted = load_torchscript(ts_path)
    for images in _inputs():
        with torch.no_grad():
            expected = student(images).logits.numpy()
            np.testing.assert_allclose(scripted(images).numpy(), expected, atol=1e-4, rtol=0)
        (logits,) = session.run(None, {"images": images.numpy()})
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_missing_checkpoint_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.ckpt"
    assert main(["export", "--checkpoint", str(missing), "--output", str(tmp_path / "s.pt")]) == 1
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "s.pt").exists()


def test_unknown_format_names_the_argument(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", str(checkpoint), "--format", "tf", "--output", "x"])
    assert exit_info.value.code == 2
    assert "--format" in capsys.readouterr().err


def test_unwritable_output_names_the_path(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    output = blocker / "s.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(output)]) == 1
    assert str(blocker) in capsys.readouterr().err
