"""Shipped teachers: the package's set, the manifest and the SHA-256 check at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _tiny_models import make_tiny
from mgd_lightning.models import (
    ShippedTeacherError,
    TeacherPair,
    load_shipped_teacher,
    read_manifest,
    save_shipped_teachers,
)
from mgd_lightning.models.batchnorm import batchnorm_pairs
from mgd_lightning.models.shipped import SHIPPED_ROOT


def test_package_ships_the_synthetic_teachers() -> None:
    manifest = read_manifest("synthetic")
    root = Path(manifest["root"])
    total = sum((root / manifest["teachers"][r]["file"]).stat().st_size for r in ("deep", "wide"))
    assert total <= 20_000_000  # all shipped weights together at most 20 MB
    pair = TeacherPair.from_shipped("synthetic")
    assert pair.num_classes == 6
    for role in ("deep", "wide"):
        entry = manifest["teachers"][role]
        assert entry["dtype"] == "float16"
        assert pair.sources[role] == {"path": str(root / entry["file"]), "sha256": entry["sha256"]}
    assert pair.deep.init_args["head_channels"] < pair.wide.init_args["head_channels"]


@pytest.fixture()
def tiny_set(tmp_path: Path) -> Path:
    """A shipped set of two tiny teachers in a temporary folder."""
    deep, wide = make_tiny(6, seed=0), make_tiny(6, seed=1)
    return save_shipped_teachers(deep, wide, tmp_path / "set", info={"note": "test"}).parent


def test_round_trip_keeps_the_weights(tiny_set: Path) -> None:
    deep = make_tiny(6, seed=0).eval()
    loaded, origin = load_shipped_teacher("deep", tiny_set)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # fp16 storage: the logits agree to fp16 precision
        torch.testing.assert_close(loaded.eval()(x).logits, deep(x).logits, atol=2e-2, rtol=2e-2)
    assert origin["path"].endswith("teacher_deep.safetensors")
    assert read_manifest(tiny_set / "manifest.json")["note"] == "test"
    pair = TeacherPair(shipped=tiny_set)
    assert pair.sources["wide"] is not None


def test_huge_batchnorm_channels_are_shrunk_to_fit_fp16(tmp_path: Path) -> None:
    """A fine-tuned re-parametrised teacher can hold filters of 3e7: stored rescaled, same
    function, the caller's network untouched."""
    deep = make_tiny(6, seed=0).eval()
    conv, bn = batchnorm_pairs(deep.backbone)[-1]
    with torch.no_grad():
        conv.weight[0].mul_(1e6)
        bn.running_mean[0].mul_(1e6)
        bn.running_var[0].mul_(1e12)
    original = conv.weight.clone()
    save_shipped_teachers(deep, deep, tmp_path / "set")
    assert torch.equal(conv.weight, original)
    loaded, _ = load_shipped_teacher("deep", tmp_path / "set")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x).logits, deep(x).logits, atol=2e-2, rtol=2e-2)


def test_modified_file_is_refused(tiny_set: Path) -> None:
    file = tiny_set / "teacher_wide.safetensors"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte changed
    file.write_bytes(bytes(data))
    with pytest.raises(ShippedTeacherError, match=r"teacher_wide\.safetensors.*SHA-256"):
        TeacherPair.from_shipped(tiny_set)


def test_truncated_file_is_refused(tiny_set: Path) -> None:
    file = tiny_set / "teacher_deep.safetensors"
    file.write_bytes(file.read_bytes()[:1000])
    with pytest.raises(ShippedTeacherError, match=r"teacher_deep\.safetensors.*truncated"):
        load_shipped_teacher("deep", tiny_set)


def test_missing_file_and_manifest(tiny_set: Path, tmp_path: Path) -> None:
    (tiny_set / "teacher_deep.safetensors").unlink()
    with pytest.raises(ShippedTeacherError, match=r"teacher_deep\.safetensors.*missing"):
        load_shipped_teacher("deep", tiny_set)
    with pytest.raises(ShippedTeacherError, match="no shipped-teacher manifest"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(ShippedTeacherError, match="no shipped-teacher manifest"):
        read_manifest("no_such_set")


def test_manifest_errors(tiny_set: Path) -> None:
    manifest_file = tiny_set / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["teachers"]["wide"]["sha256"]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ShippedTeacherError, match="wide teacher's entry lacks"):
        read_manifest(tiny_set)
    manifest_file.write_text("{not json")
    with pytest.raises(ShippedTeacherError, match="not valid JSON"):
        read_manifest(tiny_set)


def test_shipped_excludes_other_teachers(tiny_set: Path) -> None:
    with pytest.raises(ValueError, match="either `shipped` or the teachers"):
        TeacherPair(make_tiny(6), None, shipped=tiny_set)


def test_shipped_set_is_package_data() -> None:
    # setup.cfg's package_data must name what the package ships
    config = (Path(__file__).resolve().parents[2] / "setup.cfg").read_text()
    assert "shipped/*/*.safetensors" in config and "shipped/*/*.json" in config
    assert SHIPPED_ROOT.parent.name == "mgd_lightning"
