"""Fixtures for the callback tests: a checkpoint from a 2-step fit of the tiny CLI config."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny_config import SHORT_FIT, tiny_network, write_config
from mgd_lightning.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(config, last.ckpt)`` of a 2-step fit through the real CLI."""
    folder = tmp_path_factory.mktemp("fit")
    config = write_config(
        folder / "fit.yaml",
        model={"class_path": "mgd_lightning.tasks.SupervisedModule",
               "init_args": {"network": tiny_network(16)}},
        data={"num_train": 8, "num_val": 2, "num_test": 3, "labeled_ratio": 0.5,
              "eval_batch_size": 2},
        default_root_dir=str(folder / "runs"),
        **SHORT_FIT,
    )
    main(["fit", "--config", str(config)])
    checkpoint = folder / "runs" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    return config, checkpoint
