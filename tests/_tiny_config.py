"""The tiny CLI config of the tests (``tests/conf/tiny.yaml``) and the changes tests make to it.

Imported as ``_tiny_config`` from any test folder (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CONF = Path(__file__).resolve().parent / "conf"
#: What a short fit adds: two steps, one validation batch, no sanity check.
SHORT_FIT: dict[str, Any] = {"max_steps": 2, "num_sanity_val_steps": 0, "limit_val_batches": 1}


def quiet_trainer(max_steps: int, **kwargs: Any) -> Any:
    """A ``lightning.Trainer`` for in-process test fits: no logger, bar, summary or validation
    (``kwargs`` override, e.g. ``enable_checkpointing`` or ``default_root_dir``)."""
    import lightning as L

    settings: dict[str, Any] = {
        "max_steps": max_steps, "limit_val_batches": 0, "logger": False,
        "enable_progress_bar": False, "enable_checkpointing": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**settings, **kwargs})


def tiny_config() -> dict[str, Any]:
    """A fresh copy of ``tests/conf/tiny.yaml``."""
    return copy.deepcopy(yaml.safe_load((CONF / "tiny.yaml").read_text()))


def tiny_network(head_channels: int = 8, num_classes: int | None = None) -> dict[str, Any]:
    """The tiny network of the config; ``num_classes`` for networks the CLI does not link."""
    network = copy.deepcopy(tiny_config()["model"]["init_args"]["network"])
    network["init_args"]["head_channels"] = head_channels
    if num_classes is not None:
        network["init_args"]["num_classes"] = num_classes
    return network


def mgd_model(**init_args: Any) -> dict[str, Any]:
    """``MGDModule`` with the tiny student and two tiny teachers (6 classes, as the data)."""
    teachers = {
        "class_path": "mgd_lightning.models.TeacherPair",
        "init_args": {"deep": tiny_network(8, 6), "wide": tiny_network(16, 6)},
    }
    return {
        "class_path": "mgd_lightning.tasks.MGDModule",
        "init_args": {"network": tiny_network(), "teachers": teachers, **init_args},
    }


def write_config(
    path: Path,
    model: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    **trainer: Any,
) -> Path:
    """Write the tiny config to ``path``, with another ``model``, data ``init_args`` and trainer
    settings; the run's folder is ``<path without .yaml>_run`` unless ``default_root_dir`` is
    given."""
    config = tiny_config()
    config["trainer"]["default_root_dir"] = str(path.parent / (path.stem + "_run"))
    config["trainer"].update(trainer)
    if model is not None:
        config["model"] = model
    config["data"]["init_args"].update(data or {})
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
