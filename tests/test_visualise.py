"""Colouring, overlays, palette PNGs, panels and atomic PNG writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgd_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mgd_lightning.visualise import (
    IGNORE_COLOUR,
    colourise,
    denormalise,
    overlay,
    palette_png,
    panel,
    save_png,
)

PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]


def test_colourise_ignore_and_out_of_palette_pixels() -> None:
    classes = np.array([[0, 1], [2, 255], [7, 1]])
    rgb = colourise(classes, PALETTE)
    assert rgb.shape == (3, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 1]) == (255, 0, 0) and tuple(rgb[1, 0]) == (0, 255, 0)
    assert tuple(rgb[1, 1]) == IGNORE_COLOUR and tuple(rgb[2, 0]) == IGNORE_COLOUR
    with pytest.raises(ValueError, match="palette"):
        colourise(classes, [(0, 0)])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        colourise(np.zeros((1, 2, 2)), PALETTE)


def test_denormalise_inverts_the_normalisation() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    normalised = (torch.from_numpy(rgb).float() / 255 - mean) / std
    assert np.array_equal(denormalise(normalised.permute(2, 0, 1)), rgb)


def test_overlay_blends_and_keeps_ignored_pixels() -> None:
    image = np.full((1, 2, 3), 100, dtype=np.uint8)
    blended = overlay(image, np.array([[1, 255]]), PALETTE, alpha=0.5)
    assert tuple(blended[0, 0]) == (178, 50, 50)
    assert tuple(blended[0, 1]) == (100, 100, 100)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, np.array([[1, 1]]), PALETTE, alpha=2.0)


def test_palette_png_reads_back_as_class_indices(tmp_path: Path) -> None:
    classes = np.array([[0, 1, 2], [2, 1, 0]])
    path = save_png(palette_png(classes, PALETTE), tmp_path / "sub" / "c.png")
    with Image.open(path) as image:
        assert image.mode == "P"
        assert np.array_equal(np.asarray(image), classes)
        assert image.getpalette()[3:6] == [255, 0, 0]
    assert [p.name for p in path.parent.iterdir()] == ["c.png"]  # no temporary left


def test_panel_tiles_rows_with_titles() -> None:
    a = np.zeros((4, 6, 3), dtype=np.uint8)
    b = np.full((2, 3, 3), 9, dtype=np.uint8)
    grid = panel([[a, b], [b, a]], gap=1)
    assert grid.shape == (1 + 4 + 1 + 4 + 1, 1 + 6 + 1 + 6 + 1, 3)
    titled = panel([[a, b]], titles=["x", "y"], gap=1)
    assert titled.shape[0] == grid.shape[0] - 4 - 1 + 14
    with pytest.raises(ValueError, match="same number"):
        panel([[a, b], [a]])
    with pytest.raises(ValueError, match="titles"):
        panel([[a, b]], titles=["x"])


def test_save_png_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises((TypeError, ValueError, OSError)):
        save_png(np.zeros((2, 2, 5), dtype=np.float64), tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []
