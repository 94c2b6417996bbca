"""A fit killed with SIGKILL mid-epoch resumes from last.ckpt to the same weights, bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _tiny_config import mgd_model, write_config

#: The tiny MGD fit: 16 steps (12 per epoch, so the run crosses an epoch boundary), a
#: checkpoint every 2 steps.
CALLBACKS = [
    {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {
            "save_last": True,
            "every_n_train_steps": 2,
            "save_top_k": -1,
            "filename": "{step}",
        },
    }
]


def _write_tiny(path: Path) -> Path:
    return write_config(
        path, model=mgd_model(), data={"num_val": 4, "num_test": 4},
        max_steps=16, limit_val_batches=2, callbacks=CALLBACKS,
    )


def _command(config: Path, root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mgd_lightning",
        "fit",
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(root),
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    config = _write_tiny(tmp_path / "tiny.yaml")

    reference = tmp_path / "uninterrupted"
    done = subprocess.run(
        _command(config, reference), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _command(config, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    try:
        # Kill once the step-8 checkpoint exists (last.ckpt then holds step 6 or 8): mid-epoch,
        # 12 steps per epoch.
        while not (killed / "checkpoints" / "step=8.ckpt").exists():
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no checkpoint appeared in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    last = killed / "checkpoints" / "last.ckpt"
    step_at_kill = torch.load(last, weights_only=True)["global_step"]
    assert 6 <= step_at_kill < 12, "the kill must land mid-epoch"

    resumed = subprocess.run(
        _command(config, killed, "--ckpt_path", str(last)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = _state(reference / "checkpoints" / "last.ckpt")
    actual = _state(killed / "checkpoints" / "last.ckpt")
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 16
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"
    # The step-12 (epoch boundary, after validation) checkpoints agree as well.
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            _state(reference / "checkpoints" / "step=12.ckpt").values(),
            _state(killed / "checkpoints" / "step=12.ckpt").values(),
            strict=True,
        )
    )


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_a_half_written_checkpoint_never_loads_as_valid(tmp_path: Path, fraction: float) -> None:
    from mgd_lightning.models import load_checkpoint

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "global_step": 3}, good)
    data = good.read_bytes()
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=r"broken\.ckpt"):
        load_checkpoint(broken)


def test_checkpoint_writer_leaves_the_previous_file_when_a_write_fails(
    tmp_path: Path, monkeypatch
) -> None:
    # The library's writer (mgd_lightning.checkpointing, installed by the CLI) writes a
    # temporary file beside the target and renames it on success: a failure mid-write leaves
    # the previous file intact and no partial file behind.
    from mgd_lightning.checkpointing import atomic_save

    target = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, target)
    original = target.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match=r"disk full"):
        atomic_save({"step": 2}, target)
    assert target.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
