"""Fixtures for the network tests: tiny DeepLabv3+ networks, offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from _tiny_models import make_tiny
from mgd_lightning.models import DeepLabV3Plus


@pytest.fixture
def tiny_net() -> DeepLabV3Plus:
    return make_tiny()
