"""Weight files: safe reading, strict loading, Lightning prefixes, SHA-256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _tiny_models import make_tiny
from mgd_lightning.models import (
    DeepLabV3Plus,
    load_network_weights,
    load_state_dict_file,
    sha256_file,
)


class _Custom:
    def __init__(self) -> None:
        self.value = 1


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    source, target = make_tiny(seed=1), make_tiny(seed=2)
    assert not _same_weights(source, target)
    path = tmp_path / ("net.safetensors" if fmt == "safetensors" else "net.pt")
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save(source.state_dict(), path)
    assert load_network_weights(target, path) == ""
    assert _same_weights(source, target)


def test_safetensors_detected_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    save_file({"a": torch.ones(2)}, str(path))
    assert torch.equal(load_state_dict_file(path)["a"], torch.ones(2))


def test_constructor_weights_argument(tmp_path: Path) -> None:
    source = make_tiny(seed=1)
    path = tmp_path / "net.pt"
    torch.save(source.state_dict(), path)
    loaded = DeepLabV3Plus("resnet10t", num_classes=3, head_channels=16, weights=path)
    assert _same_weights(source, loaded)


def test_missing_key_is_named(tmp_path: Path) -> None:
    state = make_tiny().state_dict()
    del state["classifier.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"classifier\.weight") as info:
        load_network_weights(make_tiny(), path)
    message = str(info.value)
    assert "broken.pt" in message and "missing" in message
    assert "unexpected" in message and "extra.weight" in message


def test_shape_mismatch_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "five.pt"
    torch.save(make_tiny(num_classes=5).state_dict(), path)
    with pytest.raises(ValueError, match="shape mismatches") as info:
        load_network_weights(make_tiny(num_classes=3), path)
    assert "classifier.weight" in str(info.value)


@pytest.mark.parametrize("payload", [{"w": _Custom()}, {"w": print}])
def test_pickled_code_is_refused(tmp_path: Path, payload: dict[str, object]) -> None:
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match="Python objects") as info:
        load_state_dict_file(path)
    assert "evil.pt" in str(info.value)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.ones(1)], path)
    with pytest.raises(ValueError, match="state dict"):
        load_state_dict_file(path)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_state_dict_file("nowhere.pt")


@pytest.mark.parametrize("prefix", ["network.", "branch1.", "student."])
def test_lightning_checkpoint_prefix(tmp_path: Path, prefix: str) -> None:
    source = make_tiny(seed=1)
    other = make_tiny(seed=3).state_dict()
    state = {prefix + k: v for k, v in source.state_dict().items()}
    # other parts of the training module (a second CPS branch, teachers) are ignored
    state.update({"branch2." + k: v for k, v in other.items()})
    state.update({"teachers.deep." + k: v for k, v in other.items()})
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "global_step": 10, "state_dict": state}, path)
    target = make_tiny(seed=2)
    assert load_network_weights(target, path) == prefix
    assert _same_weights(source, target)


def test_explicit_prefix(tmp_path: Path) -> None:
    source = make_tiny(seed=1)
    state = {"branch1." + k: torch.zeros_like(v) for k, v in make_tiny().state_dict().items()}
    state.update({"branch2." + k: v for k, v in source.state_dict().items()})
    path = tmp_path / "cps.ckpt"
    torch.save({"state_dict": state}, path)
    target = make_tiny(seed=2)
    load_network_weights(target, path, prefix="branch2.")
    assert _same_weights(source, target)


def test_backbone_weights_drop_classifier_keys(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(4)
    full = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.safetensors"
    save_file(full.state_dict(), str(path))  # holds fc.weight / fc.bias
    net = DeepLabV3Plus("resnet10t", 2, head_channels=8, backbone_weights=path)
    assert torch.equal(net.backbone.layer1[0].conv1.weight, full.layer1[0].conv1.weight)
    bad = tmp_path / "bad.safetensors"
    state = full.state_dict()
    del state["layer1.0.conv1.weight"]
    save_file(state, str(bad))
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\b"):
        DeepLabV3Plus("resnet10t", 2, head_channels=8, backbone_weights=bad)


def test_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"mgd" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"mgd" * 1000).hexdigest()
