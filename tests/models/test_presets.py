"""The paper's networks (METHOD.md A.2, A.3, E.3): shapes, strides, dilations, params, FLOPs."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from mgd_lightning.models import (
    DeepLabV3Plus,
    StudentMobileNetV2,
    StudentResNet18,
    TeacherResNet101,
    TeacherWideResNet50,
    count_flops,
    count_parameters,
)

# (preset, backbone params in M, backbone GFLOPs at 512x512), from METHOD.md E.3
PAPER = {
    "R18": (StudentResNet18, 11.20, 17.21),
    "MBv2": (StudentMobileNetV2, 1.81, 1.53),
    "R101": (TeacherResNet101, 42.62, 59.11),
    "WRN": (TeacherWideResNet50, 66.83, 91.12),
}


@pytest.fixture(scope="module")
def presets() -> dict[str, DeepLabV3Plus]:
    """All four presets, built once, with a narrow head (the backbones are the paper's)."""
    torch.manual_seed(0)
    return {key: cls(num_classes=21, head_channels=16) for key, (cls, _, _) in PAPER.items()}


@pytest.fixture(scope="module")
def backbone_flops_64(presets: dict[str, DeepLabV3Plus]) -> dict[str, int]:
    """Backbone FLOPs at 64x64: every map scales exactly, so x64 gives the 512x512 count."""
    start = time.perf_counter()
    flops = {key: count_flops(net.backbone, (64, 64)) for key, net in presets.items()}
    assert time.perf_counter() - start < 20
    return flops


@pytest.mark.parametrize("key", list(PAPER))
def test_backbone_parameters(presets: dict[str, DeepLabV3Plus], key: str) -> None:
    expected = PAPER[key][1]
    measured = count_parameters(presets[key].backbone) / 1e6
    assert measured == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("key", list(PAPER))
def test_backbone_gflops(backbone_flops_64: dict[str, int], key: str) -> None:
    assert backbone_flops_64[key] * 64 / 1e9 == pytest.approx(PAPER[key][2], abs=0.01)


def test_compression_ratios_match_the_abstract(backbone_flops_64: dict[str, int]) -> None:
    f = backbone_flops_64
    assert f["R101"] / f["R18"] == pytest.approx(3.44, abs=0.1)
    assert f["WRN"] / f["R18"] == pytest.approx(5.30, abs=0.1)
    assert f["R101"] / f["MBv2"] == pytest.approx(38.7, abs=0.1)
    assert f["WRN"] / f["MBv2"] == pytest.approx(59.6, abs=0.1)


@pytest.mark.parametrize(("key", "stride"), [("R18", 16), ("MBv2", 32), ("R101", 16), ("WRN", 16)])
def test_shapes_and_strides(presets: dict[str, DeepLabV3Plus], key: str, stride: int) -> None:
    net = presets[key].eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits, features = net(x)
        deepest = net.backbone(x)[-1]
    assert logits.shape == (1, 21, 64, 64)
    assert features.shape == (1, 16, 16, 16)
    assert deepest.shape[-2:] == (64 // stride, 64 // stride)
    assert net.output_stride == stride


def _dilations(block: nn.Module) -> list[int]:
    return [
        m.dilation[0]
        for m in block.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]


def test_student_resnet18_layout(presets: dict[str, DeepLabV3Plus]) -> None:
    backbone = presets["R18"].backbone
    stem = backbone.conv1
    assert [(c.in_channels, c.out_channels) for c in stem if isinstance(c, nn.Conv2d)] == [
        (3, 32),
        (32, 32),
        (32, 64),
    ]
    assert _dilations(backbone.layer4[0]) == [2, 2]
    assert _dilations(backbone.layer4[1]) == [4, 4]
    assert all(m.stride == (1, 1) for m in backbone.layer4.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("key", ["R101", "WRN"])
def test_teacher_multi_grid(presets: dict[str, DeepLabV3Plus], key: str) -> None:
    layer4 = presets[key].backbone.layer4
    assert [_dilations(block) for block in layer4] == [[2], [4], [8]]
    for conv in layer4.modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
            assert conv.padding == conv.dilation


def test_teacher_resnet101_deep_stem(presets: dict[str, DeepLabV3Plus]) -> None:
    stem = presets["R101"].backbone.conv1
    widths = [c.out_channels for c in stem if isinstance(c, nn.Conv2d)]
    assert widths == [64, 64, 128]
    assert len(presets["R101"].backbone.layer3) == 23


def test_student_mobilenet_dilated_last_blocks(presets: dict[str, DeepLabV3Plus]) -> None:
    net = presets["MBv2"]
    blocks = net.backbone.blocks
    convs = [blocks[5][1].conv_dw, blocks[5][2].conv_dw, blocks[6][0].conv_dw]
    assert [c.dilation for c in convs] == [(2, 2), (4, 4), (8, 8)]
    assert [c.padding for c in convs] == [(2, 2), (4, 4), (8, 8)]
    assert blocks[5][0].conv_dw.stride == (2, 2)  # kept: the paper's stride-32 version
    assert net.head.aspp.rates == (6, 12, 18)


@pytest.mark.parametrize(("output_stride", "dilations"), [(16, (2, 4, 8)), (8, (4, 8, 16))])
def test_student_mobilenet_other_strides(output_stride: int, dilations: tuple[int, ...]) -> None:
    net = StudentMobileNetV2(num_classes=3, output_stride=output_stride, head_channels=8)  # type: ignore[arg-type]
    blocks = net.backbone.blocks
    convs = [blocks[5][1].conv_dw, blocks[5][2].conv_dw, blocks[6][0].conv_dw]
    assert tuple(c.dilation[0] for c in convs) == dilations
    with torch.no_grad():
        deepest = net.eval().backbone(torch.zeros(1, 3, 64, 64))[-1]
        logits, _ = net(torch.zeros(1, 3, 64, 64))
    assert deepest.shape[-1] == 64 // output_stride
    assert logits.shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    ("cls", "params_m"),
    [
        (StudentResNet18, 16.6),
        (StudentMobileNetV2, 5.8),
        (TeacherResNet101, 59.5),
        (TeacherWideResNet50, 83.7),
    ],
)
def test_full_network_parameters(cls: type[DeepLabV3Plus], params_m: float) -> None:
    """Whole DeepLabv3+ (256-channel head, 21 classes), METHOD.md E.3."""
    net = cls(num_classes=21)  # type: ignore[call-arg]
    assert count_parameters(net) / 1e6 == pytest.approx(params_m, abs=0.1)
