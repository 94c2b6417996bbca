"""Resuming and re-running point at the right files.

Before: a second ``fit`` in the same root wrote ``last-v1.ckpt`` beside a stale ``last.ckpt``;
``--ckpt_path last`` with a mistyped root only warned and trained from scratch; and ``last``
bypassed the library's checks (a truncated file gave a bare ``EOFError``, a malicious one
torch's ``UnpicklingError``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _reliability_config import write_config

from mgd_lightning.cli import main


def _fit(config: Path, root: Path, *extra: str) -> None:
    main(
        [
            "fit",
            "--config",
            str(config),
            f"--trainer.default_root_dir={root}",
            "--trainer.limit_val_batches=0",
            *extra,
        ]
    )


def _step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def test_second_fit_in_the_same_root_makes_last_ckpt_the_newest(tmp_path: Path) -> None:
    config, root = write_config(tmp_path), tmp_path / "run"
    _fit(config, root, "--trainer.max_steps=2")
    _fit(config, root, "--trainer.max_steps=3")
    folder = root / "checkpoints"
    assert _step(folder / "last.ckpt") == 3
    assert not list(folder.glob("last-v*.ckpt"))


def test_ckpt_path_last_resumes_from_the_root(tmp_path: Path) -> None:
    config, root = write_config(tmp_path), tmp_path / "run"
    _fit(config, root, "--trainer.max_steps=2")
    _fit(config, root, "--trainer.max_steps=3", "--ckpt_path=last")
    assert _step(root / "checkpoints" / "last.ckpt") == 3


def test_ckpt_path_last_without_a_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path last: .*mistyped.*checkpoints"):
        _fit(write_config(tmp_path), tmp_path / "mistyped", "--trainer.max_steps=1",
             "--ckpt_path=last")
    assert not (tmp_path / "mistyped" / "checkpoints").exists() or not list(
        (tmp_path / "mistyped" / "checkpoints").iterdir()
    ), "it trained from scratch"


def _last(root: Path) -> Path:
    folder = root / "checkpoints"
    folder.mkdir(parents=True)
    return folder / "last.ckpt"


def test_ckpt_path_last_truncated_gives_the_named_error(tmp_path: Path) -> None:
    last = _last(tmp_path / "run")
    torch.save({"state_dict": {"w": torch.ones(1000)}, "global_step": 3}, last)
    last.write_bytes(last.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"last\.ckpt.*truncated"):
        _fit(write_config(tmp_path), tmp_path / "run", "--trainer.max_steps=1",
             "--ckpt_path=last")


def test_ckpt_path_last_holding_code_is_refused(tmp_path: Path) -> None:
    last = _last(tmp_path / "run")
    torch.save({"state_dict": {}, "payload": Path("x")}, last)
    with pytest.raises(ValueError, match=r"refused to load .*last\.ckpt"):
        _fit(write_config(tmp_path), tmp_path / "run", "--trainer.max_steps=1",
             "--ckpt_path=last")
