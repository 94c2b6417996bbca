"""Fixtures for the callback tests: a tiny CLI config and a checkpoint from a 2-step fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mgd_lightning.cli import main


def write_config(folder: Path) -> Path:
    """A fit config: SupervisedModule, resnet10t head 16, 32 px synthetic scenes, no logger."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 2,
            "accelerator": "cpu",
            "devices": 1,
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
                "num_test": 3,
                "labeled_ratio": 0.5,
                "batch_size": 2,
                "eval_batch_size": 2,
            },
        },
    }
    path = folder / "fit.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(config, last.ckpt)`` of a 2-step fit through the real CLI."""
    folder = tmp_path_factory.mktemp("fit")
    config = write_config(folder)
    main(["fit", "--config", str(config)])
    checkpoint = folder / "runs" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    return config, checkpoint
