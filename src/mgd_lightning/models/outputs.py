"""The output contract shared by students and teachers (docs/method.md#head)."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["SegmentationOutput"]


class SegmentationOutput(NamedTuple):
    """What every network of this library returns.

    A ``NamedTuple``, so it can be unpacked (``logits, features = net(x)``) or indexed
    (``net(x)[0]`` is the logits).

    Attributes:
        logits: ``(B, K, H, W)`` raw class scores (not probabilities), bilinearly upsampled
            (``align_corners=True``) to the input size ``H, W``.
        features: ``(B, C, H/4, W/4)`` decoder features ("features after decoder head", the
            input of the 1x1 classifier); ``C`` is the head width, 256 for the paper's
            networks. The region-level loss uses this tensor.
    """

    logits: Tensor
    features: Tensor
