"""How the command line reports an error: the library's message first, in a few lines.

An error raised while LightningCLI builds the model, the data or the teachers reaches the user
wrapped by jsonargparse: a traceback of some 80 lines whose end is ``Given value:
Namespace(class_path=...)``, with the library's message (``batch_size must be a positive
integer, got 0``) somewhere in the middle. :func:`format_error` finds that message in the
exception chain and prints it alone; ``--debug`` or ``MGD_DEBUG=1`` shows the full traceback.
Errors in the arguments themselves (an unknown key, a value of the wrong type) are jsonargparse's;
:class:`ShortUsageParser` prints them after a one-line usage instead of a 40-line one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

__all__ = [
    "DEBUG_FLAG",
    "DEBUG_VARIABLE",
    "ShortUsageParser",
    "debug_requested",
    "format_error",
]

#: The command-line switch that shows the full traceback instead of the short message.
DEBUG_FLAG = "--debug"
#: The environment variable that does the same (any value but ``""``, ``0``, ``false``, ``no``).
DEBUG_VARIABLE = "MGD_DEBUG"

_PACKAGE = Path(__file__).resolve().parent
_MAX_LINES = 25


def debug_requested(argv: list[str]) -> bool:
    """Whether ``argv`` holds :data:`DEBUG_FLAG` or :data:`DEBUG_VARIABLE` is set."""
    value = os.environ.get(DEBUG_VARIABLE, "").strip().lower()
    return DEBUG_FLAG in argv or value not in ("", "0", "false", "no")


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes (``raise ... from``) or contexts, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _raised_by_library(error: BaseException) -> bool:
    traceback: TracebackType | None = error.__traceback__
    last = None
    while traceback is not None:
        last = traceback
        traceback = traceback.tb_next
    if last is None:
        return False
    return Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def _source(error: BaseException) -> BaseException:
    """The exception to show: the innermost one the library raised, else the root cause."""
    chain = _chain(error)
    for candidate in reversed(chain):
        if _raised_by_library(candidate):
            return candidate
    return chain[-1]


def format_error(error: BaseException, program: str = "mgd-lightning") -> str:
    """A few lines for the user: the library's message, then how to see the full traceback.

    Args:
        error: what the command raised.
        program: the command's name, printed first.

    Returns:
        ``"<program>: error: <message>"`` (``<Type>: <message>`` for errors not raised by the
        library), at most 25 lines of it, and a last line naming ``--debug``/``MGD_DEBUG=1``.
    """
    source = _source(error)
    message = str(source).strip()
    if isinstance(source, KeyError) and message.startswith("'"):
        message = f"missing key {message}"
    if not _raised_by_library(source) or not message:
        message = f"{type(source).__name__}: {message}" if message else type(source).__name__
    lines = message.splitlines()
    if len(lines) > _MAX_LINES:
        lines = [*lines[:_MAX_LINES], f"... ({len(lines) - _MAX_LINES} more lines)"]
    lines[0] = f"{program}: error: {lines[0]}"
    lines.append(
        f"(the full traceback: run again with {DEBUG_FLAG} or {DEBUG_VARIABLE}=1)"
    )
    return "\n".join(lines)


class ShortUsageParser(LightningArgumentParser):
    """LightningCLI's parser whose argument errors start with a one-line usage.

    ``--help`` is unchanged; only the usage printed before an error is shortened, so that the
    error itself is in the first lines.
    """

    def print_usage(self, file: Any = None) -> None:
        prog = self.prog.replace(" [options]", "")
        (file or sys.stdout).write(f"usage: {prog} [-h] [--config CONFIG] [options]\n")
