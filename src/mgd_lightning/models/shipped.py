"""Teachers shipped inside the package: compact weight files with a manifest, checked at load.

A shipped set is a folder holding ``manifest.json`` and one safetensors file per teacher. The
manifest records, for each teacher (``"deep"``, ``"wide"``), its file, byte size, SHA-256,
stored dtype and network description (``{"class_path", "init_args"}``, see
:mod:`mgd_lightning.models.spec`), plus how the set was made. Loading a teacher checks the
file's size and SHA-256 against the manifest before reading it, so a truncated or modified file
is refused with an error naming it, never used.

The package ships one set, ``"synthetic"``: the deep and the wide teacher of the embedded
synthetic scenes (:class:`~mgd_lightning.datamodules.SyntheticDataModule`), trained with
``mgd-lightning pipeline --config configs/quickstart/teachers.yaml``. Load it with
``TeacherPair.from_shipped("synthetic")`` or ``TeacherPair(shipped="synthetic")``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mgd_lightning.models.spec import build_network, portable_spec, storage_state_dict
from mgd_lightning.models.weights import load_state_dict_file, load_state_dict_strict, sha256_file

__all__ = [
    "SHIPPED_ROOT",
    "ShippedTeacherError",
    "load_shipped_teacher",
    "read_manifest",
    "save_shipped_teachers",
    "shipped_teacher_file",
]

#: Folder of the shipped sets inside the installed package (``<set>/manifest.json``).
SHIPPED_ROOT = Path(__file__).resolve().parent.parent / "shipped"
_MANIFEST = "manifest.json"
_FORMAT = "mgd-lightning shipped teachers v1"
_ROLES = ("deep", "wide")


class ShippedTeacherError(ValueError):
    """A shipped teacher's manifest or weight file is missing, malformed or does not match."""


def _manifest_path(source: str | os.PathLike[str]) -> Path:
    """The manifest of ``source``: a shipped set's name, a set folder or a manifest file."""
    path = Path(source)
    if path.suffix == ".json":
        return path
    if path.is_dir():
        return path / _MANIFEST
    if isinstance(source, str) and os.sep not in source and "/" not in source:
        return SHIPPED_ROOT / source / _MANIFEST
    return path / _MANIFEST


