"""Training and evaluation transforms (albumentations), defaults of docs/method.md#training-recipe.

Training: horizontal flip (p=0.5) -> random scale picked from a discrete set (default
``{0.5, 0.75, 1, 1.5, 1.75, 2}``; image bilinear, mask nearest) -> ImageNet normalisation ->
pad to the crop size (image 0 *after* normalisation, i.e. the mean colour in raw space; mask
``ignore_index``) -> random crop. Evaluation: normalisation only, no randomness.

The transforms own no hidden random state: each call takes a ``seed`` (drawn by the dataset from
torch's RNG, which ``seed_everything(workers=True)`` and PyTorch seed per worker), so results are
reproducible and differ across workers and epochs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

import mgd_lightning  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations loads)

import albumentations as A  # isort: skip
import cv2  # isort: skip

__all__ = [
    "DEFAULT_SCALES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SegmentationTransform",
    "eval_transform",
    "parse_crop_size",
    "train_transform",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DEFAULT_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 1.75, 2.0)


def parse_crop_size(crop_size: int | Sequence[int]) -> tuple[int, int]:
    """Check a crop size and return it as ``(height, width)``.

    Any positive size is valid: the image is padded up to the crop before cropping, so a crop
    larger than the (scaled) image only adds padding (mean colour, mask ignored).

    Args:
        crop_size: ``int`` for a square crop or an ``(height, width)`` pair of positive ints.

    Raises:
        ValueError: if it is not a positive int or a pair of positive ints.

    Examples:
        >>> parse_crop_size(512), parse_crop_size((176, 224))
        ((512, 512), (176, 224))
    """
    values: tuple[Any, ...]
    if isinstance(crop_size, (int, np.integer)) and not isinstance(crop_size, bool):
        values = (int(crop_size), int(crop_size))
    elif isinstance(crop_size, Sequence) and not isinstance(crop_size, str) and len(crop_size) == 2:
        values = tuple(crop_size)
    else:
        raise ValueError(
            f"`crop_size` must be a positive int or a (height, width) pair of positive ints, "
            f"got {crop_size!r}"
        )
    if not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(
            f"`crop_size` must be a positive int or a (height, width) pair of positive ints, "
            f"got {crop_size!r}; e.g. crop_size=512 or crop_size=[176, 224]"
        )
    return int(values[0]), int(values[1])


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or len(scales) == 0:
        raise ValueError(f"`scales` must be a non-empty list of positive floats, got {scales!r}")
    out = tuple(float(s) for s in scales)
    if not all(s > 0 for s in out):
        raise ValueError(f"`scales` must all be positive, got {scales!r}")
    return out


def _check_color_jitter(
    color_jitter: Sequence[float] | None,
) -> tuple[float, float, float, float] | None:
    if color_jitter is None:
        return None
    bad = len(color_jitter) != 4 or not all(v >= 0 for v in color_jitter)
    if bad or color_jitter[3] > 0.5:
        raise ValueError(
            "`color_jitter` must be (brightness, contrast, saturation, hue) strengths >= 0 "
            f"with hue <= 0.5, got {color_jitter!r}"
        )
    b, c, s, h = (float(v) for v in color_jitter)
    return b, c, s, h


class SegmentationTransform:
    """An albumentations pipeline that returns tensors and takes an explicit seed.

    Args:
        transforms: albumentations transforms, applied in order to the image and the mask.
        is_random: whether the pipeline draws random numbers (datasets skip drawing a seed if not).
    """

    def __init__(self, transforms: Sequence[A.BasicTransform], is_random: bool) -> None:
        self.compose = A.Compose(list(transforms), seed=0)
        self.is_random = is_random

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None, seed: int | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Apply the pipeline.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            mask: optional ``(H, W)`` integer class indices.
            seed: seed of this call's random choices (flip, scale, crop position).

        Returns:
            ``(3, H', W')`` float32 image and ``(H', W')`` int64 mask (or ``None``).
        """
        if seed is not None:
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.compose(image=image) if mask is None else self.compose(image=image, mask=mask)
        img = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        if mask is None:
            return img, None
        return img, torch.from_numpy(np.asarray(out["mask"]).astype(np.int64))

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.compose.transforms)
        return f"{type(self).__name__}([{names}])"


def train_transform(
    crop_size: int | Sequence[int] = 512,
    scales: Sequence[float] = DEFAULT_SCALES,
    ignore_index: int = 255,
    hflip_prob: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    color_jitter: Sequence[float] | None = None,
) -> SegmentationTransform:
    """The training transform of docs/method.md#training-recipe.

    Flip -> scale from ``scales`` (uniform choice) -> [colour jitter] -> normalise -> pad (image
    0 after normalisation, mask ``ignore_index``) to at least ``crop_size`` (centred) -> random
    crop.

    Args:
        crop_size: output size, ``int`` or ``(H, W)``.
        scales: discrete scale factors, one picked uniformly per sample.
        ignore_index: mask value of padded pixels.
        hflip_prob: probability of a horizontal flip.
        mean: normalisation mean (RGB in [0, 1]).
        std: normalisation std.
        color_jitter: optional ``(brightness, contrast, saturation, hue)`` strengths of an
            ``albumentations.ColorJitter`` applied with probability 0.8 (not in the paper's
            recipe; it helps models generalise to other lighting). ``None``: off.

    Examples:
        >>> t = train_transform(crop_size=32, scales=[0.5])
        >>> img, mask = t(np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), np.uint8), seed=0)
        >>> tuple(img.shape), tuple(mask.shape), sorted(mask.unique().tolist())
        ((3, 32, 32), (32, 32), [0, 255])
    """
    height, width = parse_crop_size(crop_size)
    scale_set = _check_scales(scales)
    if not 0.0 <= hflip_prob <= 1.0:
        raise ValueError(f"`hflip_prob` must be in [0, 1], got {hflip_prob!r}")
    jitter = _check_color_jitter(color_jitter)
    photometric: list[A.BasicTransform] = []
    if jitter is not None:
        b, c, s, h = jitter
        photometric = [A.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h, p=0.8)]
    scale_ops = [
        A.RandomScale(scale_limit=(s - 1.0, s - 1.0), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST, p=1.0)
        for s in scale_set
    ]
    transforms: list[A.BasicTransform] = [
        A.HorizontalFlip(p=hflip_prob),
        scale_ops[0] if len(scale_ops) == 1 else A.OneOf(scale_ops, p=1.0),
        *photometric,
        A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
        A.PadIfNeeded(min_height=height, min_width=width, position="center",
                      border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.RandomCrop(height=height, width=width),
    ]
    return SegmentationTransform(transforms, is_random=True)


def eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> SegmentationTransform:
    """The evaluation transform: ImageNet normalisation only (padding is the model's job).

    Examples:
        >>> img, _ = eval_transform()(np.full((4, 6, 3), 124, np.uint8))
        >>> tuple(img.shape), bool(img[0].abs().max() < 0.02)  # 124 is about the mean red
        ((3, 4, 6), True)
    """
    return SegmentationTransform(
        [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0)], is_random=False
    )
