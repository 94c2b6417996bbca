"""``mgd-lightning export`` from a real checkpoint (a 2-step fit through the CLI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import yaml

from mgd_lightning.cli import main
from mgd_lightning.export import load_torchscript
from mgd_lightning.models import network_from_checkpoint


def _config(folder: Path) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 2,
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "limit_val_batches": 1,
            "default_root_dir": str(folder / "runs"),
        },
        "model": {
            "class_path": "mgd_lightning.tasks.SupervisedModule",
            "init_args": {
                "network": {
                    "class_path": "mgd_lightning.models.DeepLabV3Plus",
                    "init_args": {"backbone": "resnet10t", "head_channels": 16},
                }
            },
        },
        "data": {
            "class_path": "mgd_lightning.datamodules.SyntheticDataModule",
            "init_args": {
                "image_size": 32,
                "num_train": 8,
                "num_val": 2,
                "num_test": 2,
                "labeled_ratio": 0.5,
                "batch_size": 2,
            },
        },
    }
    path = folder / "fit.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fit")
    main(["fit", "--config", str(_config(folder))])
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
