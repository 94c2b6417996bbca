"""Cityscapes (gtFine), 19 classes (trainIds), ignore 255 (docs/method.md#datasets, D.2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from mgd_lightning.data.classes import CITYSCAPES_CLASS_NAMES, CITYSCAPES_PALETTE
from mgd_lightning.data.datasets import SampleFiles
from mgd_lightning.data.splits import SplitEntry, read_split_file
from mgd_lightning.datamodules.base import Stage
from mgd_lightning.datamodules.file import FileDataModule

__all__ = [
    "CITYSCAPES_CLASS_NAMES",
    "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "CITYSCAPES_PALETTE",
    "CityscapesDataModule",
]

_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
              24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
#: Official labelIds (0-33, -1 licence plate) -> trainIds (0-18), everything else -> 255.
CITYSCAPES_LABEL_TO_TRAIN_ID: dict[int, int] = {
    label_id: _TRAIN_IDS.get(label_id, 255) for label_id in range(-1, 34)
}


class CityscapesDataModule(FileDataModule):
    """Cityscapes gtFine (2975 train, 500 val), 19 classes.

    Two layouts under ``root`` (``layout="auto"`` picks the one present):

    - ``"cps"`` (the CPS/MGD ``city`` folder, docs/method.md#datasets)::

        images/{train,val,test}/<name>.png
        segmentation/{train,val,test}/<name>_gtFine.png       trainIds already
        config_new/{train,val,test}.txt                       "/image<TAB>/mask" lines
        config_new/subset_train/train_aug_{labeled,unlabeled}_1-{2,4,8,16}.txt

    - ``"cityscapes"`` (the official download)::

        leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png
        gtFine/{train,val,test}/<city>/<name>_gtFine_labelIds.png

      Split files then hold ids (``<city>_<seq>_<frame>``) or path pairs; without them use
      ``labeled_ratio``. ``label_type="labelIds"`` (default here) maps with the built-in
      labelId -> trainId table; ``"trainIds"`` reads ``*_gtFine_labelTrainIds.png`` as is.

    Test and predict use ``val`` (test labels are not public).

    Args:
        root: the Cityscapes folder.
        layout: ``"auto"``, ``"cps"`` or ``"cityscapes"``.
        label_type: stored label encoding; default ``"trainIds"`` for CPS, ``"labelIds"`` for
            the official layout.
        partition: CPS subset used when neither ``labeled_split`` nor ``labeled_ratio`` is
            given (CPS layout only).
        crop_size: default 800 (docs/method.md#schedules).
        **kwargs: the shared settings of :class:`FileDataModule` and
            :class:`SemiSupervisedDataModule`.
    """

    layout_help = (
        "  CPS: images/{train,val}/<name>.png, segmentation/{train,val}/<name>_gtFine.png,\n"
        "       config_new/{train,val}.txt, config_new/subset_train/"
        "train_aug_{labeled,unlabeled}_1-N.txt\n"
        "  or official: leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png,\n"
        "       gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png"
    )

    def __init__(
        self,
        root: str | Path,
        layout: Literal["auto", "cps", "cityscapes"] = "auto",
        label_type: Literal["trainIds", "labelIds"] | None = None,
        partition: Literal["1-16", "1-8", "1-4", "1-2"] | None = "1-8",
        crop_size: int | tuple[int, int] = 800,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root, num_classes=len(CITYSCAPES_CLASS_NAMES), class_names=CITYSCAPES_CLASS_NAMES,
            palette=CITYSCAPES_PALETTE, crop_size=crop_size, **kwargs,
        )
        if layout == "auto":
            if (self.root / "leftImg8bit").is_dir():
                layout = "cityscapes"
            elif (self.root / "images").is_dir():
                layout = "cps"
            else:
                raise FileNotFoundError(
                    f"{self.root} holds neither `leftImg8bit/` (official layout) nor `images/` "
                    f"(CPS layout). Expected:\n{self.layout_help}"
                )
        self.layout: Literal["cps", "cityscapes"] = layout
        if label_type is None:
            label_type = "trainIds" if layout == "cps" else "labelIds"
        self.label_type = label_type
        self.label_map = CITYSCAPES_LABEL_TO_TRAIN_ID if label_type == "labelIds" else None
        self.partition = partition

    def _list(self, split: str) -> list[SplitEntry]:
        if self.layout == "cps":
            path = self.root / "config_new" / f"{split}.txt"
            if not path.is_file():
                raise self._missing(path, f"{split} list")
            return read_split_file(path)
        folder = self.root / "leftImg8bit" / split
        if not folder.is_dir():
            raise self._missing(folder, f"{split} image folder")
        images = sorted(folder.glob("*/*_leftImg8bit.png"))
        return [SplitEntry(p.name[: -len("_leftImg8bit.png")],
                           str(p.relative_to(self.root)), None) for p in images]

    def _train_entries(self) -> list[SplitEntry]:
        return self._list("train")

    def _default_files(self, name: str, split: str) -> SampleFiles:
        if self.layout == "cps":
            return SampleFiles(name, self.root / "images" / split / f"{name}.png",
                               self.root / "segmentation" / split / f"{name}_gtFine.png")
        city = name.split("_")[0]
        suffix = "labelIds" if self.label_type == "labelIds" else "labelTrainIds"
        return SampleFiles(
            name, self.root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png",
            self.root / "gtFine" / split / city / f"{name}_gtFine_{suffix}.png",
        )

    def _to_files(self, entries: Sequence[SplitEntry], split: str) -> list[SampleFiles]:
        if self.layout == "cityscapes":  # masks always follow the chosen label_type
            entries = [SplitEntry(e.name, e.image, None) for e in entries]
        return super()._to_files(entries, split)

    def _partition_files(self) -> tuple[Path, Path] | None:
        if self.layout != "cps" or self.partition is None:
            return None
        folder = self.root / "config_new" / "subset_train"
        return (folder / f"train_aug_labeled_{self.partition}.txt",
                folder / f"train_aug_unlabeled_{self.partition}.txt")

    def _eval_entries(self, stage: Stage) -> tuple[list[SplitEntry], str, bool]:
        return self._list("val"), "val", True
