"""Training/evaluation transforms: METHOD.md C.1 defaults, padding, seeds, crop-size errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgd_lightning.data.transforms import (
    DEFAULT_SCALES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    parse_crop_size,
    train_transform,
)


def _image(h: int = 20, w: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_defaults_match_method_c1() -> None:
    assert DEFAULT_SCALES == (0.5, 0.75, 1.0, 1.5, 1.75, 2.0)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_train_output_shapes_and_dtypes() -> None:
    t = train_transform(crop_size=(16, 24))
    image, mask = t(_image(), np.zeros((20, 30), np.uint8), seed=3)
    assert image.shape == (3, 16, 24) and image.dtype == torch.float32
    assert mask is not None and mask.shape == (16, 24) and mask.dtype == torch.int64


def test_padding_is_zero_after_normalisation_and_ignore_in_mask() -> None:
    # Scale 0.5 of a 20x30 image gives 10x15 inside a 32x32 crop: the rest is padding.
    t = train_transform(crop_size=32, scales=[0.5], hflip_prob=0.0)
    image, mask = t(np.full((20, 30, 3), 255, np.uint8), np.ones((20, 30), np.uint8), seed=0)
    assert mask is not None
    pad = mask == 255
    assert pad.sum() == 32 * 32 - 10 * 15
    assert torch.all(image[:, pad] == 0)  # 0 after normalisation = the mean colour in raw space
    assert torch.all(image[:, ~pad] > 2.0)  # white pixels
    assert set(mask[~pad].unique().tolist()) == {1}


def test_scale_is_one_of_the_set() -> None:
    t = train_transform(crop_size=80, scales=[0.5, 2.0], hflip_prob=0.0)
    areas = set()
    for seed in range(40):
        _, mask = t(_image(20, 20), np.zeros((20, 20), np.uint8), seed=seed)
        assert mask is not None
        areas.add(int((mask != 255).sum().item()))
    assert areas == {10 * 10, 40 * 40}  # both scales drawn, nothing in between


def test_same_seed_same_output_and_different_seeds_differ() -> None:
    t = train_transform(crop_size=16)
    img, msk = _image(), np.random.default_rng(1).integers(0, 5, (20, 30)).astype(np.uint8)
    a, ma = t(img, msk, seed=7)
    b, mb = t(img, msk, seed=7)
    assert torch.equal(a, b) and ma is not None and mb is not None and torch.equal(ma, mb)
    outs = {t(img, msk, seed=s)[0].sum().item() for s in range(10)}
    assert len(outs) > 1


def test_mask_nearest_keeps_class_values() -> None:
    t = train_transform(crop_size=16, scales=[0.75, 1.75])
    msk = np.random.default_rng(0).choice(np.array([0, 3, 7], np.uint8), (20, 30))
    for seed in range(5):
        _, mask = t(_image(), msk, seed=seed)
        assert mask is not None
        assert set(mask.unique().tolist()) <= {0, 3, 7, 255}


def test_eval_transform_normalises_only() -> None:
    img = _image(13, 17)
    out, mask = eval_transform()(img, np.zeros((13, 17), np.uint8))
    assert out.shape == (3, 13, 17) and mask is not None and mask.shape == (13, 17)
    expected = (img[..., 0] / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert np.allclose(out[0].numpy(), expected, atol=1e-5)
    assert not eval_transform().is_random


@pytest.mark.parametrize("bad", [0, -3, 1.5, "512", (1, 2, 3), (0, 4), True, None])
def test_bad_crop_size(bad: object) -> None:
    with pytest.raises(ValueError, match="crop_size"):
        parse_crop_size(bad)  # type: ignore[arg-type]


def test_crop_larger_than_image_only_pads() -> None:
    t = train_transform(crop_size=(64, 80), scales=[1.0])
    image, mask = t(_image(), np.zeros((20, 30), np.uint8), seed=0)
    assert image.shape == (3, 64, 80) and mask is not None
    assert int((mask == 0).sum()) == 20 * 30


@pytest.mark.parametrize("scales", [[], [0.0], [-1.0]])
def test_bad_scales(scales: list[float]) -> None:
    with pytest.raises(ValueError, match="scales"):
        train_transform(crop_size=8, scales=scales)


def test_color_jitter_changes_colours_not_masks() -> None:
    image = _image(40, 40)
    mask = np.random.default_rng(1).integers(0, 5, (40, 40), dtype=np.uint8)
    kwargs = {"crop_size": 32, "scales": [1.0], "hflip_prob": 0.0}
    plain = train_transform(**kwargs)  # type: ignore[arg-type]
    jitter = train_transform(**kwargs, color_jitter=(0.5, 0.5, 0.5, 0.1))  # type: ignore[arg-type]
    names = [type(t).__name__ for t in jitter.compose.transforms]
    assert "ColorJitter" in names and "ColorJitter" not in repr(plain)
    changed = 0
    for seed in range(5):
        (a, mask_a), (b, mask_b) = plain(image, mask, seed=seed), jitter(image, mask, seed=seed)
        assert mask_a is not None and mask_b is not None
        assert a.shape == b.shape
        changed += int(not torch.allclose(a, b))
    assert changed >= 1  # applied with probability 0.8


@pytest.mark.parametrize("bad", [(0.1, 0.1, 0.1), (0.1, -0.1, 0.1, 0.1), (0.1, 0.1, 0.1, 0.6)])
def test_bad_color_jitter(bad: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="color_jitter"):
        train_transform(crop_size=8, scales=[1.0], color_jitter=bad)
