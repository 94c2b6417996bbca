"""DDP on CPU (2 processes, gloo): Lightning wraps both samplers of
the CombinedLoader, calls set_epoch, and per-sample seeds differ per rank. Slow (spawns)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from mgd_lightning.datamodules import SyntheticDataModule

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


class _DDPRecorder(pl.LightningModule):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out
        self.layer = torch.nn.Conv2d(3, 6, 1)
        self.seen: list[Any] = []

    def on_train_epoch_start(self) -> None:
        loaders = list(self.trainer.train_dataloader.values())  # type: ignore[union-attr]
        self.seen.append({"samplers": [type(dl.sampler).__name__ for dl in loaders],
                          "epochs": [getattr(dl.sampler, "epoch", None) for dl in loaders]})

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.seen.append({"epoch": self.current_epoch,
                          "labeled": batch["labeled"]["name"],
                          "name_a": batch["unlabeled"]["name_a"],
                          "mask": batch["unlabeled"]["cutmix_mask"].sum().item()})
        return self.layer(batch["labeled"]["image"]).mean()

    def on_train_end(self) -> None:
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))

    def teardown(self, stage: str) -> None:
        # Leave the process group together, inside the spawned worker: left to the interpreter's
        # exit, gloo's threads can outlive it and abort the worker ("terminate called without an
        # active exception", SIGABRT; pytorch/pytorch#190489), which failed CI once.
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_ddp_samplers_and_seeding(tmp_path: Path) -> None:
    pl.seed_everything(3, workers=True, verbose=False)
    dm = SyntheticDataModule(image_size=16, num_train=64, num_val=4, num_test=4,
                             labeled_ratio=0.25, batch_size=2, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2,
                         limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(_DDPRecorder(str(tmp_path)), datamodule=dm)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for seen in ranks:
        # Lightning wraps the datamodule's resumable samplers in a distributed wrapper.
        assert seen[0]["samplers"] == ["DistributedSamplerWrapper"] * 2
        epoch_marks = [s for s in seen if "samplers" in s]
        assert [m["epochs"] for m in epoch_marks] == [[0, 0], [1, 1]]
    steps = [[s for s in seen if "name_a" in s] for seen in ranks]
    # 48 unlabeled images / 2 ranks / batch 2 = 12 steps per epoch per rank
    assert all(len(s) == 24 for s in steps)
    for epoch in (0, 1):
        a0 = [n for s in steps[0] if s["epoch"] == epoch for n in s["name_a"]]
        a1 = [n for s in steps[1] if s["epoch"] == epoch for n in s["name_a"]]
        assert not set(a0) & set(a1) and len(set(a0) | set(a1)) == 48  # disjoint shards
    e0 = [s["name_a"] for s in steps[0] if s["epoch"] == 0]
    e1 = [s["name_a"] for s in steps[0] if s["epoch"] == 1]
    assert e0 != e1  # set_epoch reshuffles
    assert [s["mask"] for s in steps[0]] != [s["mask"] for s in steps[1]]  # rank-seeded
