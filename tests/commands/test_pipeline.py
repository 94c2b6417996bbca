"""``mgd-lightning pipeline``: the four stages end to end in the smallest configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from mgd_lightning.cli import main as cli_main
from mgd_lightning.commands.pipeline import build_parser, main
from mgd_lightning.pipeline import SAME_TIME, STAGES, _max_time, run_pipeline

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "quickstart"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``--smoke`` run (tiny images, tiny networks, two steps a stage), shared by the tests."""
    out = tmp_path_factory.mktemp("pipeline")
    status = main(
        [
            "--config",
            os.fspath(CONFIGS / "pipeline.yaml"),
            "--smoke",
            "--config_dir",
            os.fspath(CONFIGS),
            "--out_dir",
            os.fspath(out),
            "--progress_every",
            "1",
        ]
    )
    assert status == 0
    return out


def test_smoke_run_writes_results(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "results.json").read_text())
    assert set(results["models"]) == set(STAGES)
    for name in STAGES:
        row = results["models"][name]
        for key in ("miou", "params", "seconds", "flops", "per_class_iou", "steps"):
            assert key in row, (name, key)
        assert 0.0 <= row["miou"] <= 1.0
        assert row["params"] > 0 and row["flops"] > 0 and row["steps"] == 2
        assert set(row["per_class_iou"]) == set(results["class_names"])
    assert results["split"] == "test"
    markdown = (smoke_run / "results.md").read_text()
    assert "| Student, MGD |" in markdown and "figure.png" in markdown
    with Image.open(smoke_run / "figure.png") as figure:
        # 6 columns (input, ground truth, 4 models) of 4 images, 128 px cells
        assert figure.width > 6 * 128 and figure.height > 4 * 128


def test_smoke_run_stage_folders(smoke_run: Path) -> None:
    for name in STAGES:
        record = json.loads((smoke_run / name / "stage.json").read_text())
        assert Path(record["checkpoint"]).is_file()
        assert Path(record["checkpoint"]).is_relative_to(smoke_run / name)
    mgd_args = json.loads((smoke_run / "student_mgd" / "stage.json").read_text())["args"]
    assert any(str(smoke_run / "teacher_deep") in a for a in mgd_args)


def test_reuse_skips_finished_stages(smoke_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = {
        name: Path(json.loads((smoke_run / name / "stage.json").read_text())["checkpoint"])
        for name in STAGES
    }
    before = {name: path.stat().st_mtime_ns for name, path in checkpoints.items()}
    capsys.readouterr()
    results = run_pipeline(
        config_dir=os.fspath(CONFIGS),
        out_dir=os.fspath(smoke_run),
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


@pytest.mark.parametrize("stage", STAGES)
def test_stage_config_parses(stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", os.fspath(CONFIGS / f"{stage}.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "SyntheticDataModule" in capsys.readouterr().out


def test_pipeline_config_parses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--config", os.fspath(CONFIGS / "pipeline.yaml"), "--print_config"])
    assert "out_dir: runs/quickstart" in capsys.readouterr().out


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
