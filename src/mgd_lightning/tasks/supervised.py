"""Labeled-only training: the paper's "Sup." baseline and supervised teacher training."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mgd_lightning.models.inference import logits_of
from mgd_lightning.tasks.base import SegmentationTask

__all__ = ["SupervisedModule"]


class SupervisedModule(SegmentationTask):
    """Train ``network`` on the labeled stream only (cross-entropy or OHEM).

    Accepts the semi-supervised batch (``{"labeled": ..., "unlabeled": ...}``, the unlabeled
    part is ignored) or a plain labeled batch ``{"image", "mask"}``. A checkpoint of this module
    loads into ``TeacherPair`` (prefix ``network.``).

    Args:
        network: The network to train.
        **kwargs: Shared settings of :class:`~mgd_lightning.tasks.base.SegmentationTask`
            (``num_classes``, ``ignore_index``, optimisation, evaluation).
    """

    def __init__(self, network: nn.Module, **kwargs: Any) -> None:
        super().__init__(network, **kwargs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        """``batch``: a ``TrainBatch`` (its ``"unlabeled"`` part unused) or a ``LabeledBatch``."""
        labeled = batch.get("labeled", batch)
        logits = logits_of(self.network(labeled["image"]))
        loss = self.supervised_loss(logits, labeled["mask"])
        return self._finish_step({"sup": loss}, loss, batch_size=labeled["image"].shape[0])
