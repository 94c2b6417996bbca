"""``logits_of`` and ``segment``: the one way to get logits, whole-image and sliding-window."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mgd_lightning.models import SegmentationOutput
from mgd_lightning.models.inference import logits_of, segment


class _Mean(nn.Module):
    """Logits that depend on the image's own content only: per-pixel channel sums, K=2."""

    def forward(self, images: Tensor) -> SegmentationOutput:
        score = images.sum(dim=1, keepdim=True)
        return SegmentationOutput(torch.cat([score, -score], dim=1), score)


def test_logits_of_tensor_tuple_and_output() -> None:
    logits = torch.zeros(1, 2, 4, 4)
    assert logits_of(logits) is logits
    assert logits_of((logits, None)) is logits
    assert logits_of(SegmentationOutput(logits, logits)) is logits
    with pytest.raises(TypeError, match="SegmentationOutput"):
        logits_of({"logits": logits})


def test_whole_image_and_padding_crop_back() -> None:
    images = torch.randn(2, 3, 10, 14)
    whole = segment(_Mean(), images)
    assert whole.shape == (2, 2, 10, 14) and whole.dtype == torch.float32
    padded = segment(_Mean(), images, pad_to=16)
    torch.testing.assert_close(padded, whole)  # per-pixel logits: padding changes nothing


def test_sliding_window_covers_the_image_and_averages() -> None:
    images = torch.randn(1, 3, 20, 30)
    sliding = segment(_Mean(), images, mode="sliding", window=8, stride=5)
    torch.testing.assert_close(sliding, segment(_Mean(), images))
    small = segment(_Mean(), torch.randn(1, 3, 5, 6), mode="sliding", window=8)
    assert small.shape == (1, 2, 5, 6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "tiled"}, "mode"),
        ({"mode": "sliding"}, "window"),
        ({"mode": "sliding", "window": 8, "stride": 0}, "positive"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        segment(_Mean(), torch.zeros(1, 3, 8, 8), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="B, 3, H, W"):
        segment(_Mean(), torch.zeros(3, 8, 8))


def test_mean_of_softmaxes_ensembles_networks_and_mirror_images() -> None:
    from mgd_lightning.models import MeanOfSoftmaxes

    torch.manual_seed(0)
    first, second = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
    images = torch.randn(2, 3, 5, 6)
    one = MeanOfSoftmaxes(first)(images)
    assert torch.allclose(one, first(images).log_softmax(dim=1), atol=1e-6)
    pair = MeanOfSoftmaxes(first, _Mean())(images)  # logits or SegmentationOutput alike
    expected = (first(images).softmax(1) + logits_of(_Mean()(images)).softmax(1)) / 2
    assert torch.allclose(pair.exp(), expected, atol=1e-6)
    mirrored = MeanOfSoftmaxes(second, mirror=True)(images)
    expected = (second(images).softmax(1) + second(images.flip(-1)).flip(-1).softmax(1)) / 2
    assert torch.allclose(mirrored.exp(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="at least one network"):
        MeanOfSoftmaxes()
