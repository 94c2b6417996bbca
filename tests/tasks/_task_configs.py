"""Tiny configurations for end-to-end tests through the real CLI (imported by the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DATA: dict[str, Any] = {
    "class_path": "mgd_lightning.datamodules.SyntheticDataModule",
    "init_args": {
        "image_size": 32,
        "num_train": 32,
        "num_val": 8,
        "num_test": 8,
        "labeled_ratio": 0.25,
        "batch_size": 2,
    },
}


def tiny_network(head_channels: int = 8) -> dict[str, Any]:
    return {
        "class_path": "mgd_lightning.models.DeepLabV3Plus",
        "init_args": {"backbone": "resnet10t", "head_channels": head_channels},
    }


def tiny_teacher(head_channels: int) -> dict[str, Any]:
    network = tiny_network(head_channels)
    network["init_args"]["num_classes"] = 6  # teachers are not linked: set K explicitly
    return network


def write_config(path: Path, model: dict[str, Any], **trainer: Any) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(path.parent / (path.stem + "_run")),
            **trainer,
        },
        "model": model,
        "data": DATA,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def mgd_model(**init_args: Any) -> dict[str, Any]:
    teachers = {
        "class_path": "mgd_lightning.models.TeacherPair",
        "init_args": {"deep": tiny_teacher(8), "wide": tiny_teacher(16)},
    }
    return {
        "class_path": "mgd_lightning.tasks.MGDModule",
        "init_args": {"network": tiny_network(), "teachers": teachers, **init_args},
    }
