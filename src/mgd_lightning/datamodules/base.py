"""``SemiSupervisedDataModule``: paired labeled and unlabeled training batches.

The datamodule knows nothing about the method. ``train_dataloader`` returns Lightning's
``CombinedLoader({"labeled": ..., "unlabeled": ...}, mode="max_size_cycle")``: an epoch is one
pass over the (larger) unlabeled set and the labeled loader cycles. Each loader draws from a
:class:`~mgd_lightning.data.sampling.ResumableRandomSampler`, whose order and per-sample seeds
are a function of (seed, epoch, pass); the datasets take their augmentation randomness from
those seeds mixed with the rank. The sampler's position is part of the datamodule's
``state_dict``, so a run resumed mid-epoch sees exactly the batches it would have seen. Under
DDP Lightning wraps the samplers with a distributed sampler.

Seeds: the constructor's ``seed`` fixes *what the data is* (the labeled/unlabeled partition,
synthetic scenes); together with ``seed_everything`` it also fixes the order, augmentations,
unlabeled pairs and CutMix boxes (through the samplers' seeds).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader, rank_zero_warn
from torch.utils.data import DataLoader, default_collate

from mgd_lightning.checks import check_positive_int
from mgd_lightning.data.datasets import (
    BaseSegmentationDataset,
    SegmentationDataset,
    UnlabeledPairDataset,
)
from mgd_lightning.data.sampling import ResumableRandomSampler
from mgd_lightning.data.transforms import (
    DEFAULT_SCALES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegmentationTransform,
    _check_color_jitter,
    _check_scales,
    eval_transform,
    parse_crop_size,
    train_transform,
)

__all__ = ["SemiSupervisedDataModule"]

Stage = Literal["val", "test", "predict"]
_MAX_LISTED = 5


def _check_headers(*datasets: BaseSegmentationDataset) -> None:
    """Without ``validate``: the cheap header checks of file-based datasets, at setup."""
    for dataset in datasets:
        if isinstance(dataset, SegmentationDataset):
            dataset.check_headers()


def _drop_unreadable(dataset: BaseSegmentationDataset) -> None:
    """Predict what can be read: drop the images that fail to read, and say which.

    Every image is read once up front (one extra decode per image). A prediction run then
    finishes the other images instead of stopping at the first unreadable one.

    Raises:
        ValueError: no image can be read, or the dataset is not file-based.
    """
    failures = dataset.failures()
    if not failures:
        return
    listed = "\n- ".join(reason for _, reason in failures[:20])
    more = f"\n... and {len(failures) - 20} more" if len(failures) > 20 else ""
    summary = f"{len(failures)} of {len(dataset)} images to predict cannot be read"
    if not isinstance(dataset, SegmentationDataset) or len(failures) == len(dataset):
        raise ValueError(f"{summary}:\n- {listed}{more}")
    bad = {index for index, _ in failures}
    dataset.files = [files for index, files in enumerate(dataset.files) if index not in bad]
    rank_zero_warn(f"{summary}; they are skipped, the others predicted:\n- {listed}{more}")


def eval_collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` with a clear error when eval images differ in size.

    Evaluation images are not resized or padded here (padding is the model's job), so a batch
    can only hold images of one size; datasets with variable sizes (VOC) use
    ``eval_batch_size=1``.
    """
    shapes = {tuple(s["image"].shape) for s in samples}
    if len(shapes) > 1:
        names = [s["name"] for s in samples][:_MAX_LISTED]
        raise ValueError(
            f"evaluation images {names} have different sizes {sorted(shapes)}; evaluation "
            f"batches are not padded, so set `eval_batch_size=1` for datasets with variable "
            f"image sizes"
        )
    return default_collate(samples)


class _StreamLoader(DataLoader[Any]):
    """A training loader that Lightning may resume mid-epoch.

    The stream's position lives in the datamodule's own state (``state_dict``), which is
    restored before the loaders are built; this loader only tells Lightning it is resumable.
    """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


