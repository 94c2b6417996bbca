"""Datasets: reading, label mapping, lazy checks, validate(), unlabeled pairs and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgd_lightning.data.batch import LabeledSample, UnlabeledPairSample
from mgd_lightning.data.datasets import (
    ImageDataset,
    SampleFiles,
    SegmentationDataset,
    UnlabeledPairDataset,
    check_files_exist,
    read_mask,
)
from mgd_lightning.data.transforms import train_transform


def _write(root: Path, name: str, mask: np.ndarray, size: tuple[int, int] | None = None,
           palette: bool = False) -> SampleFiles:
    h, w = size or mask.shape
    image = np.random.default_rng(len(name)).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / f"{name}.png")
    m = Image.fromarray(mask.astype(np.uint8), mode="P" if palette else "L")
    if palette:
        m.putpalette([255 - (i % 256) for i in range(768)])
    m.save(root / f"{name}_mask.png")
    return SampleFiles(name, root / f"{name}.png", root / f"{name}_mask.png")


def test_palette_png_reads_as_indices(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    files = _write(tmp_path, "p", mask, palette=True)
    assert Image.open(files.mask).mode == "P"  # type: ignore[arg-type]
    assert np.array_equal(read_mask(files.mask), mask)  # type: ignore[arg-type]
    sample = SegmentationDataset([files], num_classes=3)[0]
    assert sample["mask"].tolist() == [[0, 1], [2, 255]]


def test_sample_keys_types_and_label_map(tmp_path: Path) -> None:
    files = _write(tmp_path, "a", np.array([[0, 11], [10, 3]]))
    sample = SegmentationDataset([files], num_classes=11, label_map={11: 255})[0]
    assert set(sample) == set(LabeledSample.__annotations__)
    assert sample["image"].shape == (3, 2, 2) and sample["image"].dtype == torch.float32
    assert sample["mask"].dtype == torch.int64 and sample["name"] == "a"
    assert sample["mask"].tolist() == [[0, 255], [10, 3]]
    only_images = ImageDataset([files])[0]
    assert set(only_images) == {"image", "name"}


def test_rgb_mask_is_rejected(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"m\.png is a RGB image"):
        read_mask(tmp_path / "m.png")


def test_size_mismatch_names_file_and_sizes(tmp_path: Path) -> None:
    files = _write(tmp_path, "s", np.zeros((4, 6)), size=(5, 6))
    with pytest.raises(ValueError, match=r"'s'.*s_mask\.png.*image 6x5 \(WxH\), mask 6x4"):
        SegmentationDataset([files], num_classes=2)[0]


def test_out_of_range_values_name_file_and_values(tmp_path: Path) -> None:
    files = _write(tmp_path, "v", np.array([[0, 1], [7, 9]]))
    with pytest.raises(ValueError, match=r"v_mask\.png.*values \[7, 9\] outside \[0, 3\)"):
        SegmentationDataset([files], num_classes=3)[0]


def test_truncated_image_names_file(tmp_path: Path) -> None:
    files = _write(tmp_path, "t", np.zeros((32, 32)))
    data = files.image.read_bytes()
    files.image.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot read image .*t\.png"):
        SegmentationDataset([files], num_classes=2)[0]
    files.image.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*t\.png"):
        ImageDataset([files])[0]


def test_validate_lists_failures(tmp_path: Path) -> None:
    good = _write(tmp_path, "good", np.zeros((4, 4)))
    bad1 = _write(tmp_path, "bad1", np.full((4, 4), 5))
    bad2 = _write(tmp_path, "bad2", np.zeros((4, 4)), size=(3, 4))
    ds = SegmentationDataset([good, bad1, bad2], num_classes=2)
    with pytest.raises(ValueError, match=r"2 of 3 samples failed(.|\n)*bad1(.|\n)*bad2"):
        ds.validate()
    SegmentationDataset([good], num_classes=2).validate()


def test_missing_files_named_with_count(tmp_path: Path) -> None:
    files = [SampleFiles(f"x{i}", tmp_path / f"x{i}.png", tmp_path / f"x{i}_m.png")
             for i in range(7)]
    with pytest.raises(FileNotFoundError) as info:
        check_files_exist(files, need_masks=True, what="labeled set (l.txt)")
    msg = str(info.value)
    assert "14 file(s) of the labeled set (l.txt)" in msg
    assert "x0.png" in msg and "and 9 more" in msg


def _pair_dataset(tmp_path: Path, n: int = 6, same: bool = False) -> UnlabeledPairDataset:
    files = [_write(tmp_path, f"u{i}", np.zeros((20, 24))) for i in range(n)]
    return UnlabeledPairDataset(ImageDataset(files), train_transform(crop_size=16), same_image=same)


def test_pairs_are_two_different_images(tmp_path: Path) -> None:
    ds = _pair_dataset(tmp_path)
    torch.manual_seed(0)
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == set(UnlabeledPairSample.__annotations__)
        assert s["name_a"] == f"u{i}" and s["name_b"] != s["name_a"]
        assert not torch.equal(s["image_a"], s["image_b"])
        assert s["image_a"].shape == s["image_b"].shape == (3, 16, 16)
        assert s["cutmix_mask"].shape == (1, 16, 16) and s["cutmix_mask"].dtype == torch.float32


def test_pairs_are_reproducible_and_change_with_the_seed(tmp_path: Path) -> None:
    ds = _pair_dataset(tmp_path)

    def run(seed: int) -> list[str]:
        torch.manual_seed(seed)
        return [ds[i]["name_b"] for i in range(len(ds)) for _ in range(3)]

    assert run(0) == run(0)
    assert run(0) != run(1)
    partners = {ds[0]["name_b"] for _ in range(50)}
    assert len(partners) > 2  # the partner is redrawn each time (each epoch)


def test_same_image_switch_and_too_few_images(tmp_path: Path) -> None:
    ds = _pair_dataset(tmp_path, n=3, same=True)
    assert all(ds[i]["name_a"] == ds[i]["name_b"] for i in range(3))
    files = [_write(tmp_path, "only", np.zeros((4, 4)))]
    with pytest.raises(ValueError, match="at least 2"):
        UnlabeledPairDataset(ImageDataset(files), train_transform(crop_size=4))


def test_cutmix_mask_statistics(tmp_path: Path) -> None:
    ds = _pair_dataset(tmp_path)
    torch.manual_seed(0)
    masks = torch.stack([ds[i % len(ds)]["cutmix_mask"] for i in range(300)])
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    share = masks.mean(dim=(1, 2, 3))
    # 3 toggling boxes of p/3 each, p ~ U(0.25, 0.5): overlaps cancel, so on average a quarter
    # of the pixels come from image_b (docs/data.md); every mask takes some, none most.
    assert 0.2 < share.mean().item() < 0.32
    assert share.min().item() > 0.02 and share.max().item() <= 0.5 + 1e-6
    assert len({tuple(m.flatten().tolist()) for m in masks[:20]}) == 20  # all different
