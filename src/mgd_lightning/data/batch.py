"""Sample and batch structures, defined once as ``TypedDict``\\ s.

Shapes use ``B`` batch, ``H, W`` spatial. Images are float32, ImageNet-normalised RGB; masks are
int64 class indices in ``[0, K)`` with the ignore value (255 by default) on unlabeled pixels (void
classes, padding). ``name`` is the sample's string id (a file stem), so that prediction writers can
name output files.

A training batch is what ``SemiSupervisedDataModule.train_dataloader`` yields (a Lightning
``CombinedLoader`` in ``max_size_cycle`` mode)::

    {"labeled":   LabeledBatch,        # image (B,3,H,W), mask (B,H,W), name
     "unlabeled": UnlabeledPairBatch}  # image_a, image_b (B,3,H,W), cutmix_mask (B,1,H,W), ...

Validation and test batches are ``LabeledBatch``; predict batches are ``PredictBatch``.

With the teacher-label cache (:mod:`mgd_lightning.teacher_labels`) the training parts carry
the teachers' hard labels of each view and the view's geometry as well: ``teacher_labels``
``(B, 2, H, W)`` uint8 (deep, wide; 255 = no label) and ``geometry`` ``(B, k)`` int64
(``teacher_labels.GEOMETRY_FIELDS``) on the labeled part, ``teacher_labels_a``/``_b`` and
``geometry_a``/``_b`` on the unlabeled part.
"""

from __future__ import annotations

from typing import TypedDict

from torch import Tensor

__all__ = [
    "ImageSample",
    "LabeledBatch",
    "LabeledSample",
    "LabeledTrainBatch",
    "PredictBatch",
    "TrainBatch",
    "UnlabeledPairBatch",
    "UnlabeledPairSample",
]


class LabeledSample(TypedDict):
    """One labeled sample."""

    image: Tensor  # (3, H, W) float32, normalised RGB
    mask: Tensor  # (H, W) int64, classes in [0, K), ignore_index elsewhere
    name: str  # sample id (file stem)


class ImageSample(TypedDict):
    """One image without a mask (unlabeled or prediction input)."""

    image: Tensor  # (3, H, W) float32, normalised RGB
    name: str


class UnlabeledPairSample(TypedDict):
    """Two different unlabeled images, independently augmented, and their CutMix box mask."""

    image_a: Tensor  # (3, H, W) float32, normalised RGB
    image_b: Tensor  # (3, H, W) float32, a different image than image_a (unless asked)
    cutmix_mask: Tensor  # (1, H, W) float32 in {0, 1}; 1 = take the pixel from image_b
    name_a: str
    name_b: str


class LabeledBatch(TypedDict):
    """A batch of labeled samples (training ``"labeled"`` part, validation and test)."""

    image: Tensor  # (B, 3, H, W) float32
    mask: Tensor  # (B, H, W) int64, ignore_index on unlabeled pixels
    name: list[str]  # B ids


class LabeledTrainBatch(LabeledBatch, total=False):
    """The ``"labeled"`` part of a training batch; the keys below come with the cache only."""

    teacher_labels: Tensor  # (B, 2, H, W) uint8: deep, wide; 255 = no label
    geometry: Tensor  # (B, k) int64: the view's flip, scale, pad and crop


class _UnlabeledPairBatchRequired(TypedDict):
    image_a: Tensor  # (B, 3, H, W) float32
    image_b: Tensor  # (B, 3, H, W) float32
    cutmix_mask: Tensor  # (B, 1, H, W) float32 in {0, 1}; 1 = take from image_b
    name_a: list[str]
    name_b: list[str]


class UnlabeledPairBatch(_UnlabeledPairBatchRequired, total=False):
    """The ``"unlabeled"`` part of a training batch; the keys below come with the cache only."""

    teacher_labels_a: Tensor  # (B, 2, H, W) uint8, labels of image_a's view
    teacher_labels_b: Tensor  # (B, 2, H, W) uint8, labels of image_b's view
    geometry_a: Tensor  # (B, k) int64
    geometry_b: Tensor  # (B, k) int64


class TrainBatch(TypedDict):
    """A training batch: one labeled and one unlabeled-pair batch per step."""

    labeled: LabeledTrainBatch
    unlabeled: UnlabeledPairBatch


class _PredictBatchRequired(TypedDict):
    image: Tensor  # (B, 3, H, W) float32
    name: list[str]


class PredictBatch(_PredictBatchRequired, total=False):
    """A prediction batch; ``mask`` is present when the predict split has masks."""

    mask: Tensor  # (B, H, W) int64
