"""Synthetic scenes: deterministic, varied, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mgd_lightning.data.synthetic import (
    SYNTHETIC_CLASS_NAMES,
    SYNTHETIC_PALETTE,
    SyntheticScenes,
    SyntheticSegmentationDataset,
)
from mgd_lightning.data.transforms import train_transform


def test_deterministic_per_index_and_seed() -> None:
    a, b = SyntheticScenes(48, seed=1), SyntheticScenes(48, seed=1)
    for i in range(5):
        ia, ma = a.render(i)
        ib, mb = b.render(i)
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb)
    assert not np.array_equal(a.render(0)[0], SyntheticScenes(48, seed=2).render(0)[0])
    assert not np.array_equal(a.render(0)[0], a.render(1)[0])
    assert not np.array_equal(a.render(0, "train")[0], a.render(0, "val")[0])


def test_classes_shapes_and_metadata() -> None:
    scenes = SyntheticScenes((40, 56), seed=0)
    image, mask = scenes.render(0)
    assert image.shape == (40, 56, 3) and image.dtype == np.uint8
    assert mask.shape == (40, 56) and mask.dtype == np.uint8
    seen = set()
    for i in range(60):
        seen |= set(np.unique(scenes.render(i)[1]).tolist())
    assert seen == set(range(len(SYNTHETIC_CLASS_NAMES)))
    assert len(SYNTHETIC_PALETTE) == len(SYNTHETIC_CLASS_NAMES) == 6


def test_class_colours_overlap() -> None:
    """Colour alone does not separate classes: per-class mean colours are close, spreads large."""
    scenes = SyntheticScenes(64, seed=0)
    pixels: dict[int, list[np.ndarray]] = {c: [] for c in range(1, 6)}
    for i in range(80):
        image, mask = scenes.render(i)
        for c in pixels:
            if (mask == c).any():
                pixels[c].append(image[mask == c].mean(axis=0))
    means = np.array([np.mean(v, axis=0) for v in pixels.values()])
    spreads = np.array([np.std(v, axis=0).mean() for v in pixels.values()])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(5, 1)]
    assert spreads.min() > 30  # large appearance variation within a class
    assert gaps.min() < 2 * spreads.mean()  # some class colour distributions overlap


def test_sample_128px_takes_a_few_ms() -> None:
    scenes = SyntheticScenes(128, seed=0)
    scenes.render(0)
    n = 50
    start = time.perf_counter()
    for i in range(n):
        scenes.render(i)
    per_sample_ms = (time.perf_counter() - start) / n * 1e3
    assert per_sample_ms < 10.0, f"{per_sample_ms:.2f} ms per 128x128 scene"


def test_dataset_with_train_transform() -> None:
    ds = SyntheticSegmentationDataset(SyntheticScenes(32), [3, 5], "train",
                                      transform=train_transform(crop_size=24))
    sample = ds[1]
    assert sample["name"] == "train_000005"
    assert sample["image"].shape == (3, 24, 24) and sample["mask"].shape == (24, 24)
    assert set(sample["mask"].unique().tolist()) <= {*range(6), 255}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="image_size"):
        SyntheticScenes(4)
    with pytest.raises(ValueError, match="objects"):
        SyntheticScenes(32, objects=(3, 2))
