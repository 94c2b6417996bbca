"""Tiny DeepLabv3+ networks for fast tests, shared by every test folder (import `_tiny_models`)."""

from __future__ import annotations

import torch

from mgd_lightning.models import DeepLabV3Plus


def make_tiny(
    num_classes: int = 3, backbone: str = "resnet10t", seed: int = 0, head_channels: int = 16
) -> DeepLabV3Plus:
    """A small DeepLabv3+ (head width 16 unless given), seeded."""
    torch.manual_seed(seed)
    return DeepLabV3Plus(backbone, num_classes=num_classes, head_channels=head_channels)
