"""The three MGD distillation losses as pure functions (docs/method.md#the-reference-in-detail).

Each function takes named tensors, returns an *unweighted* scalar, never sends a gradient to the
teacher side, and computes in float32 (or float64 when given float64) even under autocast.
Shape vocabulary: ``B`` batch, ``K`` classes, ``C`` channels, ``H, W`` spatial, ``G`` pooled grid.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "image_semantic_loss",
    "pixel_consistency_loss",
    "pseudo_label_cross_entropy",
    "pseudo_labels",
    "region_content_loss",
    "region_similarity",
]

ImageReduction = Literal["sum", "mean"]
RegionReduction = Literal["mean", "sum"]

_IGNORE = -100  # internal ignore value for pixels dropped by the confidence threshold


def _check_rank(name: str, tensor: Tensor, rank: int, layout: str) -> None:
    if not isinstance(tensor, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor of shape {layout}, got {type(tensor)}")
    if tensor.dim() != rank:
        raise ValueError(
            f"`{name}` must have shape {layout} ({rank} dimensions), got {tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got {tensor.dtype}")


def _compute_dtype(tensor: Tensor) -> torch.dtype:
    """float64 stays float64 (for gradcheck); everything else is computed in float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def pseudo_labels(
    teacher_logits: Tensor, confidence_threshold: float | None = None, ignore_index: int = _IGNORE
) -> Tensor:
    """Hard pseudo-labels from teacher logits: the argmax over classes, without gradient.

    Args:
        teacher_logits: Teacher logits, shape ``(B, K, H, W)``.
        confidence_threshold: If given, pixels whose maximal softmax probability is below it
            get ``ignore_index``. ``None`` (the reference) labels every pixel.
        ignore_index: Value given to pixels below the threshold.

    Returns:
        Class indices, shape ``(B, H, W)``, dtype ``int64``.
    """
    _check_rank("teacher_logits", teacher_logits, 4, "(B, K, H, W)")
    if confidence_threshold is not None and not 0.0 <= confidence_threshold <= 1.0:
        raise ValueError(
            f"`confidence_threshold` must lie in [0, 1] or be None, got {confidence_threshold}"
        )
    with torch.no_grad():
        logits = teacher_logits.detach()
        if confidence_threshold is None:
            return logits.argmax(dim=1)
        probability, labels = logits.float().softmax(dim=1).max(dim=1)
        return labels.masked_fill(probability < confidence_threshold, ignore_index)


def pixel_consistency_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    confidence_threshold: float | None = None,
) -> Tensor:
    """Pixel-level consistency L_P: cross-entropy against the teacher's hard pseudo-labels.

    ``CE(student_logits, argmax_K teacher_logits)``, the mean over labelled pixels
    (docs/method.md#pixel-level-loss). For the mixed unlabeled batch pass the teacher
    logits *mixed* from the two unmixed views (:func:`mgd_lightning.data.mixing.mix`), as the
    reference does.

    Args:
        student_logits: Student logits, shape ``(B, K, H, W)``, with gradient.
        teacher_logits: Teacher logits, shape ``(B, K, H, W)``; detached here (no gradient).
        confidence_threshold: Ignore pixels whose teacher softmax confidence is below this value
            (in ``[0, 1]``). ``None``, the default and the reference, keeps every pixel.

    Returns:
        Scalar loss. ``0`` (with a gradient path) when the threshold drops every pixel.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> student = torch.randn(2, 3, 4, 4, generator=g)
        >>> teacher = torch.randn(2, 3, 4, 4, generator=g)
        >>> round(pixel_consistency_loss(student, teacher).item(), 4)
        1.5692
        >>> pixel_consistency_loss(student, teacher, confidence_threshold=1.0).item()
        0.0
    """
    _check_rank("student_logits", student_logits, 4, "(B, K, H, W)")
    _check_rank("teacher_logits", teacher_logits, 4, "(B, K, H, W)")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "`student_logits` and `teacher_logits` must have the same shape (B, K, H, W), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}; upsample both to "
            "the input size first"
        )
    labels = pseudo_labels(teacher_logits, confidence_threshold)
    return pseudo_label_cross_entropy(
        student_logits, labels, may_ignore=confidence_threshold is not None
    )


def pseudo_label_cross_entropy(
    student_logits: Tensor, labels: Tensor, may_ignore: bool = True
) -> Tensor:
    """Cross-entropy of student logits against hard (pseudo-)labels: the pixel-level term.

    :func:`pixel_consistency_loss` is this applied to :func:`pseudo_labels` of teacher logits;
    call it directly with labels made elsewhere (mixed label maps, cached teacher labels).

    Args:
        student_logits: Student logits, shape ``(B, K, H, W)``, with gradient.
        labels: Class indices, shape ``(B, H, W)``.
        may_ignore: Whether ``labels`` can hold ignored pixels: ``-100`` (below a confidence
            threshold) or values ``>= K`` (e.g. 255 padding). They are left out of the mean,
            and an all-ignored batch gives 0, not NaN. ``False`` takes the plain mean.

    Returns:
        Scalar loss, the mean over labelled pixels, computed without a host sync.
    """
    _check_rank("student_logits", student_logits, 4, "(B, K, H, W)")
    if labels.shape != student_logits.shape[:1] + student_logits.shape[2:]:
        raise ValueError(
            f"`labels` must have shape (B, H, W) = {tuple(student_logits.shape[:1])} + "
            f"{tuple(student_logits.shape[2:])}, got {tuple(labels.shape)}"
        )
    logits = student_logits.to(_compute_dtype(student_logits))
    labels = labels.long()
    if not may_ignore:
        return F.cross_entropy(logits, labels)
    # Sum / count instead of the mean reduction: an all-ignored batch gives 0, not NaN.
    labels = labels.masked_fill(labels >= logits.shape[1], _IGNORE)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=_IGNORE, reduction="none")
    return per_pixel.sum() / labels.ne(_IGNORE).sum().clamp_min(1)


