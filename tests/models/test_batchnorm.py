"""BatchNorm for fine-tuning pretrained weights: re-parametrisation, frozen statistics, input."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from _tiny_models import make_tiny
from mgd_lightning.models import DeepLabV3Plus
from mgd_lightning.models.batchnorm import (
    batchnorm_pairs,
    reparametrise_batchnorm,
    shrink_batchnorm_inputs,
)


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


@torch.no_grad()
def _fold(module: nn.Module) -> None:
    """Fold every BN into its conv the way the shared MobileNet-v2 file is stored.

    Each BN becomes the identity plus a bias (weight 1, mean 0, var 1 - eps), its scale moves
    into the conv filter: eval-mode function unchanged.
    """
    for conv, bn in batchnorm_pairs(module):
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bn.bias.copy_(bn.bias - bn.running_mean * scale)
        bn.weight.fill_(1.0)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)


@pytest.fixture
def folded() -> tuple[nn.Module, Tensor]:
    """A tiny backbone with trained-looking BN folded into its convs, and images."""
    torch.manual_seed(0)
    net = make_tiny().backbone
    net.train()
    with torch.no_grad():  # give BN statistics by running some data, then fold them
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            net(torch.randn(8, 3, 64, 64) * 2 + 0.5)
    net.eval()
    _fold(net)
    return net, torch.randn(8, 3, 64, 64) * 2 + 0.5


@torch.no_grad()
def test_folded_weights_lose_their_function_in_train_mode(folded: tuple[nn.Module, Tensor]) -> None:
    net, x = folded
    evaluated = net(x)[-1]
    net.train()
    assert _rel(net(x)[-1], evaluated) > 0.3  # the problem the re-parametrisation solves
    assert _rel(net(x)[1], net.eval()(x)[1]) > 0.3


@torch.no_grad()
def test_reparametrise_keeps_the_function_and_matches_batch_statistics(
    folded: tuple[nn.Module, Tensor],
) -> None:
    net, x = folded
    before = [f.clone() for f in net(x)]
    count = reparametrise_batchnorm(net, [x[:4], x[4:]])
    assert count == len(batchnorm_pairs(net)) > 10
    after = net(x)
    for a, b in zip(after, before, strict=True):
        assert _rel(a, b) < 1e-4  # eval function unchanged
    net.train()
    for a, b in zip(net(x), before, strict=True):
        assert _rel(a, b) < 1e-3  # batch statistics now equal the running ones
    unseen = torch.randn(8, 3, 64, 64) * 2 + 0.5
    net.eval()
    reference = net(unseen)[1]
    net.train()
    assert _rel(net(unseen)[1], reference) < 0.1  # close on other images of the same kind


def test_network_reparametrises_at_its_first_training_forward() -> None:
    torch.manual_seed(1)
    net = DeepLabV3Plus("resnet10t", 3, head_channels=16, backbone_bn="reparametrise")
    x = torch.randn(4, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        before = net.backbone(x)[-1].clone()
    assert not bool(net.bn_reparametrised) and "bn_reparametrised" in net.state_dict()
    net.train()
    with torch.no_grad():
        net(x)
    assert bool(net.bn_reparametrised)
    net.eval()
    with torch.no_grad():
        assert _rel(net.backbone(x)[-1], before) < 1e-3  # float32 rounding through 10 layers
    conv_weight = net.backbone.conv1[0].weight.clone()
    net.train()
    with torch.no_grad():
        net(x)  # done once: the second forward rewrites nothing
    assert torch.equal(net.backbone.conv1[0].weight, conv_weight)


def test_frozen_backbone_statistics() -> None:
    net = DeepLabV3Plus("resnet10t", 3, head_channels=16, backbone_bn="frozen").train()
    bns = [m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert all(m.weight.requires_grad for m in bns)
    assert net.head.reduce[1].training  # the head's BN trains normally
    mean = bns[0].running_mean.clone()
    net(torch.randn(2, 3, 64, 64))
    assert torch.equal(bns[0].running_mean, mean)


def test_frozen_backbone_statistics_as_built() -> None:
    # Lightning does not call .train() at fit start: the network must be frozen as built.
    net = DeepLabV3Plus("resnet10t", 3, head_channels=16, backbone_bn="frozen")
    bns = [m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    var = [m.running_var.clone() for m in bns]
    net(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(m.running_var, v) for m, v in zip(bns, var, strict=True))


def test_input_norm_minus_one_one() -> None:
    net = DeepLabV3Plus("resnet10t", 3, head_channels=16, input_norm="minus_one_one")
    raw = torch.randint(0, 256, (1, 3, 4, 4)).float()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    imagenet = (raw / 255 - mean) / std  # what the datamodules produce
    assert torch.allclose(net.normalise_input(imagenet), raw / 127.5 - 1, atol=1e-5)
    assert "_input_scale" not in net.state_dict()


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="backbone_bn"):
        DeepLabV3Plus("resnet10t", 3, backbone_bn="folded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_norm"):
        DeepLabV3Plus("resnet10t", 3, input_norm="tf")  # type: ignore[arg-type]


@torch.no_grad()
def test_a_constant_channel_is_not_blown_up() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)).eval()
    net[0].weight[2].zero_()  # channel 2 is constant (0) on any image
    x = torch.randn(4, 3, 16, 16)
    before = net(x).clone()
    reparametrise_batchnorm(net, [x])
    assert _rel(net(x), before) < 1e-5
    assert net[0].weight[2].abs().max() == 0 and net[0].weight.abs().max() < 10
    assert net[1].running_var[2] == 0 and torch.allclose(net[1].running_var[:2], torch.ones(2))
    net.train()
    assert _rel(net(x), before) < 1e-3


@torch.no_grad()
def _blow_up(module: nn.Module) -> None:
    """Give some channels fp16-overflowing filters and running variances (same BN output)."""
    pairs = batchnorm_pairs(module)
    for index, (conv, bn) in enumerate(pairs[:3]):
        k = torch.ones(conv.out_channels)
        k[index % conv.out_channels] = 1e5
        conv.weight.mul_(k.view(-1, *([1] * (conv.weight.dim() - 1))))
        bn.running_mean.mul_(k)
        bn.running_var.mul_(k.square())
    conv, bn = pairs[-1]  # a nearly dead channel: huge filter, tiny variance
    conv.weight[0].fill_(3e7)
    bn.running_var[0] = 1e-7


def test_shrink_keeps_the_eval_function_and_fits_fp16() -> None:
    torch.manual_seed(0)
    net = make_tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    _blow_up(net.backbone)
    with torch.no_grad():
        before = net(x).logits
        assert any(not v.half().isfinite().all() for v in net.state_dict().values()
                   if v.is_floating_point())
        count = shrink_batchnorm_inputs(net.backbone)
        after = net(x).logits
    assert count >= 4
    assert _rel(after, before) < 1e-4  # the dead channel makes the logits huge: relative
    state = net.state_dict()
    assert all(v.half().isfinite().all() for v in state.values() if v.is_floating_point())
    for conv, bn in batchnorm_pairs(net.backbone)[:3]:  # the ordinary big channels: in range
        assert conv.weight.abs().max() <= 256.0 * (1 + 1e-5)
        assert bn.running_var.max() <= 16.0**2 * (1 + 1e-5)
    assert bn.weight.abs().max() <= 4096 * (1 + 1e-5)