class SemiSupervisedDataModule(pl.LightningDataModule, abc.ABC):
    """Base datamodule yielding the batch contract of :mod:`mgd_lightning.data.batch`.

    Subclasses implement :meth:`_train_datasets` and :meth:`_eval_dataset`, and pass the
    dataset's class metadata. ``num_classes``, ``ignore_index``, ``class_names`` and ``palette``
    are attributes right after ``__init__`` (for LightningCLI ``link_arguments``).

    Args:
        num_classes: ``K``.
        class_names: ``K`` names.
        palette: ``K`` RGB tuples (for visualisation and prediction writers).
        ignore_index: mask value of unlabeled pixels.
        batch_size: labeled images per training step.
        unlabeled_batch_size: unlabeled *pairs* per step; defaults to ``batch_size``.
        eval_batch_size: batch size of val/test/predict; defaults to ``batch_size``.
        num_workers: DataLoader workers per loader.
        crop_size: training crop, ``int`` or ``(H, W)``; any positive size (images are padded up
            to it).
        scales: discrete random-scale set of the training transform.
        hflip_prob: horizontal flip probability.
        color_jitter: optional ``(brightness, contrast, saturation, hue)`` strengths of a colour
            jitter on training images (probability 0.8); ``None`` (default, the paper): off.
        seed: seed of the labeled/unlabeled partition (and of generated data).
        labeled_ratio: if given, partition the training list with this labeled share
            (nested across ratios for one seed) instead of reading split files.
        n_boxes: CutMix boxes per mask.
        cutmix_prop_range: range of the CutMix area share ``p``.
        same_image_pairs: pair each unlabeled image with itself, as the reference does by
            accident (docs/method.md#reference-quirks); default off.
        drop_last: drop incomplete training batches.
        pin_memory: DataLoader ``pin_memory``.
        persistent_workers: keep workers between epochs (only with ``num_workers > 0``).
        validate: in ``setup``, read and check every file up front (sizes, mask values).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        class_names: Sequence[str],
        palette: Sequence[tuple[int, int, int]],
        ignore_index: int = 255,
        batch_size: int = 8,
        unlabeled_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        crop_size: int | tuple[int, int] = 512,
        scales: Sequence[float] = DEFAULT_SCALES,
        hflip_prob: float = 0.5,
        color_jitter: Sequence[float] | None = None,
        seed: int = 0,
        labeled_ratio: float | None = None,
        n_boxes: int = 3,
        cutmix_prop_range: tuple[float, float] = (0.25, 0.5),
        same_image_pairs: bool = False,
        drop_last: bool = True,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        validate: bool = False,
    ) -> None:
        super().__init__()
        self._resume_from: tuple[int, int] | None = None
        self._samplers: dict[str, ResumableRandomSampler] | None = None
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.ignore_index = int(ignore_index)
        if 0 <= self.ignore_index < self.num_classes:
            raise ValueError(
                f"`ignore_index`={ignore_index} is a class index (num_classes={num_classes}); "
                f"use a value outside [0, num_classes), e.g. 255"
            )
        self.class_names = [str(n) for n in class_names]
        self.palette = [tuple(int(c) for c in colour) for colour in palette]
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{len(self.class_names)} class names given for num_classes={num_classes}"
            )
        if len(self.palette) != self.num_classes or any(
            len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in self.palette
        ):
            raise ValueError(
                f"`palette` must hold {num_classes} RGB triples of ints in [0, 255], "
                f"got {palette!r}"
            )
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.unlabeled_batch_size = check_positive_int(
            "unlabeled_batch_size",
            batch_size if unlabeled_batch_size is None else unlabeled_batch_size,
        )
        self.eval_batch_size = check_positive_int(
            "eval_batch_size", batch_size if eval_batch_size is None else eval_batch_size
        )
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"`num_workers` must be an integer >= 0, got {num_workers!r}")
        self.num_workers = num_workers
        self.crop_size = parse_crop_size(crop_size)
        self.scales = _check_scales(scales)
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"`hflip_prob` must be in [0, 1], got {hflip_prob!r}")
        self.hflip_prob = hflip_prob
        self.color_jitter = _check_color_jitter(color_jitter)
        self.seed = int(seed)
        if labeled_ratio is not None and (
            isinstance(labeled_ratio, bool) or not 0.0 < float(labeled_ratio) < 1.0
        ):
            raise ValueError(
                f"`labeled_ratio` must be in (0, 1) (e.g. 0.125 for 1/8), got {labeled_ratio!r}"
            )
        self.labeled_ratio = None if labeled_ratio is None else float(labeled_ratio)
        self.n_boxes = check_positive_int("n_boxes", n_boxes)
        low, high = cutmix_prop_range
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"`cutmix_prop_range` must be (low, high) with 0 < low <= high <= 1, "
                f"got {cutmix_prop_range!r}"
            )
        self.cutmix_prop_range = (float(low), float(high))
        self.same_image_pairs = same_image_pairs
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.validate = validate
        self.labeled_dataset: SegmentationDataset | BaseSegmentationDataset | None = None
        self.unlabeled_dataset: UnlabeledPairDataset | None = None
        self.eval_datasets: dict[str, BaseSegmentationDataset] = {}

    # ----------------------------------------------------------------- subclass hooks
    @abc.abstractmethod
    def _train_datasets(self) -> tuple[BaseSegmentationDataset, BaseSegmentationDataset]:
        """The labeled training set (with masks) and the unlabeled images (masks unused)."""

    @abc.abstractmethod
    def _eval_dataset(self, stage: Stage) -> BaseSegmentationDataset:
        """The dataset of ``stage`` (``"predict"`` may come without masks)."""

    # ----------------------------------------------------------------- transforms
    def train_transform(self) -> SegmentationTransform:
        """The random training transform (docs/method.md#training-recipe) with these settings."""
        return train_transform(self.crop_size, self.scales, self.ignore_index, self.hflip_prob,
                               IMAGENET_MEAN, IMAGENET_STD, self.color_jitter)

    def eval_transform(self) -> SegmentationTransform:
        """The evaluation transform: normalisation only."""
        return eval_transform(IMAGENET_MEAN, IMAGENET_STD)

    # ----------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        """Build (and check) the datasets of ``stage``; errors surface before training."""
        if stage in (None, "fit"):
            self._setup_train()
            self._setup_eval("val")
        elif stage == "validate":
            self._setup_eval("val")
        elif stage == "test":
            self._setup_eval("test")
        elif stage == "predict":
            self._setup_eval("predict")

    def _setup_train(self) -> None:
        if self.labeled_dataset is not None and self.unlabeled_dataset is not None:
            return
        labeled, unlabeled = self._train_datasets()
        if len(labeled) == 0:
            raise ValueError(
                "the labeled training set is empty; check the split file / labeled_ratio and "
                "the data root"
            )
        if len(unlabeled) == 0:
            raise ValueError(
                "the unlabeled training set is empty; give unlabeled images (split file, "
                "folder) or a labeled_ratio below 1"
            )
        overlap = sorted(set(labeled.names) & set(unlabeled.names))
        if overlap:
            raise ValueError(
                f"{len(overlap)} id(s) are in both the labeled and the unlabeled set, e.g. "
                f"{overlap[:_MAX_LISTED]}; the sets must be disjoint (fix the split files)"
            )
        for what, n, bs, arg in (
            ("labeled", len(labeled), self.batch_size, "batch_size"),
            ("unlabeled", len(unlabeled), self.unlabeled_batch_size, "unlabeled_batch_size"),
        ):
            if self.drop_last and n < bs:
                raise ValueError(
                    f"the {what} set has {n} images, fewer than `{arg}`={bs}, so drop_last "
                    f"would leave no batch; lower `{arg}` or add images"
                )
        if self.validate:
            labeled.validate()
            unlabeled.validate()
        else:
            _check_headers(labeled, unlabeled)
        transform = self.train_transform()
        labeled.transform = transform
        labeled.with_masks = True
        self.labeled_dataset = labeled
        self.unlabeled_dataset = UnlabeledPairDataset(
            unlabeled, self.train_transform(), self.n_boxes, self.cutmix_prop_range,
            same_image=self.same_image_pairs,
        )

    def _setup_eval(self, stage: Stage) -> None:
        if stage in self.eval_datasets:
            return
        dataset = self._eval_dataset(stage)
        if len(dataset) == 0:
            raise ValueError(f"the {stage} set is empty; check the split file and data root")
        if self.validate:
            dataset.validate()
        elif stage == "predict":
            _drop_unreadable(dataset)
        else:
            _check_headers(dataset)
        dataset.transform = self.eval_transform()
        self.eval_datasets[stage] = dataset

    # ----------------------------------------------------------------- loaders
    def _loader_kwargs(self) -> dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where the training stream is: the epoch and the batches consumed in it.

        Saved in every checkpoint; :meth:`load_state_dict` makes the next ``train_dataloader``
        continue exactly there (one process; under DDP the order is reproducible per epoch).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or not hasattr(trainer, "fit_loop"):
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "consumed": int(progress.processed)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the training stream where :meth:`state_dict` says it was."""
        if "epoch" in state_dict and "consumed" in state_dict:
            self._resume_from = (int(state_dict["epoch"]), int(state_dict["consumed"]))

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def train_dataloader(self) -> CombinedLoader:
        """``CombinedLoader({"labeled", "unlabeled"}, "max_size_cycle")`` of shuffled loaders."""
        self._setup_train()
        assert self.labeled_dataset is not None and self.unlabeled_dataset is not None
        rank = self._rank()
        self.labeled_dataset.rank = rank
        self.unlabeled_dataset.rank = rank
        # Every random choice of the training stream comes from (seed, epoch, pass) through these
        # samplers, so that a run resumed mid-epoch sees exactly the batches it would have seen.
        # The samplers live as long as the datamodule: iterating again (a new epoch, or a new
        # train_dataloader() call outside Lightning) continues with a new pass and a new order.
        if self._samplers is None:
            seeds = np.random.SeedSequence([self.seed, torch.initial_seed()]).generate_state(2)
            self._samplers = {
                "labeled": ResumableRandomSampler(len(self.labeled_dataset), int(seeds[0])),
                "unlabeled": ResumableRandomSampler(len(self.unlabeled_dataset), int(seeds[1])),
            }
        samplers = self._samplers
        labeled = _StreamLoader(
            self.labeled_dataset, batch_size=self.batch_size, sampler=samplers["labeled"],
            drop_last=self.drop_last, **self._loader_kwargs(),
        )
        unlabeled = _StreamLoader(
            self.unlabeled_dataset, batch_size=self.unlabeled_batch_size,
            sampler=samplers["unlabeled"], drop_last=self.drop_last, **self._loader_kwargs(),
        )
        if self._resume_from is not None:
            epoch, consumed = self._resume_from
            self._resume_from = None
            if consumed >= len(unlabeled):  # the checkpoint was written at the epoch's end
                epoch, consumed = epoch + 1, 0
            for loader in (labeled, unlabeled):
                per_pass = len(loader)
                sampler = loader.sampler
                assert isinstance(sampler, ResumableRandomSampler)
                sampler.resume(epoch, consumed // per_pass, (consumed % per_pass) * (
                    loader.batch_size or 1))
        return CombinedLoader({"labeled": labeled, "unlabeled": unlabeled}, mode="max_size_cycle")

    def _eval_loader(self, stage: Stage) -> DataLoader[Any]:
        self._setup_eval(stage)
        return DataLoader(
            self.eval_datasets[stage], batch_size=self.eval_batch_size, shuffle=False,
            collate_fn=eval_collate, **self._loader_kwargs(),
        )

    def val_dataloader(self) -> DataLoader[Any]:
        """Validation batches ``{"image", "mask", "name"}`` (normalised, not resized)."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader[Any]:
        """Test batches ``{"image", "mask", "name"}``."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader[Any]:
        """Predict batches ``{"image", "name"}`` (+ ``"mask"`` when the split has masks)."""
        return self._eval_loader("predict")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, batch_size="
            f"{self.batch_size}, crop_size={self.crop_size}, seed={self.seed})"
        )
