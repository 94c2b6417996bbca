"""Tests of the three MGD losses against hand-computed values and a literal transcription."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mgd_lightning.losses import (
    ImageSemanticLoss,
    PixelConsistencyLoss,
    RegionContentLoss,
    image_semantic_loss,
    pixel_consistency_loss,
    pseudo_labels,
    region_content_loss,
)

# --------------------------------------------------------------------------------------------
# Literal transcriptions of the reference formulas (METHOD.md B.1-B.3), written loop by loop
# with no shared code, so that an error in the library's vectorisation would show up here.
# --------------------------------------------------------------------------------------------


def reference_pixel(student: torch.Tensor, teacher: torch.Tensor) -> float:
    B, _K, H, W = student.shape
    total, count = 0.0, 0
    for b in range(B):
        for y in range(H):
            for x in range(W):
                label = int(torch.argmax(teacher[b, :, y, x]))
                logits = student[b, :, y, x]
                log_z = math.log(sum(math.exp(float(v)) for v in logits))
                total += log_z - float(logits[label])
                count += 1
    return total / count


def reference_image(student: torch.Tensor, teacher: torch.Tensor) -> float:
    B, K = student.shape[:2]
    total = 0.0
    for b in range(B):
        for c in range(K):
            k_s = float(student[b, c].sum()) / student[b, c].numel()
            k_t = float(teacher[b, c].sum()) / teacher[b, c].numel()
            total += abs(k_s - k_t)
    return total


def _adaptive_bins(size: int, grid: int) -> list[tuple[int, int]]:
    # PyTorch's adaptive pooling bins: [floor(i*size/grid), ceil((i+1)*size/grid)).
    return [((i * size) // grid, -(-((i + 1) * size) // grid)) for i in range(grid)]


def reference_region(student: torch.Tensor, teacher: torch.Tensor, grid: int) -> float:
    def similarity(features: torch.Tensor) -> list[list[list[float]]]:
        B, C, H, W = features.shape
        out = []
        for b in range(B):
            vectors = []
            for y0, y1 in _adaptive_bins(H, grid):
                for x0, x1 in _adaptive_bins(W, grid):
                    region = features[b, :, y0:y1, x0:x1]
                    vectors.append([float(region[c].mean()) for c in range(C)])
            matrix = []
            for vi in vectors:
                row = []
                for vj in vectors:
                    dot = sum(p * q for p, q in zip(vi, vj, strict=True))
                    ni = math.sqrt(sum(p * p for p in vi))
                    nj = math.sqrt(sum(q * q for q in vj))
                    row.append(dot / (ni * nj))
                matrix.append(row)
            out.append(matrix)
        return out

    a_s, a_t = similarity(student), similarity(teacher)
    total, n = 0.0, 0
    for mb_s, mb_t in zip(a_s, a_t, strict=True):
        for row_s, row_t in zip(mb_s, mb_t, strict=True):
            for v_s, v_t in zip(row_s, row_t, strict=True):
                total += (v_s - v_t) ** 2
                n += 1
    return total / n


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------------------------
# Agreement with the transcription, in float64, to 1e-6
# --------------------------------------------------------------------------------------------


def test_pixel_matches_reference_transcription() -> None:
    student, teacher = _randn(2, 4, 3, 5, seed=1), _randn(2, 4, 3, 5, seed=2)
    value = pixel_consistency_loss(student, teacher).item()
    assert value == pytest.approx(reference_pixel(student, teacher), abs=1e-6)


@pytest.mark.parametrize("teacher_size", [(6, 6), (12, 10)])
def test_image_matches_reference_transcription(teacher_size: tuple[int, int]) -> None:
    student, teacher = _randn(3, 5, 6, 6, seed=3), _randn(3, 5, *teacher_size, seed=4)
    value = image_semantic_loss(student, teacher).item()
    assert value == pytest.approx(reference_image(student, teacher), abs=1e-6)


@pytest.mark.parametrize(
    ("student_shape", "teacher_shape", "grid"),
    [
        ((2, 4, 14, 14), (2, 4, 14, 14), 7),
        ((2, 3, 9, 11), (2, 6, 13, 8), 3),
        ((1, 5, 8, 8), (1, 2, 16, 16), 2),
    ],
)
def test_region_matches_reference_transcription(student_shape, teacher_shape, grid) -> None:
    student, teacher = _randn(*student_shape, seed=5), _randn(*teacher_shape, seed=6)
    value = region_content_loss(student, teacher, grid_size=grid).item()
    assert value == pytest.approx(reference_region(student, teacher, grid), abs=1e-6)


# --------------------------------------------------------------------------------------------
# Hand-computable cases and invariants
# --------------------------------------------------------------------------------------------


def test_pixel_hand_computed() -> None:
    # One pixel, two classes: teacher says class 1; student logits (0, log 3) -> p = 3/4.
    student = torch.tensor([[[[0.0]], [[math.log(3.0)]]]])
    teacher = torch.tensor([[[[0.0]], [[5.0]]]])
    assert pixel_consistency_loss(student, teacher).item() == pytest.approx(-math.log(0.75))


def test_pixel_threshold_drops_unconfident_pixels() -> None:
    student = torch.zeros(1, 2, 1, 2)
    # Pixel 0: teacher confident (p ~ 1) in class 1; pixel 1: p = 0.5 (uncertain).
    teacher = torch.tensor([[[[0.0, 0.0]], [[20.0, 0.0]]]])
    labels = pseudo_labels(teacher, confidence_threshold=0.9)
    assert labels.tolist() == [[[1, -100]]]
    loss = pixel_consistency_loss(student, teacher, confidence_threshold=0.9)
    assert loss.item() == pytest.approx(math.log(2.0))  # only pixel 0 counts
    assert pixel_consistency_loss(student, teacher, confidence_threshold=0.0).item() == (
        pytest.approx(math.log(2.0))
    )


def test_image_sum_and_mean_relation() -> None:
    student, teacher = _randn(4, 3, 5, 5, seed=7), _randn(4, 3, 5, 5, seed=8)
    summed = image_semantic_loss(student, teacher, reduction="sum")
    mean = image_semantic_loss(student, teacher, reduction="mean")
    assert summed.item() == pytest.approx(4 * mean.item())
    # Hand case: constant maps differing by 1 in every class -> K per image.
    assert image_semantic_loss(torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 4, 4)).item() == 6.0


def test_region_hand_computed() -> None:
    # A 2x2 map pooled on a 2x2 grid: four regions, one per pixel.
    # Student regions are (1, 0) in column 0 and (0, 1) in column 1: cosine 1 within a column,
    # 0 across. Teacher regions are all (1, 0): cosine 1 everywhere. 8 of 16 entries differ by 1.
    student = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    teacher = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert region_content_loss(student, teacher, grid_size=2).item() == pytest.approx(8 / 16)
    assert region_content_loss(student, teacher, 2, "sum").item() == pytest.approx(8.0)


@pytest.mark.parametrize(
    "loss_fn", [pixel_consistency_loss, image_semantic_loss, region_content_loss]
)
def test_zero_when_student_equals_teacher(loss_fn) -> None:
    x = _randn(2, 4, 8, 8, seed=9)
    value = loss_fn(x, x.clone()).item()
    if loss_fn is pixel_consistency_loss:
        # CE against own argmax is not zero, but it is the minimum over label choices.
        assert value == pytest.approx(reference_pixel(x, x), abs=1e-9)
        other = pixel_consistency_loss(x, _randn(2, 4, 8, 8, seed=10)).item()
        assert value < other
    else:
        assert value == pytest.approx(0.0, abs=1e-12)


def test_pixel_zero_when_student_is_confident_on_teacher_labels() -> None:
    teacher = _randn(2, 3, 4, 4, seed=11)
    student = F.one_hot(teacher.argmax(1), 3).permute(0, 3, 1, 2).double() * 1e3
    assert pixel_consistency_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "student_shape", "teacher_shape"),
    [
        (pixel_consistency_loss, (2, 3, 4, 4), (2, 3, 4, 4)),
        (image_semantic_loss, (2, 3, 4, 4), (2, 3, 6, 6)),
        (region_content_loss, (2, 3, 7, 7), (2, 5, 14, 14)),
    ],
)
def test_gradcheck_float64(fn, student_shape, teacher_shape) -> None:
    student = _randn(*student_shape, seed=12).requires_grad_(True)
    teacher = _randn(*teacher_shape, seed=13)
    assert torch.autograd.gradcheck(lambda s: fn(s, teacher), (student,))


@pytest.mark.parametrize("fn", [pixel_consistency_loss, image_semantic_loss, region_content_loss])
def test_teacher_never_gets_a_gradient(fn) -> None:
    student = _randn(2, 3, 8, 8, seed=14, dtype=torch.float32).requires_grad_(True)
    teacher = _randn(2, 3, 8, 8, seed=15, dtype=torch.float32).requires_grad_(True)
    fn(student, teacher).backward()
    assert teacher.grad is None
    assert student.grad is not None and torch.isfinite(student.grad).all()


# --------------------------------------------------------------------------------------------
# Modules agree with functions
# --------------------------------------------------------------------------------------------


def test_modules_agree_with_functions() -> None:
    student, teacher = _randn(2, 4, 14, 14, seed=16), _randn(2, 4, 14, 14, seed=17)
    assert PixelConsistencyLoss(0.3)(student, teacher) == pixel_consistency_loss(
        student, teacher, 0.3
    )
    assert ImageSemanticLoss("mean")(student, teacher) == image_semantic_loss(
        student, teacher, "mean"
    )
    assert RegionContentLoss(3, "sum")(student, teacher) == region_content_loss(
        student, teacher, 3, "sum"
    )
    assert "reduction='sum'" in repr(RegionContentLoss(3, "sum"))


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [pixel_consistency_loss, image_semantic_loss])
def test_logit_shape_mismatch_raises(fn) -> None:
    with pytest.raises(ValueError, match="teacher_logits"):
        fn(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, 4))


def test_pixel_spatial_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same shape"):
        pixel_consistency_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 8, 8))


@pytest.mark.parametrize(
    ("fn", "name"),
    [
        (pixel_consistency_loss, "student_logits"),
        (image_semantic_loss, "student_logits"),
        (region_content_loss, "student_features"),
    ],
)
def test_wrong_rank_raises(fn, name) -> None:
    with pytest.raises(ValueError, match=name):
        fn(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, 4))


def test_region_batch_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="batch size"):
        region_content_loss(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))


@pytest.mark.parametrize("grid", [0, -1, 2.5, True])
def test_bad_grid_size_raises(grid) -> None:
    with pytest.raises(ValueError, match="grid_size"):
        region_content_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), grid_size=grid)
    with pytest.raises(ValueError, match="grid_size"):
        RegionContentLoss(grid_size=grid)


def test_unknown_reduction_raises() -> None:
    with pytest.raises(ValueError, match="reduction"):
        image_semantic_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        ImageSemanticLoss(reduction="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        RegionContentLoss(reduction="batchmean")  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_unit_interval_raises(threshold) -> None:
    with pytest.raises(ValueError, match="confidence_threshold"):
        pixel_consistency_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), threshold)
    with pytest.raises(ValueError, match="confidence_threshold"):
        PixelConsistencyLoss(threshold)


def test_integer_logits_raise() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        pixel_consistency_loss(torch.zeros(1, 2, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, 2))


# --------------------------------------------------------------------------------------------
# Degenerate inputs: finite values and gradients
# --------------------------------------------------------------------------------------------


def _finite(value: torch.Tensor, grad: torch.Tensor | None) -> bool:
    return bool(torch.isfinite(value)) and grad is not None and bool(torch.isfinite(grad).all())


def test_constant_logits_are_finite() -> None:
    for fn in (pixel_consistency_loss, image_semantic_loss):
        student = torch.zeros(2, 3, 4, 4, requires_grad=True)
        value = fn(student, torch.zeros(2, 3, 4, 4))
        value.backward()
        assert _finite(value, student.grad)


def test_all_dropped_pixels_give_zero_not_nan() -> None:
    student = torch.zeros(1, 2, 2, 2, requires_grad=True)
    value = pixel_consistency_loss(student, torch.zeros(1, 2, 2, 2), confidence_threshold=0.9)
    value.backward()
    assert value.item() == 0.0 and _finite(value, student.grad)


def test_zero_features_are_finite() -> None:
    student = torch.zeros(2, 4, 8, 8, requires_grad=True)
    value = region_content_loss(student, torch.zeros(2, 4, 8, 8))
    value.backward()
    assert _finite(value, student.grad)
    # A partly zero map: some regions zero, some not.
    partial = torch.zeros(1, 3, 7, 7)
    partial[..., :3, :3] = 1.0
    student = partial.clone().requires_grad_(True)
    value = region_content_loss(student, _randn(1, 3, 7, 7, seed=18, dtype=torch.float32))
    value.backward()
    assert _finite(value, student.grad)


def test_low_precision_inputs_compute_in_float32() -> None:
    student = _randn(2, 3, 8, 8, seed=19, dtype=torch.bfloat16)
    teacher = _randn(2, 3, 8, 8, seed=20, dtype=torch.bfloat16)
    for fn in (pixel_consistency_loss, image_semantic_loss, region_content_loss):
        assert fn(student, teacher).dtype == torch.float32


def test_pseudo_label_cross_entropy_ignores_marked_pixels() -> None:
    from mgd_lightning.losses import pseudo_label_cross_entropy

    student = _randn(1, 3, 1, 4, seed=21)
    labels = torch.tensor([[[0, 2, -100, 255]]])  # -100: below a threshold; 255: padding
    expected = F.cross_entropy(student[..., :2], labels[..., :2])
    assert pseudo_label_cross_entropy(student, labels).item() == pytest.approx(expected.item())
    assert pseudo_label_cross_entropy(student, torch.full((1, 1, 4), 255)).item() == 0.0
    teacher = _randn(1, 3, 1, 4, seed=22)
    assert pseudo_label_cross_entropy(student, teacher.argmax(1), may_ignore=False) == (
        pixel_consistency_loss(student, teacher)
    )
    with pytest.raises(ValueError, match="labels"):
        pseudo_label_cross_entropy(student, labels[..., :3])