def image_semantic_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    reduction: ImageReduction = "sum",
) -> Tensor:
    """Image-level semantic-sensitive loss L_I: L1 between globally pooled logits.

    ``k = mean_{H,W} logits`` gives one "global semantic vector" ``(B, K)`` per network; the loss
    is ``sum_{b,k} |k_S - k_T|`` (docs/method.md#image-level-loss). No softmax, no temperature.

    Reductions: ``"sum"`` sums over images and classes, exactly as the reference (whose
    per-GPU batch is 2); ``"mean"`` averages over images (still summing over classes). So
    ``lambda * loss(reduction="sum") == (lambda * B) * loss(reduction="mean")``: the reference's
    weight ``lambda_1`` at per-GPU batch 2 is ``2 * lambda_1`` with ``"mean"``.

    Args:
        student_logits: Student logits, shape ``(B, K, H, W)`` (full resolution).
        teacher_logits: Teacher logits, shape ``(B, K, H', W')``; detached here. Spatial sizes
            may differ (each map is averaged over its own pixels).
        reduction: ``"sum"`` (reference) or ``"mean"`` over the batch.

    Returns:
        Scalar loss.

    Examples:
        >>> student = torch.zeros(2, 3, 4, 4)
        >>> teacher = torch.ones(2, 3, 4, 4)
        >>> image_semantic_loss(student, teacher).item()
        6.0
        >>> image_semantic_loss(student, teacher, reduction="mean").item()
        3.0
    """
    _check_rank("student_logits", student_logits, 4, "(B, K, H, W)")
    _check_rank("teacher_logits", teacher_logits, 4, "(B, K, H, W)")
    if student_logits.shape[:2] != teacher_logits.shape[:2]:
        raise ValueError(
            "`student_logits` and `teacher_logits` must agree in batch and classes (B, K), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if reduction not in ("sum", "mean"):
        raise ValueError(f"`reduction` must be 'sum' or 'mean', got {reduction!r}")
    dtype = _compute_dtype(student_logits)
    student_vector = student_logits.to(dtype).mean(dim=(2, 3))
    teacher_vector = teacher_logits.detach().to(dtype).mean(dim=(2, 3))
    total = (student_vector - teacher_vector).abs().sum()
    return total if reduction == "sum" else total / student_logits.shape[0]


def region_similarity(features: Tensor, grid_size: int = 7, eps: float = 1e-12) -> Tensor:
    """Cosine self-similarity of the ``G x G`` pooled regions of a feature map.

    Args:
        features: Feature map, shape ``(B, C, H, W)``.
        grid_size: ``G``, the side of the adaptive average pooling grid.
        eps: Lower clamp of each region's L2 norm, so an all-zero region gives 0, not NaN.

    Returns:
        Similarity matrices, shape ``(B, G*G, G*G)``, values in ``[-1, 1]``.
    """
    _check_rank("features", features, 4, "(B, C, H, W)")
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size <= 0:
        raise ValueError(f"`grid_size` must be a positive integer, got {grid_size!r}")
    regions = F.adaptive_avg_pool2d(features.to(_compute_dtype(features)), grid_size).flatten(2)
    # Normalise each region vector over channels; clamp the norm instead of dividing by zero.
    norms = torch.linalg.vector_norm(regions, dim=1, keepdim=True).clamp_min(eps)
    unit = regions / norms
    return unit.transpose(1, 2) @ unit


def region_content_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    grid_size: int = 7,
    reduction: RegionReduction = "mean",
) -> Tensor:
    """Region-level content-aware loss L_R: MSE between region self-similarity matrices.

    Each decoder feature map is average-pooled to ``G x G`` regions, each region's ``C``-vector
    compared with every other by cosine similarity (a ``G^2 x G^2`` matrix per image), and the
    student's matrix regressed onto the teacher's (docs/method.md#region-level-loss). Channel
    counts and spatial sizes of student and teacher may differ: only the matrices are compared.

    Args:
        student_features: Student decoder features, shape ``(B, C_s, H_s, W_s)``.
        teacher_features: Teacher decoder features, shape ``(B, C_t, H_t, W_t)``; detached here.
        grid_size: ``G``, the pooling grid (7 in the reference).
        reduction: ``"mean"`` over ``B * G^2 * G^2`` entries (reference, ``F.mse_loss``) or
            ``"sum"``.

    Returns:
        Scalar loss.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> features = torch.randn(2, 8, 14, 14, generator=g)
        >>> region_content_loss(features, features).item()
        0.0
        >>> teacher = torch.randn(2, 16, 28, 28, generator=g)
        >>> round(region_content_loss(features, teacher).item(), 4)
        0.1947
    """
    _check_rank("student_features", student_features, 4, "(B, C, H, W)")
    _check_rank("teacher_features", teacher_features, 4, "(B, C, H, W)")
    if student_features.shape[0] != teacher_features.shape[0]:
        raise ValueError(
            "`student_features` and `teacher_features` must have the same batch size B, got "
            f"{tuple(student_features.shape)} and {tuple(teacher_features.shape)}"
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}")
    student_matrix = region_similarity(student_features, grid_size)
    with torch.no_grad():
        teacher_matrix = region_similarity(teacher_features.detach(), grid_size)
    return F.mse_loss(student_matrix, teacher_matrix.to(student_matrix.dtype), reduction=reduction)
