"""The ``mgd-lightning`` command: LightningCLI (fit, validate, test, predict) in subclass mode.

``mgd-lightning fit --config configs/quickstart/mgd.yaml`` trains; any module of
:mod:`mgd_lightning.tasks` and any datamodule of :mod:`mgd_lightning.datamodules` (or your own
subclasses) can be named with ``class_path``. The number of classes, the ignore index and the
class names are linked from the datamodule to the module and to its network.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from mgd_lightning.models.weights import load_checkpoint
from mgd_lightning.tasks.base import SegmentationTask

__all__ = ["MGDLightningCLI", "console_main", "main"]


class MGDLightningCLI(LightningCLI):
    """LightningCLI with the links from the datamodule to the module and its network."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for source, target in (
            ("data.num_classes", "model.init_args.num_classes"),
            ("data.num_classes", "model.init_args.network.init_args.num_classes"),
            ("data.ignore_index", "model.init_args.ignore_index"),
            ("data.class_names", "model.init_args.class_names"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then check ``--ckpt_path`` before Lightning reads it."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            _check_checkpoint_path(self.config[subcommand].get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        """Add the default callbacks unless the config names its own ``trainer.callbacks``.

        Defaults: Lightning's rich progress bar (unless ``enable_progress_bar`` is false) and a
        ``ModelCheckpoint`` writing ``<default_root_dir>/checkpoints/last.ckpt`` every 200 steps
        and at the end of each epoch (unless ``enable_checkpointing`` is false), whatever the
        logger, so that a stage's checkpoint has a predictable path.
        """
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is None:
            return
        trainer = config.get("trainer")
        if trainer is None or trainer.get("callbacks") is not None:
            return
        callbacks = []
        if trainer.get("enable_progress_bar") is not False:
            callbacks.append(Namespace(class_path="lightning.pytorch.callbacks.RichProgressBar"))
        if trainer.get("enable_checkpointing") is not False:
            root = trainer.get("default_root_dir") or "runs"
            callbacks.append(
                Namespace(
                    class_path="lightning.pytorch.callbacks.ModelCheckpoint",
                    init_args=Namespace(
                        dirpath=os.path.join(str(root), "checkpoints"),
                        save_last=True,
                        every_n_train_steps=200,
                    ),
                )
            )
        trainer["callbacks"] = callbacks


def _check_checkpoint_path(path: Any) -> None:
    """Fail before anything is built when ``--ckpt_path`` is missing, damaged or unsafe."""
    if path is None or path in ("last", "best", "hpc", "registry"):
        return
    if not os.path.isfile(str(path)):
        raise FileNotFoundError(
            f"--ckpt_path {path!r} does not exist; give the path of a .ckpt file, e.g. "
            "<default_root_dir>/checkpoints/last.ckpt"
        )
    load_checkpoint(path)  # raises a ValueError naming the file if truncated or pickled code


def trainer_defaults() -> dict[str, Any]:
    """Defaults of the ``trainer`` section: runs/ as root folder, offline wandb logger."""
    return {
        "default_root_dir": "runs",
        "logger": lazy_instance(
            WandbLogger, offline=True, save_dir="runs", project="mgd-lightning"
        ),
    }


#: Commands beyond LightningCLI's fit/validate/test/predict: name -> module with ``main(args)``.
EXTRA_COMMANDS: dict[str, str] = {
    "pipeline": "mgd_lightning.commands.pipeline",
    "export": "mgd_lightning.commands.export",
    "profile": "mgd_lightning.commands.profile",
}


def main(args: Sequence[str] | None = None, run: bool = True) -> Any:
    """Run the command line.

    ``fit``, ``validate``, ``test`` and ``predict`` go to LightningCLI; the commands of
    :data:`EXTRA_COMMANDS` (``pipeline``, ``export``, ``profile``) to their own modules.

    Args:
        args: Arguments without the program name; ``None`` reads ``sys.argv``.
        run: ``False`` parses a config without a subcommand (``["--config", path]``) and
            returns the CLI with its ``model``, ``datamodule`` and ``trainer`` built but not run.

    Returns:
        The :class:`MGDLightningCLI` (or the extra command's return value).
    """
    os.environ.setdefault("WANDB_SILENT", "true")
    # Lightning's own calls into jsonargparse are deprecated there; they are not ours to fix.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in EXTRA_COMMANDS:
        command = importlib.import_module(EXTRA_COMMANDS[argv[0]])
        return command.main(argv[1:])
    return MGDLightningCLI(
        SegmentationTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        run=run,
        args=None if args is None else list(args),
    )


def console_main() -> None:
    """Entry point of the ``mgd-lightning`` command and ``python -m mgd_lightning``.

    Exits with the extra commands' status (0 on success) and 0 after a LightningCLI run;
    errors propagate as exceptions (non-zero exit).
    """
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
