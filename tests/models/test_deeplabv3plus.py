"""DeepLabV3Plus: output contract, head structure (METHOD.md A.1), argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mgd_lightning.models import (
    ASPP,
    DeepLabV3Plus,
    SegmentationOutput,
    StudentMobileNetV2,
)


def test_output_contract(tiny_net: DeepLabV3Plus) -> None:
    x = torch.randn(2, 3, 64, 48)
    out = tiny_net(x)
    assert isinstance(out, SegmentationOutput)
    assert out.logits.shape == (2, 3, 64, 48)
    assert out.features.shape == (2, 16, 16, 12)
    assert out[0] is out.logits and out[1] is out.features
    tiny_net.eval()
    with torch.no_grad(), pytest.deprecated_call(match="net\\(x\\).logits"):
        assert torch.equal(tiny_net.predict(x), tiny_net(x).logits)
    assert tiny_net.num_classes == 3 and tiny_net.feature_channels == 16


def test_logits_upsampled_align_corners(tiny_net: DeepLabV3Plus) -> None:
    tiny_net.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits, features = tiny_net(x)
        expected = F.interpolate(
            tiny_net.classifier(features), size=(64, 64), mode="bilinear", align_corners=True
        )
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize(
    ("output_stride", "rates"), [(8, (12, 24, 36)), (16, (6, 12, 18)), (32, (3, 6, 9))]
)
def test_output_stride_and_scaled_rates(output_stride: int, rates: tuple[int, ...]) -> None:
    net = DeepLabV3Plus("resnet10t", 2, output_stride=output_stride, head_channels=8)  # type: ignore[arg-type]
    assert net.head.aspp.rates == rates
    convs = net.head.aspp.map_convs
    assert [c.dilation[0] for c in convs[1:]] == list(rates)
    assert [c.padding[0] for c in convs[1:]] == list(rates)
    feats = net.backbone(torch.zeros(1, 3, 64, 64))
    assert feats[-1].shape[-1] == 64 // output_stride
    assert net.output_stride == output_stride


def test_head_structure_resnet() -> None:
    net = DeepLabV3Plus("resnet18", 21, head_channels=32)
    aspp = net.head.aspp
    assert isinstance(aspp, ASPP)
    assert all(c.bias is None for c in aspp.map_convs)
    assert aspp.map_convs[0].kernel_size == (1, 1)
    assert aspp.map_bn.num_features == 4 * 32
    assert isinstance(aspp.act, nn.LeakyReLU) and aspp.act.negative_slope == 0.01
    # low-level projection: 64 -> 48 for ResNets; decoder input 32 + 48
    reduce_conv = net.head.reduce[0]
    assert (reduce_conv.in_channels, reduce_conv.out_channels) == (64, 48)
    assert net.head.decoder[0].in_channels == 32 + 48
    assert net.classifier.bias is not None and net.classifier.kernel_size == (1, 1)
    # head BN initialised to weight 1, bias 0
    for m in net.head.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_aspp_pool_branch_is_additive() -> None:
    torch.manual_seed(0)
    aspp = ASPP(8, 4, rates=(1, 2, 3)).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        main = aspp.red_conv(aspp.act(aspp.map_bn(torch.cat([c(x) for c in aspp.map_convs], 1))))
        pool = aspp.pool_red_conv(
            aspp.act(aspp.pool_bn(aspp.pool_conv(F.adaptive_avg_pool2d(x, 1))))
        )
        expected = aspp.act(aspp.red_bn(main + pool.expand_as(main)))
        torch.testing.assert_close(aspp(x), expected)


def test_low_level_24_for_mobilenet() -> None:
    net = StudentMobileNetV2(num_classes=5, head_channels=16)
    reduce_conv = net.head.reduce[0]
    assert (reduce_conv.in_channels, reduce_conv.out_channels) == (24, 24)
    assert net.head.aspp.map_convs[1].in_channels == 320
    # the 1280-channel conv is not part of the backbone
    assert not any(
        isinstance(m, nn.Conv2d) and m.out_channels == 1280 for m in net.backbone.modules()
    )


def test_backbone_kwargs_forwarded() -> None:
    net = DeepLabV3Plus(
        "resnet18", 2, head_channels=8, backbone_kwargs={"stem_type": "deep", "stem_width": 16}
    )
    assert net.backbone.conv1[0].out_channels == 16


def test_gradients_flow(tiny_net: DeepLabV3Plus) -> None:
    logits, features = tiny_net(torch.randn(2, 3, 32, 32))
    (logits.mean() + features.mean()).backward()
    assert tiny_net.backbone.conv1[0].weight.grad is not None  # type: ignore[index,union-attr]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -2}, "num_classes"),
        ({"output_stride": 4}, "output_stride"),
        ({"head_channels": 0}, "head_channels"),
        ({"low_level_channels": 0}, "low_level_channels"),
        ({"multi_grid": (1, 2, 4)}, "multi_grid"),
        ({"backbone_kwargs": {"output_stride": 8}}, "backbone_kwargs"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"backbone": "resnet10t", "num_classes": 2, "head_channels": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DeepLabV3Plus(**args)  # type: ignore[arg-type]


def test_unknown_backbone_lists_close_names() -> None:
    with pytest.raises(ValueError, match="backbone") as info:
        DeepLabV3Plus("resnt18", 2)
    assert "resnet18" in str(info.value)


def test_multi_grid_needs_resnet() -> None:
    with pytest.raises(ValueError, match="multi_grid"):
        DeepLabV3Plus("mobilenetv2_100", 2, head_channels=8, multi_grid=(1, 2))
