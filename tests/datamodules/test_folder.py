"""FolderDataModule: user folders with a YAML/JSON class file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_trees import check_train_batch, first_batch, write_image

from mgd_lightning.datamodules import FolderDataModule
from mgd_lightning.datamodules.folder import read_class_file

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def test_yaml_metadata_and_unlabeled_folder(folder_root: Path) -> None:
    dm = FolderDataModule(folder_root, batch_size=2, crop_size=16)
    assert dm.num_classes == 3 and dm.class_names == ["background", "road", "car"]
    assert dm.palette[1] == (128, 64, 128) and dm.ignore_index == 255
    dm.setup("fit")
    assert dm.labeled_dataset is not None and dm.unlabeled_dataset is not None
    assert (len(dm.labeled_dataset), len(dm.unlabeled_dataset)) == (8, 6)
    check_train_batch(first_batch(dm.train_dataloader()), 2, 2, 16, 16)
    dm.setup("test")  # no test folder: val
    assert dm.eval_datasets["test"].names == ["val0", "val1", "val2"]


def test_ratio_adds_rest_of_train_to_unlabeled(folder_root: Path) -> None:
    dm = FolderDataModule(folder_root, labeled_ratio=0.25, batch_size=2)
    dm.setup("fit")
    assert dm.labeled_dataset is not None and dm.unlabeled_dataset is not None
    assert (len(dm.labeled_dataset), len(dm.unlabeled_dataset)) == (2, 12)


def test_json_class_file_and_predict_dir(folder_root: Path) -> None:
    (folder_root / "classes.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    for k in range(3):
        write_image(folder_root / "to_predict" / f"p{k}.png", k)
    dm = FolderDataModule(folder_root, class_file="classes.json", predict_dir="to_predict",
                          eval_batch_size=3)
    assert len(dm.palette) == 3  # default palette
    dm.setup("predict")
    batch = first_batch(dm.predict_dataloader())
    assert set(batch) == {"image", "name"} and batch["name"] == ["p0", "p1", "p2"]


def test_no_unlabeled_images(folder_root: Path) -> None:
    dm = FolderDataModule(folder_root, unlabeled_dir=None, batch_size=2)
    with pytest.raises(ValueError, match="unlabeled training set is empty"):
        dm.setup("fit")


def test_bad_class_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="class file"):
        read_class_file(tmp_path / "none.yaml")
    (tmp_path / "c.yaml").write_text("class_names: [a, b]\npalette: [[0, 0, 0]]\n")
    with pytest.raises(ValueError, match="palette"):
        read_class_file(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("names: [a]\n")
    with pytest.raises(ValueError, match="class_names"):
        read_class_file(tmp_path / "d.yaml")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)absent.*classes\.yaml"):
        FolderDataModule(tmp_path / "absent")
