"""CityscapesDataModule: the CPS tab-separated layout and the official layout with labelIds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_trees import check_train_batch, first_batch
from PIL import Image

from mgd_lightning.datamodules import CityscapesDataModule
from mgd_lightning.datamodules.cityscapes import CITYSCAPES_LABEL_TO_TRAIN_ID

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def test_label_id_table() -> None:
    table = CITYSCAPES_LABEL_TO_TRAIN_ID
    assert table[7] == 0 and table[8] == 1 and table[26] == 13 and table[33] == 18
    assert table[0] == table[6] == table[9] == table[-1] == 255
    assert sorted(v for v in table.values() if v != 255) == list(range(19))


def test_cps_layout(city_cps_root: Path) -> None:
    dm = CityscapesDataModule(city_cps_root, batch_size=2, crop_size=16)
    assert dm.layout == "cps" and dm.label_map is None and dm.num_classes == 19
    dm.setup("fit")
    assert dm.labeled_dataset is not None and dm.labeled_dataset.names == [
        "jena_000000_000019", "jena_000001_000019"]
    check_train_batch(first_batch(dm.train_dataloader()), 2, 2, 16, 16)
    val = first_batch(dm.val_dataloader())
    assert val["image"].shape == (2, 3, 24, 32)


def test_official_layout_maps_label_ids(city_official_root: Path) -> None:
    dm = CityscapesDataModule(city_official_root, labeled_ratio=0.25, batch_size=2, crop_size=16)
    assert dm.layout == "cityscapes" and dm.label_type == "labelIds"
    dm.setup("fit")
    assert dm.labeled_dataset is not None and len(dm.labeled_dataset) == 4
    check_train_batch(first_batch(dm.train_dataloader()), 2, 2, 16, 16)
    dataset = dm.eval_datasets["val"]
    name = dataset.names[0]
    stored = np.asarray(Image.open(city_official_root / "gtFine" / "val" / "frankfurt"
                                   / f"{name}_gtFine_labelIds.png"))
    mapped = dataset[0]["mask"].numpy()
    expected = np.vectorize(CITYSCAPES_LABEL_TO_TRAIN_ID.__getitem__)(stored)
    assert np.array_equal(mapped, expected)
    assert set(np.unique(mapped).tolist()) == {*range(19), 255}


def test_official_layout_id_split_files(city_official_root: Path, tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("aachen_000003_000019\naachen_000005_000019\n")
    dm = CityscapesDataModule(city_official_root, labeled_split=tmp_path / "l.txt",
                              batch_size=2)
    dm.setup("fit")
    assert dm.unlabeled_dataset is not None and len(dm.unlabeled_dataset) == 14


def test_official_layout_needs_a_partition(city_official_root: Path) -> None:
    with pytest.raises(ValueError, match="needs a partition"):
        CityscapesDataModule(city_official_root).setup("fit")


def test_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither `leftImg8bit/`"):
        CityscapesDataModule(tmp_path)


def test_label_ids_read_as_train_ids_are_rejected(city_official_root: Path) -> None:
    dm = CityscapesDataModule(city_official_root, label_type="trainIds", labeled_ratio=0.25)
    with pytest.raises(FileNotFoundError, match="labelTrainIds"):
        dm.setup("fit")
