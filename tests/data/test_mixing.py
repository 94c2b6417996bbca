"""Tests of the CutMix box masks and mixing."""

from __future__ import annotations

import pytest
import torch

from mgd_lightning.data.mixing import cutmix_box_masks, cutmix_boxes, mix


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_masks_shape_dtype_and_binary_values() -> None:
    masks = cutmix_box_masks(8, 40, 56, generator=_gen())
    assert masks.shape == (8, 1, 40, 56) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}


def test_seeded_generator_gives_identical_masks() -> None:
    first = cutmix_box_masks(4, 32, 32, generator=_gen(3))
    again = cutmix_box_masks(4, 32, 32, generator=_gen(3))
    other = cutmix_box_masks(4, 32, 32, generator=_gen(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_each_box_covers_its_documented_share_on_average() -> None:
    # Each box covers p / n_boxes of the image, p ~ U(0.25, 0.5): mean 0.375 / 3 = 0.125.
    size = 200
    boxes = cutmix_boxes(2000, size, size, n_boxes=3, generator=_gen(1))
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).double()
    share = area / (size * size)
    assert share.mean().item() == pytest.approx(0.125, abs=0.004)
    assert share.min().item() >= 0.25 / 3 - 0.01 and share.max().item() <= 0.5 / 3 + 0.01
    # Boxes lie inside the image.
    assert (boxes[..., :2] >= 0).all() and (boxes[..., 2] <= size).all()
    assert (boxes[..., 3] <= size).all()


def test_single_box_mask_share_matches_prop_range_mean() -> None:
    masks = cutmix_box_masks(2000, 100, 100, n_boxes=1, generator=_gen(2))
    assert masks.mean().item() == pytest.approx(0.375, abs=0.01)


def test_boxes_toggle_overlaps() -> None:
    # The mask is the XOR of its boxes: rebuild it by toggling box by box.
    boxes = cutmix_boxes(16, 30, 30, generator=_gen(5))
    masks = cutmix_box_masks(16, 30, 30, generator=_gen(5))
    for b in range(16):
        expected = torch.zeros(30, 30)
        for y0, x0, y1, x1 in boxes[b].tolist():
            expected[y0:y1, x0:x1] = 1 - expected[y0:y1, x0:x1]
        assert torch.equal(masks[b, 0], expected)
    # Three boxes of 1/8 each cover less than 3/8 on average once overlaps cancel.
    mean = cutmix_box_masks(2000, 64, 64, generator=_gen(6)).mean().item()
    assert 0.25 < mean < 0.375


def test_mix_images_logits_and_labels() -> None:
    mask = cutmix_box_masks(2, 8, 8, generator=_gen(7))
    a, b = torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    mixed = mix(a, b, mask)
    assert torch.equal(mixed, mask.expand(2, 3, 8, 8))
    labels = mix(
        torch.zeros(2, 8, 8, dtype=torch.long), torch.ones(2, 8, 8, dtype=torch.long), mask
    )
    assert labels.dtype == torch.long and torch.equal(labels, mask[:, 0].long())
    # Same as the reference's arithmetic form for logits, with gradients to both inputs.
    la = torch.randn(2, 5, 8, 8, requires_grad=True)
    lb = torch.randn(2, 5, 8, 8, requires_grad=True)
    out = mix(la, lb, mask)
    assert torch.allclose(out, (1 - mask) * la + mask * lb)
    out.sum().backward()
    assert torch.equal(la.grad, (1 - mask).expand_as(la))
    assert torch.equal(lb.grad, mask.expand_as(lb))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"height": -3}, "height"),
        ({"n_boxes": 0}, "n_boxes"),
        ({"prop_range": (0.6, 0.2)}, "prop_range"),
        ({"prop_range": (0.0, 0.5)}, "prop_range"),
    ],
)
def test_bad_mask_arguments_raise(kwargs, name) -> None:
    args = {"batch_size": 2, "height": 8, "width": 8} | kwargs
    with pytest.raises(ValueError, match=name):
        cutmix_box_masks(**args)


def test_mix_shape_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mix(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        mix(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 5, 4))
