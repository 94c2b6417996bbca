"""Safe, strict loading of network weights from local files.

Files are read either as safetensors or with ``torch.load(..., weights_only=True)``, which
never runs pickled code. Loading into a network is always strict: a file that does not
cover the network exactly raises a :class:`ValueError` that names the file and lists the
missing keys, the unexpected keys and the shape mismatches (the reference code's
``strict=False`` could silently leave a random teacher, docs/method.md#fixes-to-the-reference).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "LIGHTNING_PREFIXES",
    "load_network_weights",
    "load_state_dict_file",
    "load_state_dict_strict",
    "sha256_file",
]

#: Prefixes that ``prefix="auto"`` tries, in order, in a checkpoint of this library's
#: training modules: ``SupervisedModule`` (``network.``), ``CPSModule`` (``branch1.``),
#: ``DistillationModule`` (``student.``).
LIGHTNING_PREFIXES: tuple[str, ...] = ("network.", "branch1.", "student.")

_MAX_LISTED = 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks.

    Args:
        path: the file.

    Returns:
        The 64-character lower-case hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    return len(head) == 9 and not head.startswith(b"PK") and head[8:9] == b"{"


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Read a torch file (a state dict or a whole Lightning checkpoint) without running code.

    Uses ``torch.load(path, map_location="cpu", weights_only=True)``: tensors, numbers,
    strings and plain containers only. A file holding pickled Python objects (code, custom
    classes) is refused with a ``ValueError`` that names it.

    Args:
        path: a file written by ``torch.save`` or by Lightning.

    Returns:
        The loaded object (usually a dict).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds pickled objects, or is not a torch file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {str(file)!r}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if refused is None:  # a damaged stream or random bytes, not a refused object
            raise ValueError(
                f"cannot read {str(file)!r} as a torch checkpoint: it is truncated, damaged or "
                f"not a torch file ({_torch_reason(err)}); use an earlier checkpoint"
            ) from err
        raise ValueError(
            f"refused to load {str(file)!r}: it holds pickled Python objects (code or custom "
            f"classes, here {refused.group(1)}), which are never unpickled here. Re-save it "
            "with plain tensors, e.g. `torch.save(model.state_dict(), path)` or "
            "`safetensors.torch.save_file(...)`"
        ) from err
    except Exception as err:  # damaged bytes fail anywhere in the unpickler (IndexError, ...)
        raise ValueError(
            f"cannot read {str(file)!r} as a torch checkpoint: it is truncated, damaged or not "
            f"a torch file ({_torch_reason(err)}); use an earlier checkpoint"
        ) from err


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _torch_reason(error: BaseException) -> str:
    """torch's reason in a few words, without its advice to retry with the unsafe option."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    reason = _first_line(Exception(text)) if text.strip() else type(error).__name__
    return type(error).__name__ if "weights_only" in reason else reason


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict (name -> tensor) from a safetensors or torch file, safely.

    torch files are read with ``torch.load(path, map_location="cpu", weights_only=True)``.
    A Lightning checkpoint (a dict with a ``"state_dict"`` entry) gives its ``state_dict``
    (whole, with the module prefixes: see :func:`load_network_weights`).

    Args:
        path: a ``.safetensors`` file, or a file written by ``torch.save`` holding a dict of
            tensors or a Lightning checkpoint.

    Returns:
        A dict from parameter/buffer names to CPU tensors.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds pickled Python objects other than tensors and plain
            containers (it is refused, never executed), or it is not a state dict.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"weights file not found: {str(file)!r}")
    if _is_safetensors(file):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(file), device="cpu"))
        except (SafetensorError, OSError) as err:
            raise ValueError(
                f"cannot read {str(file)!r} as safetensors: it is truncated, damaged or not a "
                f"safetensors file ({_first_line(err)}); replace it"
            ) from err
    obj: Any = load_checkpoint(file)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{str(file)!r} does not hold a state dict (a mapping of names to tensors), "
            f"but a {type(obj).__name__}"
        )
    bad = [str(key) for key, value in obj.items() if not isinstance(value, Tensor)]
    if bad:
        raise ValueError(
            f"{str(file)!r} is not a state dict: entries {bad[:_MAX_LISTED]} are not tensors "
            f"(top-level keys: {list(obj)[:_MAX_LISTED]})"
        )
    return {str(key): value for key, value in obj.items()}


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def load_state_dict_strict(
    module: nn.Module, state_dict: Mapping[str, Tensor], source: str = "<state dict>"
) -> None:
    """Load ``state_dict`` into ``module`` strictly, with a readable error.

    Args:
        module: the network to fill.
        state_dict: names to tensors, exactly the keys of ``module.state_dict()``.
        source: what to name in the error message (a file path, "deep teacher", ...).

    Raises:
        ValueError: keys are missing, unexpected, or of the wrong shape; the message names
            ``source`` and lists each kind.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key} (file {tuple(state_dict[key].shape)}, network {tuple(expected[key].shape)})"
        for key in set(expected) & set(state_dict)
        if state_dict[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        parts = [f"weights from {source} do not match {type(module).__name__}:"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {_listing(mismatched)}")
        raise ValueError("\n  ".join(parts))
    module.load_state_dict(dict(state_dict), strict=True)


def _strip_prefix(
    state_dict: Mapping[str, Tensor], prefix: str | None, module_keys: set[str]
) -> tuple[dict[str, Tensor], str]:
    if prefix == "auto":
        chosen = ""
        for candidate in LIGHTNING_PREFIXES:
            if any(key.startswith(candidate) for key in module_keys):
                continue  # the network's own names start with it: not a wrapper prefix
            if any(key.startswith(candidate) for key in state_dict):
                chosen = candidate
                break
    else:
        chosen = prefix or ""
    if not chosen:
        return dict(state_dict), ""
    stripped = {
        key[len(chosen) :]: value for key, value in state_dict.items() if key.startswith(chosen)
    }
    return stripped, chosen


def load_network_weights(
    module: nn.Module,
    path: str | os.PathLike[str],
    prefix: str | None = "auto",
) -> str:
    """Load a network's weights from a file, strictly.

    Args:
        module: the network to fill (e.g. a :class:`~mgd_lightning.models.DeepLabV3Plus`).
        path: a safetensors or torch file: a plain state dict of the network, or a checkpoint
            of this library's training modules (see ``prefix``).
        prefix: keys that start with it are kept, with it removed; the other keys are
            ignored (they belong to other parts of a training module). ``"auto"`` tries
            ``"network."`` (``SupervisedModule``), ``"branch1."`` (``CPSModule``) and
            ``"student."`` (``DistillationModule``) in that order, and takes the keys as
            they are when none occurs. ``None`` or ``""``: keys as they are.

    Returns:
        The prefix that was removed (``""`` for none).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds pickled code, or its keys do not match the network
            (missing, unexpected, shape mismatches, all listed, with the file named).
    """
    state = load_state_dict_file(path)
    state, used = _strip_prefix(state, prefix, set(module.state_dict()))
    label = repr(str(path)) + (f" (prefix {used!r})" if used else "")
    load_state_dict_strict(module, state, source=label)
    return used
