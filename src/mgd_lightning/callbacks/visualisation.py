"""Pictures and tables of what the student learned, logged during training.

``SegmentationPanels`` logs a grid of input, ground truth, the student's prediction and each
teacher's prediction every few validation epochs; ``PerClassIoUTable`` logs the per-class IoU
(the ``val_IoU_<class>`` / ``test_IoU_<class>`` metrics of the training modules) as a table.
Both go to the active logger: Weights & Biases (images, ``wandb.Table``), TensorBoard (images,
Markdown text), or files under the log folder for other loggers (CSV) and for none.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from torch import Tensor, nn

from mgd_lightning.data.classes import default_palette
from mgd_lightning.models.inference import logits_of, segment
from mgd_lightning.visualise import Palette, colourise, denormalise, panel, save_png

__all__ = ["PerClassIoUTable", "SegmentationPanels"]


def _log_dir(trainer: pl.Trainer) -> Path:
    """The folder for files of loggers without image/table support (or of no logger)."""
    for logger in trainer.loggers:
        folder = getattr(logger, "log_dir", None)
        if folder:
            return Path(folder)
    return Path(trainer.default_root_dir)


def _datamodule_attr(trainer: pl.Trainer, name: str) -> Any:
    return getattr(getattr(trainer, "datamodule", None), name, None)


class SegmentationPanels(Callback):
    """Every ``every_n_epochs`` validation runs, log a panel of the first validation images.

    Rows are the first ``num_images`` validation samples (the same ones every time, so the
    panels show progress); columns are the input, the ground truth, the student's prediction
    (``pl_module(images)``, i.e. with the evaluation settings, sliding window included) and,
    when the module has ``teachers`` (a :class:`~mgd_lightning.models.TeacherPair`), the deep
    and the wide teacher's predictions. Ignored pixels are white.

    Where it goes: ``WandbLogger.log_image`` (key ``val_panels``), TensorBoard
    ``add_image`` (tag ``val_panels``), else a PNG ``<log_dir>/panels/epoch=E-step=S.png``
    (CSV logger, or ``default_root_dir`` without a logger). Sanity-check validation is skipped.

    Args:
        every_n_epochs: log on every ``n``-th validation run (1: every one).
        num_images: rows of the panel.
        palette: ``K`` RGB triples; ``None`` takes the datamodule's (else the VOC map).
        key: the image key / tag / file prefix.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_images: int = 4,
        palette: Palette | None = None,
        key: str = "val_panels",
    ) -> None:
        super().__init__()
        for name, value in (("every_n_epochs", every_n_epochs), ("num_images", num_images)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.palette = palette
        self.key = key
        self._runs = 0
        self._images: list[Tensor] = []
        self._masks: list[Tensor | None] = []
        self.last_panel: np.ndarray | None = None

    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and self._runs % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._runs += 1
        self._images, self._masks = [], []

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx != 0 or not self._due(trainer) or not isinstance(batch, dict):
            return
        images, masks = batch.get("image"), batch.get("mask")
        if not isinstance(images, Tensor):
            return
        for i in range(images.shape[0]):
            if len(self._images) >= self.num_images:
                return
            self._images.append(images[i].detach().cpu())
            self._masks.append(masks[i].detach().cpu() if isinstance(masks, Tensor) else None)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer) or not self._images:
            return
        if trainer.is_global_zero:
            picture = self.render(pl_module, trainer)
            self.last_panel = picture
            self._log(trainer, picture)
        self._images, self._masks = [], []

    def render(
        self, pl_module: pl.LightningModule, trainer: pl.Trainer | None = None
    ) -> np.ndarray:
        """The panel of the collected samples as an ``(H, W, 3)`` ``uint8`` array."""
        palette = self.palette or (_datamodule_attr(trainer, "palette") if trainer else None)
        num_classes = int(getattr(pl_module, "num_classes", 0) or 0)
        if not palette:
            palette = default_palette(max(num_classes, 1))
        ignore_index = int(getattr(pl_module, "ignore_index", 255))
        columns: list[tuple[str, Any]] = [("student", pl_module)]
        teachers = getattr(pl_module, "teachers", None)
        for role in ("deep", "wide"):
            network = getattr(teachers, role, None)
            if isinstance(network, nn.Module):
                columns.append((f"{role} teacher", network))
        titles = ["input", "ground truth", *(title for title, _ in columns)]
        rows = []
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                for image, mask in zip(self._images, self._masks, strict=True):
                    batch = image.unsqueeze(0).to(pl_module.device)
                    row = [denormalise(image)]
                    if mask is None:
                        row.append(np.full((*image.shape[-2:], 3), 255, dtype=np.uint8))
                    else:
                        row.append(colourise(mask, palette, ignore_index))
                    for _title, network in columns:
                        logits = (
                            network(batch)
                            if network is pl_module
                            else segment(
                                network,
                                batch,
                                getattr(pl_module, "eval_mode", "whole"),
                                getattr(pl_module, "eval_window", None),
                                getattr(pl_module, "eval_stride", None),
                                getattr(pl_module, "eval_pad_to", None),
                            )
                        )
                        classes = logits_of(logits)[0].argmax(dim=0).cpu()
                        row.append(colourise(classes, palette, None))
                    rows.append(row)
        finally:
            pl_module.train(was_training)
        return panel(rows, titles)

    def _log(self, trainer: pl.Trainer, picture: np.ndarray) -> None:
        step = trainer.global_step
        caption = f"epoch {trainer.current_epoch}, step {step}"
        logged = False
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=self.key, images=[picture], caption=[caption], step=step)
                logged = True
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(self.key, picture, step, dataformats="HWC")
                logged = True
        if not logged:
            name = f"{self.key}-epoch={trainer.current_epoch}-step={step}.png"
            save_png(picture, _log_dir(trainer) / "panels" / name)


