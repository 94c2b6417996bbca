"""benchmarks/camvid.py runs every stage on a tiny fake CamVid tree, reuses finished stages and
writes the results table with the paired gains and the ablation."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mgd_lightning.cli import main as cli_main
from mgd_lightning.models.weights import sha256_file

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "camvid.py"
TINY = [
    "--trainer.max_steps=1",
    "--trainer.log_every_n_steps=1",
    "--trainer.precision=32-true",
    "--data.init_args.batch_size=2",
    "--data.init_args.crop_size=[32,32]",
    # train-mode BN over 2 random 32x32 crops (1x1 maps at stride 32) gives gradients of 1e8:
    # a step at any usual lr blows the filters up past what an fp16 student file can hold
    "--model.init_args.lr=1e-7",
]


def _load(script: Path = SCRIPT) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SPLITS = Path(__file__).resolve().parents[2] / "configs" / "camvid" / "splits"


def _fake_camvid(root: Path) -> Path:
    """CamVid layout, 24x32 images: the 367 train ids of the real one (so that the committed
    heldout_0006R0 lists apply), 3 val; standard partitions 1-8 (45) and 1-2 (183)."""
    rng = np.random.default_rng(0)
    protocol = SPLITS / "heldout_0006R0"
    train = sorted(
        (protocol / "heldout.txt").read_text().split()
        + (protocol / "1-8" / "labeled.txt").read_text().split()
        + (protocol / "1-8" / "unlabeled.txt").read_text().split()
    )
    ids = {"train": train, "val": [f"0016E5_v{i}" for i in range(3)]}
    for split, names in ids.items():
        for sub in ("images", "labels"):
            (root / sub / split).mkdir(parents=True)
        for name in names:
            image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / "images" / split / f"{name}.png")
            mask = rng.integers(0, 12, (24, 32), dtype=np.uint8)
            Image.fromarray(mask).save(root / "labels" / split / f"{name}.png")
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    for partition, n in (("1-8", 45), ("1-2", 183)):
        (root / "splits" / partition).mkdir(parents=True)
        (root / "splits" / partition / "labeled.txt").write_text("\n".join(train[:n]))
        (root / "splits" / partition / "unlabeled.txt").write_text("\n".join(train[n:]))
    return root


def _fake_imagenet_mbv2(path: Path) -> Path:
    """A torchvision-layout MobileNet-v2 file (random weights) in place of the ImageNet one."""
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v2().state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


HEADLINE = ["teacher_deep", "teacher_wide", "mbv2_pre_sup", "mbv2_pre_mgd", "mbv2_pre_sup_4x"]


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["headline-stages", "all-stages"])
def test_camvid_benchmark_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], full: bool
) -> None:
    """Every stage (slow: 20 runs), or the headline pair with its teachers and plateau check."""
    bench = _load()
    root = _fake_camvid(tmp_path / "camvid")
    out, weights_dir = tmp_path / "out", tmp_path / "weights"
    args = [
        "--data-root", str(root), "--out", str(out), "--seeds", "0", "1",
        "--backbone-weights", str(_fake_imagenet_mbv2(tmp_path / "mbv2.safetensors")),
        "--weights-dir", str(weights_dir),
        "--stages", *([s.name for s in bench.STAGES] if full else HEADLINE),
        "--", *TINY,
    ]
    assert bench.main(args) == 0
    base = out / "heldout_0006R0"

    # Teachers, the plateau check, the headroom and the ablation once (seed 0); the six
    # students for both seeds.
    trained = sorted(p.parent.relative_to(base).as_posix() for p in base.rglob("stage.json"))
    students = ["mbv2_pre_sup", "mbv2_pre_mgd"]
    once = list(bench.ONCE) if full else ["mbv2_pre_sup_4x"]
    if full:
        students += ["mbv2_mgd", "mbv2_sup", "r18_mgd", "r18_sup", "mbv2_pre_mgd_pixel_image"]
    assert trained == sorted(
        [f"1-8/s0/{s}" for s in [*students, "teacher_deep", "teacher_wide", *once]]
        + [f"1-8/s1/{s}" for s in students]
    )
    record = json.loads((base / "1-8/s1/mbv2_pre_mgd/stage.json").read_text())
    # The protocol's lists; the MGD students distilled from the seed-0 teachers' checkpoints.
    assert any(a.endswith("heldout_0006R0/1-8/labeled.txt") for a in record["args"])
    deep = json.loads((base / "1-8/s0/teacher_deep/stage.json").read_text())["checkpoint"]
    assert f"--model.init_args.teachers.init_args.deep_weights={deep}" in record["args"]
    assert any(a.endswith("=" + str(tmp_path / "mbv2.safetensors")) for a in record["args"])
    # The ablation switches terms off; the headroom uses the protocol's 1/2 lists; 4x steps.
    if full:
        record = json.loads((base / "1-8/s0/mbv2_pre_mgd_pixel/stage.json").read_text())
        assert "--model.init_args.image_weight=0" in record["args"]
        record = json.loads((base / "1-8/s0/r18_sup_half/stage.json").read_text())
        assert any(a.endswith("heldout_0006R0/1-2/labeled.txt") for a in record["args"])
    record = json.loads((base / "1-8/s0/mbv2_pre_sup_4x/stage.json").read_text())
    assert record["args"][-1] == "--trainer.max_steps=4" and record["steps"] == 4

    results = json.loads((base / "results.json").read_text())
    assert results["protocol"] == "heldout_0006R0"
    part = results["partitions"]["1-8"]
    assert part["splits"] == ["val", "heldout"]
    assert part["models"]["mbv2_pre_sup"]["seeds"] == [0, 1]
    assert part["models"]["teacher_deep"]["seeds"] == [0]
    eval0 = json.loads((base / "1-8/s0/mbv2_pre_sup/eval.json").read_text())
    assert eval0["heldout"]["num_images"] == 101 and eval0["val"]["num_images"] == 3
    for split in ("val", "heldout"):
        sup = part["models"]["mbv2_pre_sup"][f"{split}_miou"]
        mgd = part["models"]["mbv2_pre_mgd"][f"{split}_miou"]
        gain = part["gains"]["mbv2_pre_mgd"][split]
        assert gain["differences"] == pytest.approx([m - s for m, s in zip(mgd, sup, strict=True)])
        assert gain["n"] == 2 and (gain["p_value"] is None or 0.0 <= gain["p_value"] <= 1.0)
    assert set(part["plateau"]) == {"stages", "seed", "val", "heldout"}
    assert part["models"]["teacher_wide"]["flops"] > part["models"]["mbv2_pre_sup"]["flops"]
    # The two teachers scored together, once, with their lead over the labeled-only student.
    combined = json.loads((base / "1-8/s0/teachers_combined/eval.json").read_text())
    assert combined["heldout"]["num_images"] == 101
    assert not (base / "1-8/s1/teachers_combined").exists()
    deep_params = part["models"]["teacher_deep"]["params"]
    assert part["models"]["teachers_combined"]["params"] == (
        deep_params + part["models"]["teacher_wide"]["params"])
    assert set(part["models"]["teachers_combined"]["lead_over_mbv2_pre_sup"]) == {"val", "heldout"}
    table = (base / "results.md").read_text()
    if full:
        assert set(part["ablation"]) == {
            "mbv2_pre_sup", "mbv2_pre_mgd_pixel", "mbv2_pre_mgd_pixel_image", "mbv2_pre_mgd"}
        assert set(part["ablation"]["mbv2_pre_mgd_pixel"]) == {"val", "heldout"}
        assert part["models"]["r18_sup"]["params"] > part["models"]["mbv2_sup"]["params"]
        assert "| ResNet-18 (scratch), MGD | 2 |" in table and "Ablation" in table
    assert "MobileNet-v2 (ImageNet), MGD minus labeled only, `heldout`" in table
    if full:  # the pixel + image student is repeated over seeds and paired too
        assert "MobileNet-v2 (ImageNet), MGD pixel + image minus labeled only, `val`" in table
    assert "paired t-test p = " in table
    assert "4x steps minus 1x steps (seed 0)" in table
    assert "| Teachers combined (mean of the deep and wide softmaxes) | 1 |" in table
    if full:
        assert "Teacher wide (MobileNet-v2 ImageNet, head 384, stride 32) minus ResNet-18 " \
            "(scratch), labeled only" in table
        assert "Headroom: ResNet-18 labeled only with 1/2 labels minus with 1-8 labels" in table
    assert "minutes per stage" in capsys.readouterr().out

    # The seed-0 pretrained students' files: recorded with their SHA-256, and the evaluate
    # command reproduces the benchmark's figures from them exactly.
    files = results["weights_files"]
    assert sorted(files) == ["mbv2_pretrained_mgd_s0", "mbv2_pretrained_supervised_s0"]
    assert sorted(p.name for p in weights_dir.glob("*.safetensors")) == [
        "mbv2_pretrained_mgd_s0.safetensors", "mbv2_pretrained_supervised_s0.safetensors"]
    assert json.loads((weights_dir / "results.json").read_text()) == results
    for stem, entry in files.items():
        path = weights_dir / f"{stem}.safetensors"
        assert sha256_file(path) == entry["sha256"]
        for split, source in (("val", "val"),
                              ("heldout", str(SPLITS / "heldout_0006R0" / "heldout.txt"))):
            scores = tmp_path / f"{stem}_{split}.json"
            command = ["evaluate", "--weights", str(path), "--data.root", str(root),
                       "--split", source, "--output", str(scores)]
            assert cli_main(command) == 0
            assert json.loads(scores.read_text())["miou"] == entry[f"{split}_miou"]

    # The teacher probes score the finished seed-0 stages under exposure and mirror changes.
    probes = _load(SCRIPT.with_name("camvid_teacher_probes.py"))
    if not full:
        assert probes.main(["--data-root", str(root), "--out", str(out)]) == 0
        table = json.loads((base / "1-8/s0/teacher_probes.json").read_text())
        assert {"teacher_wide, pixels x0.7", "teachers combined, mirror-averaged"} <= set(table)
        assert all(0 <= v[s] <= 100 for v in table.values() for s in ("val", "heldout"))
        assert table["teachers combined"]["heldout"] == pytest.approx(
            100 * part["models"]["teachers_combined"]["heldout_miou"][0], abs=0.05)
    with pytest.raises(FileNotFoundError, match=r"1-8/s0/teacher_deep/stage.json does not"):
        probes.main(["--data-root", str(root), "--out", str(tmp_path / "elsewhere")])

    # A second run reuses every finished stage: nothing is retrained, no file rewritten.
    before = {p: p.stat().st_mtime_ns for p in [*out.rglob("last.ckpt"),
                                                *weights_dir.glob("*.safetensors")]}
    assert bench.main(args) == 0
    assert "reusing" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before

    # With --teacher-label-cache the MGD stage trains again, from a cache in its own folder.
    cached = [*args[: args.index("--")], "--seeds", "0", "--stages", "teacher_deep",
              "teacher_wide", "mbv2_pre_mgd", "--teacher-label-cache", "--", *TINY]
    assert bench.main(cached) == 0
    folder = base / "1-8/s0/mbv2_pre_mgd@cache"
    assert (folder / "teacher_labels" / "unlabeled" / "meta.json").is_file()
    assert json.loads((folder / "eval.json").read_text())["teacher_label_cache"] is True
    assert json.loads((base / "1-8/s0/mbv2_pre_mgd/eval.json").read_text())[
        "teacher_label_cache"] is False
    models = json.loads((base / "results.json").read_text())["partitions"]["1-8"]["models"]
    assert models["mbv2_pre_mgd"]["teacher_label_cache"] is True
    assert "MGD (cached teacher labels) | 1 |" in (base / "results.md").read_text()
    capsys.readouterr()

    # A finished stage is not reused under other arguments: here another step count.
    refused = [*args[: args.index("--")], "--stages", "mbv2_pre_sup", "--", *TINY[1:],
               "--trainer.max_steps=2"]
    with pytest.raises(RuntimeError,
                       match=r"mbv2_pre_sup holds a finished stage trained with other"):
        bench.main(refused)


def test_stage_table_and_arguments(tmp_path: Path) -> None:
    bench = _load()
    names = [s.name for s in bench.STAGES]
    assert names[:4] == ["teacher_deep", "teacher_wide", "mbv2_pre_sup", "mbv2_pre_mgd"]
    # A plain run: the teachers, the headline pair, its plateau check and its ablation.
    assert (*names[:4], "mbv2_pre_sup_4x", *bench.ABLATION) == bench.DEFAULT_STAGES
    assert all(bench.BY_NAME[n].pretrained for n in bench.DEFAULT_STAGES)
    assert bench.GAINS[0] == ("mbv2_pre_mgd", "mbv2_pre_sup")
    pre = [bench.BY_NAME[n] for n in ("mbv2_pre_sup", "mbv2_pre_mgd", "mbv2_pre_sup_4x")]
    assert all(s.pretrained for s in pre) and pre[2].steps_factor == 4
    # The headline twins share the network settings.
    configs = [yaml.safe_load((bench.CONFIG_DIR / s.config).read_text()) for s in pre[:2]]
    networks = [c["model"]["init_args"]["network"] for c in configs]
    assert networks[0] == networks[1]
    stage = bench.BY_NAME["teacher_deep"]
    configs = {"teacher_deep": "teacher_deep_cps.yaml"}
    assert bench.stage_dir_name(stage, configs) == "teacher_deep@teacher_deep_cps"
    assert bench.stage_dir_name(stage, configs, cache=True) == "teacher_deep@teacher_deep_cps"
    mgd = bench.BY_NAME["mbv2_pre_mgd"]
    assert bench.stage_dir_name(mgd, {}, cache=True) == "mbv2_pre_mgd@cache"
    swapped = {"mbv2_pre_mgd": "x.yaml"}
    assert bench.stage_dir_name(mgd, swapped, cache=True) == "mbv2_pre_mgd@x+cache"
    args = bench.stage_args(stage, "root", "1-8", 0, tmp_path, {}, [], "standard", configs)
    assert str(bench.CONFIG_DIR / "teacher_deep_cps.yaml") in args
    assert "--data.init_args.partition=1-8" in args
    args = bench.stage_args(bench.BY_NAME["mbv2_pre_sup_4x"], "root", "1-8", 0, tmp_path, {},
                            ["--trainer.max_steps=5"])
    assert args[-1] == "--trainer.max_steps=20"
    assert any(a.startswith("--model.init_args.network.init_args.backbone_weights=")
               for a in args)
    with pytest.raises(SystemExit):
        bench.main(["--report-only", "--stage-config", "nope=teacher_deep.yaml"])


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


@pytest.mark.slow
def test_committed_student_files_reproduce_results() -> None:
    """The committed student files score what the committed results.json records.

    Within 1e-4 (0.01 mIoU points): another CPU or thread count sums the confusion-matrix
    inputs in another order, which moves the last digits (seen: 0.28093522 vs 0.28093513).
    """
    from mgd_lightning.evaluation import evaluate_student_file

    folder = SCRIPT.parent / "results" / "camvid"
    root = os.environ.get("MGD_CAMVID_ROOT")
    if not (folder / "results.json").is_file():
        pytest.skip("no committed student files yet: run benchmarks/camvid.py")
    if not root:
        pytest.skip("set MGD_CAMVID_ROOT to the real CamVid root")
    results = json.loads((folder / "results.json").read_text())
    assert results["weights_files"], "results.json records no student file"
    heldout = str(SPLITS / results["protocol"] / "heldout.txt")
    for entry in results["weights_files"].values():
        path = folder / entry["file"]
        assert sha256_file(path) == entry["sha256"], f"{path} differs from results.json"
        for split, source in (("val", "val"), ("heldout", heldout)):
            if entry.get(f"{split}_miou") is not None:
                scores = evaluate_student_file(path, root, source)
                assert scores["miou"] == pytest.approx(entry[f"{split}_miou"], abs=1e-4), (
                    path,
                    split,
                )


def test_camvid_benchmark_jobs_runs_stages_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--jobs 2: each stage its own worker process, the MGD stage after both teachers, one
    report at the end; a failing stage stops the run with its log named."""
    bench = _load()
    root = _fake_camvid(tmp_path / "camvid")
    out = tmp_path / "out"
    args = [
        "--data-root", str(root), "--out", str(out), "--seeds", "0",
        "--backbone-weights", str(_fake_imagenet_mbv2(tmp_path / "mbv2.safetensors")),
        "--weights-dir", str(tmp_path / "weights"), "--jobs", "2",
        "--stages", "teacher_deep", "teacher_wide", "mbv2_pre_sup", "mbv2_pre_mgd", "--", *TINY,
    ]
    assert bench.main(args) == 0
    base = out / "heldout_0006R0"
    trained = sorted(p.parent.name for p in base.rglob("stage.json"))
    assert trained == ["mbv2_pre_mgd", "mbv2_pre_sup", "teacher_deep", "teacher_wide"]
    printed = capsys.readouterr().out
    assert printed.index("1-8/s0/mbv2_pre_mgd: started") > max(
        printed.index("1-8/s0/teacher_deep: done"), printed.index("1-8/s0/teacher_wide: done"))
    assert sorted(p.name for p in (base / "logs").glob("*.log")) == [
        "1-8_s0_mbv2_pre_mgd.log", "1-8_s0_mbv2_pre_sup.log",
        "1-8_s0_teacher_deep.log", "1-8_s0_teacher_wide.log"]
    models = json.loads((base / "results.json").read_text())["partitions"]["1-8"]["models"]
    assert set(models) == {"teacher_deep", "teacher_wide", "teachers_combined",
                           "mbv2_pre_sup", "mbv2_pre_mgd"}

    # --retrain trains each stage again, in its own worker only: the MGD worker reuses them.
    assert bench.main(["--retrain", *args]) == 0
    log = (base / "logs" / "1-8_s0_mbv2_pre_mgd.log").read_text()
    assert "1-8/s0/teacher_deep: reusing" in log and "1-8/s0/teacher_wide: reusing" in log
    assert "reusing" not in (base / "logs" / "1-8_s0_teacher_deep.log").read_text()
    capsys.readouterr()

    bad = [*args[: args.index("--")], "--out", str(tmp_path / "bad"), "--",
           "--trainer.max_steps=not-a-number"]
    assert bench.main(bad) == 1
    printed = capsys.readouterr().out
    assert "1-8/s0/teacher_deep: FAILED" in printed and "mbv2_pre_mgd: started" not in printed
    assert "teacher_deep.log" in printed
