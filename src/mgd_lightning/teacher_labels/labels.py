"""A memory-mapped store of the teachers' hard pseudo-labels, one map per training image."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mgd_lightning.models.teachers import TeacherName, TeacherPair
from mgd_lightning.teacher_labels.geometry import ViewGeometry, warp_labels

__all__ = ["NO_LABEL", "TeacherLabelCache", "build_teacher_label_cache"]

#: Label of view pixels the cache cannot label (padding); ignored by the pixel-level loss.
NO_LABEL = 255
_NAMES: tuple[TeacherName, ...] = ("deep", "wide")


class TeacherLabelCache:
    """Hard pseudo-labels of both teachers for ``N`` images, as a ``uint8`` memmap.

    The array has shape ``(N, 2, H, W)`` (teachers ``deep``, ``wide``); images smaller than
    ``H x W`` fill the top-left corner and record their own size. Files: ``labels.u8`` (raw
    array) and ``meta.json`` (shape, per-image sizes and names, the teachers' sources).

    Args:
        root: the cache folder (written by :func:`build_teacher_label_cache`).

    Shape:
        - :meth:`view_labels`: ``(2, height, width)`` uint8, :data:`NO_LABEL` on padding.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no teacher-label cache at {self.root} (missing meta.json); build it with "
                "build_teacher_label_cache(...)"
            )
        self.meta = json.loads(meta_path.read_text())
        shape = tuple(self.meta["shape"])
        self.labels = np.memmap(self.root / "labels.u8", dtype=np.uint8, mode="r", shape=shape)
        self.sizes: list[tuple[int, int]] = [(int(s[0]), int(s[1])) for s in self.meta["sizes"]]
        self.names: list[str] = list(self.meta["names"])
        self._rows = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.sizes)

    def index(self, name: str) -> int:
        """Row of the image called ``name`` (``KeyError`` if absent)."""
        return self._rows[name]

    def labels_of(self, index: int) -> Tensor:
        """``(2, H_i, W_i)`` uint8 labels of image ``index`` (deep, wide), untransformed."""
        h, w = self.sizes[index]
        return torch.from_numpy(np.array(self.labels[index, :, :h, :w]))

    def view_labels(self, index: int, geometry: ViewGeometry | Tensor) -> Tensor:
        """The labels of one training view of image ``index``: ``(2, height, width)`` uint8."""
        if isinstance(geometry, Tensor):
            geometry = ViewGeometry.from_tensor(geometry)
        return warp_labels(self.labels_of(index), geometry, fill=NO_LABEL)


def build_teacher_label_cache(
    teachers: TeacherPair,
    images: Sequence[Tensor] | Callable[[int], Tensor],
    root: str | os.PathLike[str],
    count: int | None = None,
    names: Sequence[str] | None = None,
    scale: float = 1.0,
    batch_size: int = 1,
) -> TeacherLabelCache:
    """Run both teachers once over ``images`` and store their argmax maps.

    Args:
        teachers: the frozen pair (its autocast setting is used).
        images: normalised ``(3, H, W)`` images (the evaluation transform of the training
            images, unflipped, unscaled), or a function ``index -> image``.
        root: output folder (created).
        count: number of images when ``images`` is a function.
        names: optional ids stored with the cache (checked by users against their dataset).
        scale: resize each image by this factor before the teachers (labels are stored at
            that resolution; 2.0 matches the largest training scale more closely).
        batch_size: images per teacher pass (same-size images only).

    Returns:
        The opened cache.
    """
    num_classes = teachers.num_classes
    if num_classes > NO_LABEL:
        raise ValueError(f"the cache stores uint8 labels: at most {NO_LABEL} classes, got "
                         f"{num_classes}")
    n = len(images) if count is None and not callable(images) else count
    if n is None:
        raise ValueError("`count` is needed when `images` is a function")
    get = images if callable(images) else images.__getitem__
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    maps: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    device = next(teachers.parameters()).device
    start = 0
    while start < n:
        batch = [get(i) for i in range(start, min(start + batch_size, n))]
        if len({tuple(b.shape) for b in batch}) > 1:
            batch = batch[:1]
        x = torch.stack(batch).to(device)
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        out = teachers([x])
        both = torch.stack([getattr(out, t)[0].logits.argmax(1) for t in _NAMES], dim=1)
        for item in both.to(torch.uint8).cpu().numpy():
            maps.append(item)
            sizes.append((int(item.shape[-2]), int(item.shape[-1])))
        start += len(batch)
    height = max(s[0] for s in sizes)
    width = max(s[1] for s in sizes)
    array = np.memmap(root / "labels.u8", dtype=np.uint8, mode="w+", shape=(n, 2, height, width))
    for i, item in enumerate(maps):
        array[i, :, : item.shape[-2], : item.shape[-1]] = item
    array.flush()
    del array
    meta = {
        "shape": [n, 2, height, width],
        "sizes": [list(s) for s in sizes],
        "names": list(names) if names is not None else [str(i) for i in range(n)],
        "teachers": list(_NAMES),
        "sources": teachers.sources,
        "scale": scale,
        "num_classes": num_classes,
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    return TeacherLabelCache(root)
