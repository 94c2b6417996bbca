"""CutMix box masks and mixing (docs/method.md#training-recipe, B.1).

The reference mixes two unlabeled crops with a mask made of ``n_boxes`` boxes that each *toggle*
their region (overlaps cancel, XOR). Per image and per box an area share ``p ~ U(prop_range)`` is
drawn; the box's height share is ``p ** u`` with ``u ~ U(0, 1)`` (a random aspect ratio), its
width share ``p / height share``, and both are scaled by ``sqrt(1 / n_boxes)``, so each box covers
``p / n_boxes`` of the image. Boxes lie inside the image at a uniform position.

Mask value 1 means "take from ``b``"; 0 means "keep ``a``".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["cutmix_box_masks", "cutmix_boxes", "mix"]


def cutmix_boxes(
    batch_size: int,
    height: int,
    width: int,
    n_boxes: int = 3,
    prop_range: tuple[float, float] = (0.25, 0.5),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample CutMix boxes.

    Args:
        batch_size: ``B``, number of masks.
        height: ``H`` of the mask in pixels.
        width: ``W`` of the mask in pixels.
        n_boxes: Boxes per mask.
        prop_range: ``(low, high)`` range of the area share ``p`` drawn per box; together the
            boxes of one mask cover ``p`` (before overlaps cancel), each ``p / n_boxes``.
        generator: Optional ``torch.Generator`` for reproducible masks.

    Returns:
        Integer boxes ``(B, n_boxes, 4)`` as ``(y0, x0, y1, x1)``, end-exclusive.
    """
    _check_mask_arguments(batch_size, height, width, n_boxes, prop_range)
    shape = (batch_size, n_boxes)
    low, high = prop_range
    area = low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    # Random aspect ratio: height share p**u, width share p / (p**u) = p**(1-u).
    exponent = torch.rand(shape, generator=generator, dtype=torch.float64)
    height_share = area.pow(exponent)
    width_share = area / height_share
    scale = math.sqrt(1.0 / n_boxes)
    sizes = torch.stack(
        [torch.round(height_share * scale * height), torch.round(width_share * scale * width)],
        dim=-1,
    )
    limits = torch.tensor([height, width], dtype=torch.float64)
    # Inside the image: the top-left corner is uniform over the positions that keep the box in.
    position = torch.round(
        (limits - sizes) * torch.rand((*shape, 2), generator=generator, dtype=torch.float64)
    )
    return torch.cat([position, position + sizes], dim=-1).long()


def cutmix_box_masks(
    batch_size: int,
    height: int,
    width: int,
    n_boxes: int = 3,
    prop_range: tuple[float, float] = (0.25, 0.5),
    generator: torch.Generator | None = None,
) -> Tensor:
    """CutMix masks of toggling boxes, as the reference's ``BoxMaskGenerator``.

    Args:
        batch_size: ``B``, number of masks.
        height: ``H`` of the mask in pixels.
        width: ``W`` of the mask in pixels.
        n_boxes: Boxes per mask; each toggles its region, so overlapping parts cancel.
        prop_range: Range of the area share ``p`` drawn per box (each box covers ``p/n_boxes``).
        generator: Optional ``torch.Generator``; the same seed gives the same masks.

    Returns:
        Float mask ``(B, 1, H, W)`` with values in ``{0, 1}`` (1: take from the second image).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> masks = cutmix_box_masks(4, 32, 32, generator=g)
        >>> masks.shape, masks.dtype
        (torch.Size([4, 1, 32, 32]), torch.float32)
        >>> sorted(masks.unique().tolist())
        [0.0, 1.0]
    """
    boxes = cutmix_boxes(batch_size, height, width, n_boxes, prop_range, generator)
    rows = torch.arange(height).view(1, 1, height, 1)
    cols = torch.arange(width).view(1, 1, 1, width)
    y0, x0, y1, x1 = (boxes[..., i].view(batch_size, n_boxes, 1, 1) for i in range(4))
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # (B, n_boxes, H, W)
    toggled = inside.sum(dim=1, keepdim=True) % 2  # XOR of the boxes
    return toggled.to(torch.float32)


def mix(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Mix two batches with a CutMix mask: ``(1 - mask) * a + mask * b``.

    Works for images ``(B, 3, H, W)``, logits ``(B, K, H, W)``, features and integer label maps
    ``(B, H, W)``; gradients flow to ``a`` and ``b``.

    Args:
        a: First batch, shape ``(B, ..., H, W)``.
        b: Second batch, same shape and dtype as ``a``.
        mask: ``(B, 1, H, W)`` (or ``(B, H, W)``) values in ``{0, 1}``; 1 takes from ``b``.

    Returns:
        Tensor of the shape and dtype of ``a``.

    Examples:
        >>> a, b = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
        >>> mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
        >>> mix(a, b, mask).flatten().tolist()
        [1.0, 0.0, 0.0, 0.0]
    """
    if a.shape != b.shape:
        raise ValueError(
            f"`a` and `b` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"`mask` must have shape (B, 1, H, W), got {tuple(mask.shape)}")
    if mask.shape[0] != a.shape[0] or mask.shape[-2:] != a.shape[-2:]:
        raise ValueError(
            f"`mask` {tuple(mask.shape)} must match the batch size and spatial size of `a` "
            f"{tuple(a.shape)}"
        )
    take_b = mask > 0.5
    if a.dim() == 3:  # label maps (B, H, W)
        take_b = take_b.squeeze(1)
    return torch.where(take_b, b, a)


def _check_mask_arguments(
    batch_size: int, height: int, width: int, n_boxes: int, prop_range: tuple[float, float]
) -> None:
    for name, value in (
        ("batch_size", batch_size),
        ("height", height),
        ("width", width),
        ("n_boxes", n_boxes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if len(prop_range) != 2 or not 0.0 < prop_range[0] <= prop_range[1] <= 1.0:
        raise ValueError(
            f"`prop_range` must be (low, high) with 0 < low <= high <= 1, got {prop_range!r}"
        )
