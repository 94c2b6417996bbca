"""Masks are read as their true values: a 16-bit value is checked before any cast to uint8.

Before the fix, 16-bit masks wrapped modulo 256 first: 256-261 became classes 0-5 (even with
``validate()``) and 300 was reported as 44.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgd_lightning.data.datasets import SampleFiles, SegmentationDataset, read_mask


def _sample(folder: Path, values: list[int]) -> SampleFiles:
    mask = np.array([values], dtype=np.uint16)
    Image.fromarray(np.zeros((1, len(values), 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(mask).save(folder / "a_mask.png")  # a 16-bit grayscale PNG
    return SampleFiles("a", folder / "a.png", folder / "a_mask.png")


def test_sixteen_bit_mask_keeps_its_values(tmp_path: Path) -> None:
    files = _sample(tmp_path, [0, 5, 255, 300, 1000])
    assert read_mask(files.mask).tolist() == [[0, 5, 255, 300, 1000]]  # type: ignore[arg-type]


@pytest.mark.parametrize("label_map", [None, {11: 255}])
def test_values_above_255_are_reported_as_they_are(
    tmp_path: Path, label_map: dict[int, int] | None
) -> None:
    dataset = SegmentationDataset(
        [_sample(tmp_path, [0, 1, 256, 261, 300])], num_classes=6, label_map=label_map
    )
    with pytest.raises(ValueError, match=r"a_mask\.png.*values \[256, 261, 300\] outside \[0, 6\)"):
        dataset.read(0)
    with pytest.raises(ValueError, match=r"values \[256, 261, 300\]"):
        dataset.validate()


def test_valid_sixteen_bit_mask_is_read_as_class_indices(tmp_path: Path) -> None:
    dataset = SegmentationDataset(
        [_sample(tmp_path, [0, 5, 255, 11])], num_classes=6, label_map={11: 255}
    )
    mask = dataset.read(0).mask
    assert mask is not None and mask.dtype == np.uint8
    assert mask.tolist() == [[0, 5, 255, 255]]
