"""SyntheticDataModule: the embedded default; and Lightning integration (Trainer, seeding)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from fake_trees import check_train_batch, first_batch

from mgd_lightning.datamodules import SyntheticDataModule

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec", "ignore:.*does not have many workers",
                                        "ignore:.*GPU available", "ignore:.*TPU available",
                                        "ignore:.*LeafSpec")


def test_defaults() -> None:
    dm = SyntheticDataModule()
    assert dm.image_size == (64, 64) and dm.crop_size == (64, 64)
    assert dm.num_train == 2048 and dm.labeled_ratio == 1 / 16
    dm.setup("fit")
    assert dm.labeled_dataset is not None and dm.unlabeled_dataset is not None
    assert (len(dm.labeled_dataset), len(dm.unlabeled_dataset)) == (128, 1920)
    assert len(dm.eval_datasets["val"]) == 256
    check_train_batch(first_batch(dm.train_dataloader()), 8, 8, 64, 64)
    dm.setup("test")
    assert dm.eval_datasets["test"].names[0] == "test_000000"


def test_nested_partitions() -> None:
    sets = []
    for ratio in (1 / 16, 1 / 8, 1 / 4):
        dm = SyntheticDataModule(num_train=256, labeled_ratio=ratio, seed=5)
        dm.setup("fit")
        assert dm.labeled_dataset is not None
        sets.append(set(dm.labeled_dataset.names))
    assert sets[0] < sets[1] < sets[2]


class _Recorder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Conv2d(3, 6, 1)
        self.seen: list[Any] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.seen.append((batch["labeled"]["name"], batch["unlabeled"]["name_b"],
                          batch["unlabeled"]["image_a"].sum().item(),
                          batch["unlabeled"]["cutmix_mask"].sum().item()))
        return self.layer(batch["labeled"]["image"]).mean()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        assert set(batch) == {"image", "mask", "name"}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(num_workers: int) -> list[Any]:
    pl.seed_everything(7, workers=True, verbose=False)
    dm = SyntheticDataModule(image_size=16, num_train=64, num_val=4, num_test=4,
                             labeled_ratio=0.25, batch_size=4, num_workers=num_workers)
    model = _Recorder()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=3,
                         limit_val_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    return model.seen


def test_trainer_fit_is_reproducible_with_seeded_workers() -> None:
    first = _fit(num_workers=2)
    assert len(first) == 6
    assert first == _fit(num_workers=2)
    assert first[:3] != first[3:]  # epoch 2 reshuffles
