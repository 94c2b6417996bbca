"""``non_finite: skip`` never saves a broken model, and no run ends "successfully" with one.

A skipped step's forward pass has already updated the BatchNorm running statistics; before the
fix one NaN batch left 40 NaN buffers and a run that exited 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from _reliability_config import write_config

from _tiny_config import quiet_trainer
from mgd_lightning.cli import main
from mgd_lightning.datamodules import SyntheticDataModule
from mgd_lightning.models import DeepLabV3Plus
from mgd_lightning.tasks import NonFiniteWeightsError, SupervisedModule


class _PoisonedAt(SupervisedModule):
    """Feeds NaN images at ``poisoned_step``."""

    poisoned_step = 1

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
        if self.global_step == self.poisoned_step:
            batch["labeled"]["image"] = torch.full_like(batch["labeled"]["image"], math.nan)
        return super().training_step(batch, batch_idx)


def _fit(max_steps: int, poisoned: bool) -> SupervisedModule:
    L.seed_everything(0)
    data = SyntheticDataModule(
        image_size=32, num_train=32, num_val=4, num_test=4, labeled_ratio=0.25, batch_size=2
    )
    network = DeepLabV3Plus("resnet10t", num_classes=6, head_channels=8)
    kind = _PoisonedAt if poisoned else SupervisedModule
    module = kind(network, num_classes=6, non_finite="skip")
    trainer = quiet_trainer(max_steps)
    trainer.fit(module, datamodule=data)
    return module


def test_skipped_step_leaves_batchnorm_statistics_as_they_were() -> None:
    skipped = _fit(max_steps=2, poisoned=True)  # step 0 trains, step 1 is NaN and skipped
    clean = _fit(max_steps=1, poisoned=False)  # step 0 only
    assert skipped.skipped_steps == 1
    buffers = dict(skipped.network.named_buffers())
    assert any("running_mean" in name for name in buffers)
    non_finite = [n for n, b in buffers.items() if b.is_floating_point() and not b.isfinite().all()]
    assert not non_finite, f"NaN running statistics after a skipped step: {non_finite[:5]}"
    reference = dict(clean.network.named_buffers())
    changed = [n for n in buffers if not torch.equal(buffers[n], reference[n])]
    assert not changed, f"the skipped step changed buffers: {changed[:5]}"


def test_huge_learning_rate_with_skip_saves_no_non_finite_tensor(tmp_path: Path) -> None:
    # lr 1e6 makes every loss after the first step NaN; before the fix the skipped forward
    # passes left infinite running variances in the saved checkpoint, and the run exited 0.
    main(
        [
            "fit",
            "--config",
            str(write_config(tmp_path)),
            "--model.init_args.lr=1e6",
            "--model.init_args.non_finite=skip",
            "--trainer.max_steps=6",
            "--trainer.limit_val_batches=0",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
        ]
    )
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["state_dict"]
    bad = [k for k, t in state.items() if t.is_floating_point() and not t.isfinite().all()]
    assert not bad, f"non-finite tensors saved: {bad[:5]}"


class _BrokenAtLastStep(SupervisedModule):
    """A finite loss whose step leaves an infinite weight (as an overflowing update would)."""

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == 1:  # after the optimiser step of the last step (max_steps=2)
            with torch.no_grad():
                next(self.network.parameters()).view(-1)[0] = math.inf


@pytest.mark.parametrize(("policy", "checkpointing"), [("raise", True), ("skip", False)])
def test_run_ending_with_non_finite_weights_fails(
    tmp_path: Path, policy: str, checkpointing: bool
) -> None:
    L.seed_everything(0)
    data = SyntheticDataModule(
        image_size=32, num_train=32, num_val=4, num_test=4, labeled_ratio=0.25, batch_size=2
    )
    network = DeepLabV3Plus("resnet10t", num_classes=6, head_channels=8)
    module = _BrokenAtLastStep(network, num_classes=6, non_finite=policy)  # type: ignore[arg-type]
    trainer = quiet_trainer(2, enable_checkpointing=checkpointing, default_root_dir=tmp_path)
    with pytest.raises(NonFiniteWeightsError, match=r"1 tensor\(s\) .* NaN or infinite"):
        trainer.fit(module, datamodule=data)
    assert not list(tmp_path.rglob("*.ckpt")), "a checkpoint with an infinite weight was saved"


def _eval_batch(image: torch.Tensor) -> dict[str, Any]:
    return {"image": image, "mask": torch.zeros(2, 32, 32, dtype=torch.long), "name": ["a", "b"]}


def test_nan_validation_image_is_an_error_not_an_miou() -> None:
    network = DeepLabV3Plus("resnet10t", num_classes=6, head_channels=8)
    module = SupervisedModule(network, num_classes=6)
    module.eval()
    images = torch.zeros(2, 3, 32, 32)
    images[1, 0, 5, 5] = math.nan
    with pytest.raises(ValueError, match=r"image\(s\) \['b'\] hold NaN or infinite values"):
        module.validation_step(_eval_batch(images), 0)
    assert module.val_iou.confmat.sum() == 0, "the NaN batch was counted in the mIoU"


def test_broken_network_is_an_error_at_evaluation() -> None:
    network = DeepLabV3Plus("resnet10t", num_classes=6, head_channels=8)
    module = SupervisedModule(network, num_classes=6)
    module.eval()
    with torch.no_grad():
        next(module.network.parameters()).fill_(math.nan)
    with pytest.raises(NonFiniteWeightsError, match=r"logits are NaN or infinite"):
        module.test_step(_eval_batch(torch.zeros(2, 3, 32, 32)), 0)
