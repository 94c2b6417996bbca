"""Atomic file writes: a crash or an error never leaves a half-written file at the destination.

Every file the library writes for the user (exports, PNGs, reports, results) goes through
:func:`atomic_path`: the content is written to a temporary file in the destination's folder,
then moved over the destination with ``os.replace`` (atomic on one file system).

Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "note.txt"
    >>> write_text_atomic(target, "hello\\n").read_text()
    'hello\\n'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "writable_folder", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it there only if the block succeeds.

    The temporary file is removed whatever happens; parent folders of ``target`` are created.
    """
    destination = Path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(
        f".{destination.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    )
    try:
        yield temporary
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def writable_folder(folder: str | os.PathLike[str], what: str, fix: str = "") -> Path:
    """Create ``folder`` (and its parents) and check that a file can be written in it.

    Args:
        folder: the folder.
        what: how error messages name it, e.g. ``"output_dir runs/predictions"``.
        fix: what to do, appended to error messages (e.g. ``"; choose another output_dir"``).

    Raises:
        NotADirectoryError: ``folder`` or one of its parents is a file.
        PermissionError: the folder cannot be created or written to.
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise NotADirectoryError(
            f"{what}: the folder {path} (or a parent of it) is a file, not a folder{fix}"
        ) from error
    except OSError as error:
        raise PermissionError(
            f"{what}: cannot create the folder {path} ({error.strerror}){fix}"
        ) from error
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
    except OSError as error:
        raise PermissionError(
            f"{what}: the folder {path} is not writable ({error.strerror}){fix}"
        ) from error
    os.close(handle)
    os.unlink(probe)
    return path
