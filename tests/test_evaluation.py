"""The IoU metric and its mean over the classes that occur; several networks on one split."""

from __future__ import annotations

import math

import torch

from mgd_lightning.datamodules import SyntheticDataModule
from mgd_lightning.evaluation import evaluate_networks, iou_metric, mean_iou


def test_iou_metric_gives_nan_for_absent_classes_and_mean_skips_them() -> None:
    metric = iou_metric(3, ignore_index=255)
    target = torch.tensor([[0, 0, 1, 255]])
    metric.update(torch.tensor([[0, 1, 1, 2]]), target)
    per_class = metric.compute()
    assert math.isclose(float(per_class[0]), 0.5) and math.isclose(float(per_class[1]), 0.5)
    assert math.isnan(float(per_class[2]))  # class 2 only predicted on an ignored pixel
    assert math.isclose(mean_iou(per_class), 0.5)
    assert math.isclose(mean_iou([1.0, float("nan"), 0.0]), 0.5)
    assert math.isnan(mean_iou([float("nan")]))


def test_evaluate_networks_returns_iou_and_figure_images() -> None:
    datamodule = SyntheticDataModule(
        image_size=16, num_train=8, num_val=3, num_test=5, labeled_ratio=0.5, batch_size=2
    )
    k = datamodule.num_classes

    class _Constant(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(images.shape[0], k, *images.shape[-2:])
            logits[:, 0] = 1.0  # always background
            return logits

    per_class, shown = evaluate_networks({"a": _Constant()}, datamodule, "test", 3)
    assert len(per_class["a"]) == k and 0.0 < per_class["a"][0] <= 1.0
    assert shown["num_images"] == 5
    assert shown["image"].shape[0] == 3 and shown["a"].shape == shown["mask"].shape
