"""PASCAL VOC 2012 + SBD ("train_aug"), 21 classes, ignore 255 (docs/method.md#datasets, D.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mgd_lightning.data.classes import VOC_CLASS_NAMES, VOC_PALETTE, voc_palette
from mgd_lightning.data.datasets import SampleFiles
from mgd_lightning.data.splits import SplitEntry, read_split_file
from mgd_lightning.datamodules.base import Stage
from mgd_lightning.datamodules.file import FileDataModule

__all__ = ["VOC_CLASS_NAMES", "VOC_PALETTE", "PascalVOCDataModule", "voc_palette"]

class PascalVOCDataModule(FileDataModule):
    """PASCAL VOC 2012 augmented with SBD (10 582 train_aug, 1449 val), 21 classes.

    Layout under ``root`` (the CPS/MGD ``pascal_voc`` folder, docs/method.md#datasets)::

        train_aug/image/<id>.jpg, train_aug/label/<id>.png
        val/image/<id>.jpg,       val/label/<id>.png
        train_aug.txt, val.txt                          one id per line
        subset_train_aug/train_aug_{labeled,unlabeled}_1-{2,4,8,16}.txt

    Labels are single-channel index PNGs; VOC's palette PNGs also work (read as indices). U2PL
    split files (``JPEGImages/<id>.jpg SegmentationClassAug/<id>.png`` per line, relative to
    ``root``) work through ``labeled_split``/``unlabeled_split``/``val_split``, so a VOCdevkit +
    SegmentationClassAug layout needs no copying.

    Validation images differ in size (at most 500x500): evaluation batches are not padded, so
    ``eval_batch_size`` defaults to 1 (the model pads, docs/method.md#evaluation-protocol).

    Args:
        root: the ``pascal_voc`` folder.
        partition: CPS subset used when neither ``labeled_split`` nor ``labeled_ratio`` is given.
        val_split: validation list; default ``val.txt``.
        eval_batch_size: default 1: VOC images differ in size.
        **kwargs: the shared settings of :class:`FileDataModule` (``labeled_split``,
            ``unlabeled_split``: ids or U2PL path pairs) and :class:`SemiSupervisedDataModule`
            (``crop_size`` default 512, docs/method.md#training-recipe).
    """

    layout_help = (
        "  train_aug/image/<id>.jpg, train_aug/label/<id>.png,\n"
        "  val/image/<id>.jpg, val/label/<id>.png,\n"
        "  train_aug.txt, val.txt,\n"
        "  subset_train_aug/train_aug_{labeled,unlabeled}_1-{2,4,8,16}.txt"
    )

    def __init__(
        self,
        root: str | Path,
        partition: Literal["1-16", "1-8", "1-4", "1-2"] = "1-8",
        val_split: str | Path | None = None,
        eval_batch_size: int | None = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root, num_classes=len(VOC_CLASS_NAMES), class_names=VOC_CLASS_NAMES,
            palette=VOC_PALETTE, eval_batch_size=eval_batch_size, **kwargs,
        )
        self.partition = partition
        self.val_split = self._resolve_path(val_split)

    def _train_entries(self) -> list[SplitEntry]:
        path = self.root / "train_aug.txt"
        if not path.is_file():
            raise self._missing(path, "training list")
        return read_split_file(path)

    def _default_files(self, name: str, split: str) -> SampleFiles:
        folder = "train_aug" if split == "train" else "val"
        return SampleFiles(name, self.root / folder / "image" / f"{name}.jpg",
                           self.root / folder / "label" / f"{name}.png")

    def _partition_files(self) -> tuple[Path, Path]:
        folder = self.root / "subset_train_aug"
        return (folder / f"train_aug_labeled_{self.partition}.txt",
                folder / f"train_aug_unlabeled_{self.partition}.txt")

    def _eval_entries(self, stage: Stage) -> tuple[list[SplitEntry], str, bool]:
        path = self.val_split if self.val_split is not None else self.root / "val.txt"
        if not path.is_file():
            raise self._missing(path, "validation list")
        return read_split_file(path), "val", True
