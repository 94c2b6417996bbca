"""The ``mgd-lightning`` command: LightningCLI (fit, validate, test, predict) and four more.

``mgd-lightning fit --config configs/quickstart/student_mgd.yaml`` trains; any module of
:mod:`mgd_lightning.tasks` and any datamodule of :mod:`mgd_lightning.datamodules` (or your own
subclasses) can be named with ``class_path``. ``pipeline``, ``export``, ``profile`` and
``evaluate`` are the thin parsers of :mod:`mgd_lightning.commands` over
:mod:`mgd_lightning.pipeline`, :mod:`mgd_lightning.export`, :mod:`mgd_lightning.models.profile`
and :mod:`mgd_lightning.evaluation`.

This module is the entry point and nothing else: it imports the commands, and nothing in the
library imports it. The LightningCLI subclass lives in :mod:`mgd_lightning.parsing`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from mgd_lightning.cli_errors import DEBUG_FLAG, debug_requested, format_error
from mgd_lightning.parsing import MGDLightningCLI, build_cli, trainer_defaults

__all__ = ["EXTRA_COMMANDS", "MGDLightningCLI", "console_main", "main", "trainer_defaults"]

#: Commands beyond LightningCLI's fit/validate/test/predict: name -> module with ``main(args)``.
EXTRA_COMMANDS: dict[str, str] = {
    "pipeline": "mgd_lightning.commands.pipeline",
    "export": "mgd_lightning.commands.export",
    "profile": "mgd_lightning.commands.profile",
    "evaluate": "mgd_lightning.commands.evaluate",
}


def main(args: Sequence[str] | None = None, run: bool = True) -> Any:
    """Run the command line.

    ``fit``, ``validate``, ``test`` and ``predict`` go to LightningCLI
    (:func:`~mgd_lightning.parsing.build_cli`); the commands of :data:`EXTRA_COMMANDS`
    (``pipeline``, ``export``, ``profile``, ``evaluate``) to their own modules.

    Args:
        args: Arguments without the program name; ``None`` reads ``sys.argv``.
        run: ``False`` parses a config without a subcommand (``["--config", path]``) and
            returns the CLI with its ``model``, ``datamodule`` and ``trainer`` built but not run.

    Returns:
        The :class:`~mgd_lightning.parsing.MGDLightningCLI` (or the extra command's exit
        status).
    """
    os.environ.setdefault("WANDB_SILENT", "true")
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in EXTRA_COMMANDS:
        command = importlib.import_module(EXTRA_COMMANDS[argv[0]])
        return command.main(argv[1:])
    return build_cli(None if args is None else argv, run=run)


def console_main() -> None:
    """Entry point of the ``mgd-lightning`` command and ``python -m mgd_lightning``.

    Exits with the extra commands' status (0 on success) and 0 after a LightningCLI run. An
    error exits with status 1 after printing the library's message in a few lines
    (:func:`~mgd_lightning.cli_errors.format_error`); ``--debug`` (anywhere on the command
    line) or ``MGD_DEBUG=1`` raises it with the full traceback instead.
    """
    debug = debug_requested(sys.argv[1:])
    sys.argv = [arg for arg in sys.argv if arg != DEBUG_FLAG]
    try:
        result = main()
    except Exception as error:
        if debug:
            raise
        print(format_error(error), file=sys.stderr)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
