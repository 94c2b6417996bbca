"""Datasets that add cached teacher labels, warped to each training view, to their samples.

They wrap the library's training datasets without changing them: the wrapped dataset's
transform is replaced by :class:`GeometryRecordingTransform` (the same albumentations
transforms, same seeds, same output) that also records each view's :class:`ViewGeometry`.
Samples gain ``"teacher_labels"`` ``(2, H, W)`` uint8 (deep, wide; 255 on padding) and
``"geometry"`` ``(k,)`` int64 (:data:`GEOMETRY_FIELDS`); the unlabeled pair gets
``"teacher_labels_a"``/``"teacher_labels_b"`` and ``"geometry_a"``/``"geometry_b"``. Other
keys are untouched, so other users of the batch are unaffected.
"""

from __future__ import annotations

import random
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mgd_lightning.data.datasets import BaseSegmentationDataset, UnlabeledPairDataset
from mgd_lightning.data.transforms import SegmentationTransform
from mgd_lightning.teacher_labels.geometry import ViewGeometry, geometry_from_applied
from mgd_lightning.teacher_labels.labels import TeacherLabelCache

__all__ = ["CachedLabeledDataset", "CachedUnlabeledPairDataset", "GeometryRecordingTransform"]


class GeometryRecordingTransform:
    """A :class:`SegmentationTransform` that also records the geometry of each call.

    Same transforms, same seed handling, same output; ``records`` receives one
    :class:`ViewGeometry` per call (clear it before a sample).

    Args:
        transform: the training transform to replay.
    """

    def __init__(self, transform: SegmentationTransform) -> None:
        if isinstance(transform, GeometryRecordingTransform):
            transform = transform.transform
        self.transform = transform
        self.is_random = transform.is_random
        self.compose = A.Compose(list(transform.compose.transforms), seed=0,
                                 save_applied_params=True)
        self.records: list[ViewGeometry] = []

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None, seed: int | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if seed is not None:
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.compose(image=image) if mask is None else self.compose(image=image, mask=mask)
        self.records.append(geometry_from_applied(image.shape, out["applied_transforms"]))
        img = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        if mask is None:
            return img, None
        return img, torch.from_numpy(np.asarray(out["mask"]).astype(np.int64))


def _row(cache: TeacherLabelCache, name: str) -> int:
    try:
        return cache.index(name)
    except KeyError:
        raise ValueError(
            f"image {name!r} is not in the teacher-label cache at {cache.root}; rebuild the "
            "cache over this training set"
        ) from None


class _CachedViews(Dataset[dict[str, Any]]):
    """A training dataset whose transform records each view's geometry, plus a label cache.

    Args:
        dataset: the wrapped dataset; its transform is replaced by a recording one.
        cache: teacher labels of its source images (rows found by sample name).
    """

    def __init__(
        self, dataset: BaseSegmentationDataset | UnlabeledPairDataset, cache: TeacherLabelCache
    ) -> None:
        self.dataset = dataset
        self.cache = cache
        self.recorder = GeometryRecordingTransform(dataset.transform)
        dataset.transform = self.recorder  # type: ignore[assignment]

    @property
    def rank(self) -> int:
        return self.dataset.rank

    @rank.setter
    def rank(self, value: int) -> None:
        self.dataset.rank = value

    def __len__(self) -> int:
        return len(self.dataset)


class CachedLabeledDataset(_CachedViews):
    """The labeled training set plus each view's cached teacher labels.

    Args:
        dataset: the labeled training dataset (random training transform set).
        cache: labels of its images (rows found by sample name).
    """

    def __init__(self, dataset: BaseSegmentationDataset, cache: TeacherLabelCache) -> None:
        super().__init__(dataset, cache)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        self.recorder.records.clear()
        sample = dict(self.dataset[key])
        geometry = self.recorder.records[-1]
        sample["teacher_labels"] = self.cache.view_labels(_row(self.cache, sample["name"]),
                                                          geometry)
        sample["geometry"] = geometry.to_tensor()
        return sample


class CachedUnlabeledPairDataset(_CachedViews):
    """The unlabeled pair stream plus both views' cached teacher labels.

    Args:
        dataset: the :class:`~mgd_lightning.data.datasets.UnlabeledPairDataset`.
        cache: labels of its source images (rows found by sample name).
    """

    def __init__(self, dataset: UnlabeledPairDataset, cache: TeacherLabelCache) -> None:
        super().__init__(dataset, cache)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        self.recorder.records.clear()
        sample: dict[str, Any] = dict(self.dataset[key])
        geometry_a, geometry_b = self.recorder.records[-2:]
        for suffix, geometry in (("a", geometry_a), ("b", geometry_b)):
            row = _row(self.cache, sample[f"name_{suffix}"])
            sample[f"teacher_labels_{suffix}"] = self.cache.view_labels(row, geometry)
            sample[f"geometry_{suffix}"] = geometry.to_tensor()
        return sample
