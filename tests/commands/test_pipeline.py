"""``mgd-lightning pipeline``: shipped or retrained teachers, students, report; smallest sizes."""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mgd_lightning.cli import main as cli_main
from mgd_lightning.commands.pipeline import build_parser, main
from mgd_lightning.models import DeepLabV3Plus, read_manifest
from mgd_lightning.pipeline import (
    ABLATION,
    LONGER,
    SAME_TIME,
    STAGES,
    TEACHERS,
    _max_time,
    run_pipeline,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "quickstart"


STUDENTS = [s for s in STAGES if s not in TEACHERS]
#: what the smoke runs train: the students, the plateau check and the ablation
TRAINED = [*STUDENTS, LONGER, *ABLATION]


def _smoke(out: Path, config: str) -> Path:
    status = main(
        [
            "--config",
            os.fspath(CONFIGS / config),
            "--smoke",
            "--config_dir",
            os.fspath(CONFIGS),
            "--out_dir",
            os.fspath(out),
            "--progress_every",
            "1",
            "--ablation",
            "--longer_baseline",
            "4",
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main job with the shipped teachers, tiny students (two steps a stage), shared."""
    return _smoke(tmp_path_factory.mktemp("pipeline"), "pipeline.yaml")


def test_smoke_run_writes_results(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "results.json").read_text())
    assert set(results["models"]) == {*STAGES, *TRAINED}
    for name in results["models"]:
        row = results["models"][name]
        for key in ("miou", "params", "seconds", "flops", "per_class_iou", "steps"):
            assert key in row, (name, key)
        assert 0.0 <= row["miou"] <= 1.0
        assert row["params"] > 0 and row["flops"] > 0
        assert set(row["per_class_iou"]) == set(results["class_names"])
    for name in (*STUDENTS, *ABLATION):
        assert results["models"][name]["steps"] == 2
    assert results["models"][LONGER]["steps"] == 8  # longer_baseline: 4
    # the teachers are the shipped ones, not trained: their record comes from the manifest
    manifest = read_manifest("synthetic")
    for role in ("deep", "wide"):
        row = results["models"][f"teacher_{role}"]
        assert row["reused"] is True
        assert row["checkpoint"].endswith(manifest["teachers"][role]["file"])
        assert row["steps"] == manifest["teachers"][role]["steps"]
        assert not (smoke_run / f"teacher_{role}").exists()
    assert results["split"] == "test"
    markdown = (smoke_run / "results.md").read_text()
    assert "| Student, MGD |" in markdown and "figure.png" in markdown
    assert "Ablation" in markdown and "4.0 times the steps" in markdown
    with Image.open(smoke_run / "figure.png") as figure:
        # 6 columns (input, ground truth, 4 models) of 4 images, 128 px cells
        assert figure.width > 6 * 128 and figure.height > 4 * 128


def test_smoke_run_stage_folders(smoke_run: Path) -> None:
    for name in TRAINED:
        record = json.loads((smoke_run / name / "stage.json").read_text())
        assert Path(record["checkpoint"]).is_file()
        assert Path(record["checkpoint"]).is_relative_to(smoke_run / name)
    for name in ("student_mgd", *ABLATION):
        args = json.loads((smoke_run / name / "stage.json").read_text())["args"]
        assert any("teachers.init_args.shipped=" in a and "manifest.json" in a for a in args)


#: The teacher recipe fine-tunes the real ImageNet MobileNet-v2 of ../shared/weights; it needs
#: that file and DeepLabV3Plus's ImageNet-weights options (torchvision layout, input_norm).
IMAGENET_MBV2 = ROOT.parent / "shared/weights/mobilenet_v2_imagenet"
needs_imagenet_recipe = pytest.mark.skipif(
    "input_norm" not in inspect.signature(DeepLabV3Plus).parameters
    or not IMAGENET_MBV2.is_dir(),
    reason="the teacher recipe needs the ImageNet MobileNet-v2 file and DeepLabV3Plus(input_norm)",
)


@needs_imagenet_recipe
def test_retrained_teachers_are_shipped_and_used(tmp_path: Path) -> None:
    out = _smoke(tmp_path, "teachers.yaml")
    manifest = read_manifest(out / "teachers")
    results = json.loads((out / "results.json").read_text())
    for role in ("deep", "wide"):
        assert manifest["teachers"][role]["steps"] == 2
        assert results["models"][f"teacher_{role}"]["reused"] is False
    assert results["teachers"] == str(out / "teachers" / "manifest.json")


def test_reuse_skips_finished_stages(smoke_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = {
        name: Path(json.loads((smoke_run / name / "stage.json").read_text())["checkpoint"])
        for name in STUDENTS
    }
    before = {name: path.stat().st_mtime_ns for name, path in checkpoints.items()}
    capsys.readouterr()
    results = run_pipeline(
        config_dir=os.fspath(CONFIGS),
        out_dir=os.fspath(smoke_run),
        teachers="synthetic",
        smoke=True,
        reuse=True,
        same_time_baseline=True,
    )
    printed = capsys.readouterr().out
    for name, path in checkpoints.items():
        assert path.stat().st_mtime_ns == before[name], f"{name} was retrained"
        assert f"{name}: reusing" in printed
        assert results["models"][name]["reused"] is True
    assert "wrote" in printed and "results.json" in printed
    # the one stage not reused: the labeled-only student for the MGD student's wall time
    assert results["models"][SAME_TIME]["reused"] is False
    assert f"{SAME_TIME}: training" in printed


def test_train_teachers_ships_and_uses_them(tmp_path: Path) -> None:
    # teachers="train" with any teacher configs: here the labeled-only student's, tiny
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("student_supervised", "student_mgd"):
        shutil.copy(CONFIGS / f"{name}.yaml", configs / f"{name}.yaml")
    for name in TEACHERS:
        shutil.copy(CONFIGS / "student_supervised.yaml", configs / f"{name}.yaml")
    out = tmp_path / "out"
    results = run_pipeline(
        config_dir=os.fspath(configs), out_dir=os.fspath(out), teachers="train", smoke=True
    )
    manifest = read_manifest(out / "teachers")
    for role in ("deep", "wide"):
        assert manifest["teachers"][role]["steps"] == 2
        assert results["models"][f"teacher_{role}"]["reused"] is False
        assert (out / f"teacher_{role}" / "stage.json").is_file()
    assert results["teachers"] == str(out / "teachers" / "manifest.json")
    args = json.loads((out / "student_mgd" / "stage.json").read_text())["args"]
    assert f"--model.init_args.teachers.init_args.shipped={results['teachers']}" in args


@pytest.mark.parametrize(
    "stage",
    [*STUDENTS, *(pytest.param(t, marks=needs_imagenet_recipe) for t in TEACHERS)],
)
def test_stage_config_parses(stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", os.fspath(CONFIGS / f"{stage}.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "SyntheticDataModule" in capsys.readouterr().out


@pytest.mark.parametrize(("config", "teachers"), [("pipeline", "synthetic"), ("teachers", "train")])
def test_pipeline_config_parses(
    config: str, teachers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--config", os.fspath(CONFIGS / f"{config}.yaml"), "--print_config"])
    printed = capsys.readouterr().out
    assert "out_dir: runs/quickstart" in printed and f"teachers: {teachers}" in printed


def test_unknown_stage_args_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stage_args"):
        run_pipeline(out_dir=os.fspath(tmp_path), stage_args={"teacher": ["--x"]})


def test_flags_stand_alone_and_max_time() -> None:
    parser = build_parser()
    options = parser.parse_args(["--reuse", "--smoke", "--seed", "1"])
    assert options.reuse is True and options.smoke is True and options.seed == 1
    assert parser.parse_args(["--reuse", "false"]).reuse is False
    assert parser.parse_args(["--no_reuse"]).reuse is False
    assert parser.parse_args(["--same_time_baseline"]).same_time_baseline is True
    assert parser.parse_args([]).same_time_baseline is False
    assert _max_time(3725.4) == "00:01:02:05"
