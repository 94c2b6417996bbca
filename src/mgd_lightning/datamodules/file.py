"""``FileDataModule``: the base of the datamodules that read image/mask files under a root."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mgd_lightning.data.datasets import (
    BaseSegmentationDataset,
    ImageDataset,
    SampleFiles,
    SegmentationDataset,
    check_files_exist,
)
from mgd_lightning.data.splits import SplitEntry, nested_partition, read_split_file
from mgd_lightning.datamodules.base import SemiSupervisedDataModule, Stage

__all__ = ["FileDataModule"]


class FileDataModule(SemiSupervisedDataModule):
    """Base of the datamodules that read image/mask files under a data root.

    Partition selection, in order: ``labeled_split`` (+ optional ``unlabeled_split``; if absent
    the unlabeled set is the rest of the training list), else ``labeled_ratio`` (a seeded,
    nested partition of the training list), else the subclass's default split files for its
    ``partition`` argument. Giving both ``labeled_split`` and ``labeled_ratio`` is an error.

    Subclasses implement :meth:`_train_entries` (the full training list),
    :meth:`_default_files` (an id -> files rule for the layout), :meth:`_partition_files`
    and :meth:`_eval_entries`. They declare only their own arguments and pass the rest on
    with ``**kwargs``: LightningCLI (jsonargparse) follows ``super().__init__(**kwargs)`` to
    this class and to :class:`~mgd_lightning.datamodules.SemiSupervisedDataModule`, so
    ``--help`` lists every argument with its type, default and help, and checks types.

    Args:
        root: data root (the layout is in the subclass's documentation).
        labeled_split: split file of the labeled ids (one id, or ``image mask`` paths relative
            to ``root``, per line); replaces the default partition.
        unlabeled_split: split file of the unlabeled ids; default: the rest of the training
            list.
        label_map: mask value -> class index (others: the ignore index), e.g. Cityscapes
            labelIds -> trainIds.
        **kwargs: shared settings of
            :class:`~mgd_lightning.datamodules.SemiSupervisedDataModule` (batch sizes, crop,
            scales, workers, ``labeled_ratio``, ``seed``, ...).
    """

    layout_help: str = ""

    def __init__(
        self,
        root: str | Path,
        *,
        labeled_split: str | Path | None = None,
        unlabeled_split: str | Path | None = None,
        label_map: dict[int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data root {self.root} does not exist or is not a folder. Expected layout of "
                f"{type(self).__name__}:\n{self.layout_help}"
            )
        if labeled_split is not None and self.labeled_ratio is not None:
            raise ValueError(
                "give either `labeled_split` (a split file) or `labeled_ratio`, not both"
            )
        if unlabeled_split is not None and labeled_split is None:
            raise ValueError("`unlabeled_split` needs `labeled_split` too")
        self.labeled_split = self._resolve_path(labeled_split)
        self.unlabeled_split = self._resolve_path(unlabeled_split)
        self.label_map = label_map

    def _resolve_path(self, path: str | Path | None) -> Path | None:
        if path is None:
            return None
        path = Path(path).expanduser()
        return path if path.is_absolute() or path.exists() else self.root / path

    def _missing(self, path: Path, what: str) -> FileNotFoundError:
        return FileNotFoundError(
            f"{what} {path} does not exist. Expected layout of {type(self).__name__} under "
            f"{self.root}:\n{self.layout_help}"
        )

    # hooks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def _train_entries(self) -> list[SplitEntry]:
        """All training ids (labeled and unlabeled)."""

    @abc.abstractmethod
    def _default_files(self, name: str, split: str) -> SampleFiles:
        """Files of id ``name`` in ``split`` under the layout (for id-only split lines)."""

    def _partition_files(self) -> tuple[Path, Path] | None:
        """Default (labeled, unlabeled) split files, or None if there is no default."""
        return None

    @abc.abstractmethod
    def _eval_entries(self, stage: Stage) -> tuple[list[SplitEntry], str, bool]:
        """Entries of an eval stage, the split folder they live in, and whether masks exist."""

    # ----------------------------------------------------------------------------------
    def _to_files(self, entries: Sequence[SplitEntry], split: str) -> list[SampleFiles]:
        files = []
        for e in entries:
            default = None
            if e.image is None or e.mask is None:
                default = self._default_files(e.name, split)
            image = self.root / e.image if e.image is not None else default.image  # type: ignore[union-attr]
            mask: Path | None
            if e.mask == "":  # explicitly no mask (unlabeled or predict-only images)
                mask = None
            else:
                mask = self.root / e.mask if e.mask is not None else default.mask  # type: ignore[union-attr]
            files.append(SampleFiles(e.name, image, mask))
        return files

    def _split_entries(self) -> tuple[list[SplitEntry], list[SplitEntry], str]:
        if self.labeled_split is not None:
            labeled = read_split_file(self.labeled_split)
            if self.unlabeled_split is not None:
                return labeled, read_split_file(self.unlabeled_split), (
                    f"{self.labeled_split} / {self.unlabeled_split}")
            names = {e.name for e in labeled}
            rest = [e for e in self._train_entries() if e.name not in names]
            return labeled, rest, f"{self.labeled_split} (unlabeled: the rest of the train list)"
        if self.labeled_ratio is not None:
            entries = self._train_entries()
            by_name = {e.name: e for e in entries}
            lab, unl = nested_partition([e.name for e in entries], self.labeled_ratio, self.seed)
            return ([by_name[n] for n in lab], [by_name[n] for n in unl],
                    f"labeled_ratio={self.labeled_ratio}, seed={self.seed}")
        files = self._partition_files()
        if files is None:
            raise ValueError(
                f"{type(self).__name__} needs a partition: give `labeled_split` "
                f"(+ `unlabeled_split`), `labeled_ratio`, or `partition`"
            )
        for f in files:
            if not f.is_file():
                raise self._missing(f, "split file")
        return read_split_file(files[0]), read_split_file(files[1]), f"{files[0]} / {files[1]}"

    def _train_datasets(self) -> tuple[BaseSegmentationDataset, BaseSegmentationDataset]:
        labeled_entries, unlabeled_entries, source = self._split_entries()
        labeled = self._to_files(labeled_entries, "train")
        unlabeled = self._to_files(unlabeled_entries, "train")
        check_files_exist(labeled, True, f"labeled set ({source})")
        check_files_exist(unlabeled, False, f"unlabeled set ({source})")
        return (
            SegmentationDataset(labeled, self.num_classes, self.ignore_index, self.label_map),
            ImageDataset(unlabeled),
        )

    def _eval_dataset(self, stage: Stage) -> BaseSegmentationDataset:
        entries, split, has_masks = self._eval_entries(stage)
        files = self._to_files(entries, split)
        check_files_exist(files, has_masks, f"{stage} set ({split})")
        return SegmentationDataset(files, self.num_classes, self.ignore_index, self.label_map,
                                   with_masks=has_masks)
