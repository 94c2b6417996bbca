"""ImageNet weights in public layouts, mapped by name into the four presets (offline).

Every source network is built here with random weights (timm or torchvision), saved, loaded
into a preset, and compared with the source tensor by tensor and feature by feature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import Tensor, nn

from mgd_lightning.models import (
    StudentMobileNetV2,
    StudentResNet18,
    TeacherResNet101,
    TeacherWideResNet50,
)
from mgd_lightning.models import presets as presets_module
from mgd_lightning.models.backbone_weights import timm_state_dict

REPO = Path(__file__).resolve().parents[2]
REAL_MOBILENET_V2 = Path(
    os.environ.get(
        "MGD_MOBILENET_V2_WEIGHTS",
        REPO.parent / "shared/weights/mobilenet_v2_imagenet"
        / "mobilenet_v2_imagenet_torchvision_layout.safetensors",
    )
)


def _save(module: nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return path


def _randomise_bn(module: nn.Module, seed: int) -> nn.Module:
    """Give every BN non-trivial statistics and affine parameters, so mix-ups show."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return module.eval()


def _x(h: int = 64, w: int = 64) -> Tensor:
    return torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))


def _resnet_stages(net: nn.Module, stem_out: Tensor) -> list[Tensor]:
    """layer1..layer3 outputs of a ResNet (timm or torchvision names) from the stem output."""
    x = net.maxpool(stem_out)  # type: ignore[operator]
    outs = []
    for name in ("layer1", "layer2", "layer3"):
        x = getattr(net, name)(x)
        outs.append(x)
    return outs


def _assert_same_resnet(net: nn.Module, source: nn.Module) -> None:
    """The network's backbone gives the source's stem and stage features exactly (eval mode)."""
    net.eval()
    x = _x()
    stem = _stem(source, x)
    assert torch.equal(_stem(net.backbone, x), stem)
    for a, b in zip(_resnet_stages(net.backbone, stem), _resnet_stages(source, stem), strict=True):
        assert torch.equal(a, b)


def _stem(net: nn.Module, x: Tensor) -> Tensor:
    return net.act1(net.bn1(net.conv1(x))) if hasattr(net, "act1") else net.relu(  # type: ignore[operator]
        net.bn1(net.conv1(x))  # type: ignore[operator]
    )


