"""Damaged, random and malicious weight files get the library's named errors.

Before: a damaged ``.safetensors`` raised ``SafetensorError: header too large`` without the
file's name; random bytes were reported as "pickled code"; the refusal repeated torch's advice
to retry with ``weights_only=False``, the unsafe option.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mgd_lightning.models import load_checkpoint
from mgd_lightning.models.weights import load_state_dict_file


def test_damaged_safetensors_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(3)}, str(good))
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\xff" * 8 + good.read_bytes()[8:])  # header length 2**64 - 1
    with pytest.raises(ValueError, match=r"damaged\.safetensors.*truncated, damaged"):
        load_state_dict_file(damaged)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_are_not_called_pickled_code(tmp_path: Path, seed: int) -> None:
    noise = tmp_path / "noise.pt"
    noise.write_bytes(random.Random(seed).randbytes(5000))
    with pytest.raises(ValueError) as info:
        load_checkpoint(noise)
    message = str(info.value)
    assert "noise.pt" in message and "not a torch file" in message
    assert "pickled" not in message
    assert "weights_only" not in message


def test_refusal_names_the_class_and_never_suggests_the_unsafe_option(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "payload": Path("x")}, evil)
    with pytest.raises(ValueError) as info:
        load_checkpoint(evil)
    message = str(info.value)
    assert message.startswith(f"refused to load {str(evil)!r}")
    assert "PosixPath" in message
    assert "weights_only" not in message


def test_empty_file_is_damaged_not_malicious(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot read .*empty\.pt") as info:
        load_checkpoint(empty)
    assert "weights_only" not in str(info.value)
    assert os.path.getsize(empty) == 0
