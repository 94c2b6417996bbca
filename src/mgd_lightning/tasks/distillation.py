"""MGD distillation: a student learns from labels and from two frozen teachers.

See docs/method.md#the-reference-in-detail.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from mgd_lightning.data.batch import TrainBatch
from mgd_lightning.data.mixing import mix
from mgd_lightning.losses import ImageSemanticLoss, PixelConsistencyLoss, RegionContentLoss
from mgd_lightning.losses.functional import (
    ImageReduction,
    pseudo_label_cross_entropy,
    pseudo_labels,
)
from mgd_lightning.models.outputs import SegmentationOutput
from mgd_lightning.models.teachers import TeacherName, TeacherPair
from mgd_lightning.tasks.base import SegmentationTask

__all__ = ["DistillationModule", "MGDModule"]


class DistillationModule(SegmentationTask):
    """A student, a frozen :class:`~mgd_lightning.models.TeacherPair` and the three MGD losses.

    One training step (docs/method.md#loss-weights), with ``x_m = mix(u_a, u_b, M)``::

        L = sup_weight    * CE(S(x_l), y)
          + pixel_weight  * sum_{T in deep, wide} [ CE(S(x_l), argmax T(x_l))
                                                  + CE(S(x_m), argmax mix(T(u_a), T(u_b), M)) ]
          + image_weight  * L_I(S(x_m), T_deep(x_m))        # image-level, deep teacher
          + region_weight * L_R(F_S(x_m), F_wide(x_m))      # region-level, wide teacher

    Only the passes that feed a loss run: the student makes two passes with gradient (the
    labeled and the mixed batch, separately, so each has its own BatchNorm statistics as in the
    reference); each teacher makes one batched pass, without gradient, over the views its terms
    need. A weight of 0 turns a term off and drops the passes only it needed.

    Pseudo-labels are taken per view and then mixed (``mix(argmax T(u_a), argmax T(u_b), M)``,
    equal to the argmax of the mixed logits because the mask selects whole pixels), so no mixed
    ``(B, K, H, W)`` logits are materialised. With a teacher-label cache
    (:mod:`mgd_lightning.teacher_labels`) the batch carries the labels instead: ``labeled`` gets
    ``"teacher_labels"`` ``(B, 2, H, W)`` and ``unlabeled`` gets ``"teacher_labels_a"``,
    ``"teacher_labels_b"`` (deep, wide; ``uint8``, 255 = no label, ignored); the teachers then
    run on the mixed batch only, for the image- and region-level terms.

    Checkpoints hold the student and the optimiser state, not the teachers; they record each
    teacher's file and SHA-256, and resuming with different teacher files fails.

    Args:
        network: The student; returns ``SegmentationOutput(logits, features)``.
        teachers: The frozen teachers; ``None`` only to load a trained student for inference.
        sup_weight: Weight of the supervised loss.
        pixel_weight: Weight of each of the four pixel-level terms (1 in the reference).
        image_weight: ``lambda_1`` of the image-level loss (with ``image_reduction``).
        region_weight: ``lambda_2`` of the region-level loss.
        image_reduction: ``"sum"`` over images and classes (reference) or ``"mean"`` over images;
            ``lambda`` with ``"sum"`` equals ``lambda * B`` with ``"mean"``.
        region_grid_size: ``G`` of the region-level pooling grid (7).
        pixel_confidence_threshold: Optional teacher confidence threshold for pseudo-labels.
        **kwargs: Shared settings of :class:`~mgd_lightning.tasks.base.SegmentationTask`.
    """

    _unsaved_prefixes = ("teachers.",)

    def __init__(
        self,
        network: nn.Module,
        teachers: TeacherPair | None = None,
        sup_weight: float = 1.0,
        pixel_weight: float = 1.0,
        image_weight: float = 0.0,
        region_weight: float = 0.0,
        image_reduction: ImageReduction = "sum",
        region_grid_size: int = 7,
        pixel_confidence_threshold: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(network, **kwargs)
        for name, value in (
            ("sup_weight", sup_weight),
            ("pixel_weight", pixel_weight),
            ("image_weight", image_weight),
            ("region_weight", region_weight),
        ):
            if not math.isfinite(value) or value < 0:  # a NaN weight would switch its term off
                raise ValueError(
                    f"`{name}` must be a finite number >= 0 (0 turns the term off), got {value}"
                )
        if teachers is not None and not isinstance(teachers, TeacherPair):
            raise ValueError(f"`teachers` must be a TeacherPair, got {type(teachers).__name__}")
        if teachers is not None and teachers.num_classes not in (None, self.num_classes):
            raise ValueError(
                f"the teachers predict {teachers.num_classes} classes but the student "
                f"{self.num_classes}; train the teachers on the same dataset as the student"
            )
        self.teachers = teachers
        self.sup_weight, self.pixel_weight = sup_weight, pixel_weight
        self.image_weight, self.region_weight = image_weight, region_weight
        self.pixel_loss = PixelConsistencyLoss(pixel_confidence_threshold)
        self.image_loss = ImageSemanticLoss(image_reduction)
        self.region_loss = RegionContentLoss(region_grid_size)

    @property
    def student(self) -> nn.Module:
        """The student network (the same module as ``network``)."""
        return self.network

    def training_step(self, batch: TrainBatch, batch_idx: int) -> Tensor | None:
        if self.teachers is None:
            raise RuntimeError(
                "DistillationModule was built without teachers: pass teachers=TeacherPair(...) "
                "to train (teachers=None is only for loading a trained student)"
            )
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        x_l, y = labeled["image"], labeled["mask"]
        u_a, u_b, box = unlabeled["image_a"], unlabeled["image_b"], unlabeled["cutmix_mask"]
        x_m = mix(u_a, u_b, box)
        use_pixel = self.pixel_weight > 0
        use_image, use_region = self.image_weight > 0, self.region_weight > 0

        cached = "teacher_labels" in labeled and "teacher_labels_a" in unlabeled
        if cached and self.pixel_loss.confidence_threshold is not None:
            raise ValueError(
                "cached teacher labels are hard labels without confidences: unset "
                "`pixel_confidence_threshold` or train without the teacher-label cache"
            )

        # Teachers: one batched pass each over the views their terms need.
        pixel_views = [x_l, u_a, u_b] if use_pixel and not cached else []
        deep = self._teacher_outputs("deep", pixel_views + ([x_m] if use_image else []))
        wide = self._teacher_outputs("wide", pixel_views + ([x_m] if use_region else []))

        # Student: the labeled and the mixed batch, each with gradient, in separate passes.
        student_l = self.network(x_l)
        terms: dict[str, Tensor] = {"sup": self.supervised_loss(student_l[0], y)}
        total = self.sup_weight * terms["sup"]
        if use_pixel or use_image or use_region:
            student_m = self.network(x_m)
        if use_pixel:
            pixel = x_l.new_zeros(())
            may_ignore = cached or self.pixel_loss.confidence_threshold is not None
            for t, outputs in enumerate((deep, wide)):
                if cached:
                    on_l = labeled["teacher_labels"][:, t]
                    on_m = mix(
                        unlabeled["teacher_labels_a"][:, t],
                        unlabeled["teacher_labels_b"][:, t],
                        box,
                    )
                else:
                    threshold = self.pixel_loss.confidence_threshold
                    on_l = pseudo_labels(outputs[0].logits, threshold)
                    on_m = mix(
                        pseudo_labels(outputs[1].logits, threshold),
                        pseudo_labels(outputs[2].logits, threshold),
                        box,
                    )
                pixel = pixel + pseudo_label_cross_entropy(student_l[0], on_l, may_ignore)
                pixel = pixel + pseudo_label_cross_entropy(student_m[0], on_m, may_ignore)
            terms["pixel"] = pixel
            total = total + self.pixel_weight * pixel
        if use_image:
            terms["image"] = self.image_loss(student_m[0], deep[-1].logits)
            total = total + self.image_weight * terms["image"]
        if use_region:
            terms["region"] = self.region_loss(student_m[1], wide[-1].features)
            total = total + self.region_weight * terms["region"]
        return self._finish_step(terms, total, batch_size=x_l.shape[0])

    def _teacher_outputs(self, name: TeacherName, views: list[Tensor]) -> list[SegmentationOutput]:
        """One teacher's outputs for ``views``, from one batched pass (none for no views)."""
        if not views or self.teachers is None:
            return []
        outputs = getattr(self.teachers(views, teachers=(name,)), name)
        return list(outputs)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.teachers is not None:
            checkpoint["mgd_teachers"] = self.teachers.sources

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        recorded = checkpoint.get("mgd_teachers")
        if self.teachers is not None and recorded:
            current = self.teachers.sources
            for role in ("deep", "wide"):
                old, new = (recorded.get(role) or {}), (current.get(role) or {})
                if old.get("sha256") and old.get("sha256") != new.get("sha256"):
                    raise ValueError(
                        f"the {role} teacher differs from the one this checkpoint was trained "
                        f"with: recorded {old.get('path')} (sha256 {old.get('sha256')}), now "
                        f"{new.get('path')} (sha256 {new.get('sha256')}); resume with the "
                        "original teacher files or start a new run"
                    )
        super().on_load_checkpoint(checkpoint)


class MGDModule(DistillationModule):
    """:class:`DistillationModule` with the paper's VOC ResNet-18 defaults.

    See docs/method.md#loss-weights.

    ``pixel_weight=1``, ``image_weight=0.002`` with the summed reduction (per-GPU batch 2 in the
    reference: ``0.004`` per image with ``"mean"``), ``region_weight=100``, ``G = 7``. For
    MobileNet-v2 students the reference uses ``0.0005`` and ``50``; for Cityscapes ResNet-18
    ``0.001`` and ``100`` with ``supervised_loss="ohem"``: see the configs.

    Args:
        network: The student.
        teachers: The frozen teachers (``None`` when loading a checkpoint for inference).
        image_weight: Weight of the image-level loss (the paper: 0.002, summed reduction).
        region_weight: Weight of the region-level loss (the paper: 100).
        **kwargs: The other settings of :class:`DistillationModule` and
            :class:`~mgd_lightning.tasks.base.SegmentationTask`.
    """

    def __init__(
        self,
        network: nn.Module,
        teachers: TeacherPair | None = None,
        image_weight: float = 0.002,
        region_weight: float = 100.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            network, teachers, image_weight=image_weight, region_weight=region_weight, **kwargs
        )
