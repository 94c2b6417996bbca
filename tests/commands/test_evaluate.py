"""``mgd-lightning evaluate``: a student safetensors file scored on a tiny CamVid-layout folder,
equal to the library's evaluation of the same network; and its errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny_models import make_tiny
from mgd_lightning.cli import main
from mgd_lightning.evaluation import evaluate_camvid_split
from mgd_lightning.export import export_safetensors
from mgd_lightning.models import load_student


def write_camvid(root: Path, size: tuple[int, int] = (18, 24)) -> Path:
    """CamVid layout: 6 train (2 of them sequence B), 3 val, random images and masks."""
    rng = np.random.default_rng(0)
    ids = {"train": ["A_0", "A_1", "A_2", "A_3", "B_0", "B_1"], "val": ["C_0", "C_1", "C_2"]}
    for split, names in ids.items():
        for sub in ("images", "labels"):
            (root / sub / split).mkdir(parents=True)
        for name in names:
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / "images" / split / f"{name}.png")
            mask = rng.integers(0, 12, size, dtype=np.uint8)
            Image.fromarray(mask).save(root / "labels" / split / f"{name}.png")
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture
def student(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    network = make_tiny(11)
    path, digest = export_safetensors(network, tmp_path / "out" / "student.safetensors",
                                      info={"stage": "tiny"})
    assert len(digest) == 64
    return path, network


def test_file_reloads_as_the_fp16_rounded_network(student: tuple[Path, torch.nn.Module]) -> None:
    path, network = student
    loaded = load_student(path)
    assert not loaded.training
    for key, value in network.state_dict().items():
        stored = loaded.state_dict()[key]
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(stored, expected), key


def test_command_reproduces_the_library_scores_exactly(
    tmp_path: Path, student: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = student
    root = write_camvid(tmp_path / "camvid")
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("B_0\nB_1\n")
    for split in ("val", os.fspath(heldout)):
        expected = evaluate_camvid_split(load_student(path), root, split)
        output = tmp_path / "scores.json"
        args = ["--weights", os.fspath(path), "--data.root", os.fspath(root), "--split", split]
        assert main(["evaluate", *args, "--output", os.fspath(output)]) == 0
        scores = json.loads(output.read_text())
        assert scores["miou"] == expected["miou"]  # exactly: the same function on the same file
        assert scores["num_images"] == (3 if split == "val" else 2)
        assert [
            None if math.isnan(v) else v for v in expected["per_class_iou"].values()
        ] == list(scores["per_class_iou"].values())
        assert scores["info"]["stage"] == "tiny"
        assert scores["info"]["network"]["init_args"].get("backbone_weights") is None
        printed = capsys.readouterr().out
        assert f"mIoU {100 * expected['miou']:.2f}" in printed and "bicyclist" in printed


def test_errors_name_the_file_or_the_split(
    tmp_path: Path, student: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = student
    root = write_camvid(tmp_path / "camvid")
    base = ["--data.root", os.fspath(root)]
    assert main(["evaluate", "--weights", os.fspath(tmp_path / "nope.safetensors"), *base]) == 1
    assert "nope.safetensors' does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:200])
    assert main(["evaluate", "--weights", os.fspath(broken), *base]) == 1
    assert "broken.safetensors' as safetensors: it is truncated" in capsys.readouterr().err
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, os.fspath(plain))
    assert main(["evaluate", "--weights", os.fspath(plain), *base]) == 1
    assert "plain.safetensors' is not a student file" in capsys.readouterr().err
    assert main(["evaluate", "--weights", os.fspath(path), *base, "--split", "heldout"]) == 1
    error = capsys.readouterr().err
    assert "split 'heldout'" in error and "heldout.txt does not exist" in error
    assert main(["evaluate", "--weights", os.fspath(path), *base, "--split", "x/list.txt"]) == 1
    assert "list file x/list.txt does not exist" in capsys.readouterr().err


def test_export_command_writes_a_student_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mgd_lightning.models import network_spec

    network = make_tiny(11, seed=3)
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"mgd_network": network_spec(network),
                "state_dict": {f"network.{k}": v for k, v in network.state_dict().items()}},
               checkpoint)
    output = tmp_path / "student.safetensors"
    args = ["--checkpoint", os.fspath(checkpoint), "--format", "safetensors", "--output"]
    assert main(["export", *args, os.fspath(output)]) == 0
    assert "sha256" in capsys.readouterr().out
    loaded = load_student(output)
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = network.half().float().eval()(images).logits
        assert torch.allclose(loaded(images).logits, expected, atol=1e-5)
