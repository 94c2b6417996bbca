"""Whole-image and sliding-window inference (docs/method.md#evaluation-protocol)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InferenceMode", "MeanOfSoftmaxes", "logits_of", "segment"]

InferenceMode = Literal["whole", "sliding"]


def logits_of(output: object) -> Tensor:
    """The logits of a network output: a tensor, or the first field of a tuple/NamedTuple."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(
        "a segmentation network must return logits (B, K, H, W) or a tuple whose first item "
        f"is the logits (SegmentationOutput), got {type(output).__name__}"
    )


class MeanOfSoftmaxes(nn.Module):
    """Several segmentation networks scored as one: the log of the mean of their softmaxes.

    For evaluating an ensemble, e.g. the two teachers together (what the pixel-level term
    distils), or a network with its mirror image (``mirror=True``: a test-time ensemble of two
    passes). The output is a valid logit map: its argmax is the class of highest mean
    probability.

    Args:
        networks: segmentation networks (logits or ``SegmentationOutput``), same classes.
        mirror: also run each network on the horizontally flipped image (flipped back).

    Shape:
        - images: ``(B, 3, H, W)``; output: ``(B, K, H, W)`` log-probabilities, float32.

    Examples:
        >>> import torch
        >>> one = torch.nn.Conv2d(3, 2, 1)
        >>> MeanOfSoftmaxes(one, one)(torch.zeros(1, 3, 4, 4)).exp().sum(dim=1).allclose(
        ...     torch.ones(1, 4, 4))
        True
    """

    def __init__(self, *networks: nn.Module, mirror: bool = False) -> None:
        super().__init__()
        if not networks:
            raise ValueError("MeanOfSoftmaxes needs at least one network")
        self.networks = nn.ModuleList(networks)
        self.mirror = mirror

    def forward(self, images: Tensor) -> Tensor:
        probabilities = []
        for network in self.networks:
            probabilities.append(logits_of(network(images)).float().softmax(dim=1))
            if self.mirror:
                mirrored = logits_of(network(images.flip(-1))).float().flip(-1)
                probabilities.append(mirrored.softmax(dim=1))
        return torch.stack(probabilities).mean(dim=0).clamp_min(1e-12).log()

    def extra_repr(self) -> str:
        return f"mirror={self.mirror}"


def _pad_to(images: Tensor, height: int, width: int) -> Tensor:
    pad_h, pad_w = max(height - images.shape[-2], 0), max(width - images.shape[-1], 0)
    if pad_h == 0 and pad_w == 0:
        return images
    # Zero after normalisation, as the reference pads (bottom and right).
    return F.pad(images, (0, pad_w, 0, pad_h), value=0.0)


def _starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    count = math.ceil((size - window) / stride) + 1
    return sorted({min(i * stride, size - window) for i in range(count)})


@torch.no_grad()
def segment(
    network: nn.Module,
    images: Tensor,
    mode: InferenceMode = "whole",
    window: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    pad_to: int | tuple[int, int] | None = None,
) -> Tensor:
    """Logits for whole images, optionally padded or by sliding window.

    Args:
        network: Segmentation network; returns logits or a ``SegmentationOutput``.
        images: Normalised images, shape ``(B, 3, H, W)``.
        mode: ``"whole"``: one pass over the (optionally padded) image. ``"sliding"``: windows
            of ``window`` pixels every ``stride`` pixels (Cityscapes: 800 and 534); overlapping
            logits are averaged (the reference sums them: the argmax is the same).
        window: Window size for ``"sliding"`` (int or ``(h, w)``).
        stride: Window stride for ``"sliding"``; defaults to ``ceil(2/3 * window)``.
        pad_to: For ``"whole"``: zero-pad (after normalisation) to this size before the pass and
            crop back (VOC: 512), so every image sees the training crop's context.

    Returns:
        Logits, shape ``(B, K, H, W)``, float32.
    """
    if images.dim() != 4:
        raise ValueError(f"`images` must have shape (B, 3, H, W), got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if mode == "whole":
        if pad_to is not None:
            ph, pw = (pad_to, pad_to) if isinstance(pad_to, int) else pad_to
            logits = logits_of(network(_pad_to(images, ph, pw)))
            return logits[..., :height, :width].float()
        return logits_of(network(images)).float()
    if mode != "sliding":
        raise ValueError(f"`mode` must be 'whole' or 'sliding', got {mode!r}")
    if window is None:
        raise ValueError("`window` is required for sliding-window inference (e.g. 800)")
    wh, ww = (window, window) if isinstance(window, int) else window
    if stride is None:
        stride = (math.ceil(wh * 2 / 3), math.ceil(ww * 2 / 3))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if min(wh, ww, sh, sw) <= 0:
        raise ValueError(f"`window` and `stride` must be positive, got {window} and {stride}")
    padded = _pad_to(images, wh, ww)
    full_h, full_w = padded.shape[-2:]
    total: Tensor | None = None
    count = torch.zeros(1, 1, full_h, full_w, device=images.device)
    for top in _starts(full_h, wh, sh):
        for left in _starts(full_w, ww, sw):
            crop = padded[..., top : top + wh, left : left + ww]
            logits = logits_of(network(crop)).float()
            if total is None:
                total = logits.new_zeros(images.shape[0], logits.shape[1], full_h, full_w)
            total[..., top : top + wh, left : left + ww] += logits
            count[..., top : top + wh, left : left + ww] += 1
    assert total is not None
    return (total / count)[..., :height, :width]
