"""The geometry of one training view, and the warp of a cached label map onto it.

The training transform (docs/method.md#training-recipe) is flip -> scale -> normalise -> pad
(centred) -> crop.
Only the geometric part matters for labels; :class:`ViewGeometry` records it per sample and
:func:`warp_labels` replays it on a label map of the *untransformed* image, at any resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["GEOMETRY_FIELDS", "ViewGeometry", "geometry_from_applied", "warp_labels"]

#: Order of the fields in the ``(k,)`` / ``(B, k)`` geometry tensors carried in batches.
GEOMETRY_FIELDS: tuple[str, ...] = (
    "flip",
    "source_height",
    "source_width",
    "scaled_height",
    "scaled_width",
    "pad_top",
    "pad_left",
    "crop_top",
    "crop_left",
    "height",
    "width",
)


class ViewGeometry(NamedTuple):
    """Where the pixels of one view come from in its source image.

    A view pixel ``(i, j)`` comes from the scaled image at ``(i + crop_top - pad_top,
    j + crop_left - pad_left)`` (padding if outside ``scaled_height x scaled_width``), which
    comes from the (flipped, if ``flip``) source image at the same point times
    ``source / scaled`` (pixel centres aligned, as bilinear resizing does).
    """

    flip: bool
    source_height: int
    source_width: int
    scaled_height: int
    scaled_width: int
    pad_top: int
    pad_left: int
    crop_top: int
    crop_left: int
    height: int
    width: int

    def to_tensor(self) -> Tensor:
        """The fields in :data:`GEOMETRY_FIELDS` order, shape ``(k,)`` int64."""
        return torch.tensor([int(v) for v in self], dtype=torch.int64)

    @classmethod
    def from_tensor(cls, values: Tensor | Sequence[int]) -> ViewGeometry:
        """Inverse of :meth:`to_tensor`."""
        items = [int(v) for v in (values.tolist() if isinstance(values, Tensor) else values)]
        if len(items) != len(GEOMETRY_FIELDS):
            raise ValueError(
                f"a geometry has {len(GEOMETRY_FIELDS)} values {GEOMETRY_FIELDS}, got {len(items)}"
            )
        return cls(bool(items[0]), *items[1:])


def geometry_from_applied(
    source_shape: Sequence[int], applied: Sequence[tuple[str, dict[str, Any]]]
) -> ViewGeometry:
    """Read a view's geometry from albumentations' applied parameters.

    Args:
        source_shape: ``(H, W, ...)`` of the untransformed image.
        applied: ``out["applied_transforms"]`` of a ``Compose(save_applied_params=True)``
            running :func:`~mgd_lightning.data.transforms.train_transform` (or any subset of
            ``HorizontalFlip``, ``RandomScale``, ``PadIfNeeded``, ``RandomCrop``; photometric
            transforms are skipped).

    Raises:
        ValueError: a geometric transform this function does not know was applied.
    """
    height, width = int(source_shape[0]), int(source_shape[1])
    flip, scaled, after_scale = False, (height, width), False
    pad_top = pad_left = crop_top = crop_left = 0
    out: tuple[int, int] | None = None
    for name, params in applied:
        if after_scale and "shape" in params:  # the input of the step after the scale
            scaled, after_scale = (int(params["shape"][0]), int(params["shape"][1])), False
        if name == "HorizontalFlip":
            flip = not flip
        elif name == "RandomScale":
            after_scale = True
        elif name == "PadIfNeeded":
            pad_top, pad_left = int(params["pad_top"]), int(params["pad_left"])
            out = (scaled[0] + pad_top + int(params["pad_bottom"]),
                   scaled[1] + pad_left + int(params["pad_right"]))
        elif name == "RandomCrop":
            x0, y0, x1, y1 = (int(v) for v in params["crop_coords"])
            crop_top, crop_left, out = y0, x0, (y1 - y0, x1 - x0)
        elif name not in _PHOTOMETRIC:
            raise ValueError(
                f"cannot replay the geometric transform {name!r} on cached labels; the cache "
                "supports HorizontalFlip, RandomScale, PadIfNeeded and RandomCrop"
            )
    if after_scale:
        raise ValueError("the scale must be followed by another transform to read its size")
    out_h, out_w = out if out is not None else scaled
    return ViewGeometry(flip, height, width, scaled[0], scaled[1], pad_top, pad_left, crop_top,
                        crop_left, out_h, out_w)


_PHOTOMETRIC = frozenset({"Normalize", "ToFloat", "ColorJitter", "RandomBrightnessContrast"})


def _source_index(start: int, size: int, scaled: int, cached: int, flip: bool,
                  device: torch.device) -> tuple[Tensor, Tensor]:
    """Index into the cached axis for ``size`` view pixels, and which of them are inside."""
    pos = torch.arange(size, device=device) + start  # position in the scaled image
    inside = (pos >= 0) & (pos < scaled)
    # Pixel centres: (pos + 0.5) / scaled is the relative position in the source image.
    rel = (pos.clamp(0, scaled - 1).to(torch.float64) + 0.5) / scaled
    idx = torch.floor(rel * cached).long().clamp_(0, cached - 1)
    if flip:
        idx = cached - 1 - idx
    return idx, inside


def warp_labels(cached: Tensor, geometry: ViewGeometry, fill: int = 255) -> Tensor:
    """The labels of a view, taken from a label map of its untransformed source image.

    Nearest neighbour with aligned pixel centres; the map may have any resolution (it is read
    relative to the source image). Padded view pixels get ``fill``.

    Args:
        cached: ``(H_c, W_c)`` (or ``(T, H_c, W_c)`` for several teachers) integer labels of the
            source image, unflipped.
        geometry: the view's :class:`ViewGeometry`.
        fill: label of padded pixels (the cache's :data:`~mgd_lightning.teacher_labels.NO_LABEL`).

    Returns:
        ``(height, width)`` (or ``(T, height, width)``) labels, dtype of ``cached``.

    Examples:
        >>> labels = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8)
        >>> g = ViewGeometry(True, 2, 2, 4, 4, 0, 0, 0, 0, 4, 4)  # flip, then scale x2
        >>> warp_labels(labels, g).tolist()[0]
        [1, 1, 0, 0]
    """
    if cached.dim() not in (2, 3):
        raise ValueError(f"`cached` must be (H, W) or (T, H, W), got {tuple(cached.shape)}")
    g = geometry
    cached_h, cached_w = cached.shape[-2], cached.shape[-1]
    rows, rows_in = _source_index(g.crop_top - g.pad_top, g.height, g.scaled_height, cached_h,
                                  False, cached.device)
    cols, cols_in = _source_index(g.crop_left - g.pad_left, g.width, g.scaled_width, cached_w,
                                  g.flip, cached.device)
    out = cached.index_select(-2, rows).index_select(-1, cols)
    outside = ~(rows_in[:, None] & cols_in[None, :])
    return out.masked_fill(outside, fill)
