"""Fixtures: tiny configurations written to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny_config import mgd_model, tiny_network, write_config


@pytest.fixture
def supervised_config(tmp_path: Path) -> Path:
    model = {
        "class_path": "mgd_lightning.tasks.SupervisedModule",
        "init_args": {"network": tiny_network()},
    }
    return write_config(tmp_path / "supervised.yaml", model)


@pytest.fixture
def cps_config(tmp_path: Path) -> Path:
    model = {
        "class_path": "mgd_lightning.tasks.CPSModule",
        "init_args": {"network": tiny_network(), "branch2_init": "all"},
    }
    return write_config(tmp_path / "cps.yaml", model)


@pytest.fixture
def mgd_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "mgd.yaml", mgd_model())
