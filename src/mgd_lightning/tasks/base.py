"""What every training module shares: evaluation, prediction, optimisation and checkpoints."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics.classification import MulticlassJaccardIndex

from mgd_lightning.evaluation import iou_metric, mean_iou
from mgd_lightning.losses.ohem import ohem_cross_entropy
from mgd_lightning.models.inference import InferenceMode, segment
from mgd_lightning.models.spec import network_from_checkpoint, network_spec

__all__ = ["NonFiniteLossError", "NonFiniteWeightsError", "SegmentationTask"]

SupervisedLoss = Literal["ce", "ohem"]
NonFinitePolicy = Literal["raise", "skip"]


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite during training."""


class NonFiniteWeightsError(RuntimeError):
    """The trained network holds NaN or infinite weights or running statistics."""


def _non_finite_tensors(tensors: Iterator[tuple[str, Tensor]]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [
        name
        for name, tensor in tensors
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


def _non_finite_message(names: list[str], where: str) -> str:
    shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
    return (
        f"{len(names)} tensor(s) of the network are NaN or infinite {where}: {shown}; the "
        "model is broken. Lower the learning rate or check the data, then resume from an "
        "earlier checkpoint or start again"
    )


class SegmentationTask(L.LightningModule):
    """Base of the training modules: one trainable ``network`` plus shared machinery.

    Subclasses implement :meth:`training_step`. Everything else lives here: the supervised loss
    (cross-entropy or OHEM), validation/test mIoU and per-class IoU (torchmetrics, global
    confusion matrix, ignore index), whole-image or sliding-window evaluation, ``predict_step``
    returning class maps, SGD with weight decay off for normalisation layers and biases, the
    poly learning-rate schedule stepped per iteration, a non-finite loss guard, and checkpoints
    that describe the network in plain data (``"mgd_network"``) so they rebuild without pickle.

    Args:
        network: The network trained by this module; returns logits ``(B, K, H, W)`` at the
            input size or a ``SegmentationOutput`` whose first field is the logits.
        num_classes: ``K``; linked from the datamodule by the CLI.
        ignore_index: Label value of unlabelled pixels; linked from the datamodule.
        class_names: Names for the per-class IoU logs; linked from the datamodule.
        lr: Base learning rate for the *global* batch (the reference's effective values are in
            the configs, docs/method.md#effective-learning-rate).
        momentum: SGD momentum.
        weight_decay: Weight decay on conv/linear weights (0 on normalisation layers and biases).
        poly_power: Power of the poly schedule ``lr * (1 - step / total) ** power``.
        optimizer: Optional optimizer factory (``class_path`` in YAML) called with the two
            parameter groups; replaces the default SGD.
        scheduler: Optional scheduler factory called with the optimizer; replaces the default
            ``PolynomialLR`` over ``trainer.estimated_stepping_batches``. Stepped every step.
        supervised_loss: ``"ce"`` (VOC) or ``"ohem"`` (Cityscapes, docs/method.md#supervised-loss).
        class_weights: optional per-class weights of the ``"ce"`` loss (one per class, >= 0),
            e.g. median-frequency balancing for rare classes; the loss is then the weighted
            mean over labelled pixels, as ``torch.nn.functional.cross_entropy`` computes it.
        ohem_threshold: OHEM probability threshold.
        ohem_min_kept: OHEM minimum number of kept pixels per batch (per process).
        ohem_min_kept_per_image: if given, replaces ``ohem_min_kept`` by this number times the
            images of each batch, so a recipe keeps its meaning at any batch size or GPU count
            (the reference: 50 000 per image).
        eval_mode: ``"whole"`` images or ``"sliding"`` window for validation, test, predict.
        eval_window: Sliding window size (Cityscapes: 800).
        eval_stride: Sliding window stride (default ``ceil(2/3 * window)``).
        eval_pad_to: Whole-image mode: zero-pad to this size first (VOC: 512).
        non_finite: ``"raise"`` stops training at a NaN/Inf loss term naming it and the step;
            ``"skip"`` skips that optimisation step and counts it (``train_skipped_steps``),
            restoring the buffers (BatchNorm running statistics) its forward pass changed.
            Either way a network whose weights or buffers became non-finite is never saved:
            :class:`NonFiniteWeightsError` at the next skipped step, checkpoint or the end.
    """

    #: Prefixes of state-dict entries that are not saved in checkpoints (frozen teachers).
    _unsaved_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        poly_power: float = 0.9,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        supervised_loss: SupervisedLoss = "ce",
        class_weights: Sequence[float] | None = None,
        ohem_threshold: float = 0.7,
        ohem_min_kept: int = 100_000,
        ohem_min_kept_per_image: int | None = None,
        eval_mode: InferenceMode = "whole",
        eval_window: int | None = None,
        eval_stride: int | None = None,
        eval_pad_to: int | None = None,
        non_finite: NonFinitePolicy = "raise",
    ) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise ValueError(f"`network` must be a torch.nn.Module, got {type(network).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}")
        network_classes = getattr(network, "num_classes", None)
        if network_classes is not None and network_classes != num_classes:
            raise ValueError(
                f"the network predicts {network_classes} classes but `num_classes` is "
                f"{num_classes}; build the network with num_classes={num_classes}"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` has {len(class_names)} names for {num_classes} classes"
            )
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value}")
        if supervised_loss not in ("ce", "ohem"):
            raise ValueError(f"`supervised_loss` must be 'ce' or 'ohem', got {supervised_loss!r}")
        if class_weights is not None:
            if supervised_loss != "ce":
                raise ValueError("`class_weights` applies to supervised_loss='ce' only")
            if len(class_weights) != num_classes or not all(
                math.isfinite(w) and w >= 0 for w in class_weights
            ):
                raise ValueError(
                    f"`class_weights` must be {num_classes} finite numbers >= 0 (one per "
                    f"class), got {list(class_weights)!r}"
                )
        if eval_mode not in ("whole", "sliding"):
            raise ValueError(f"`eval_mode` must be 'whole' or 'sliding', got {eval_mode!r}")
        if eval_mode == "sliding" and eval_window is None:
            raise ValueError("`eval_window` is required with eval_mode='sliding' (e.g. 800)")
        if non_finite not in ("raise", "skip"):
            raise ValueError(f"`non_finite` must be 'raise' or 'skip', got {non_finite!r}")
        self.save_hyperparameters(ignore=["network", "teachers", "optimizer", "scheduler"])
        self.network = network
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.poly_power = poly_power
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.supervised_loss_name: SupervisedLoss = supervised_loss
        self.ohem_threshold, self.ohem_min_kept = ohem_threshold, ohem_min_kept
        self.class_weights: Tensor | None
        self.register_buffer(
            "class_weights",
            None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float),
            persistent=False,
        )
        if ohem_min_kept_per_image is not None and (
            isinstance(ohem_min_kept_per_image, bool) or ohem_min_kept_per_image < 0
        ):
            raise ValueError(
                "`ohem_min_kept_per_image` must be an integer >= 0, got "
                f"{ohem_min_kept_per_image!r}"
            )
        self.ohem_min_kept_per_image = ohem_min_kept_per_image
        self.eval_mode: InferenceMode = eval_mode
        self.eval_window, self.eval_stride, self.eval_pad_to = eval_window, eval_stride, eval_pad_to
        self.non_finite: NonFinitePolicy = non_finite
        self.val_iou = iou_metric(num_classes, ignore_index)
        self.test_iou = iou_metric(num_classes, ignore_index)
        self.skipped_steps = 0
        self._buffers_before_step: list[Tensor] = []

    # ------------------------------------------------------------------ losses and checks
    def supervised_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Supervised loss on labeled pixels: (weighted) mean CE, 0 when no pixel is labelled, or
        OHEM CE.

        Args:
            logits: ``(B, K, H, W)`` logits.
            target: ``(B, H, W)`` class indices with ``ignore_index``.
        """
        if self.supervised_loss_name == "ohem":
            min_kept = self.ohem_min_kept
            if self.ohem_min_kept_per_image is not None:
                min_kept = self.ohem_min_kept_per_image * target.shape[0]
            return ohem_cross_entropy(
                logits, target, self.ohem_threshold, min_kept, self.ignore_index
            )
        per_pixel = F.cross_entropy(
            logits.float(), target, weight=self.class_weights, ignore_index=self.ignore_index,
            reduction="none",
        )
        labelled = target != self.ignore_index
        if self.class_weights is None:
            return per_pixel.sum() / labelled.sum().clamp_min(1)
        pixel_weights = self.class_weights[target.clamp(0, self.num_classes - 1)] * labelled
        return per_pixel.sum() / pixel_weights.sum().clamp_min(1e-12)

    def _finish_step(
        self, terms: dict[str, Tensor], total: Tensor, batch_size: int
    ) -> Tensor | None:
        """Log each term and the total; apply the non-finite policy. Returns the loss or None."""
        if not bool(torch.isfinite(total)):
            bad = [name for name, value in terms.items() if not bool(torch.isfinite(value))]
            where = f"step {self.global_step} (epoch {self.current_epoch})"
            if self.non_finite == "raise":
                raise NonFiniteLossError(
                    f"non-finite loss at {where}: term(s) {', '.join(bad) or 'total'} = "
                    f"{[float(terms[b].detach()) for b in bad]}; lower the learning rate, check "
                    "the data, "
                    "or set non_finite='skip' to skip such steps"
                )
            self.skipped_steps += 1
            self._restore_buffers()
            broken = _non_finite_tensors(self._trained_tensors())
            if broken:  # skipping cannot repair weights that are already broken
                raise NonFiniteWeightsError(_non_finite_message(broken, f"at {where}"))
            if self._trainer is None:
                return None
            self.log("train_skipped_steps", float(self.skipped_steps), batch_size=batch_size)
            return None
        if self._trainer is None:  # called outside a Trainer (e.g. in a notebook): no logging
            return total
        for name, value in terms.items():
            self.log(f"train_loss_{name}", value.detach(), batch_size=batch_size)
        self.log("train_loss", total.detach(), prog_bar=True, batch_size=batch_size)
        optimizer = self.optimizers(use_pl_optimizer=False)
        if isinstance(optimizer, torch.optim.Optimizer):
            self.log("train_lr", float(optimizer.param_groups[0]["lr"]), batch_size=batch_size)
        return total

    def _trained_buffers(self) -> list[Tensor]:
        seen: set[int] = set()
        buffers = []
        for module in self.trainable_modules():
            for buffer in module.buffers():
                if id(buffer) not in seen:
                    seen.add(id(buffer))
                    buffers.append(buffer)
        return buffers

    def _trained_tensors(self) -> Iterator[tuple[str, Tensor]]:
        for index, module in enumerate(self.trainable_modules()):
            prefix = "" if index == 0 else f"[{index}]."
            for name, tensor in module.state_dict(keep_vars=False).items():
                yield prefix + name, tensor

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """With ``non_finite="skip"``: remember the buffers, to restore them if skipped."""
        if self.non_finite == "skip":
            self._buffers_before_step = [b.detach().clone() for b in self._trained_buffers()]

    def _restore_buffers(self) -> None:
        """Undo the skipped forward pass's updates of the running statistics."""
        if not self._buffers_before_step:
            return
        with torch.no_grad():
            saved_buffers = self._buffers_before_step
            for buffer, saved in zip(self._trained_buffers(), saved_buffers, strict=True):
                buffer.copy_(saved)

    def on_train_end(self) -> None:
        """Fail a run that ends with non-finite weights or buffers instead of exiting 0."""
        broken = _non_finite_tensors(self._trained_tensors())
        if broken:
            raise NonFiniteWeightsError(
                _non_finite_message(broken, f"at the end of training (step {self.global_step})")
            )
        if self.skipped_steps:
            rank_zero_warn(
                f"{self.skipped_steps} training step(s) were skipped for a non-finite loss "
                "(non_finite='skip'); check the learning rate and the data"
            )

    # ------------------------------------------------------------------ evaluation
    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, K, H, W)`` of the trained network with the evaluation settings."""
        return segment(
            self.network,
            images,
            self.eval_mode,
            self.eval_window,
            self.eval_stride,
            self.eval_pad_to,
        )

    def _evaluate(self, batch: dict[str, Any], metric: MulticlassJaccardIndex) -> None:
        """Add a batch to the IoU; NaN/Inf images or logits are an error, never a class map."""
        images = batch["image"]
        names = batch.get("name")
        if not bool(torch.isfinite(images).all()):
            bad = (~torch.isfinite(images)).flatten(1).any(dim=1).tolist()
            listed = [names[i] if names else f"#{i}" for i, b in enumerate(bad) if b]
            raise ValueError(
                f"evaluation image(s) {listed} hold NaN or infinite values: an mIoU over them "
                "would mean nothing; fix or remove these images"
            )
        logits = self(images)
        if not bool(torch.isfinite(logits).all()):
            raise NonFiniteWeightsError(
                f"the network's logits are NaN or infinite for image(s) {names}: its weights "
                "are broken; evaluate an earlier checkpoint"
            )
        metric.update(logits.argmax(dim=1), batch["mask"])

    def _log_iou(self, stage: str, metric: MulticlassJaccardIndex) -> None:
        per_class = metric.compute()
        self.log(f"{stage}_mIoU", mean_iou(per_class), prog_bar=True, sync_dist=False)
        for name, value in zip(self.class_names, per_class, strict=True):
            self.log(f"{stage}_IoU_{name}", value, sync_dist=False)
        metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_iou)

    def on_validation_epoch_end(self) -> None:
        self._log_iou("val", self.val_iou)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_iou)

    def on_test_epoch_end(self) -> None:
        self._log_iou("test", self.test_iou)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Class maps ``(B, H, W)`` (int64) and the sample names."""
        return {"prediction": self(batch["image"]).argmax(dim=1), "name": batch.get("name")}

    # ------------------------------------------------------------------ optimisation
    def trainable_modules(self) -> Iterator[nn.Module]:
        """The modules whose parameters the optimizer updates (teachers never among them)."""
        yield self.network

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Two groups: conv/linear weights with weight decay, the rest (norms, biases) without."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        seen: set[int] = set()
        for module in self.trainable_modules():
            for parameter in module.parameters():
                if not parameter.requires_grad or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                (decay if parameter.dim() > 1 else no_decay).append(parameter)
        return [
            {"params": decay, "weight_decay": self.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def configure_optimizers(self) -> Any:
        groups = self.parameter_groups()
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(groups)
        else:
            optimizer = torch.optim.SGD(
                groups, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
        else:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            scheduler = torch.optim.lr_scheduler.PolynomialLR(
                optimizer, total_iters=total, power=self.poly_power
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop frozen-teacher tensors and store the network's plain-data description.

        Raises:
            NonFiniteWeightsError: the network holds NaN/Inf values (never saved).
        """
        broken = _non_finite_tensors(self._trained_tensors())
        if broken:
            raise NonFiniteWeightsError(
                _non_finite_message(broken, f"at step {self.global_step}; not saved")
            )
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(self._unsaved_prefixes)]:
            del state[key]
        spec = network_spec(self.network)
        if spec is not None:
            checkpoint["mgd_network"] = spec

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the current frozen tensors back so that strict loading sees a complete state."""
        state = checkpoint.setdefault("state_dict", {})
        for key, value in self.state_dict().items():
            if key.startswith(self._unsaved_prefixes):
                state[key] = value

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: Any = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Load a trained module; the network is rebuilt from the checkpoint when not given.

        A distillation checkpoint loads without its teachers (``teachers=None``): the student is
        ready for inference. Loading uses ``torch.load(weights_only=True)``.
        """
        if "network" not in kwargs:
            kwargs["network"] = network_from_checkpoint(checkpoint_path)
        return super().load_from_checkpoint(
            checkpoint_path,
            map_location=map_location,
            hparams_file=hparams_file,
            strict=strict,
            weights_only=True,
            **kwargs,
        )
