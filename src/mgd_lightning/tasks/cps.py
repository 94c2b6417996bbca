"""Cross pseudo supervision with CutMix: how the paper trains each teacher.

See docs/method.md#teacher-training.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mgd_lightning.data.batch import TrainBatch
from mgd_lightning.data.mixing import mix
from mgd_lightning.losses.functional import pixel_consistency_loss
from mgd_lightning.models.inference import logits_of
from mgd_lightning.tasks.base import SegmentationTask

__all__ = ["CPSModule"]


class CPSModule(SegmentationTask):
    """Two branches of one architecture supervise each other on CutMix-mixed unlabeled images.

    ``L = CE(b1(x_l), y) + CE(b2(x_l), y) + w * [CE(b1(x_m), argmax mix(b2(u_a), b2(u_b)))
    + CE(b2(x_m), argmax mix(b1(u_a), b1(u_b)))]`` (docs/method.md#teacher-training). The
    pseudo-label passes run without gradient, one batched pass per branch over ``u_a`` and
    ``u_b``. Validation, test and prediction use branch 1 (``network``), which is also what
    ``TeacherPair`` loads.

    Args:
        network: Branch 1; branch 2 (``network2``) is a copy with re-initialised weights.
        cps_weight: ``w``: 1 for VOC, 5 for Cityscapes (the reference).
        branch2_init: ``"head"`` re-initialises branch 2's head only (the reference: both
            branches start from the same ImageNet backbone); ``"all"`` re-initialises every
            layer (for networks trained from scratch, so that the branches differ).
        **kwargs: Shared settings of :class:`~mgd_lightning.tasks.base.SegmentationTask`.
    """

    def __init__(
        self,
        network: nn.Module,
        cps_weight: float = 1.0,
        branch2_init: Literal["head", "all"] = "head",
        **kwargs: Any,
    ) -> None:
        super().__init__(network, **kwargs)
        if not math.isfinite(cps_weight) or cps_weight < 0:
            raise ValueError(f"`cps_weight` must be a finite number >= 0, got {cps_weight}")
        if branch2_init not in ("head", "all"):
            raise ValueError(f"`branch2_init` must be 'head' or 'all', got {branch2_init!r}")
        self.cps_weight = cps_weight
        self.network2 = copy.deepcopy(network)
        _reinitialise(self.network2, keep_backbone=branch2_init == "head")

    def trainable_modules(self):  # type: ignore[no-untyped-def]
        yield self.network
        yield self.network2

    def training_step(self, batch: TrainBatch, batch_idx: int) -> Tensor | None:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        x_l, y = labeled["image"], labeled["mask"]
        u_a, u_b, box = unlabeled["image_a"], unlabeled["image_b"], unlabeled["cutmix_mask"]
        x_m = mix(u_a, u_b, box)
        n = u_a.shape[0]
        with torch.no_grad():
            p1 = logits_of(self.network(torch.cat([u_a, u_b])))
            p2 = logits_of(self.network2(torch.cat([u_a, u_b])))
        target_for_1 = mix(p2[:n], p2[n:], box)
        target_for_2 = mix(p1[:n], p1[n:], box)
        sup = self.supervised_loss(logits_of(self.network(x_l)), y) + self.supervised_loss(
            logits_of(self.network2(x_l)), y
        )
        cps = pixel_consistency_loss(logits_of(self.network(x_m)), target_for_1) + (
            pixel_consistency_loss(logits_of(self.network2(x_m)), target_for_2)
        )
        total = sup + self.cps_weight * cps
        return self._finish_step({"sup": sup, "cps": cps}, total, batch_size=x_l.shape[0])


def _reinitialise(network: nn.Module, keep_backbone: bool) -> None:
    """Draw new weights for every layer (outside ``backbone`` when ``keep_backbone``)."""
    init_head = getattr(network, "init_head", None)
    for name, module in network.named_modules():
        if keep_backbone and (name == "backbone" or name.startswith("backbone.")):
            continue
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not network:
            reset()
    if callable(init_head):  # the network's own head initialisation (docs/method.md#head step 4)
        init_head()
