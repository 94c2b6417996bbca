"""Command-line parsing: the LightningCLI of ``fit`` and friends, and the extra commands' parsers.

:class:`MGDLightningCLI` is LightningCLI in subclass mode: any module of
:mod:`mgd_lightning.tasks` and any datamodule of :mod:`mgd_lightning.datamodules` (or your own
subclasses) can be named with ``class_path``. The number of classes, the ignore index and the
class names are linked from the datamodule to the module and to its network.
:func:`command_parser` gives ``pipeline``, ``export`` and ``profile`` the same jsonargparse style.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import ActionYesNo, ArgumentParser, Namespace, lazy_instance
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from mgd_lightning.checkpointing import last_checkpoint, use_atomic_checkpoints
from mgd_lightning.cli_errors import ShortUsageParser
from mgd_lightning.models.weights import load_checkpoint
from mgd_lightning.tasks.base import SegmentationTask

__all__ = [
    "MGDLightningCLI",
    "add_flag",
    "add_size",
    "build_cli",
    "command_parser",
    "parse_size",
    "run_command",
    "trainer_defaults",
]


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

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's Trainer, writing checkpoints atomically beside their target."""
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)
        return trainer

    def _resolve_last_checkpoint(self) -> None:
        """``--ckpt_path last``: the newest last checkpoint, checked, or an error if none."""
        config = self.config_init[self.subcommand] if self.subcommand else None
        if config is not None and config.get("ckpt_path") == "last":
            path = last_checkpoint(self.trainer)
            _check_checkpoint_path(path)
            config["ckpt_path"] = path

    before_fit = before_validate = before_test = before_predict = _resolve_last_checkpoint

    def before_instantiate_classes(self) -> None:
        """Add the default callbacks unless the config names its own ``trainer.callbacks``.

        Defaults: Lightning's rich progress bar (unless ``enable_progress_bar`` is false) and a
        ``ModelCheckpoint`` writing ``<default_root_dir>/checkpoints/last.ckpt`` every 200 steps
        and at the end of each epoch (unless ``enable_checkpointing`` is false), whatever the
        logger, so that a stage's checkpoint has a predictable path. A second run in the same
        root overwrites ``last.ckpt`` (no ``last-v1.ckpt``): it is always the newest.
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
                        enable_version_counter=False,
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


def build_cli(args: Sequence[str] | None = None, run: bool = True) -> MGDLightningCLI:
    """The LightningCLI of ``mgd-lightning fit|validate|test|predict`` in subclass mode.

    Args:
        args: Arguments without the program name; ``None`` reads ``sys.argv``.
        run: ``False`` parses a config without a subcommand (``["--config", path]``) and
            returns the CLI with its ``model``, ``datamodule`` and ``trainer`` built but not run.
    """
    # Lightning's own calls into jsonargparse are deprecated there; they are not ours to fix.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    return MGDLightningCLI(
        SegmentationTask,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_class=ShortUsageParser,
        run=run,
        args=None if args is None else list(args),
    )


def command_parser(prog: str, description: str) -> ArgumentParser:
    """The parser of an extra command (``pipeline``, ``export``, ``profile``).

    One style for all of them, the one LightningCLI uses: jsonargparse, with ``--config`` for a
    YAML file of the same keys and ``--print_config``.
    """
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", action="config", help="a YAML file of the options below")
    return parser


def add_flag(parser: ArgumentParser, name: str, help: str) -> None:
    """A boolean option that may stand alone: ``--name``, ``--name true`` or ``--no_name``."""
    parser.add_argument(f"--{name}", action=ActionYesNo(), nargs="?", default=False, help=help)


def add_size(parser: ArgumentParser, name: str, default: int, help: str) -> None:
    """An image-size option ``--<name> H [W]`` (dashes or underscores), see :func:`parse_size`."""
    parser.add_argument(
        f"--{name}",
        f"--{name.replace('-', '_')}",
        type=int,
        nargs="+",
        default=[default],
        help=help,
    )


def parse_size(parser: ArgumentParser, name: str, values: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` from the values of :func:`add_size` (one value: square); exits on bad input."""
    if len(values) not in (1, 2) or min(values) <= 0:
        parser.error(f"--{name} takes one or two positive integers (H [W])")
    return values[0], values[-1]


def run_command(prog: str, call: Callable[[], object]) -> int:
    """Run a command's library call; print a bad-input error on one line.

    Returns:
        0 on success; 1 after an ``ImportError``, ``OSError`` or ``ValueError`` (printed as
        ``<prog>: error: <message>`` on stderr).
    """
    try:
        call()
    except (ImportError, OSError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    return 0
