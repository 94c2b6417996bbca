"""PascalVOCDataModule: CPS subsets, U2PL path lists, palette labels, variable val sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_trees import check_train_batch, first_batch, write_lines

from mgd_lightning.datamodules import PascalVOCDataModule
from mgd_lightning.datamodules.voc import VOC_PALETTE

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def test_cps_subsets_and_palette_labels(voc_root: Path) -> None:
    dm = PascalVOCDataModule(voc_root, partition="1-16", batch_size=2, crop_size=16)
    assert dm.num_classes == 21 and dm.ignore_index == 255 and dm.eval_batch_size == 1
    assert VOC_PALETTE[1] == (128, 0, 0) and VOC_PALETTE[15] == (192, 128, 128)
    dm.setup("fit")
    assert dm.labeled_dataset is not None and dm.unlabeled_dataset is not None
    assert (len(dm.labeled_dataset), len(dm.unlabeled_dataset)) == (2, 30)
    check_train_batch(first_batch(dm.train_dataloader()), 2, 2, 16, 16)
    sizes = set()
    values: set[int] = set()
    for batch in dm.val_dataloader():  # variable sizes, batch 1
        sizes.add(tuple(batch["image"].shape[-2:]))
        values |= set(torch.unique(batch["mask"]).tolist())
    assert len(sizes) == 4
    assert values <= {*range(21), 255} and len(values) > 10  # indices, not palette colours


def test_variable_sizes_need_batch_one(voc_root: Path) -> None:
    dm = PascalVOCDataModule(voc_root, eval_batch_size=2)
    dm.setup("validate")
    with pytest.raises(ValueError, match=r"different sizes.*eval_batch_size=1"):
        first_batch(dm.val_dataloader())


def test_u2pl_path_lists(voc_root: Path, tmp_path: Path) -> None:
    lines = [f"train_aug/image/2007_{i:06d}.jpg train_aug/label/2007_{i:06d}.png"
             for i in range(32)]
    write_lines(tmp_path / "labeled.txt", lines[:4])
    write_lines(tmp_path / "unlabeled.txt", lines[4:])
    write_lines(tmp_path / "val.txt", [f"val/image/2008_{i:06d}.jpg val/label/2008_{i:06d}.png"
                                       for i in range(4)])
    dm = PascalVOCDataModule(voc_root, labeled_split=tmp_path / "labeled.txt",
                             unlabeled_split=tmp_path / "unlabeled.txt",
                             val_split=tmp_path / "val.txt", batch_size=2, crop_size=16)
    dm.setup("fit")
    assert dm.labeled_dataset is not None
    assert dm.labeled_dataset.names == [f"2007_{i:06d}" for i in range(4)]
    assert len(dm.eval_datasets["val"]) == 4


def test_missing_split_file_explains_layout(voc_root: Path) -> None:
    (voc_root / "subset_train_aug" / "train_aug_labeled_1-8.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"(?s)train_aug_labeled_1-8\.txt.*subset_train"):
        PascalVOCDataModule(voc_root).setup("fit")
