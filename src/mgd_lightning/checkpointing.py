"""Checkpoint files that are never half-written, and read with the library's own checks.

Lightning's default writer saves through an fsspec transaction: the bytes go to a temporary
file in ``$TMPDIR`` which is then *moved* over the target. When ``$TMPDIR`` is on another
filesystem than the run (a tmpfs ``/tmp`` is common) the move is a copy into the target itself,
so a kill during it leaves ``last.ckpt`` empty or truncated, and the temporary file stays behind.

:class:`AtomicCheckpointIO` writes beside the target instead: a hidden temporary file in the
checkpoint's own folder (``.last.ckpt.<pid>-<hex>.tmp``, through the library's one atomic write,
:func:`mgd_lightning.files.atomic_path`), flushed and fsynced, then renamed over the target with
:func:`os.replace` (atomic on one filesystem), then the folder is fsynced. A
write interrupted at any point leaves the previous file intact; temporary files of processes
that no longer run are removed at the first save into a folder. Reading goes through
:func:`mgd_lightning.models.weights.load_checkpoint` (``weights_only=True``): a truncated file or
one holding pickled code gives the library's named error, whatever path or alias
(``--ckpt_path last``) led to it.

The command line installs it in every Trainer it builds (:func:`use_atomic_checkpoints`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from mgd_lightning.files import atomic_path
from mgd_lightning.models.weights import load_checkpoint

__all__ = [
    "TEMPORARY_SUFFIX",
    "AtomicCheckpointIO",
    "atomic_save",
    "last_checkpoint",
    "remove_stale_temporaries",
    "use_atomic_checkpoints",
]

#: Suffix of the temporary files written beside a checkpoint (``.<name>.<pid>-<hex>.tmp``, the
#: names of :func:`mgd_lightning.files.atomic_path`).
TEMPORARY_SUFFIX = ".tmp"


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``.

    A file ``.<name>.<pid>-<hex>.tmp`` (:func:`mgd_lightning.files.atomic_path`) is stale when
    process ``pid`` no longer runs (or is this one: its own writes clean up after themselves).

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    directory = Path(folder)
    if not directory.is_dir():
        return removed
    for path in directory.glob(f".*{TEMPORARY_SUFFIX}"):
        pid_text = path.name[: -len(TEMPORARY_SUFFIX)].rsplit(".", 1)[-1].split("-")[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or not _process_runs(pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform or filesystem
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` so that ``path`` holds either the old or the new file, whole.

    Writes through :func:`mgd_lightning.files.atomic_path` (a temporary file in the same
    folder, renamed over ``path``), fsyncing the file before the rename and the folder after.
    On any error (or ``KeyboardInterrupt``) the temporary file is removed and ``path`` is
    untouched.
    """
    target = Path(path)
    with atomic_path(target) as temporary, open(temporary, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_directory(target.parent)


def _is_local(path: str | os.PathLike[str]) -> bool:
    return get_protocol(str(path)) in ("file", "local")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO``: atomic writes beside the target, reads with named errors.

    Local paths are written with :func:`atomic_save` (remote ones, e.g. ``s3://``, with
    Lightning's writer). Every checkpoint is read with ``weights_only=True`` through
    :func:`~mgd_lightning.models.weights.load_checkpoint`: a ``weights_only=False`` request is
    not honoured.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cleaned: set[Path] = set()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(str(path).removeprefix("file://"))
        folder = target.parent.resolve()
        if folder not in self._cleaned:
            remove_stale_temporaries(folder)
            self._cleaned.add(folder)
        atomic_save(checkpoint, target)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable[..., Any] | None = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        checkpoint = load_checkpoint(str(path).removeprefix("file://"))
        if not isinstance(checkpoint, dict):
            raise ValueError(
                f"{str(path)!r} is not a Lightning checkpoint: it holds a "
                f"{type(checkpoint).__name__}, not a dict"
            )
        return checkpoint


def use_atomic_checkpoints(trainer: Trainer) -> None:
    """Give ``trainer`` an :class:`AtomicCheckpointIO` unless it was given another writer.

    Only Lightning's plain default (``TorchCheckpointIO``) is replaced; a ``CheckpointIO``
    named in the configuration (``trainer.plugins``) is kept.
    """
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()


def last_checkpoint(trainer: Trainer) -> str:
    """The newest ``last*.ckpt`` of the ``ModelCheckpoint`` folders (``--ckpt_path last``).

    Lightning only warns when there is none and trains from scratch; here it is an error, so
    that a mistyped root never silently starts a new run.

    Raises:
        FileNotFoundError: no ``ModelCheckpoint``, or no ``last*.ckpt`` in its folder; the
            message names the folders searched.
    """
    folders: list[str] = []
    candidates: set[str] = set()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            folders.append(str(callback.dirpath or "<logger folder>/checkpoints"))
            candidates |= callback._find_last_checkpoints(trainer)
    existing = [path for path in candidates if os.path.isfile(path)]
    if not existing:
        where = ", ".join(repr(folder) for folder in folders) or "nowhere (checkpointing is off)"
        raise FileNotFoundError(
            f"--ckpt_path last: there is no last checkpoint (last.ckpt) in {where}; check "
            "--trainer.default_root_dir, give the checkpoint's path, or leave out --ckpt_path "
            "to start a new run"
        )
    return max(existing, key=os.path.getmtime)
