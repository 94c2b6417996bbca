"""FLOP and parameter counting (METHOD.md E.3 convention)."""

from __future__ import annotations

import pytest
from torch import nn

from _tiny_models import make_tiny
from mgd_lightning.models import count_flops, count_parameters, format_report, profile_report


def test_hand_computed_flops() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),  # out 8x4x4
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise, out 8x4x4
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    expected = 128 * 27 + 2 * 128 + 128 * 9 + 10 * 128
    assert count_flops(net, (8, 8)) == expected


def test_mode_restored_and_no_grad() -> None:
    net = make_tiny().train()
    count_flops(net, (32, 32))
    assert net.training
    assert all(p.grad is None for p in net.parameters())


def test_count_parameters() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    assert count_parameters(net) == 16 + 8
    net[0].requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 8


def test_bad_input_size() -> None:
    with pytest.raises(ValueError, match="input_size"):
        count_flops(nn.Conv2d(3, 3, 1), (0, 4))


def test_profile_report_and_table() -> None:
    student = make_tiny(backbone="resnet10t")
    deep = make_tiny(backbone="resnet18")
    rows = profile_report(student, deep, None, input_size=(64, 64))
    assert [r.role for r in rows] == ["student", "deep teacher"]
    assert rows[0].backbone_ratio == 1.0 and rows[0].total_ratio == 1.0
    assert rows[1].backbone_flops == count_flops(deep.backbone, (64, 64))
    assert rows[1].backbone_ratio == pytest.approx(rows[1].backbone_flops / rows[0].backbone_flops)
    assert rows[1].total_params == count_parameters(deep)
    table = format_report(rows, (64, 64))
    assert "| deep teacher | DeepLabV3Plus (resnet18) |" in table
    assert sum(line.startswith("|") for line in table.splitlines()) == 4  # header, rule, 2 rows
