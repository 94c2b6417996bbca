"""Procedural segmentation scenes: deterministic per (seed, split, index), no files needed.

Each scene is a textured background (smooth colour noise, sometimes stripes) with background
*distractors* (lines and blobs labeled background), then 2-5 objects drawn in order so later ones
occlude earlier ones, then global contrast/brightness jitter and Gaussian noise.

Classes (``K = 6``): 0 background, 1 disc, 2 square, 3 triangle, 4 ring, 5 cross. Each object has
a random size, aspect ratio and rotation. Its colour is drawn around a class mean with a large
spread (the class colour distributions overlap, and 25% of objects get a uniformly random colour),
and its texture family is class specific (disc radial shading, square stripes, triangle checker,
ring spots, cross linear gradient) with a random strength that can be faint; the background can
carry stripes too. Colour alone therefore does not identify a class: shape and texture matter, and
a few labeled images under-cover the appearance variation, which unlabeled images help with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from mgd_lightning.data.classes import SYNTHETIC_CLASS_NAMES, SYNTHETIC_PALETTE
from mgd_lightning.data.datasets import BaseSegmentationDataset, RawSample
from mgd_lightning.data.transforms import SegmentationTransform

__all__ = [
    "SYNTHETIC_CLASS_NAMES",
    "SYNTHETIC_PALETTE",
    "SyntheticScenes",
    "SyntheticSegmentationDataset",
]

# Class mean colours, deliberately close to each other (spread 45 per channel around them).
_CLASS_MEANS = np.array(
    [[0, 0, 0], [170, 90, 90], [110, 160, 90], [100, 110, 170], [160, 150, 90], [150, 100, 160]],
    dtype=np.float32,
)
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class SyntheticScenes:
    """Renderer of procedural scenes.

    Args:
        image_size: ``int`` or ``(H, W)``.
        seed: base seed; the scene of ``(split, index)`` is a pure function of it.
        objects: ``(min, max)`` number of objects per scene.
        colour_spread: std of an object's colour around its class mean (0-255 scale).
        noise_std: ``(min, max)`` std of the per-pixel Gaussian noise.
        cache_mb: keep rendered scenes in memory, up to this many MiB (``4 * H * W`` bytes
            per scene; 0 renders every time). Rendering is the larger part of loading a
            64x64 scene; the 2560 scenes of the default datamodule take 40 MiB. Each
            DataLoader worker keeps its own cache. Cached arrays are read-only.

    Examples:
        >>> scenes = SyntheticScenes(32, seed=0)
        >>> image, mask = scenes.render(3)
        >>> image.shape, image.dtype, mask.shape, int(mask.max()) < 6
        ((32, 32, 3), dtype('uint8'), (32, 32), True)
        >>> bool((scenes.render(3)[0] == image).all())
        True
    """

    num_classes = len(SYNTHETIC_CLASS_NAMES)

    def __init__(
        self,
        image_size: int | Sequence[int] = 64,
        seed: int = 0,
        objects: tuple[int, int] = (2, 5),
        colour_spread: float = 45.0,
        noise_std: tuple[float, float] = (3.0, 15.0),
        cache_mb: float = 256.0,
    ) -> None:
        if isinstance(image_size, int):
            self.height, self.width = image_size, image_size
        else:
            self.height, self.width = int(image_size[0]), int(image_size[1])
        if self.height < 8 or self.width < 8:
            raise ValueError(f"`image_size` must be at least 8 pixels, got {image_size!r}")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"`objects` must be (min, max) with 1 <= min <= max, got {objects!r}")
        self.seed = seed
        self.objects = objects
        self.colour_spread = colour_spread
        self.noise_std = noise_std
        if cache_mb < 0:
            raise ValueError(f"`cache_mb` must be >= 0, got {cache_mb!r}")
        self._cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._cache_limit = int(cache_mb * 2**20) // (4 * self.height * self.width)
        self._ys = np.arange(self.height, dtype=np.float32)[:, None]
        self._xs = np.arange(self.width, dtype=np.float32)[None, :]

    def render(
        self, index: int, split: Literal["train", "val", "test"] = "train"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render scene ``index`` of ``split``.

        Returns:
            ``(H, W, 3)`` uint8 RGB image and ``(H, W)`` uint8 mask with classes in ``[0, 6)``
            (read-only when they come from the cache).
        """
        key = (split, int(index))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        image, mask = self._render(index, split)
        if len(self._cache) < self._cache_limit:
            image.setflags(write=False)
            mask.setflags(write=False)
            self._cache[key] = (image, mask)
        return image, mask

    def _render(
        self, index: int, split: Literal["train", "val", "test"]
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, _SPLIT_CODES[split], index])
        h, w = self.height, self.width
        image = self._background(rng)
        mask = np.zeros((h, w), dtype=np.uint8)
        self._distractors(rng, image)
        size = min(h, w)
        for _ in range(int(rng.integers(self.objects[0], self.objects[1] + 1))):
            cls = int(rng.integers(1, self.num_classes))
            self._draw_object(rng, image, mask, cls, size)
        contrast = rng.uniform(0.75, 1.25)
        brightness = rng.uniform(-25, 25)
        noise = rng.standard_normal((h, w, 3), dtype=np.float32)
        noise *= rng.uniform(*self.noise_std)
        image = (image - 128.0) * contrast + 128.0 + brightness + noise
        return np.clip(image, 0, 255).astype(np.uint8), mask

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.height, self.width
        base = rng.uniform(50, 200, size=3).astype(np.float32)
        coarse = rng.normal(0, rng.uniform(10, 45), size=(4, 4, 3)).astype(np.float32)
        image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) + base
        if rng.random() < 0.5:  # background stripes, like the square's texture
            angle = rng.uniform(0, np.pi)
            freq = rng.uniform(0.15, 0.6)
            phase = self._xs * np.cos(angle) + self._ys * np.sin(angle)
            image += (np.sin(phase * freq) * rng.uniform(8, 30))[..., None]
        return image

    def _distractors(self, rng: np.random.Generator, image: np.ndarray) -> None:
        h, w = self.height, self.width
        for _ in range(int(rng.integers(0, 4))):
            colour = tuple(float(c) for c in rng.uniform(0, 255, size=3))
            if rng.random() < 0.6:
                p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.line(image, p0, p1, colour, thickness=int(rng.integers(1, max(2, w // 24))))
            else:
                centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                axes = (int(rng.integers(1, max(2, w // 10))),
                        int(rng.integers(1, max(2, h // 10))))
                cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)

    def _draw_object(
        self, rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, cls: int, size: int
    ) -> None:
        h, w = self.height, self.width
        radius = rng.uniform(0.1, 0.26) * size
        aspect = rng.uniform(0.7, 1.4)
        angle = rng.uniform(0, 2 * np.pi)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        reach = 1.2 * radius * max(aspect, 1 / aspect)
        y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
        x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
        if y0 >= y1 or x0 >= x1:
            return
        dy = self._ys[y0:y1] - cy
        dx = self._xs[:, x0:x1] - cx
        cos, sin = np.cos(angle), np.sin(angle)
        u = (dx * cos + dy * sin) / (radius * aspect)
        v = (dy * cos - dx * sin) / (radius / aspect)
        inside, texture = _SHAPES[cls](u, v, rng)
        if not inside.any():
            return
        if rng.random() < 0.25:
            colour = rng.uniform(0, 255, size=3).astype(np.float32)
        else:
            colour = _CLASS_MEANS[cls] + rng.normal(0, self.colour_spread, 3).astype(np.float32)
        strength = rng.uniform(5, 45)
        patch = colour + (texture * strength)[..., None]
        region = image[y0:y1, x0:x1]
        region[inside] = patch[inside]
        mask[y0:y1, x0:x1][inside] = cls


def _disc(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r2 = u * u + v * v
    return r2 <= 1.0, 1.0 - 2.0 * r2


def _square(
    u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    inside = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    return inside, np.sin(u * rng.uniform(6, 14))


def _triangle(
    u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    s3 = np.sqrt(3.0)
    inside = (v <= 0.5) & (s3 * u - v <= 1.0) & (-s3 * u - v <= 1.0)
    f = rng.uniform(4, 9)
    return inside, np.sign(np.sin(u * f) * np.sin(v * f))


def _ring(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r2 = u * u + v * v
    f = rng.uniform(8, 16)
    return (r2 <= 1.0) & (r2 >= 0.3), np.sin(u * f) * np.sin(v * f)


def _cross(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    au, av = np.abs(u), np.abs(v)
    inside = ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    return inside, np.clip(u + v, -1.0, 1.0)


_SHAPES = {1: _disc, 2: _square, 3: _triangle, 4: _ring, 5: _cross}


class SyntheticSegmentationDataset(BaseSegmentationDataset):
    """Synthetic scenes as a dataset of ``{"image", "mask", "name"}`` (or ``{"image", "name"}``).

    Args:
        scenes: the renderer.
        indices: scene indices of this dataset (e.g. the labeled part of the training scenes).
        split: which scene stream (``"train"``, ``"val"``, ``"test"``) the indices refer to.
        transform: defaults to the evaluation transform.
        with_masks: yield masks or not.

    Examples:
        >>> ds = SyntheticSegmentationDataset(SyntheticScenes(32), range(4))
        >>> s = ds[1]
        >>> tuple(s["image"].shape), tuple(s["mask"].shape), s["name"]
        ((3, 32, 32), (32, 32), 'train_000001')
    """

    def __init__(
        self,
        scenes: SyntheticScenes,
        indices: Sequence[int],
        split: Literal["train", "val", "test"] = "train",
        transform: SegmentationTransform | None = None,
        with_masks: bool = True,
    ) -> None:
        super().__init__(transform, with_masks, scenes.num_classes, 255)
        self.scenes = scenes
        self.indices = list(indices)
        self.split = split

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, index: int) -> str:
        return f"{self.split}_{self.indices[index]:06d}"

    @property
    def names(self) -> list[str]:
        """Ids of all samples, in order."""
        return [self.name(i) for i in range(len(self))]

    def read(self, index: int, with_mask: bool | None = None) -> RawSample:
        image, mask = self.scenes.render(self.indices[index], self.split)
        want_mask = self.with_masks if with_mask is None else with_mask
        return RawSample(image, mask if want_mask else None, self.name(index))
