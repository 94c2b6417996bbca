"""CamVidDataModule on a fake tree, plus the real data (slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from fake_trees import check_train_batch, first_batch, write_lines, write_mask

from mgd_lightning.datamodules import CamVidDataModule
from mgd_lightning.datamodules.camvid import CAMVID_CLASS_NAMES, CAMVID_PALETTE

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def test_partition_folders_and_void_mapping(camvid_root: Path) -> None:
    dm = CamVidDataModule(camvid_root, partition="1-4", batch_size=2, crop_size=16)
    dm.setup("fit")
    assert dm.labeled_dataset is not None and dm.unlabeled_dataset is not None
    assert len(dm.labeled_dataset) == 8 and len(dm.unlabeled_dataset) == 24
    check_train_batch(first_batch(dm.train_dataloader()), 2, 2, 16, 16)
    val = first_batch(dm.val_dataloader())
    assert set(val["mask"].unique().tolist()) == {*range(11), 255}  # void 11 -> 255


def test_labeled_ratio_is_nested(camvid_root: Path) -> None:
    sets = []
    for ratio in (0.125, 0.25, 0.5):
        dm = CamVidDataModule(camvid_root, labeled_ratio=ratio, batch_size=2, seed=1)
        dm.setup("fit")
        assert dm.labeled_dataset is not None
        sets.append(set(dm.labeled_dataset.names))
    assert [len(s) for s in sets] == [4, 8, 16]
    assert sets[0] <= sets[1] <= sets[2]


def test_labeled_split_file_with_rest_unlabeled(camvid_root: Path, tmp_path: Path) -> None:
    write_lines(tmp_path / "mine.txt", ["tr_000", "tr_001"])
    dm = CamVidDataModule(camvid_root, labeled_split=tmp_path / "mine.txt", batch_size=2)
    dm.setup("fit")
    assert dm.unlabeled_dataset is not None and len(dm.unlabeled_dataset) == 30


def test_test_split_when_present(camvid_root: Path) -> None:
    dm = CamVidDataModule(camvid_root, batch_size=2)
    dm.setup("test")
    assert dm.eval_datasets["test"].names[0] == "va_000"  # no test split: val
    write_lines(camvid_root / "test.txt", ["tr_000"])
    (camvid_root / "images" / "test").mkdir()
    (camvid_root / "labels" / "test").mkdir()
    for sub in ("images", "labels"):
        (camvid_root / sub / "test" / "tr_000.png").write_bytes(
            (camvid_root / sub / "train" / "tr_000.png").read_bytes())
    dm = CamVidDataModule(camvid_root, batch_size=2)
    dm.setup("predict")
    batch = first_batch(dm.predict_dataloader())
    assert batch["name"] == ["tr_000"] and "mask" in batch


def test_missing_root_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere.*images/\{train,val"):
        CamVidDataModule(tmp_path / "nowhere")


def test_missing_ids_name_paths_and_count(camvid_root: Path) -> None:
    for k in range(3):
        (camvid_root / "images" / "train" / f"tr_00{k}.png").unlink()
    (camvid_root / "labels" / "train" / "tr_003.png").unlink()
    dm = CamVidDataModule(camvid_root, batch_size=2)
    with pytest.raises(FileNotFoundError, match=r"(?s)4 file\(s\) of the labeled set.*"
                                                r"tr_000\.png.*labels/train/tr_003\.png"):
        dm.setup("fit")


def test_overlap_and_empty_sets(camvid_root: Path) -> None:
    write_lines(camvid_root / "splits" / "1-8" / "unlabeled.txt", ["tr_000", "tr_010"])
    with pytest.raises(ValueError, match=r"1 id\(s\) are in both.*'tr_000'"):
        CamVidDataModule(camvid_root, batch_size=1).setup("fit")
    write_lines(camvid_root / "splits" / "1-8" / "labeled.txt", ["# nothing"])
    with pytest.raises(ValueError, match="lists no sample"):
        CamVidDataModule(camvid_root, batch_size=1).setup("fit")


def test_bad_mask_values_lazily_and_with_validate(camvid_root: Path) -> None:
    write_mask(camvid_root / "labels" / "train" / "tr_001.png", [0, 13], seed=0)
    dm = CamVidDataModule(camvid_root, batch_size=2, validate=True)
    with pytest.raises(ValueError, match=r"(?s)tr_001\.png.*values \[13\] outside \[0, 11\)"):
        dm.setup("fit")
    dm = CamVidDataModule(camvid_root, batch_size=4)
    dm.setup("fit")  # lazy: no error until the sample is read
    assert dm.labeled_dataset is not None
    with pytest.raises(ValueError, match=r"tr_001\.png"):
        dm.labeled_dataset[1]


def test_missing_partition_folder(camvid_root: Path) -> None:
    dm = CamVidDataModule(camvid_root, partition="1-16")
    with pytest.raises(FileNotFoundError,
                       match=r"1-16 does not exist \(available: \['1-4', '1-8'\]"):
        dm.setup("fit")


def test_both_split_and_ratio_is_an_error(camvid_root: Path) -> None:
    with pytest.raises(ValueError, match=r"either `labeled_split`.*or `labeled_ratio`"):
        CamVidDataModule(camvid_root, labeled_split="x.txt", labeled_ratio=0.5)


def _camvid_root() -> Path:
    default = Path(__file__).parents[2].parent / "shared" / "data" / "camvid"
    return Path(os.environ.get("MGD_CAMVID_ROOT", default))


@pytest.mark.slow
def test_real_camvid() -> None:
    root = _camvid_root()
    if not (root / "train.txt").is_file():
        pytest.skip(f"CamVid not found at {root} (set MGD_CAMVID_ROOT)")
    sizes = {"1-8": (45, 322), "1-4": (91, 276), "1-2": (183, 184)}
    for partition, (n_lab, n_unl) in sizes.items():
        dm = CamVidDataModule(root, partition=partition, batch_size=4)  # type: ignore[arg-type]
        dm.setup("fit")
        assert dm.labeled_dataset is not None and dm.unlabeled_dataset is not None
        assert (len(dm.labeled_dataset), len(dm.unlabeled_dataset)) == (n_lab, n_unl)
        assert len(dm.eval_datasets["val"]) == 101
        assert len(dm.labeled_dataset.names) + len(dm.unlabeled_dataset) == 367
    dm = CamVidDataModule(root, batch_size=4, validate=True)  # scans every file
    dm.setup("fit")
    dm.setup("test")
    values: set[int] = set()
    for batch in dm.val_dataloader():
        assert batch["image"].shape[-2:] == (180, 240)
        values |= set(torch.unique(batch["mask"]).tolist())
    assert values <= {*range(11), 255} and 255 in values and len(values) >= 11
    check_train_batch(first_batch(dm.train_dataloader()), 4, 4, 176, 224)
    assert dm.class_names == list(CAMVID_CLASS_NAMES) and dm.palette == list(CAMVID_PALETTE)


def test_eval_split_from_a_list_file(camvid_root: Path, tmp_path: Path) -> None:
    # Ids of train.txt and val.txt in one list: each is read from its own folder.
    write_lines(tmp_path / "heldout.txt", ["tr_005", "va_001", "tr_007"])
    dm = CamVidDataModule(camvid_root, batch_size=2, val_split=os.fspath(tmp_path / "heldout.txt"),
                          test_split="train")
    dm.setup("validate")
    dataset = dm.eval_datasets["val"]
    assert dataset.names == ["tr_005", "va_001", "tr_007"]
    assert [f.image.parent.name for f in dataset.files] == ["train", "val", "train"]
    batch = first_batch(dm.val_dataloader())
    assert batch["image"].shape[0] == 2
    dm.setup("test")
    assert len(dm.eval_datasets["test"]) == 32  # a list name under the root: train.txt


def test_eval_split_list_file_errors_name_the_file(camvid_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "heldout.txt"
    dm = CamVidDataModule(camvid_root, batch_size=2, val_split=os.fspath(missing))
    with pytest.raises(FileNotFoundError, match=r"`val_split` list file .*nowhere/heldout\.txt"):
        dm.setup("validate")
    write_lines(tmp_path / "other.txt", ["tr_000", "0006R0_f00"])
    dm = CamVidDataModule(camvid_root, batch_size=2, val_split=os.fspath(tmp_path / "other.txt"))
    with pytest.raises(ValueError, match=r"1 id\(s\) of the `val_split` list file .*other\.txt.*"
                                         r"'0006R0_f00'"):
        dm.setup("validate")
    dm = CamVidDataModule(camvid_root, batch_size=2, val_split="heldout")
    with pytest.raises(FileNotFoundError, match=r"split 'heldout' \(`val_split`\): .*heldout\.txt "
                                                r"does not exist; give a list of .*\(train, val\)"):
        dm.setup("validate")


def test_heldout_protocol_lists_are_committed_and_regenerable() -> None:
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[2] / "configs" / "camvid" / "splits"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "camvid_heldout_splits.py"
    spec = importlib.util.spec_from_file_location("_camvid_heldout_splits", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    lists = {p.relative_to(folder / "heldout_0006R0").as_posix(): p.read_text()
             for p in (folder / "heldout_0006R0").rglob("*.txt")}
    heldout = lists["heldout.txt"].split()
    labeled, unlabeled = lists["1-8/labeled.txt"].split(), lists["1-8/unlabeled.txt"].split()
    assert len(heldout) == 101 and {n[:7] for n in heldout} == {"0006R0_"}
    assert (len(labeled), len(labeled) + len(unlabeled)) == (33, 266)
    assert not {n for n in labeled + unlabeled if n.startswith("0006R0_")}
    assert set(labeled) <= set(lists["1-4/labeled.txt"].split()) <= set(
        lists["1-2/labeled.txt"].split())
    # The 367 names of train.txt are the union (sorted, as train.txt is): regenerate from them.
    train = sorted(heldout + labeled + unlabeled)
    assert module.split_files(train) == lists
