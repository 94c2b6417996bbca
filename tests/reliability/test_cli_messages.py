"""The command line shows the library's message first, in a few lines, naming what is wrong.

Before, an error raised while LightningCLI built the model, the data or the teachers came as
a traceback of about 80 lines whose end was jsonargparse's ``Given value: Namespace(...)``, the
real message at line 28. ``--debug`` / ``MGD_DEBUG=1`` still give the full chain.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from _reliability_config import mgd_model, write_config

from mgd_lightning.cli import console_main
from mgd_lightning.models import DeepLabV3Plus

MAX_LINES = 8  # Lightning's "Seed set to 0" and the like, the message, the --debug hint


def _console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> list[str]:
    """Run the console entry point; return the stderr lines of the failed command."""
    monkeypatch.setattr(sys, "argv", ["mgd-lightning", *args])
    monkeypatch.delenv("MGD_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        console_main()
    assert info.value.code == 1
    return capsys.readouterr().err.strip().splitlines()


def _assert_short_and_first(lines: list[str], pattern: str) -> None:
    import re

    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    errors = [i for i, line in enumerate(lines) if line.startswith("mgd-lightning: error: ")]
    assert errors, "\n".join(lines)
    message = "\n".join(lines[errors[0] :])
    assert re.search(pattern, message, flags=re.S), message
    assert "--debug" in lines[-1]


def _data(**init_args: Any) -> dict[str, Any]:
    base = {"image_size": 32, "num_train": 32, "num_val": 4, "num_test": 4,
            "labeled_ratio": 0.25, "batch_size": 2}
    return {"class_path": "mgd_lightning.datamodules.SyntheticDataModule",
            "init_args": base | init_args}


def _save_network(path: Path, num_classes: int, head_channels: int) -> str:
    network = DeepLabV3Plus("resnet10t", num_classes=num_classes, head_channels=head_channels)
    torch.save(network.state_dict(), path)
    return str(path)


# (case id, config sections given a tmp folder, expected pattern: the message and what it names)
CASES: list[tuple[str, Any, str]] = [
    ("batch_size_0", lambda t: {"data": _data(batch_size=0)},
     r"`batch_size` must be a positive integer, got 0"),
    ("crop_size_0", lambda t: {"data": _data(crop_size=0)},
     r"`crop_size` must be a positive int or a \(height, width\) pair"),
    ("negative_lr", lambda t: {"model": mgd_model(lr=-1.0)},
     r"`lr` must be a finite number >= 0, got -1"),
    ("negative_pixel_weight", lambda t: {"model": mgd_model(pixel_weight=-1.0)},
     r"`pixel_weight` must be a finite number >= 0 .*got -1"),
    ("nan_image_weight", lambda t: {"model": mgd_model(image_weight=float("nan"))},
     r"`image_weight` must be a finite number >= 0 .*got nan"),
    ("E07_missing_data_root", lambda t: {"data": {
        "class_path": "mgd_lightning.datamodules.CamVidDataModule",
        "init_args": {"root": str(t / "nowhere")}}},
     r"nowhere does not exist"),
    ("E13_ratio_without_labeled_image", lambda t: {"data": _data(labeled_ratio=0.01)},
     r"leaves no labeled image"),
    ("E22_teachers_with_other_classes", lambda t: {"model": mgd_model(teacher_classes=5)},
     r"the teachers predict 5 classes but the student 6"),
    ("E18_teacher_file_holding_code", lambda t: {"model": mgd_model(
        deep_weights=_pickled_code(t / "evil.pt"))},
     r"refused to load '.*evil\.pt': it holds pickled Python objects"),
    ("E20_teacher_missing_keys", lambda t: {"model": mgd_model(
        deep_weights=_partial_state(t / "partial.pt"))},
     r"partial\.pt.*missing keys \(1\)"),
    ("E21_teacher_of_other_shape", lambda t: {"model": mgd_model(
        deep_weights=_save_network(t / "wide.pt", 6, 16))},
     r"wide\.pt.*shape mismatches"),
    ("empty_teacher_file", lambda t: {"model": mgd_model(deep_weights=_empty(t / "empty.pt"))},
     r"cannot read '.*empty\.pt' as a torch checkpoint"),
    ("missing_teacher_file", lambda t: {"model": mgd_model(deep_weights=str(t / "gone.pt"))},
     r"gone\.pt"),
]


def _pickled_code(path: Path) -> str:
    torch.save({"w": torch.ones(1), "payload": Path("x")}, path)
    return str(path)


def _partial_state(path: Path) -> str:
    state = DeepLabV3Plus("resnet10t", num_classes=6, head_channels=8).state_dict()
    state.pop(next(iter(state)))
    torch.save(state, path)
    return str(path)


def _empty(path: Path) -> str:
    path.write_bytes(b"")
    return str(path)


@pytest.mark.parametrize(("case", "sections", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_error_while_building_is_short_and_first(
    case: str,
    sections: Any,
    pattern: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, **sections(tmp_path))
    args = ("fit", "--config", str(config), "--trainer.fast_dev_run=1")
    lines = _console(monkeypatch, capsys, *args)
    _assert_short_and_first(lines, pattern)


def test_network_weights_for_another_dataset_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # E04 through the CLI: `num_classes` is linked from the data, so a network for another
    # dataset shows as weights of the wrong shape (E21), named with the file.
    weights = _save_network(tmp_path / "three.pt", 3, 8)
    config = write_config(tmp_path)
    lines = _console(
        monkeypatch, capsys, "fit", "--config", str(config),
        "--model.init_args.network.init_args.num_classes=3",
        "--model.init_args.network.init_args.weights=" + weights,
        "--trainer.fast_dev_run=1",
    )
    _assert_short_and_first(lines, r"three\.pt.*shape mismatches.*classifier")


def test_argument_error_starts_within_a_few_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["mgd-lightning", "fit", "--config",
                                      str(write_config(tmp_path)), "--model.init_args.lr=fast"])
    with pytest.raises(SystemExit) as info:
        console_main()
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: ") and len(lines) <= 15, "\n".join(lines)
    assert any(line.startswith("error: ") for line in lines[:4])


def test_debug_shows_the_whole_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, data=_data(batch_size=0))
    monkeypatch.setattr(
        sys, "argv", ["mgd-lightning", "fit", "--config", str(config), "--debug",
                      "--trainer.fast_dev_run=1"]
    )
    with pytest.raises(ValueError) as info:
        console_main()
    assert "batch_size" in str(info.value.__cause__ or info.value)


def test_the_installed_entry_point_prints_the_message_first(tmp_path: Path) -> None:
    config = write_config(tmp_path, data=_data(batch_size=0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MGD_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "mgd_lightning", "fit", "--config", str(config),
         "--trainer.fast_dev_run=1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 1
    _assert_short_and_first(done.stderr.strip().splitlines(), r"`batch_size` must be a positive")
    with_debug = subprocess.run(
        [sys.executable, "-m", "mgd_lightning", "fit", "--config", str(config),
         "--trainer.fast_dev_run=1"],
        capture_output=True, text=True, env=env | {"MGD_DEBUG": "1"}, timeout=300,
    )
    assert with_debug.returncode == 1 and "Traceback" in with_debug.stderr
