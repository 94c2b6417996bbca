"""PASCAL VOC 2012 + SBD ("train_aug"), 21 classes, ignore 255 (METHOD.md D.1, D.2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from mgd_lightning.data.datasets import SampleFiles
from mgd_lightning.data.splits import SplitEntry, read_split_file
from mgd_lightning.data.transforms import DEFAULT_SCALES
from mgd_lightning.datamodules.base import FileDataModule, Stage

__all__ = ["VOC_CLASS_NAMES", "VOC_PALETTE", "PascalVOCDataModule", "voc_palette"]

VOC_CLASS_NAMES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC colour map (bit-interleaving rule of the VOC devkit).

    Examples:
        >>> voc_palette(3)
        [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    """
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


VOC_PALETTE: tuple[tuple[int, int, int], ...] = tuple(voc_palette(21))


class PascalVOCDataModule(FileDataModule):
    """PASCAL VOC 2012 augmented with SBD (10 582 train_aug, 1449 val), 21 classes.

    Layout under ``root`` (the CPS/MGD ``pascal_voc`` folder, METHOD.md D.1)::

        train_aug/image/<id>.jpg, train_aug/label/<id>.png
        val/image/<id>.jpg,       val/label/<id>.png
        train_aug.txt, val.txt                          one id per line
        subset_train_aug/train_aug_{labeled,unlabeled}_1-{2,4,8,16}.txt

    Labels are single-channel index PNGs; VOC's palette PNGs also work (read as indices). U2PL
    split files (``JPEGImages/<id>.jpg SegmentationClassAug/<id>.png`` per line, relative to
    ``root``) work through ``labeled_split``/``unlabeled_split``/``val_split``, so a VOCdevkit +
    SegmentationClassAug layout needs no copying.

    Validation images differ in size (at most 500x500): evaluation batches are not padded, so
    ``eval_batch_size`` defaults to 1 (the model pads, METHOD.md C.6).

    Args:
        root: the ``pascal_voc`` folder.
        partition: CPS subset used when neither ``labeled_split`` nor ``labeled_ratio`` is given.
        labeled_split: labeled split file (ids or U2PL path pairs).
        unlabeled_split: unlabeled split file (ids or U2PL path pairs).
        val_split: validation list; default ``val.txt``.
        crop_size: default 512 (METHOD.md C.1).
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
        labeled_split: str | Path | None = None,
        unlabeled_split: str | Path | None = None,
        val_split: str | Path | None = None,
        labeled_ratio: float | None = None,
        batch_size: int = 8,
        unlabeled_batch_size: int | None = None,
        eval_batch_size: int | None = 1,
        num_workers: int = 0,
        crop_size: int | tuple[int, int] = 512,
        scales: Sequence[float] = DEFAULT_SCALES,
        seed: int = 0,
        drop_last: bool = True,
        validate: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root, labeled_split=labeled_split, unlabeled_split=unlabeled_split,
            num_classes=len(VOC_CLASS_NAMES), class_names=VOC_CLASS_NAMES, palette=VOC_PALETTE,
            batch_size=batch_size, unlabeled_batch_size=unlabeled_batch_size,
            eval_batch_size=eval_batch_size, num_workers=num_workers, crop_size=crop_size,
            scales=scales, seed=seed, labeled_ratio=labeled_ratio, drop_last=drop_last,
            validate=validate, **kwargs,
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
