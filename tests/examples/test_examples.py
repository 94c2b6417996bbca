"""Every example runs in its smallest configuration."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_losses_plain_pytorch_runs() -> None:
    terms = _load("losses_plain_pytorch").main(steps=2)
    assert set(terms) == {"sup", "pixel", "image", "region", "total"}
    assert all(math.isfinite(v) for v in terms.values())


def test_notebook_fit_runs(tmp_path) -> None:
    metrics = _load("notebook_fit").main(
        steps=2, image_size=32, num_train=64, workdir=str(tmp_path)
    )
    assert 0.0 <= metrics["val_mIoU"] <= 1.0


def test_teacher_pair_from_checkpoints_runs(tmp_path) -> None:
    pair = _load("teacher_pair_from_checkpoints").main(workdir=str(tmp_path))
    assert pair.sources["deep"] is not None and len(pair.sources["deep"]["sha256"]) == 64


def test_folder_dataset_through_the_cli(tmp_path) -> None:
    from mgd_lightning.cli import main

    spec = importlib.util.spec_from_file_location(
        "make_dataset", EXAMPLES / "folder_dataset" / "make_dataset.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = module.make(tmp_path / "data", num_labeled=8, num_unlabeled=8, num_val=4, size=32)
    cli = main(
        [
            "fit",
            "--config",
            str(EXAMPLES / "folder_dataset" / "fit.yaml"),
            "--data.root",
            str(root),
            "--trainer.fast_dev_run=2",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
            "--model.init_args.network.init_args.backbone=resnet10t",
            "--data.init_args.batch_size=4",
            "--data.init_args.crop_size=32",
        ]
    )
    assert cli.trainer.global_step == 2
    assert cli.datamodule.class_names[0] == "background"
