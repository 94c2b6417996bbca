"""Online hard example mining cross-entropy, the reference's Cityscapes supervised loss (B.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["OhemCrossEntropyLoss", "ohem_cross_entropy"]


def ohem_cross_entropy(
    logits: Tensor,
    target: Tensor,
    threshold: float = 0.7,
    min_kept: int = 100_000,
    ignore_index: int = 255,
) -> Tensor:
    """Cross-entropy over the hard pixels only (the reference's ``ProbOhemCrossEntropy2d``).

    See docs/method.md#supervised-loss.

    The softmax probability of the true class is computed for every labelled pixel of the
    batch. When more than ``min_kept`` pixels are labelled, the cut-off is the larger of
    ``threshold`` and the ``min_kept``-th smallest probability, and only pixels at or below the
    cut-off count; otherwise every labelled pixel counts. The result is the mean cross-entropy
    over the kept pixels (0 when none is labelled).

    Args:
        logits: Logits, shape ``(B, K, H, W)``.
        target: Class indices, shape ``(B, H, W)``, with ``ignore_index`` for unlabelled pixels.
        threshold: Probability below which a pixel is always hard, in ``[0, 1]``.
        min_kept: Minimum number of pixels kept per batch (the reference: 50 000 x batch / GPUs).
        ignore_index: Label value of unlabelled pixels.

    Returns:
        Scalar loss.

    Examples:
        >>> logits = torch.tensor([[[[4.0, 0.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
        >>> target = torch.tensor([[[0, 0]]])
        >>> round(ohem_cross_entropy(logits, target, threshold=0.7, min_kept=1).item(), 4)
        0.6931
    """
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"`logits` must be (B, K, H, W) and `target` (B, H, W), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must lie in [0, 1], got {threshold}")
    if min_kept < 0:
        raise ValueError(f"`min_kept` must be >= 0, got {min_kept}")
    logits = logits.float()
    valid = target != ignore_index
    num_valid = int(valid.sum())
    if num_valid > min_kept > 0:
        with torch.no_grad():
            safe_target = target.masked_fill(~valid, 0)
            prob = logits.softmax(dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
            kth = torch.kthvalue(prob[valid], min_kept).values
            cut_off = torch.clamp(kth, min=threshold)
            valid = valid & (prob <= cut_off)
    per_pixel = F.cross_entropy(
        logits,
        target.masked_fill(~valid, ignore_index),
        ignore_index=ignore_index,
        reduction="none",
    )
    return per_pixel.sum() / valid.sum().clamp_min(1)


class OhemCrossEntropyLoss(nn.Module):
    """Module twin of :func:`ohem_cross_entropy`.

    Args:
        threshold: Probability below which a pixel is always hard.
        min_kept: Minimum number of pixels kept per batch.
        ignore_index: Label value of unlabelled pixels.
    """

    def __init__(
        self, threshold: float = 0.7, min_kept: int = 100_000, ignore_index: int = 255
    ) -> None:
        super().__init__()
        self.threshold, self.min_kept, self.ignore_index = threshold, min_kept, ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return ohem_cross_entropy(logits, target, self.threshold, self.min_kept, self.ignore_index)
