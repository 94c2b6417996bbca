"""Synthetic scenes: deterministic, varied, fast."""

from __future__ import annotations

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


def test_rendered_scenes_are_cached_read_only_and_bounded() -> None:
    scenes = SyntheticScenes(32, seed=0)
    image, mask = scenes.render(3)
    again = scenes.render(3)
    assert again[0] is image and again[1] is mask  # from the cache, not re-rendered
    assert not image.flags.writeable and not mask.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        image[0, 0, 0] = 1
    assert scenes.render(3, "val")[0] is not image  # the split is part of the key
    uncached = SyntheticScenes(32, seed=0, cache_mb=0)
    fresh = uncached.render(3)
    assert fresh[0] is not uncached.render(3)[0] and fresh[0].flags.writeable
    assert np.array_equal(fresh[0], image) and np.array_equal(fresh[1], mask)
    # The limit counts scenes of 4 * H * W bytes: 1 KiB here, so 0.002 MiB holds two.
    small = SyntheticScenes(16, seed=0, cache_mb=0.002)
    for i in range(4):
        small.render(i)
    assert small.render(0)[0] is small.render(0)[0]
    assert small.render(3)[0] is not small.render(3)[0]


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
    with pytest.raises(ValueError, match="cache_mb"):
        SyntheticScenes(32, cache_mb=-1)
