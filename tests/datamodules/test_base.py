"""SemiSupervisedDataModule: batch contract, CombinedLoader, partitions, errors, seeding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from fake_trees import check_train_batch, first_batch
from lightning.pytorch.utilities import CombinedLoader

from mgd_lightning.datamodules import CamVidDataModule, SyntheticDataModule

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def test_combined_batch_contract(camvid_root: Path) -> None:
    dm = CamVidDataModule(camvid_root, batch_size=2, unlabeled_batch_size=3, crop_size=(16, 20))
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, CombinedLoader) and loader._mode == "max_size_cycle"
    assert set(loader.iterables) == {"labeled", "unlabeled"}
    check_train_batch(first_batch(loader), 2, 3, 16, 20)
    # max_size_cycle: one epoch = the longer (unlabeled) loader, the labeled loader cycles
    _ = iter(loader)
    assert len(loader) == 28 // 3
    val = first_batch(dm.val_dataloader())
    assert set(val) == {"image", "mask", "name"} and val["image"].shape[-2:] == (24, 32)


def test_metadata_available_after_init(camvid_root: Path) -> None:
    dm = CamVidDataModule(camvid_root)
    assert dm.num_classes == 11 and dm.ignore_index == 255
    assert len(dm.class_names) == 11 and len(dm.palette) == 11
    assert all(isinstance(c, tuple) and len(c) == 3 for c in dm.palette)
    syn = SyntheticDataModule()
    assert syn.num_classes == 6 and len(syn.palette) == 6 and syn.class_names[0] == "background"


def test_unlabeled_batch_size_defaults_to_batch_size() -> None:
    dm = SyntheticDataModule(image_size=16, num_train=64, num_val=4, num_test=4,
                             labeled_ratio=0.25, batch_size=4)
    assert dm.unlabeled_batch_size == 4 and dm.eval_batch_size == 4
    dm.setup("fit")
    check_train_batch(first_batch(dm.train_dataloader()), 4, 4, 16, 16)


def _names_of_epoch(dm: SyntheticDataModule) -> list[str]:
    loader = dm.train_dataloader()
    names: list[str] = []
    for batch, _, _ in loader:
        names += batch["labeled"]["name"] + batch["unlabeled"]["name_a"]
        names += batch["unlabeled"]["name_b"]
    return names


@pytest.mark.parametrize("num_workers", [0, 2])
def test_reproducible_from_torch_seed_and_reshuffled_each_epoch(num_workers: int) -> None:
    def make() -> SyntheticDataModule:
        dm = SyntheticDataModule(image_size=16, num_train=48, num_val=4, num_test=4,
                                 labeled_ratio=0.25, batch_size=4, num_workers=num_workers)
        dm.setup("fit")
        return dm

    torch.manual_seed(0)
    dm = make()
    epoch1, epoch2 = _names_of_epoch(dm), _names_of_epoch(dm)
    torch.manual_seed(0)
    again = _names_of_epoch(make())
    assert epoch1 == again  # same seed, same order, pairs
    assert epoch1 != epoch2  # a new shuffle and new pairs every epoch
    torch.manual_seed(0)
    b1 = first_batch(make().train_dataloader())
    torch.manual_seed(0)
    b2 = first_batch(make().train_dataloader())
    assert torch.equal(b1["unlabeled"]["image_a"], b2["unlabeled"]["image_a"])
    assert torch.equal(b1["unlabeled"]["cutmix_mask"], b2["unlabeled"]["cutmix_mask"])
    assert torch.equal(b1["labeled"]["mask"], b2["labeled"]["mask"])


def test_bad_constructor_arguments() -> None:
    kwargs: dict[str, Any] = {"image_size": 16, "num_train": 32}
    for key, value in (("batch_size", 0), ("unlabeled_batch_size", -1), ("num_workers", -1),
                       ("crop_size", 0), ("crop_size", (16, 0)), ("labeled_ratio", 1.0),
                       ("labeled_ratio", 0.0), ("n_boxes", 0), ("hflip_prob", 2.0),
                       ("cutmix_prop_range", (0.6, 0.5)), ("num_train", 0)):
        with pytest.raises(ValueError, match=key):
            SyntheticDataModule(**{**kwargs, key: value})


def test_labeled_set_smaller_than_batch(camvid_root: Path) -> None:
    dm = CamVidDataModule(camvid_root, batch_size=5)  # 1-8 has 4 labeled images
    with pytest.raises(ValueError, match=r"labeled set has 4 images, fewer than `batch_size`=5"):
        dm.setup("fit")
    CamVidDataModule(camvid_root, batch_size=5, drop_last=False).setup("fit")


def test_ratio_leaving_no_labeled_image() -> None:
    dm = SyntheticDataModule(image_size=16, num_train=10, labeled_ratio=0.05)
    with pytest.raises(ValueError, match="leaves no labeled image"):
        dm.setup("fit")


def test_same_image_pairs_switch() -> None:
    dm = SyntheticDataModule(image_size=16, num_train=32, labeled_ratio=0.25, batch_size=4,
                             same_image_pairs=True)
    dm.setup("fit")
    unl = first_batch(dm.train_dataloader())["unlabeled"]
    assert unl["name_a"] == unl["name_b"]
