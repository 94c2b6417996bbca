"""Region-level content-aware loss module (docs/method.md#region-level-loss)."""

from __future__ import annotations

from torch import Tensor, nn

from mgd_lightning.losses.functional import RegionReduction, region_content_loss

__all__ = ["RegionContentLoss"]


class RegionContentLoss(nn.Module):
    """Module twin of :func:`~mgd_lightning.losses.functional.region_content_loss`.

    Args:
        grid_size: ``G``, the adaptive-pooling grid (7 in the reference).
        reduction: ``"mean"`` over ``B * G^2 * G^2`` (reference) or ``"sum"``.

    Shape:
        - student_features: ``(B, C_s, H_s, W_s)`` decoder features, with gradient.
        - teacher_features: ``(B, C_t, H_t, W_t)`` decoder features of the wide teacher.
        - output: scalar.

    Examples:
        >>> import torch
        >>> loss = RegionContentLoss(grid_size=2)
        >>> features = torch.arange(32.0).reshape(1, 2, 4, 4)
        >>> loss(features, features).item()
        0.0
    """

    def __init__(self, grid_size: int = 7, reduction: RegionReduction = "mean") -> None:
        super().__init__()
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size <= 0:
            raise ValueError(f"`grid_size` must be a positive integer, got {grid_size!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}")
        self.grid_size = grid_size
        self.reduction: RegionReduction = reduction

    def forward(self, student_features: Tensor, teacher_features: Tensor) -> Tensor:
        return region_content_loss(
            student_features, teacher_features, self.grid_size, self.reduction
        )

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, reduction={self.reduction!r}"
