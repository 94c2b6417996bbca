"""Errors a user can meet, each with a message that names the culprit and the fix.

docs/errors.md lists every entry with the test that provokes it; the entries introduced by the
training modules and the command line are tested here, the data and network ones beside their
code (tests/data, tests/datamodules, tests/models).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml

from _tiny_config import quiet_trainer, write_config
from mgd_lightning.cli import main
from mgd_lightning.datamodules import SyntheticDataModule
from mgd_lightning.models import DeepLabV3Plus, network_from_checkpoint
from mgd_lightning.tasks import DistillationModule, NonFiniteLossError, SupervisedModule


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.yaml", data={"num_val": 4, "num_test": 4})


def _cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    assert info.value.code != 0
    return capsys.readouterr().err


class _Poisoned(SupervisedModule):
    """Feeds NaN images at step 1."""

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
        if self.global_step == 1:
            batch["labeled"]["image"] = torch.full_like(batch["labeled"]["image"], math.nan)
        return super().training_step(batch, batch_idx)


def _poisoned_fit(non_finite: str) -> _Poisoned:
    L.seed_everything(0)
    data = SyntheticDataModule(
        image_size=32, num_train=32, num_val=4, num_test=4, labeled_ratio=0.25, batch_size=2
    )
    module = _Poisoned(
        DeepLabV3Plus("resnet10t", num_classes=6, head_channels=8),
        num_classes=6,
        non_finite=non_finite,
    )  # type: ignore[arg-type]
    trainer = quiet_trainer(3)
    trainer.fit(module, datamodule=data)
    return module


def test_non_finite_loss_stops_naming_the_term_and_step() -> None:
    with pytest.raises(NonFiniteLossError, match=r"step 1 .*term\(s\) sup"):
        _poisoned_fit("raise")


def test_non_finite_loss_skipped_and_counted_when_configured() -> None:
    module = _poisoned_fit("skip")
    assert module.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in module.network.parameters())


def test_unknown_config_key(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(capsys, "fit", "--config", str(config), "--model.init_args.learning_rat=0.1")
    assert "learning_rat" in err


def test_wrong_type_in_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(capsys, "fit", "--config", str(config), "--data.init_args.batch_size=eight")
    assert "batch_size" in err and "eight" in err


def test_unknown_backbone_name(config: Path) -> None:
    with pytest.raises(ValueError, match=r"(?s)resnet1O.*resnet10"):
        main(
            [
                "fit",
                "--config",
                str(config),
                "--model.init_args.network.init_args.backbone=resnet1O",
            ]
        )


def test_missing_data_root(config: Path, tmp_path: Path) -> None:
    data = {
        "class_path": "mgd_lightning.datamodules.CamVidDataModule",
        "init_args": {"root": str(tmp_path / "nowhere")},
    }
    broken = yaml.safe_load(config.read_text()) | {"data": data}
    config.write_text(yaml.safe_dump(broken))
    # jsonargparse wraps errors raised while building the datamodule; our message is inside.
    with pytest.raises((FileNotFoundError, ValueError), match=r"nowhere does not exist"):
        main(["fit", "--config", str(config), "--trainer.fast_dev_run=1"])


def test_ratio_that_leaves_no_labeled_image(config: Path) -> None:
    with pytest.raises(ValueError, match="leaves no labeled image"):
        main(
            [
                "fit",
                "--config",
                str(config),
                "--data.init_args.labeled_ratio=0.01",
                "--trainer.fast_dev_run=1",
            ]
        )


def test_missing_checkpoint_path(config: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path .*gone\.ckpt"):
        main(["fit", "--config", str(config), "--ckpt_path", str(tmp_path / "gone.ckpt")])


def test_truncated_checkpoint_path(config: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.ckpt"
    torch.save({"state_dict": {"w": torch.ones(100)}}, broken)
    broken.write_bytes(broken.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"broken\.ckpt.*truncated"):
        main(["fit", "--config", str(config), "--ckpt_path", str(broken)])


def test_checkpoint_holding_code_is_refused(config: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("x")}, evil)  # a pickled object
    with pytest.raises(ValueError, match=r"refused to load .*evil\.ckpt"):
        main(["fit", "--config", str(config), "--ckpt_path", str(evil)])


def test_checkpoint_without_network_description(tmp_path: Path) -> None:
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"network.w": torch.ones(1)}}, plain)
    with pytest.raises(ValueError, match=r"plain\.ckpt.*no network description"):
        network_from_checkpoint(plain)


def test_distillation_without_teachers_cannot_train() -> None:
    module = DistillationModule(
        DeepLabV3Plus("resnet10t", num_classes=3, head_channels=8), None, num_classes=3
    )
    batch = {
        "labeled": {"image": torch.zeros(1, 3, 32, 32), "mask": torch.zeros(1, 32, 32).long()},
        "unlabeled": {
            "image_a": torch.zeros(1, 3, 32, 32),
            "image_b": torch.zeros(1, 3, 32, 32),
            "cutmix_mask": torch.zeros(1, 1, 32, 32),
        },
    }
    with pytest.raises(RuntimeError, match="without teachers"):
        module.training_step(batch, 0)


def test_sliding_evaluation_without_a_window() -> None:
    with pytest.raises(ValueError, match="eval_window"):
        SupervisedModule(
            DeepLabV3Plus("resnet10t", num_classes=3, head_channels=8),
            num_classes=3,
            eval_mode="sliding",
        )


def test_network_and_dataset_disagree_on_classes() -> None:
    with pytest.raises(ValueError, match=r"predicts 3 classes but `num_classes` is 6"):
        SupervisedModule(DeepLabV3Plus("resnet10t", num_classes=3, head_channels=8), num_classes=6)
