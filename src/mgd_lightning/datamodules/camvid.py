"""CamVid, 11 classes (SegNet version); void (11) is mapped to the ignore index."""

from __future__ import annotations

import os
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
    uses the same split as test (with masks). ``val_split`` and ``test_split`` choose other
    evaluation splits: the name of a list under ``root`` (``train``, ``val``, ``test``) or the
    path of a list file of ids anywhere (e.g. ``configs/camvid/splits/heldout_0006R0/heldout.txt``:
    a sequence of ``train.txt`` kept out of training). A list file's ids are looked up in the
    root's ``train.txt``, ``val.txt`` and ``test.txt``, which say the folder of each image.

    Args:
        root: the CamVid folder.
        partition: which ``splits/1-N`` folder to use when neither ``labeled_split`` nor
            ``labeled_ratio`` is given.
        crop_size: default ``(176, 224)``: fits in the 180x240 frames, a multiple of 16.
        val_split: the validation split: a list name under ``root`` or a list file (a relative
            path is taken from the working folder if it exists there, else from ``root``).
        test_split: the test (and predict) split, as ``val_split``; default ``test`` when
            ``root`` has ``test.txt``, else ``val``.
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
        val_split: str = "val",
        test_split: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root, label_map={CAMVID_VOID: kwargs.get("ignore_index", 255)},
            num_classes=len(CAMVID_CLASS_NAMES), class_names=CAMVID_CLASS_NAMES,
            palette=CAMVID_PALETTE, crop_size=crop_size, **kwargs,
        )
        self.partition = partition
        self.val_split = val_split
        self.test_split = test_split

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
        if stage == "val":
            split = self.val_split
        elif self.test_split is not None:
            split = self.test_split
        else:
            split = "test" if (self.root / "test.txt").is_file() else "val"
        argument = "val_split" if stage == "val" else "test_split"
        if _is_list_file(split):
            return self._located(split, argument), split, True
        if not (self.root / f"{split}.txt").is_file():
            available = sorted(p.stem for p in self.root.glob("*.txt"))
            raise FileNotFoundError(
                f"split {split!r} (`{argument}`): {self.root / (split + '.txt')} does not exist; "
                f"give a list of {self.root} ({', '.join(available) or 'none'}) or the path of "
                "a list file of ids, one per line"
            )
        return self._list(split), split, True

    def _located(self, split: str, argument: str) -> list[SplitEntry]:
        """The ids of a list file, each with the image and label paths of its root list."""
        path = self._resolve_path(split)
        assert path is not None
        if not path.is_file():
            tried = f" (nor {path})" if os.fspath(path) != split else ""
            raise FileNotFoundError(
                f"`{argument}` list file {split} does not exist{tried}; give a list name under "
                f"{self.root} (train, val, test) or the path of a file of ids, one per line"
            )
        folder_of: dict[str, str] = {}
        for name in ("train", "val", "test"):
            if (self.root / f"{name}.txt").is_file():
                for entry in self._list(name):
                    folder_of.setdefault(entry.name, name)
        entries = read_split_file(path)
        absent = [e.name for e in entries if e.image is None and e.name not in folder_of]
        if absent:
            raise ValueError(
                f"{len(absent)} id(s) of the `{argument}` list file {path} are in none of the "
                f"lists train.txt, val.txt, test.txt of {self.root}: {absent[:5]}; is this the "
                "data root the list was made for?"
            )
        return [
            e if e.image is not None else SplitEntry(
                e.name,
                f"images/{folder_of[e.name]}/{e.name}.png",
                f"labels/{folder_of[e.name]}/{e.name}.png",
            )
            for e in entries
        ]


def _is_list_file(split: str) -> bool:
    """A path (``/`` or ``.txt`` in it) rather than the name of a list under the root."""
    return "/" in split or "\\" in split or split.endswith(".txt")
