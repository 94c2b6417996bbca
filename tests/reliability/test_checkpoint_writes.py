"""A checkpoint is never lost: writes are atomic in the checkpoint's own folder, whatever $TMPDIR.

Lightning's default writer moves a temporary file from ``$TMPDIR``; across filesystems that move
is a copy into ``last.ckpt`` itself, and a kill during it left a 0-byte ``last.ckpt``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from _reliability_config import write_config

from mgd_lightning.checkpointing import AtomicCheckpointIO, remove_stale_temporaries
from mgd_lightning.cli import main
from mgd_lightning.models import load_checkpoint

SHM = Path("/dev/shm")
needs_shm = pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm (another filesystem)")


@pytest.fixture
def other_filesystem_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``$TMPDIR`` on a tmpfs (another filesystem than the run), private to the test."""
    folder = Path(tempfile.mkdtemp(dir=SHM))
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _cli_checkpoint_io(tmp_path: Path) -> Any:
    cli = main(["--config", str(write_config(tmp_path))], run=False)
    return cli.trainer.strategy.checkpoint_io


def test_the_cli_trainer_writes_atomically(tmp_path: Path) -> None:
    assert type(_cli_checkpoint_io(tmp_path)) is AtomicCheckpointIO


@needs_shm
def test_write_interrupted_at_its_last_step_keeps_the_previous_file(
    tmp_path: Path, other_filesystem_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = _cli_checkpoint_io(tmp_path)
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(1000)}, target)
    previous = target.read_bytes()

    def half_copy(source: Any, destination: Any, **kwargs: Any) -> None:
        Path(destination).write_bytes(Path(source).read_bytes()[:100])
        raise KeyboardInterrupt  # a kill during the copy over the target

    def interrupted_rename(source: Any, destination: Any) -> None:
        raise KeyboardInterrupt  # a kill just before the rename

    # Interrupt whichever final step the writer takes: a copy (across filesystems) or a rename.
    monkeypatch.setattr(shutil, "copyfile", half_copy)
    monkeypatch.setattr(os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert target.read_bytes() == previous
    assert load_checkpoint(target)["global_step"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    left = [p for p in other_filesystem_tmpdir.iterdir() if p.is_file()]
    assert not left, f"a temporary file was left in $TMPDIR: {left}"


_SAVER = """
import sys, torch
from mgd_lightning.cli import main
io = main(["--config", sys.argv[1]], run=False).trainer.strategy.checkpoint_io
payload = torch.randn(10_000_000)  # 40 MB, as a real student's checkpoint
step = 0
while True:
    step += 1
    io.save_checkpoint({"global_step": step, "w": payload}, sys.argv[2])
    print(step, flush=True)
"""


@needs_shm
def test_kill_during_repeated_saves_never_breaks_last_ckpt(
    tmp_path: Path, other_filesystem_tmpdir: Path
) -> None:
    config = write_config(tmp_path)
    target = tmp_path / "checkpoints" / "last.ckpt"
    env = {**os.environ, "TMPDIR": str(other_filesystem_tmpdir), "OMP_NUM_THREADS": "1"}
    rng = random.Random(0)
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(config), str(target)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline(), "the saver did not save"  # one save is done
            time.sleep(rng.uniform(0.05, 0.5))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert load_checkpoint(target)["global_step"] >= 1
    # (wandb, imported with Lightning, leaves empty folders there: only files count)
    left = [p for p in other_filesystem_tmpdir.iterdir() if p.is_file()]
    assert not left, f"a kill left temporary files in $TMPDIR: {left}"
    # The temporaries the kills left beside the target go at the next save into the folder.
    AtomicCheckpointIO().save_checkpoint({"global_step": 0}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_only_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f".last.ckpt.{int(dead.stdout)}-0a1b2c3d.tmp"
    alive = tmp_path / f".last.ckpt.{os.getppid()}-0a1b2c3d.tmp"
    other = tmp_path / "notes.tmp"
    for path in (stale, alive, other):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])
