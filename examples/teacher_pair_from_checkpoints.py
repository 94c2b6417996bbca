"""Build a ``TeacherPair`` from your own teacher checkpoints.

Three ways, from the most to the least automatic:

1. Checkpoints written by this library's training modules (``SupervisedModule``,
   ``CPSModule``): ``TeacherPair.from_checkpoints(deep, wide)`` rebuilds each architecture from
   the plain-data description stored in the file, loads the weights strictly and records each
   file's SHA-256.
2. Your own architecture with a weights file (a state dict as ``.safetensors`` or ``.pt``, or a
   Lightning checkpoint): ``TeacherPair(deep=net, wide=net, deep_weights=..., wide_weights=...)``.
3. State dicts already in memory: ``TeacherPair.from_state_dicts(deep, wide, deep_sd, wide_sd)``.

In YAML (the command line), way 1 is::

    teachers:
      class_path: mgd_lightning.models.TeacherPair
      init_args:
        deep_weights: runs/teacher_deep/checkpoints/last.ckpt
        wide_weights: runs/teacher_wide/checkpoints/last.ckpt

Run: ``python examples/teacher_pair_from_checkpoints.py``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors.torch import save_file

from mgd_lightning.datamodules import SyntheticDataModule
from mgd_lightning.models import DeepLabV3Plus, TeacherPair
from mgd_lightning.tasks import SupervisedModule


def main(workdir: str | None = None) -> TeacherPair:
    root = Path(workdir or tempfile.mkdtemp(prefix="mgd-teachers-"))
    L.seed_everything(0)
    data = SyntheticDataModule(
        image_size=32, num_train=32, num_val=4, num_test=4, labeled_ratio=0.25, batch_size=2
    )

    def net(width: int) -> DeepLabV3Plus:
        return DeepLabV3Plus("resnet10t", num_classes=data.num_classes, head_channels=width)

    # Two teacher checkpoints of this library (a couple of steps only, for the example).
    paths = {}
    for role, width in (("deep", 16), ("wide", 32)):
        checkpoints = ModelCheckpoint(dirpath=root / role / "checkpoints", save_last=True)
        trainer = L.Trainer(
            max_steps=2,
            default_root_dir=root / role,
            logger=False,
            callbacks=[checkpoints],
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=1,
        )
        trainer.fit(SupervisedModule(net(width), num_classes=data.num_classes), datamodule=data)
        paths[role] = trainer.checkpoint_callback.last_model_path  # type: ignore[union-attr]

    # 1. From the checkpoints alone.
    pair = TeacherPair.from_checkpoints(paths["deep"], paths["wide"])
    print("from checkpoints:", {k: v and v["sha256"][:12] for k, v in pair.sources.items()})

    # 2. Your architecture plus a weights file (here: a safetensors state dict).
    wide_file = root / "wide.safetensors"
    save_file(pair.wide.state_dict(), str(wide_file))
    pair2 = TeacherPair(
        deep=net(16), wide=net(32), deep_weights=paths["deep"], wide_weights=wide_file
    )

    # 3. In-memory state dicts.
    pair3 = TeacherPair.from_state_dicts(
        net(16), net(32), pair.deep.state_dict(), pair.wide.state_dict()
    )

    images = torch.randn(2, 3, 32, 32)
    outputs = [p([images]).deep[0].logits for p in (pair, pair2, pair3)]
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    print("all three pairs give the same teacher outputs:", tuple(outputs[0].shape))
    return pair


if __name__ == "__main__":
    main()
