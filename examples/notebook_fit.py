"""``Trainer.fit(MGDModule(...), datamodule)`` from Python, as in a notebook.

Trains two small teachers on the embedded synthetic data, then distills a smaller student
from them, all in-process. Every stage is an ordinary Lightning ``Trainer.fit``.

Run: ``python examples/notebook_fit.py --steps 200``  (a few minutes on a laptop CPU)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from mgd_lightning.datamodules import SyntheticDataModule
from mgd_lightning.models import DeepLabV3Plus, TeacherPair
from mgd_lightning.tasks import MGDModule, SupervisedModule


def fit(
    module: L.LightningModule, data: L.LightningDataModule, steps: int, root: Path
) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps,
        default_root_dir=root,
        logger=False,
        callbacks=[ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=4,
        val_check_interval=None,
        check_val_every_n_epoch=1,
    )
    trainer.fit(module, datamodule=data)
    return trainer


def main(
    steps: int = 200,
    image_size: int = 64,
    num_train: int = 512,
    workdir: str | None = None,
) -> dict[str, float]:
    L.seed_everything(0)
    root = Path(workdir or tempfile.mkdtemp(prefix="mgd-notebook-"))
    data = SyntheticDataModule(
        image_size=image_size,
        num_train=num_train,
        num_val=32,
        num_test=32,
        labeled_ratio=1 / 8,
        batch_size=8,
    )
    k = data.num_classes

    # 1. Two teachers (here: trained on the labels only, for brevity; CPSModule is the paper's).
    checkpoints = {}
    for role, backbone in (("deep", "resnet26"), ("wide", "resnet18")):
        teacher = SupervisedModule(
            DeepLabV3Plus(backbone, num_classes=k, head_channels=64), num_classes=k, lr=0.02
        )
        trainer = fit(teacher, data, steps, root / role)
        checkpoints[role] = trainer.checkpoint_callback.last_model_path  # type: ignore[union-attr]

    # 2. The frozen teacher pair, rebuilt from the checkpoint files alone.
    teachers = TeacherPair.from_checkpoints(checkpoints["deep"], checkpoints["wide"])

    # 3. The student, distilled with the paper's losses.
    student = MGDModule(
        DeepLabV3Plus("resnet10t", num_classes=k, head_channels=32),
        teachers,
        num_classes=k,
        class_names=data.class_names,
        lr=0.02,
    )
    trainer = fit(student, data, steps, root / "student")
    metrics = trainer.validate(student, datamodule=data, verbose=False)[0]
    print(f"student val mIoU after {steps} steps: {metrics['val_mIoU']:.3f} (files in {root})")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    main(steps=args.steps)
