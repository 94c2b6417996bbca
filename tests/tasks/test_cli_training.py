"""End-to-end: every training module through the real CLI on tiny synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from _tiny_config import mgd_model, write_config
from _tiny_models import make_tiny
from mgd_lightning.cli import main
from mgd_lightning.models import TeacherPair
from mgd_lightning.tasks import MGDModule, SupervisedModule


def _fit(config: Path, *extra: str):
    return main(["fit", "--config", str(config), *extra])


@pytest.mark.parametrize("name", ["supervised_config", "cps_config", "mgd_config"])
def test_fast_dev_run_then_validate_test_predict(name: str, request: pytest.FixtureRequest) -> None:
    config: Path = request.getfixturevalue(name)
    cli = _fit(config, "--trainer.fast_dev_run=2")
    assert cli.trainer.global_step == 2
    assert "val_mIoU" in cli.trainer.callback_metrics
    for command in ("validate", "test"):
        cli = main(
            [
                command,
                "--config",
                str(config),
                "--trainer.limit_val_batches=2",
                "--trainer.limit_test_batches=2",
            ]
        )
        stage = "val" if command == "validate" else "test"
        metrics = cli.trainer.callback_metrics
        assert f"{stage}_mIoU" in metrics and 0.0 <= float(metrics[f"{stage}_mIoU"]) <= 1.0
        assert f"{stage}_IoU_background" in metrics
    cli = main(
        [
            "predict",
            "--config",
            str(config),
            "--trainer.limit_predict_batches=1",
            "--return_predictions=true",
        ]
    )
    predictions = cli.trainer.predict_loop.predictions
    assert predictions[0]["prediction"].shape == (2, 32, 32)
    assert predictions[0]["prediction"].dtype == torch.int64


def test_mgd_fit_keeps_teachers_frozen_and_out_of_checkpoints(mgd_config: Path) -> None:
    cli = main(
        ["--config", str(mgd_config), "--trainer.max_steps=3", "--trainer.limit_val_batches=1"],
        run=False,
    )
    module: MGDModule = cli.model
    before = {k: v.clone() for k, v in module.teachers.state_dict().items()}
    cli.trainer.fit(module, datamodule=cli.datamodule)
    after = module.teachers.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers
    assert not module.teachers.deep.training and not module.teachers.wide.training

    # Only student parameters are in the optimizer.
    optimizer = cli.trainer.optimizers[0]
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in module.network.parameters()}
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] > 0 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decay["params"]) and all(
        p.dim() <= 1 for p in no_decay["params"]
    )

    # The checkpoint holds the student, not the teachers, and a network description.
    checkpoint_path = cli.trainer.checkpoint_callback.last_model_path
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    assert not any(k.startswith("teachers.") for k in checkpoint["state_dict"])
    assert any(k.startswith("network.") for k in checkpoint["state_dict"])
    assert (
        checkpoint["mgd_network"]["class_path"]
        == "mgd_lightning.models.deeplabv3plus.DeepLabV3Plus"
    )

    # load_from_checkpoint gives a working student without teachers.
    loaded = MGDModule.load_from_checkpoint(checkpoint_path)
    assert loaded.teachers is None
    loaded.eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = module.eval().network(images).logits
        assert torch.allclose(loaded(images), expected, atol=1e-6)


def test_resume_continues_step_count_and_schedule(supervised_config: Path, tmp_path: Path) -> None:
    every_4 = (
        '--trainer.callbacks=[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", '
        '"init_args": {"every_n_train_steps": 4, "save_top_k": -1}}]'
    )
    full = _fit(
        supervised_config,
        "--trainer.max_steps=8",
        "--trainer.limit_val_batches=1",
        "--trainer.default_root_dir",
        str(tmp_path / "full"),
        every_4,
    )
    middle = next((tmp_path / "full" / "checkpoints").glob("*step=4.ckpt"))
    assert torch.load(middle, weights_only=True)["global_step"] == 4
    resumed = _fit(
        supervised_config,
        "--trainer.max_steps=8",
        "--trainer.limit_val_batches=1",
        "--trainer.default_root_dir",
        str(tmp_path / "resumed"),
        "--ckpt_path",
        str(middle),
    )
    assert resumed.trainer.global_step == 8
    scheduler = resumed.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == 8 and scheduler.total_iters == 8  # per step, continued
    assert resumed.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(
        full.trainer.optimizers[0].param_groups[0]["lr"]
    )


def test_zero_distillation_weights_equal_the_supervised_loss() -> None:
    student = make_tiny(4, seed=0, head_channels=8)
    teachers = TeacherPair(
        make_tiny(4, seed=1, head_channels=8), make_tiny(4, seed=2, head_channels=8)
    )
    distill = MGDModule(
        student, teachers, num_classes=4, pixel_weight=0.0, image_weight=0.0, region_weight=0.0
    )
    supervised = SupervisedModule(distill.network, num_classes=4)
    g = torch.Generator().manual_seed(1)
    batch = {
        "labeled": {
            "image": torch.randn(2, 3, 32, 32, generator=g),
            "mask": torch.randint(0, 4, (2, 32, 32), generator=g),
        },
        "unlabeled": {
            "image_a": torch.randn(2, 3, 32, 32, generator=g),
            "image_b": torch.randn(2, 3, 32, 32, generator=g),
            "cutmix_mask": torch.ones(2, 1, 32, 32),
        },
    }
    distill.train(), supervised.train()
    assert torch.equal(distill.training_step(batch, 0), supervised.training_step(batch, 0))


def test_teacher_checkpoints_record_sha_and_resuming_with_other_teachers_fails(
    supervised_config: Path, tmp_path: Path
) -> None:
    # Two "teachers" trained for two steps each with the supervised module.
    deep = _fit(
        supervised_config,
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--trainer.default_root_dir",
        str(tmp_path / "deep"),
    )
    wide = _fit(
        supervised_config,
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--trainer.default_root_dir",
        str(tmp_path / "wide"),
        "--seed_everything=1",
    )
    deep_ckpt = deep.trainer.checkpoint_callback.last_model_path
    wide_ckpt = wide.trainer.checkpoint_callback.last_model_path
    teachers = {
        "class_path": "mgd_lightning.models.TeacherPair",
        "init_args": {"deep_weights": deep_ckpt, "wide_weights": wide_ckpt},
    }
    model = mgd_model()
    model["init_args"]["teachers"] = teachers
    config = write_config(tmp_path / "mgd_from_files.yaml", model)
    cli = _fit(config, "--trainer.max_steps=2", "--trainer.limit_val_batches=1")
    checkpoint_path = cli.trainer.checkpoint_callback.last_model_path
    recorded = torch.load(checkpoint_path, weights_only=True)["mgd_teachers"]
    assert recorded["deep"]["path"] == deep_ckpt and len(recorded["deep"]["sha256"]) == 64

    # Resume with the teachers swapped: the SHA-256 check refuses it.
    swapped = yaml.safe_load(config.read_text())
    swapped["model"]["init_args"]["teachers"]["init_args"] = {
        "deep_weights": wide_ckpt,
        "wide_weights": deep_ckpt,
    }
    swapped_path = tmp_path / "swapped.yaml"
    swapped_path.write_text(yaml.safe_dump(swapped))
    with pytest.raises(ValueError, match="deep teacher differs"):
        _fit(swapped_path, "--trainer.max_steps=4", "--ckpt_path", checkpoint_path)


def test_teacher_class_count_mismatch_fails_before_training(tmp_path: Path) -> None:
    model = mgd_model()
    model["init_args"]["teachers"]["init_args"]["deep"]["init_args"]["num_classes"] = 5
    model["init_args"]["teachers"]["init_args"]["wide"]["init_args"]["num_classes"] = 5
    config = write_config(tmp_path / "bad.yaml", model)
    with pytest.raises(ValueError, match="teachers predict 5 classes but the student 6"):
        _fit(config, "--trainer.fast_dev_run=1")


def _metric_columns(log_dir: Path) -> set[str]:
    (metrics,) = log_dir.rglob("metrics.csv")
    return set(metrics.read_text().splitlines()[0].split(","))


def test_ddp_with_two_cpu_processes_reports_the_same_metric_keys(
    mgd_config: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    def run(out: Path, *extra: str) -> set[str]:
        command = [
            sys.executable,
            "-m",
            "mgd_lightning",
            "fit",
            "--config",
            str(mgd_config),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=2",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.save_dir={out}",
            "--trainer.log_every_n_steps=1",
            "--trainer.enable_checkpointing=false",
            *extra,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return _metric_columns(out)

    single = run(tmp_path / "single")
    ddp = run(
        tmp_path / "ddp",
        "--trainer.strategy=ddp",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
    )  # sync_batchnorm needs GPUs
    assert ddp == single
    assert {
        "train_loss",
        "train_loss_pixel",
        "train_loss_image",
        "train_loss_region",
        "train_loss_sup",
        "train_lr",
        "val_mIoU",
    } <= ddp
