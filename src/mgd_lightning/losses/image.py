"""Image-level semantic-sensitive loss module (docs/method.md#image-level-loss)."""

from __future__ import annotations

from torch import Tensor, nn

from mgd_lightning.losses.functional import ImageReduction, image_semantic_loss

__all__ = ["ImageSemanticLoss"]


class ImageSemanticLoss(nn.Module):
    """Module twin of :func:`~mgd_lightning.losses.functional.image_semantic_loss`.

    Args:
        reduction: ``"sum"`` over images and classes (the reference) or ``"mean"`` over images.
            A weight ``w`` with ``"sum"`` equals a weight ``w * B`` with ``"mean"``.

    Shape:
        - student_logits: ``(B, K, H, W)`` logits (full resolution), with gradient.
        - teacher_logits: ``(B, K, H', W')`` logits of the deep teacher, no gradient.
        - output: scalar.

    Examples:
        >>> import torch
        >>> loss = ImageSemanticLoss(reduction="mean")
        >>> loss(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 8, 8), 0.5)).item()
        1.5
    """

    def __init__(self, reduction: ImageReduction = "sum") -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"`reduction` must be 'sum' or 'mean', got {reduction!r}")
        self.reduction: ImageReduction = reduction

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        return image_semantic_loss(student_logits, teacher_logits, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