@torch.no_grad()
def test_torchvision_mobilenet_v2_into_student(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _randomise_bn(torchvision.models.mobilenet_v2(), 1)
    net = StudentMobileNetV2(3, head_channels=8, backbone_weights=_save(source, tmp_path / "m.st"))
    net.eval()
    report = net.backbone_load_reports[0]
    assert report.layout == "torchvision mobilenet_v2"
    assert len(report.loaded) == report.total and not report.absent and not report.mismatched
    assert set(report.head) >= {"conv_head.weight", "classifier.weight", "bn2.running_var"}
    x = _x()
    features = net.backbone(x)
    assert torch.equal(features[1], source.features[:4](x))  # stride 4, 24 channels
    assert torch.equal(features[3], source.features[:14](x))  # stride 16, 96 channels


@torch.no_grad()
def test_timm_mobilenet_v2_into_student(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = _randomise_bn(timm.create_model("mobilenetv2_100"), 2)
    net = StudentMobileNetV2(3, head_channels=8, backbone_weights=_save(source, tmp_path / "m.st"))
    assert sorted(net.backbone_load_reports[0].head) == sorted([
        "conv_head.weight", *[f"bn2.{k}" for k in (
            "weight", "bias", "running_mean", "running_var", "num_batches_tracked")],
        "classifier.weight", "classifier.bias",
    ])
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


@torch.no_grad()
def test_torchvision_resnet18_needs_a_stem_choice(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = _randomise_bn(torchvision.models.resnet18(), 3)
    path = _save(source, tmp_path / "r18.st")
    with pytest.raises(ValueError, match=r"conv1\.0, conv1\.1, conv1\.3.*stem='random'"):
        StudentResNet18(3, head_channels=8, backbone_weights=path)
    torch.manual_seed(5)
    net = StudentResNet18(3, head_channels=8, backbone_weights=path, stem="random").eval()
    report = net.backbone_load_reports[0]
    assert [k.rpartition(".")[0] for k in report.kept_random][::3][:2] == ["conv1.0", "conv1.1"]
    assert report.unused == ["conv1.weight"] and sorted(report.head) == ["fc.bias", "fc.weight"]
    torch.manual_seed(5)
    fresh = StudentResNet18(3, head_channels=8)
    assert torch.equal(net.backbone.conv1[0].weight, fresh.backbone.conv1[0].weight)  # random
    # The body (bn1, layer1..3) computes what torchvision's does from the same stem output.
    stem_out = torch.relu(_randomise_bn(nn.BatchNorm2d(64), 4)(torch.randn(2, 64, 32, 32)))
    ours, theirs = _resnet_stages(net.backbone, stem_out), _resnet_stages(source, stem_out)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(net.backbone.bn1.running_var, source.bn1.running_var)


@torch.no_grad()
def test_timm_resnet18d_into_student_renames_the_shortcuts(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = _randomise_bn(timm.create_model("resnet18d"), 5)
    net = StudentResNet18(3, head_channels=8, backbone_weights=_save(source, tmp_path / "d.st"))
    report = net.backbone_load_reports[0]
    assert report.layout.startswith("timm avg-pool") and len(report.loaded) == report.total
    assert torch.equal(
        net.backbone.layer2[0].downsample[0].weight, source.layer2[0].downsample[1].weight
    )
    x = _x()
    net.eval()
    stem_ours, stem_theirs = _stem(net.backbone, x), _stem(source, x)
    assert torch.equal(stem_ours, stem_theirs)
    ours = net.backbone.layer1(net.backbone.maxpool(stem_ours))
    assert torch.equal(ours, source.layer1(source.maxpool(stem_theirs)))


@pytest.mark.slow
@torch.no_grad()
def test_timm_resnet101s_into_deep_teacher(tmp_path: Path) -> None:
    torch.manual_seed(4)
    source = _randomise_bn(timm.create_model("resnet101s"), 6)
    net = TeacherResNet101(3, head_channels=8, backbone_weights=_save(source, tmp_path / "s.st"))
    assert len(net.backbone_load_reports[0].loaded) == net.backbone_load_reports[0].total
    _assert_same_resnet(net, source)


@torch.no_grad()
def test_torchvision_resnet101_into_deep_teacher_is_partial(tmp_path: Path) -> None:
    source = torchvision.models.resnet101()
    path = _save(source, tmp_path / "r101.st")
    net = TeacherResNet101(3, head_channels=8)
    with pytest.raises(ValueError, match=r"conv1\.0.*bn1, layer1\.0\.conv1.*allow_partial=True`$"):
        net.load_backbone_weights(path)
    net.allow_partial = True
    report = net.load_backbone_weights(path)
    assert "bn1.weight (file (64,), network (128,))" in report.mismatched
    assert torch.equal(net.backbone.layer4[2].conv2.weight, source.layer4[2].conv2.weight)


@pytest.mark.slow
@torch.no_grad()
def test_torchvision_wide_resnet50_into_wide_teacher(tmp_path: Path) -> None:
    torch.manual_seed(6)
    source = _randomise_bn(torchvision.models.wide_resnet50_2(), 7)
    net = TeacherWideResNet50(3, head_channels=8, backbone_weights=_save(source, tmp_path / "w.st"))
    assert len(net.backbone_load_reports[0].loaded) == net.backbone_load_reports[0].total
    _assert_same_resnet(net, source)


@pytest.mark.parametrize("prefix", ["", "network.", "branch1.", "student.", "module."])
def test_own_networks_and_checkpoints(tmp_path: Path, prefix: str) -> None:
    torch.manual_seed(7)
    trained = StudentMobileNetV2(3, head_channels=8)
    state = trained.state_dict() if prefix != "module." else trained.backbone.state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {prefix + k: v for k, v in state.items()}}, path)
    net = StudentMobileNetV2(3, head_channels=8, backbone_weights=path)
    assert len(net.backbone_load_reports[0].loaded) == net.backbone_load_reports[0].total
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, trained.backbone.state_dict()[key]), key


def test_pretrained_and_backbone_weights_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        StudentMobileNetV2(3, pretrained=True, backbone_weights=tmp_path / "x.st")


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace timm's hub download by random weights of the named model; records the tags."""
    asked: list[str] = []

    def fake(tag: str) -> dict[str, Tensor]:
        asked.append(tag)
        torch.manual_seed(len(asked))
        model = timm.create_model(tag.split(".")[0], pretrained=False)
        assert timm.models.get_pretrained_cfg(tag) is not None, tag  # a real timm tag
        return dict(model.state_dict())

    monkeypatch.setattr(presets_module, "timm_state_dict", fake)
    return asked


@pytest.mark.parametrize(
    ("cls", "tags"),
    [
        (StudentMobileNetV2, ["mobilenetv2_100.ra_in1k"]),
        pytest.param(TeacherWideResNet50, ["wide_resnet50_2.tv_in1k"], marks=pytest.mark.slow),
        pytest.param(TeacherResNet101, ["resnet101s.gluon_in1k"], marks=pytest.mark.slow),
    ],
)
def test_pretrained_tags(
    fake_hub: list[str], cls: Callable[..., nn.Module], tags: list[str]
) -> None:
    net = cls(3, head_channels=8, pretrained=True)
    assert fake_hub == tags
    report = net.backbone_load_reports[0]  # type: ignore[index]
    assert len(report.loaded) == report.total


def test_pretrained_resnet18_body_and_stem(fake_hub: list[str]) -> None:
    net = StudentResNet18(3, head_channels=8, pretrained=True)
    assert fake_hub == ["resnet18.tv_in1k", "resnet18d.ra2_in1k"]
    torch.manual_seed(1)
    body = timm.create_model("resnet18")
    torch.manual_seed(2)
    stem = timm.create_model("resnet18d")
    assert torch.equal(net.backbone.layer3[1].conv2.weight, body.layer3[1].conv2.weight)
    assert torch.equal(net.backbone.bn1.weight, body.bn1.weight)
    assert torch.equal(net.backbone.conv1[6].weight, stem.conv1[6].weight)
    fake_hub.clear()
    StudentResNet18(3, head_channels=8, pretrained=True, stem="random")
    assert fake_hub == ["resnet18.tv_in1k"]  # the stem source is not even downloaded


def test_offline_without_cache_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"'resnet18\.tv_in1k'.*backbone_weights=<file>"):
        timm_state_dict("resnet18.tv_in1k")
    with pytest.raises(RuntimeError, match="backbone_weights"):
        StudentMobileNetV2(3, head_channels=8, pretrained=True)


@pytest.mark.skipif(not REAL_MOBILENET_V2.is_file(), reason=f"no file {REAL_MOBILENET_V2}")
@torch.no_grad()
def test_real_imagenet_mobilenet_v2_features() -> None:
    from safetensors.torch import load_file

    source = torchvision.models.mobilenet_v2()
    source.load_state_dict(load_file(str(REAL_MOBILENET_V2)), strict=True)
    source.eval()
    net = StudentMobileNetV2(11, backbone_weights=REAL_MOBILENET_V2).eval()
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = net.backbone(x)
    for ours, theirs in ((features[1], source.features[:4](x)),
                         (features[3], source.features[:14](x))):
        assert ((ours - theirs).norm() / theirs.norm()).item() <= 1e-4
