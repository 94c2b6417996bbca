"""``SyntheticDataModule``: the embedded default; procedural scenes, no files needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mgd_lightning.checks import check_positive_int
from mgd_lightning.data.datasets import BaseSegmentationDataset
from mgd_lightning.data.splits import nested_partition
from mgd_lightning.data.synthetic import (
    SYNTHETIC_CLASS_NAMES,
    SYNTHETIC_PALETTE,
    SyntheticScenes,
    SyntheticSegmentationDataset,
)
from mgd_lightning.datamodules.base import SemiSupervisedDataModule, Stage

__all__ = ["SyntheticDataModule"]


class SyntheticDataModule(SemiSupervisedDataModule):
    """Procedurally generated scenes (see :mod:`mgd_lightning.data.synthetic`), 6 classes.

    Defaults suit a quick CPU demo: 64x64 images, 2048 training scenes of which 1/16 (128) are
    labeled, 256 validation and 256 test scenes. Scenes are a pure function of ``(seed, split,
    index)``; the labeled subset is a nested partition (1/16 inside 1/8 for one seed).

    Args:
        image_size: side of the square scenes (or ``(H, W)``).
        num_train: training scenes (labeled + unlabeled).
        num_val: validation scenes (a separate stream, never in training).
        num_test: test scenes (also used for predict).
        labeled_ratio: labeled share of the training scenes.
        crop_size: training crop; defaults to ``image_size``.
        scales: random scale set; the default ``(0.75, 1, 1.25, 1.5)`` keeps small objects
            visible at 64 px.
        **kwargs: the shared settings of :class:`SemiSupervisedDataModule`; its ``seed`` is
            also the seed of the scenes.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 64,
        num_train: int = 2048,
        num_val: int = 256,
        num_test: int = 256,
        labeled_ratio: float = 1 / 16,
        crop_size: int | tuple[int, int] | None = None,
        scales: Sequence[float] = (0.75, 1.0, 1.25, 1.5),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes=len(SYNTHETIC_CLASS_NAMES), class_names=SYNTHETIC_CLASS_NAMES,
            palette=SYNTHETIC_PALETTE, crop_size=image_size if crop_size is None else crop_size,
            scales=scales, labeled_ratio=labeled_ratio, **kwargs,
        )
        self.num_train = check_positive_int("num_train", num_train)
        self.num_val = check_positive_int("num_val", num_val)
        self.num_test = check_positive_int("num_test", num_test)
        self.scenes = SyntheticScenes(image_size, seed=self.seed)
        self.image_size = (self.scenes.height, self.scenes.width)

    def _train_datasets(self) -> tuple[BaseSegmentationDataset, BaseSegmentationDataset]:
        assert self.labeled_ratio is not None
        labeled, unlabeled = nested_partition(
            [str(i) for i in range(self.num_train)], self.labeled_ratio, self.seed
        )
        return (
            SyntheticSegmentationDataset(self.scenes, [int(i) for i in labeled], "train"),
            SyntheticSegmentationDataset(self.scenes, [int(i) for i in unlabeled], "train",
                                         with_masks=False),
        )

    def _eval_dataset(self, stage: Stage) -> BaseSegmentationDataset:
        if stage == "val":
            return SyntheticSegmentationDataset(self.scenes, range(self.num_val), "val")
        return SyntheticSegmentationDataset(self.scenes, range(self.num_test), "test")