def read_manifest(source: str | os.PathLike[str] = "synthetic") -> dict[str, Any]:
    """Read and check the manifest of a shipped teacher set.

    Args:
        source: the name of a set shipped in the package (``"synthetic"``), a set folder, or
            the path of its ``manifest.json``.

    Returns:
        The manifest, with ``"root"`` (the folder of the weight files) added.

    Raises:
        ShippedTeacherError: the manifest is missing, is not JSON, or lacks a field.
    """
    path = _manifest_path(source)
    if not path.is_file():
        shipped = sorted(p.name for p in SHIPPED_ROOT.iterdir()) if SHIPPED_ROOT.is_dir() else []
        raise ShippedTeacherError(
            f"no shipped-teacher manifest at {os.fspath(path)!r}; give the name of a shipped set "
            f"({', '.join(shipped) or 'none installed'}), a set folder or a manifest.json"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ShippedTeacherError(f"{os.fspath(path)!r} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ShippedTeacherError(
            f"{os.fspath(path)!r} is not a shipped-teacher manifest (expected "
            f"'format': {_FORMAT!r})"
        )
    teachers = manifest.get("teachers")
    for role in _ROLES:
        entry = teachers.get(role) if isinstance(teachers, dict) else None
        missing = [
            key
            for key in ("file", "bytes", "sha256", "network")
            if not isinstance(entry, dict) or key not in entry
        ]
        if missing:
            raise ShippedTeacherError(
                f"{os.fspath(path)!r}: the {role} teacher's entry lacks {missing}"
            )
    return {**manifest, "root": os.fspath(path.parent)}


def shipped_teacher_file(role: str, source: str | os.PathLike[str] = "synthetic") -> Path:
    """The checked weight file of one shipped teacher.

    Checks that the file exists and that its size and SHA-256 are those the manifest records.

    Args:
        role: ``"deep"`` or ``"wide"``.
        source: see :func:`read_manifest`.

    Raises:
        ShippedTeacherError: unknown role, file missing, truncated or modified.
    """
    if role not in _ROLES:
        raise ShippedTeacherError(f"teacher role must be 'deep' or 'wide', got {role!r}")
    manifest = read_manifest(source)
    entry = manifest["teachers"][role]
    file = Path(manifest["root"]) / str(entry["file"])
    if not file.is_file():
        raise ShippedTeacherError(
            f"the {role} teacher's weight file {os.fspath(file)!r} is missing; reinstall the "
            "package or retrain the teachers (mgd-lightning pipeline --config "
            "configs/quickstart/teachers.yaml)"
        )
    size = file.stat().st_size
    if size != int(entry["bytes"]):
        raise ShippedTeacherError(
            f"the {role} teacher's weight file {os.fspath(file)!r} has {size} bytes, the manifest "
            f"records {entry['bytes']}: the file is truncated or replaced; reinstall the package "
            "or retrain the teachers"
        )
    digest = sha256_file(file)
    if digest != entry["sha256"]:
        raise ShippedTeacherError(
            f"the {role} teacher's weight file {os.fspath(file)!r} has SHA-256 {digest}, the "
            f"manifest records {entry['sha256']}: the file was modified; reinstall the package "
            "or retrain the teachers"
        )
    return file


def load_shipped_teacher(
    role: str, source: str | os.PathLike[str] = "synthetic"
) -> tuple[nn.Module, dict[str, str]]:
    """Build one shipped teacher from its manifest entry and load its checked weights.

    The network is rebuilt from the recorded description; the stored (fp16) weights are cast
    to the network's dtype (fp32) and loaded strictly.

    Args:
        role: ``"deep"`` or ``"wide"``.
        source: see :func:`read_manifest`.

    Returns:
        ``(network, {"path": ..., "sha256": ...})``.
    """
    file = shipped_teacher_file(role, source)
    entry = read_manifest(source)["teachers"][role]
    network = build_network(entry["network"])
    reference = network.state_dict()
    state = {
        key: value.to(reference[key].dtype) if key in reference else value
        for key, value in load_state_dict_file(file).items()
    }
    load_state_dict_strict(network, state, source=os.fspath(file))
    return network, {"path": os.fspath(file), "sha256": str(entry["sha256"])}


def save_shipped_teachers(
    deep: nn.Module,
    wide: nn.Module,
    folder: str | os.PathLike[str],
    dtype: torch.dtype = torch.float16,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write both teachers as a shipped set: ``teacher_{deep,wide}.safetensors`` + manifest.

    Floating-point tensors are stored in ``dtype`` (fp16 halves the size; integer buffers such
    as BatchNorm's ``num_batches_tracked`` keep theirs).

    Args:
        deep: the deep teacher; needs a network description (``init_args``).
        wide: the wide teacher.
        folder: where to write (created if needed).
        dtype: storage dtype of floating-point tensors.
        info: extra manifest fields (e.g. how the teachers were trained, their mIoU), per
            teacher under ``info["teachers"][role]`` and for the set at the top.

    Returns:
        The manifest path.
    """
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(info or {})
    per_teacher = dict(extra.pop("teachers", {}) or {})
    teachers: dict[str, Any] = {}
    for role, network in zip(_ROLES, (deep, wide), strict=True):
        spec = portable_spec(network, f"the {role} teacher")
        state = storage_state_dict(network, dtype, f"the {role} teacher")
        file = out / f"teacher_{role}.safetensors"
        save_file(state, os.fspath(file))
        teachers[role] = {
            **dict(per_teacher.get(role) or {}),
            "file": file.name,
            "bytes": file.stat().st_size,
            "sha256": sha256_file(file),
            "dtype": str(dtype).removeprefix("torch."),
            "network": spec,
        }
    manifest = {"format": _FORMAT, **extra, "teachers": teachers}
    path = out / _MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
