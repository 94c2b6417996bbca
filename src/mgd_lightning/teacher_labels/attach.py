"""Build the teacher-label caches of a datamodule's training sets and switch it to them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mgd_lightning.data.datasets import BaseSegmentationDataset, UnlabeledPairDataset
from mgd_lightning.data.transforms import eval_transform
from mgd_lightning.models.teachers import TeacherPair
from mgd_lightning.teacher_labels.datasets import CachedLabeledDataset, CachedUnlabeledPairDataset
from mgd_lightning.teacher_labels.labels import TeacherLabelCache, build_teacher_label_cache

__all__ = ["attach_teacher_label_cache"]


def _build_or_open(teachers: TeacherPair, dataset: BaseSegmentationDataset, root: Path,
                   scale: float) -> TeacherLabelCache:
    if (root / "meta.json").is_file():
        cache = TeacherLabelCache(root)
        if cache.names == dataset.names:
            return cache
    normalise = eval_transform()

    def image(index: int) -> Any:
        return normalise(dataset.read(index, with_mask=False).image)[0]

    return build_teacher_label_cache(teachers, image, root, count=len(dataset),
                                     names=dataset.names, scale=scale)


def attach_teacher_label_cache(
    datamodule: Any, teachers: TeacherPair, root: str | os.PathLike[str], scale: float = 1.0
) -> tuple[TeacherLabelCache, TeacherLabelCache]:
    """Cache the teachers' labels of a datamodule's training images and use them.

    Calls ``datamodule.setup("fit")``, builds (or reopens, if the image ids match) one cache
    per training set under ``root/labeled`` and ``root/unlabeled``, and wraps the
    datamodule's ``labeled_dataset`` and ``unlabeled_dataset`` so that its batches carry the
    warped labels (see :mod:`mgd_lightning.teacher_labels.datasets`). A
    :class:`~mgd_lightning.tasks.DistillationModule` then runs its teachers on the mixed
    batch only.

    Args:
        datamodule: a :class:`~mgd_lightning.datamodules.SemiSupervisedDataModule`.
        teachers: the frozen teachers of the run.
        root: cache folder.
        scale: resolution of the stored maps relative to the images.

    Returns:
        ``(labeled cache, unlabeled cache)``.
    """
    datamodule.setup("fit")
    labeled, pairs = datamodule.labeled_dataset, datamodule.unlabeled_dataset
    if isinstance(labeled, CachedLabeledDataset):
        raise ValueError("the datamodule already uses a teacher-label cache")
    if not isinstance(pairs, UnlabeledPairDataset):
        raise ValueError(f"expected an UnlabeledPairDataset, got {type(pairs).__name__}")
    root = Path(root)
    labeled_cache = _build_or_open(teachers, labeled, root / "labeled", scale)
    unlabeled_cache = _build_or_open(teachers, pairs.source, root / "unlabeled", scale)
    datamodule.labeled_dataset = CachedLabeledDataset(labeled, labeled_cache)
    datamodule.unlabeled_dataset = CachedUnlabeledPairDataset(pairs, unlabeled_cache)
    return labeled_cache, unlabeled_cache
