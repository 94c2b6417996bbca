"""Tiny fake dataset trees, one per layout, built in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_trees import H, W, write_image, write_lines, write_mask


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    """CamVid layout: 32 train, 6 val, splits 1-8 (4/28) and 1-4 (8/24)."""
    root = tmp_path / "camvid"
    splits = {"train": [f"tr_{i:03d}" for i in range(32)], "val": [f"va_{i:03d}" for i in range(6)]}
    for split, ids in splits.items():
        for k, name in enumerate(ids):
            write_image(root / "images" / split / f"{name}.png", seed=k)
            write_mask(root / "labels" / split / f"{name}.png", list(range(12)), seed=k)
        write_lines(root / f"{split}.txt", ids)
    train = splits["train"]
    for folder, n in (("1-8", 4), ("1-4", 8)):
        write_lines(root / "splits" / folder / "labeled.txt", train[:n])
        write_lines(root / "splits" / folder / "unlabeled.txt", train[n:])
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """VOC train_aug layout with JPEG images and palette PNG labels (variable val sizes)."""
    root = tmp_path / "pascal_voc"
    train = [f"2007_{i:06d}" for i in range(32)]
    val = [f"2008_{i:06d}" for i in range(4)]
    values = [*range(21), 255]
    for k, name in enumerate(train):
        write_image(root / "train_aug" / "image" / f"{name}.jpg", k, fmt="jpg")
        write_mask(root / "train_aug" / "label" / f"{name}.png", values, k, palette=True)
    for k, name in enumerate(val):
        size = (H + 2 * k, W)
        write_image(root / "val" / "image" / f"{name}.jpg", k, size=size, fmt="jpg")
        write_mask(root / "val" / "label" / f"{name}.png", values, k, size=size, palette=True)
    write_lines(root / "train_aug.txt", train)
    write_lines(root / "val.txt", val)
    for r, n in (("1-16", 2), ("1-8", 4)):
        write_lines(root / "subset_train_aug" / f"train_aug_labeled_{r}.txt", train[:n])
        write_lines(root / "subset_train_aug" / f"train_aug_unlabeled_{r}.txt", train[n:])
    return root


@pytest.fixture
def city_cps_root(tmp_path: Path) -> Path:
    """CPS Cityscapes layout: tab-separated path lists, trainId labels."""
    root = tmp_path / "city"
    names = {"train": [f"jena_{i:06d}_000019" for i in range(16)],
             "val": [f"lindau_{i:06d}_000019" for i in range(3)]}
    for split, ids in names.items():
        lines = []
        for k, name in enumerate(ids):
            write_image(root / "images" / split / f"{name}.png", k)
            write_mask(root / "segmentation" / split / f"{name}_gtFine.png",
                       [*range(19), 255], k)
            lines.append(f"/images/{split}/{name}.png\t/segmentation/{split}/{name}_gtFine.png")
        write_lines(root / "config_new" / f"{split}.txt", lines)
        if split == "train":
            sub = root / "config_new" / "subset_train"
            write_lines(sub / "train_aug_labeled_1-8.txt", lines[:2])
            write_lines(sub / "train_aug_unlabeled_1-8.txt", lines[2:])
    return root


@pytest.fixture
def city_official_root(tmp_path: Path) -> Path:
    """Official Cityscapes layout with labelIds (0-33)."""
    root = tmp_path / "cityscapes"
    for split, city, n in (("train", "aachen", 16), ("val", "frankfurt", 3)):
        for k in range(n):
            name = f"{city}_{k:06d}_000019"
            write_image(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", k)
            write_mask(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png",
                       list(range(34)), k)
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """FolderDataModule layout with a YAML class file, 8 train, 3 val, 6 unlabeled."""
    root = tmp_path / "mydata"
    root.mkdir()
    (root / "classes.yaml").write_text(
        "class_names: [background, road, car]\n"
        "palette: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]\n"
        "ignore_index: 255\n"
    )
    for split, n in (("train", 8), ("val", 3)):
        for k in range(n):
            write_image(root / split / "images" / f"{split}{k}.png", k)
            write_mask(root / split / "masks" / f"{split}{k}.png", [0, 1, 2, 255], k)
    for k in range(6):
        write_image(root / "unlabeled" / f"u{k}.jpg", 100 + k, fmt="jpg")
    return root

