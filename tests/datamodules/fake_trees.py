"""Helpers shared by the datamodule tests: fake files and batch checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mgd_lightning.data.batch import LabeledBatch, UnlabeledPairBatch

H, W = 24, 32


def write_image(path: Path, seed: int, size: tuple[int, int] = (H, W), fmt: str = "png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
        path, format="JPEG" if fmt == "jpg" else "PNG"
    )


def write_mask(
    path: Path, values: Sequence[int], seed: int, size: tuple[int, int] = (H, W),
    palette: bool = False,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = rng.choice(np.asarray(values, dtype=np.uint8), size=size)
    img = Image.fromarray(array, mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette([(i * 37) % 256 for i in range(768)])
        img = Image.fromarray(array, mode="P")
        img.putpalette([(i * 37) % 256 for i in range(768)])
    img.save(path)


def write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))



def first_batch(loader: Any) -> Any:
    batch = next(iter(loader))
    return batch[0] if isinstance(batch, tuple) else batch


def check_train_batch(batch: dict[str, Any], b: int, bu: int, h: int, w: int) -> None:
    assert set(batch) == {"labeled", "unlabeled"}
    lab, unl = batch["labeled"], batch["unlabeled"]
    assert set(lab) == set(LabeledBatch.__required_keys__)
    assert set(unl) == set(UnlabeledPairBatch.__required_keys__)  # no cache keys
    assert lab["image"].shape == (b, 3, h, w) and lab["image"].dtype == torch.float32
    assert lab["mask"].shape == (b, h, w) and lab["mask"].dtype == torch.int64
    assert isinstance(lab["name"], list) and len(lab["name"]) == b
    for key in ("image_a", "image_b"):
        assert unl[key].shape == (bu, 3, h, w) and unl[key].dtype == torch.float32
    assert unl["cutmix_mask"].shape == (bu, 1, h, w)
    assert unl["cutmix_mask"].dtype == torch.float32
    assert set(unl["cutmix_mask"].unique().tolist()) <= {0.0, 1.0}
    assert all(a != b_ for a, b_ in zip(unl["name_a"], unl["name_b"], strict=True))
