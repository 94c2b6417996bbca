"""``TeacherLabelCacheCallback``: the teacher-label cache as a Lightning callback (configurable).

Name it in a LightningCLI config (``trainer.callbacks``) or pass it to a ``Trainer``; it calls
:func:`~mgd_lightning.teacher_labels.attach_teacher_label_cache` when fitting starts, with the
module's teachers (already on the training device) and the trainer's datamodule::

    trainer:
      callbacks:
        - class_path: mgd_lightning.teacher_labels.TeacherLabelCacheCallback
          init_args: {root: runs/teacher_labels}
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl

from mgd_lightning.models.teachers import TeacherPair
from mgd_lightning.teacher_labels.attach import attach_teacher_label_cache

__all__ = ["TeacherLabelCacheCallback"]


class TeacherLabelCacheCallback(pl.Callback):
    """Build (or reopen) the teacher-label cache at the start of fitting and train from it.

    Rank 0 builds the cache; the other ranks wait for it and reopen it.

    Args:
        root: cache folder (``labeled/`` and ``unlabeled/`` below it); reopened when its image
            ids match the datamodule's training sets.
        scale: resolution of the stored maps relative to the images.
    """

    def __init__(self, root: str | os.PathLike[str], scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"`scale` must be > 0, got {scale!r}")
        self.root = Path(root)
        self.scale = scale

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        teachers = getattr(pl_module, "teachers", None)
        if not isinstance(teachers, TeacherPair):
            raise ValueError(
                "TeacherLabelCacheCallback needs a module with frozen teachers (a "
                f"DistillationModule with `teachers`), got {type(pl_module).__name__}; remove "
                "the callback from trainer.callbacks"
            )
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None:
            raise ValueError(
                "TeacherLabelCacheCallback needs the datamodule: call trainer.fit(module, "
                "datamodule=...)"
            )
        if trainer.is_global_zero:
            attach_teacher_label_cache(datamodule, teachers, self.root, self.scale)
        trainer.strategy.barrier("teacher_label_cache")
        if not trainer.is_global_zero:
            attach_teacher_label_cache(datamodule, teachers, self.root, self.scale)