class PerClassIoUTable(Callback):
    """Log the per-class IoU of each validation (and test) run as a table.

    Reads the ``<stage>_IoU_<class>`` metrics the training modules log (one per class name, in
    the module's ``class_names`` order) from ``trainer.callback_metrics`` once the run's
    metrics are final. Where it goes: a ``wandb.Table`` (key ``<stage>_IoU_table``, columns
    class and IoU) through ``WandbLogger.log_table``; a Markdown table as TensorBoard text
    (tag ``<stage>_IoU_table``); else one row per run appended to
    ``<log_dir>/<stage>_per_class_iou.csv`` (columns epoch, step, mIoU and one per class).
    Sanity-check validation is skipped. Absent classes (IoU NaN) show as ``nan``.

    Args:
        stages: the runs to log: ``"val"`` and/or ``"test"``.
    """

    def __init__(self, stages: Sequence[str] = ("val", "test")) -> None:
        super().__init__()
        unknown = set(stages) - {"val", "test"}
        if unknown:
            raise ValueError(f"`stages` must be 'val' and/or 'test', got {sorted(unknown)}")
        self.stages = tuple(stages)
        self.last_rows: list[tuple[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "val" in self.stages and not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self._log(trainer, pl_module, "test")

    def rows(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str
    ) -> list[tuple[str, float]]:
        """``(class name, IoU)`` pairs of ``stage`` from the trainer's callback metrics."""
        names = getattr(pl_module, "class_names", None) or _datamodule_attr(trainer, "class_names")
        metrics = trainer.callback_metrics
        if not names:
            prefix = f"{stage}_IoU_"
            names = [key[len(prefix) :] for key in metrics if key.startswith(prefix)]
        rows = []
        for name in names:
            value = metrics.get(f"{stage}_IoU_{name}")
            if value is not None:
                rows.append((str(name), float(value)))
        return rows

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        rows = self.rows(trainer, pl_module, stage)
        self.last_rows = rows
        if not rows or not trainer.is_global_zero:
            return
        key = f"{stage}_IoU_table"
        step = trainer.global_step
        logged = False
        loggers: list[Logger] = list(trainer.loggers)
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(
                    key=key, columns=["class", "IoU"], data=[list(r) for r in rows], step=step
                )
                logged = True
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(key, _markdown(rows), step)
                logged = True
        if not logged:
            self._append_csv(_log_dir(trainer) / f"{stage}_per_class_iou.csv", trainer, rows)

    @staticmethod
    def _append_csv(path: Path, trainer: pl.Trainer, rows: list[tuple[str, float]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        values = [v for _, v in rows]
        finite = [v for v in values if not math.isnan(v)]
        miou = sum(finite) / len(finite) if finite else float("nan")
        header = ["epoch", "step", "mIoU", *(name for name, _ in rows)]
        new = not path.exists() or os.path.getsize(path) == 0
        with open(path, "a", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            if new:
                writer.writerow(header)
            writer.writerow(
                [trainer.current_epoch, trainer.global_step, f"{miou:.6f}"]
                + [f"{v:.6f}" for v in values]
            )


def _markdown(rows: Sequence[tuple[str, float]]) -> str:
    lines = ["| class | IoU |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in rows]
    return "\n".join(lines)
