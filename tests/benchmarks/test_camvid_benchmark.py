"""benchmarks/camvid.py runs every stage on a tiny fake CamVid tree, reuses finished stages and
writes the results table with the paired gains and the ablation."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "camvid.py"
TINY = [
    "--trainer.max_steps=1",
    "--trainer.log_every_n_steps=1",
    "--trainer.precision=32-true",
    "--data.init_args.batch_size=2",
    "--data.init_args.crop_size=[32,32]",
]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_camvid_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _fake_camvid(root: Path) -> Path:
    """CamVid layout, 24x32 images: 16 train (1-8: 4 labeled, 1-2: 8), 3 val."""
    rng = np.random.default_rng(0)
    ids = {"train": [f"t{i:02d}" for i in range(16)], "val": [f"v{i}" for i in range(3)]}
    for split, names in ids.items():
        for sub in ("images", "labels"):
            (root / sub / split).mkdir(parents=True)
        for name in names:
            image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / "images" / split / f"{name}.png")
            mask = rng.integers(0, 12, (24, 32), dtype=np.uint8)
            Image.fromarray(mask).save(root / "labels" / split / f"{name}.png")
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    for partition, n in (("1-8", 4), ("1-2", 8)):
        (root / "splits" / partition).mkdir(parents=True)
        (root / "splits" / partition / "labeled.txt").write_text("\n".join(ids["train"][:n]))
        (root / "splits" / partition / "unlabeled.txt").write_text("\n".join(ids["train"][n:]))
    return root


def test_camvid_benchmark_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    root = _fake_camvid(tmp_path / "camvid")
    out = tmp_path / "out"
    args = ["--data-root", str(root), "--out", str(out), "--seeds", "0", "1", "--", *TINY]
    assert bench.main(args) == 0

    # Teachers and the ablation once (seed 0); the four students for both seeds.
    trained = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("stage.json"))
    students = ["mbv2_mgd", "mbv2_sup", "r18_mgd", "r18_sup"]
    assert trained == sorted(
        [f"1-8/s0/{s}" for s in [*students, "teacher_deep", "teacher_wide", *bench.ONCE]]
        + [f"1-8/s1/{s}" for s in students]
    )
    # The MGD students were distilled from the seed-0 teachers' checkpoints.
    record = json.loads((out / "1-8/s1/r18_mgd/stage.json").read_text())
    deep = json.loads((out / "1-8/s0/teacher_deep/stage.json").read_text())["checkpoint"]
    assert f"--model.init_args.teachers.init_args.deep_weights={deep}" in record["args"]
    # The ablation switches terms off.
    record = json.loads((out / "1-8/s0/r18_mgd_pixel/stage.json").read_text())
    assert "--model.init_args.image_weight=0" in record["args"]

    results = json.loads((out / "results.json").read_text())
    part = results["partitions"]["1-8"]
    assert part["models"]["r18_sup"]["seeds"] == [0, 1]
    assert part["models"]["teacher_deep"]["seeds"] == [0]
    sup, mgd = part["models"]["r18_sup"]["val_miou"], part["models"]["r18_mgd"]["val_miou"]
    assert part["gains"]["r18_mgd"]["val_miou_gain"] == pytest.approx(
        [m - s for m, s in zip(mgd, sup, strict=True)]
    )
    assert set(part["ablation"]) == {"r18_sup", "r18_mgd_pixel", "r18_mgd_pixel_image", "r18_mgd"}
    assert part["models"]["r18_sup"]["params"] > part["models"]["mbv2_sup"]["params"]
    assert part["models"]["teacher_wide"]["flops"] > part["models"]["r18_sup"]["flops"]
    table = (out / "results.md").read_text()
    assert "| ResNet-18, MGD | 2 |" in table and "Ablation" in table
    assert "MobileNet-v2, MGD minus MobileNet-v2, labeled only" in table
    assert "Teacher wide (WRN-26-2) minus ResNet-18, labeled only (seed 0)" in table
    assert "Headroom: ResNet-18 labeled only with 1/2 labels minus with 1-8 labels" in table

    # A second run reuses every finished stage: nothing is retrained.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("last.ckpt")}
    capsys.readouterr()
    assert bench.main(args) == 0
    assert "reusing" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("last.ckpt")} == before


def test_camvid_benchmark_refuses_a_wrong_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load()
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert str(tmp_path) in error and "train.txt" in error and "MGD_CAMVID_ROOT" in error
    assert not (tmp_path / "out").exists()
