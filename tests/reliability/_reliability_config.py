"""A tiny supervised CLI configuration for the reliability tests (a uniquely named helper)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TINY: dict[str, Any] = {
    "seed_everything": 0,
    "trainer": {"logger": False, "enable_progress_bar": False, "enable_model_summary": False},
    "model": {
        "class_path": "mgd_lightning.tasks.SupervisedModule",
        "init_args": {
            "network": {
                "class_path": "mgd_lightning.models.DeepLabV3Plus",
                "init_args": {"backbone": "resnet10t", "head_channels": 8},
            }
        },
    },
    "data": {
        "class_path": "mgd_lightning.datamodules.SyntheticDataModule",
        "init_args": {
            "image_size": 32,
            "num_train": 32,
            "num_val": 4,
            "num_test": 4,
            "labeled_ratio": 0.25,
            "batch_size": 2,
        },
    },
}


def write_config(folder: Path, **sections: Any) -> Path:
    """Write :data:`TINY`, with top-level ``sections`` replaced, to ``folder/config.yaml``."""
    config = copy.deepcopy(TINY) | sections
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _network(num_classes: int | None, head_channels: int) -> dict[str, Any]:
    init_args: dict[str, Any] = {"backbone": "resnet10t", "head_channels": head_channels}
    if num_classes is not None:
        init_args["num_classes"] = num_classes
    return {"class_path": "mgd_lightning.models.DeepLabV3Plus", "init_args": init_args}


def mgd_model(
    teacher_classes: int = 6, deep_weights: str | None = None, **init_args: Any
) -> dict[str, Any]:
    """The ``model`` section of a tiny MGD run (random teachers unless ``deep_weights``)."""
    teachers: dict[str, Any] = {
        "deep": _network(teacher_classes, 8),
        "wide": _network(teacher_classes, 16),
    }
    if deep_weights is not None:
        teachers["deep_weights"] = deep_weights
    return {
        "class_path": "mgd_lightning.tasks.MGDModule",
        "init_args": {
            "network": _network(None, 8),
            "teachers": {"class_path": "mgd_lightning.models.TeacherPair", "init_args": teachers},
            **init_args,
        },
    }
