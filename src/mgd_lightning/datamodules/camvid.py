"""CamVid, 11 classes (SegNet version); void (11) is mapped to the ignore index."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mgd_lightning.data.classes import CAMVID_CLASS_NAMES, CAMVID_PALETTE
from mgd_lightning.data.datasets import SampleFiles
from mgd_lightning.data.splits import SplitEntry, read_split_file
from mgd_lightning.datamodules.base import Stage
from mgd_lightning.datamodules.file import FileDataModule

__all__ = ["CAMVID_CLASS_NAMES", "CAMVID_PALETTE", "CamVidDataModule"]

CAMVID_VOID = 11


class CamVidDataModule(FileDataModule):
    """CamVid (11 classes, void 11 -> ``ignore_index``).

    Layout under ``root``::

        images/{train,val[,test]}/<id>.png     RGB
        labels/{train,val[,test]}/<id>.png     class ids 0-10, 11 void
        train.txt, val.txt[, test.txt]         one id per line
        splits/1-{N}/{labeled,unlabeled}.txt   partitions of train.txt

    The test stage uses the ``test`` split when ``test.txt`` exists, else ``val``; predict
    uses the same split as test (with masks).

    Args:
        root: the CamVid folder.
        partition: which ``splits/1-N`` folder to use when neither ``labeled_split`` nor
            ``labeled_ratio`` is given.
        crop_size: default ``(176, 224)``: fits in the 180x240 frames, a multiple of 16.
        **kwargs: the shared settings of :class:`FileDataModule` (``unlabeled_split`` default:
            the rest of ``train.txt``) and :class:`SemiSupervisedDataModule`.
    """

    layout_help = (
        "  images/{train,val[,test]}/<id>.png, labels/{train,val[,test]}/<id>.png,\n"
        "  train.txt, val.txt[, test.txt] (one id per line),\n"
        "  splits/1-N/{labeled,unlabeled}.txt"
    )

    def __init__(
        self,
        root: str | Path,
        partition: Literal["1-16", "1-8", "1-4", "1-2"] = "1-8",
        crop_size: int | tuple[int, int] = (176, 224),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root, label_map={CAMVID_VOID: kwargs.get("ignore_index", 255)},
            num_classes=len(CAMVID_CLASS_NAMES), class_names=CAMVID_CLASS_NAMES,
            palette=CAMVID_PALETTE, crop_size=crop_size, **kwargs,
        )
        self.partition = partition

    def _list(self, split: str) -> list[SplitEntry]:
        path = self.root / f"{split}.txt"
        if not path.is_file():
            raise self._missing(path, f"{split} list")
        return read_split_file(path)

    def _train_entries(self) -> list[SplitEntry]:
        return self._list("train")

    def _default_files(self, name: str, split: str) -> SampleFiles:
        return SampleFiles(name, self.root / "images" / split / f"{name}.png",
                           self.root / "labels" / split / f"{name}.png")

    def _partition_files(self) -> tuple[Path, Path]:
        folder = self.root / "splits" / self.partition
        if not folder.is_dir():
            available = sorted(p.name for p in (self.root / "splits").glob("1-*"))
            raise FileNotFoundError(
                f"partition folder {folder} does not exist (available: {available}); choose "
                f"another `partition`, or give `labeled_ratio` or `labeled_split`"
            )
        return folder / "labeled.txt", folder / "unlabeled.txt"

    def _eval_entries(self, stage: Stage) -> tuple[list[SplitEntry], str, bool]:
        if stage == "val" or not (self.root / "test.txt").is_file():
            return self._list("val"), "val", True
        return self._list("test"), "test", True
