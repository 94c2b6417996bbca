"""Pixel-level consistency loss module (docs/method.md#pixel-level-loss)."""

from __future__ import annotations

from torch import Tensor, nn

from mgd_lightning.losses.functional import pixel_consistency_loss

__all__ = ["PixelConsistencyLoss"]


class PixelConsistencyLoss(nn.Module):
    """Module twin of :func:`~mgd_lightning.losses.functional.pixel_consistency_loss`.

    Args:
        confidence_threshold: Ignore pixels whose teacher softmax confidence is below this value
            (in ``[0, 1]``); ``None`` (default, the reference) keeps every pixel.

    Shape:
        - student_logits: ``(B, K, H, W)`` logits, with gradient.
        - teacher_logits: ``(B, K, H, W)`` logits, never receives a gradient.
        - output: scalar, the mean cross-entropy over kept pixels.

    Examples:
        >>> import torch
        >>> loss = PixelConsistencyLoss()
        >>> logits = torch.tensor([[[[2.0]], [[0.0]]]])  # (1, 2, 1, 1)
        >>> round(loss(logits, logits).item(), 4)  # -log softmax(2, 0)[0]
        0.1269
    """

    def __init__(self, confidence_threshold: float | None = None) -> None:
        super().__init__()
        if confidence_threshold is not None and not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(
                f"`confidence_threshold` must lie in [0, 1] or be None, got {confidence_threshold}"
            )
        self.confidence_threshold = confidence_threshold

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        return pixel_consistency_loss(student_logits, teacher_logits, self.confidence_threshold)

    def extra_repr(self) -> str:
        return f"confidence_threshold={self.confidence_threshold}"
