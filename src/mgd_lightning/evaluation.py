"""Evaluation: the IoU metric, the mean over the classes that occur, and several networks at once.

The training modules (validation and test mIoU) and the pipeline (all models on one held-out
split) share :func:`iou_metric` and :func:`mean_iou`, so their numbers mean the same thing: a
global confusion matrix over the split, ``ignore_index`` pixels left out, and a class that
occurs neither in the labels nor in the predictions (IoU NaN) left out of the mean.

Example:
    >>> mean_iou([0.5, float("nan"), 1.0])
    0.75
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor, nn
from torchmetrics.classification import MulticlassJaccardIndex

from mgd_lightning.models.inference import segment

__all__ = ["evaluate_networks", "iou_metric", "mean_iou"]


def iou_metric(num_classes: int, ignore_index: int = 255) -> MulticlassJaccardIndex:
    """Per-class IoU over a whole split; NaN for a class absent from labels and predictions."""
    return MulticlassJaccardIndex(
        num_classes, average="none", ignore_index=ignore_index, zero_division=float("nan")
    )


def mean_iou(per_class_iou: Tensor | Sequence[float]) -> float:
    """Mean over the classes that occur (NaN IoU: class absent from labels and predictions).

    Returns NaN when no class occurs.
    """
    values = per_class_iou.tolist() if isinstance(per_class_iou, Tensor) else per_class_iou
    valid = [float(v) for v in values if not math.isnan(float(v))]
    return sum(valid) / len(valid) if valid else float("nan")


@torch.no_grad()
def evaluate_networks(
    networks: dict[str, nn.Module],
    datamodule: LightningDataModule,
    split: str,
    num_figure_images: int,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per-class IoU of every network on ``split``, and the first images' predictions.

    Args:
        networks: name -> network (whole-image inference, eval mode).
        datamodule: gives the split's loader, ``num_classes`` and ``ignore_index``.
        split: ``"test"`` or ``"val"``.
        num_figure_images: how many of the first images (with masks and each network's class
            map) to return for a figure.

    Returns:
        ``(per_class, shown)``: name -> per-class IoU list; and ``"image"``, ``"mask"`` and each
        name -> the first images' tensors (``None`` when none), plus ``"num_images"``.
    """
    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    num_classes = int(datamodule.num_classes)  # type: ignore[attr-defined]
    ignore_index = int(getattr(datamodule, "ignore_index", 255))
    metrics = {name: iou_metric(num_classes, ignore_index) for name in networks}
    for network in networks.values():
        network.eval()
    shown: dict[str, Any] = {"image": [], "mask": [], **{name: [] for name in networks}}
    count = 0
    for batch in loader:
        images, masks = batch["image"], batch["mask"]
        take = max(0, num_figure_images - count)
        for name, network in networks.items():
            prediction = segment(network, images).argmax(dim=1)
            metrics[name].update(prediction, masks)
            if take:
                shown[name].append(prediction[:take])
        if take:
            shown["image"].append(images[:take])
            shown["mask"].append(masks[:take])
        count += images.shape[0]
    per_class = {name: [float(v) for v in metric.compute()] for name, metric in metrics.items()}
    figure: dict[str, Any] = {k: torch.cat(v) if v else None for k, v in shown.items()}
    figure["num_images"] = count
    return per_class, figure
