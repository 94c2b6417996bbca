"""Evaluation: the IoU metric, the mean over the classes that occur, and several networks at once.

The training modules (validation and test mIoU) and the pipeline (all models on one held-out
split) share :func:`iou_metric` and :func:`mean_iou`, so their numbers mean the same thing: a
global confusion matrix over the split, ``ignore_index`` pixels left out, and a class that
occurs neither in the labels nor in the predictions (IoU NaN) left out of the mean.

:func:`evaluate_camvid_split` scores one network on whole images of one split of a
CamVid-layout folder (a list under the root or a list file); ``benchmarks/camvid.py`` and
``mgd-lightning evaluate`` (through :func:`evaluate_student_file`) both use it, so the command
reproduces the benchmark's figures from an exported student file exactly.

Example:
    >>> mean_iou([0.5, float("nan"), 1.0])
    0.75
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor, nn
from torchmetrics.classification import MulticlassJaccardIndex

from mgd_lightning.datamodules.camvid import CamVidDataModule
from mgd_lightning.models.inference import segment
from mgd_lightning.models.spec import read_student_file
from mgd_lightning.models.weights import sha256_file

__all__ = [
    "EVAL_BATCH_SIZE",
    "evaluate_camvid_split",
    "evaluate_networks",
    "evaluate_student_file",
    "format_scores",
    "iou_metric",
    "mean_iou",
    "split_scores",
]

#: Images per evaluation batch of :func:`evaluate_camvid_split` (networks in eval mode: the
#: batch does not change the predictions, but one fixed value keeps the arithmetic identical).
EVAL_BATCH_SIZE = 8


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


def split_scores(network: nn.Module, datamodule: LightningDataModule) -> dict[str, Any]:
    """mIoU and per-class IoU of ``network`` on the ``val`` loader of ``datamodule``.

    Returns:
        ``{"miou", "per_class_iou": {class name: IoU (NaN: absent)}, "num_images"}``.
    """
    per_class, shown = evaluate_networks({"network": network}, datamodule, "val", 0)
    ious = per_class["network"]
    names = list(getattr(datamodule, "class_names", None) or range(len(ious)))
    return {
        "miou": mean_iou(ious),
        "per_class_iou": dict(zip([str(n) for n in names], ious, strict=True)),
        "num_images": int(shown["num_images"]),
    }


def evaluate_camvid_split(
    network: nn.Module, root: str | os.PathLike[str], split: str = "val"
) -> dict[str, Any]:
    """Score ``network`` on whole images of one split of a CamVid-layout folder.

    Args:
        network: the student (set to eval mode here).
        root: a CamVid-layout folder (``images/``, ``labels/``, ``train.txt``, ``val.txt``).
        split: a list under ``root`` (``val``, ``test``, ``train``) or the path of a list file
            of ids (e.g. ``configs/camvid/splits/heldout_0006R0/heldout.txt``).

    Returns:
        As :func:`split_scores`, plus ``"split"``.

    Raises:
        FileNotFoundError: ``root`` or the split's list is missing (the message names it).
        ValueError: a list file names ids that are not in the root's lists.
    """
    datamodule = CamVidDataModule(
        Path(root).expanduser(),
        batch_size=EVAL_BATCH_SIZE,
        eval_batch_size=EVAL_BATCH_SIZE,
        val_split=split,
    )
    return {"split": split, **split_scores(network, datamodule)}


def evaluate_student_file(
    weights: str | os.PathLike[str], root: str | os.PathLike[str], split: str = "val"
) -> dict[str, Any]:
    """Score a student safetensors file (``export_safetensors``) on a CamVid-layout split.

    Returns:
        As :func:`evaluate_camvid_split`, plus ``"weights"`` (the path), ``"sha256"`` and
        ``"info"`` (the file's notes: how it was trained).

    Raises:
        FileNotFoundError: the weights file, ``root`` or the split is missing.
        ValueError: the weights file is damaged or not a student file of this library.
    """
    network, info = read_student_file(weights)
    scores = evaluate_camvid_split(network, root, split)
    return {
        "weights": os.fspath(weights),
        "sha256": sha256_file(weights),
        **scores,
        "info": info,
    }


def format_scores(scores: dict[str, Any]) -> str:
    """A few lines: mIoU and each class's IoU in percent (``n/a``: class absent)."""
    lines = [
        f"{scores.get('weights', 'network')} on {scores['split']} "
        f"({scores['num_images']} images): mIoU {100 * scores['miou']:.2f}",
    ]
    width = max(len(name) for name in scores["per_class_iou"])
    for name, iou in scores["per_class_iou"].items():
        value = "n/a" if math.isnan(iou) else f"{100 * iou:6.2f}"
        lines.append(f"  {name:<{width}}  {value}")
    return "\n".join(lines)
