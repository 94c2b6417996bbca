"""Plain-data descriptions of networks, so checkpoints rebuild them without pickled code.

A network that defines ``init_args`` (a dict of plain values: its constructor arguments) can be
described as ``{"class_path": "pkg.module.Class", "init_args": {...}}`` and rebuilt from that
description. Training modules store the description of their network in every checkpoint
(key ``"mgd_network"``), which is how :func:`load_student` and ``TeacherPair`` rebuild a student
or a teacher from a checkpoint file alone.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from torch import nn

from mgd_lightning.models.weights import load_checkpoint, load_network_weights

__all__ = ["build_network", "load_student", "network_from_checkpoint", "network_spec"]

# Packages whose classes a description may name without being imported first.
_TRUSTED_PACKAGES = ("mgd_lightning.",)


def network_spec(network: nn.Module) -> dict[str, Any] | None:
    """Describe ``network`` as ``{"class_path", "init_args"}``, or ``None`` if it can't be.

    Args:
        network: A module; it is describable when it has a plain-data ``init_args`` dict.

    Returns:
        The description, or ``None`` for networks without ``init_args``.
    """
    init_args = getattr(network, "init_args", None)
    if not isinstance(init_args, dict):
        return None
    cls = type(network)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(init_args)}


def build_network(spec: dict[str, Any], **overrides: Any) -> nn.Module:
    """Rebuild a network from :func:`network_spec`'s description (weights not loaded).

    Only classes of ``mgd_lightning`` or of modules the program has already imported are
    accepted, so a checkpoint can't make this function import arbitrary code.

    Args:
        spec: ``{"class_path": ..., "init_args": {...}}``.
        **overrides: Constructor arguments replacing those of the description
            (e.g. ``pretrained=False``).

    Returns:
        A new, randomly initialised network.
    """
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(
            f"a network description must be a dict with 'class_path' and 'init_args', got {spec!r}"
        )
    class_path = str(spec["class_path"])
    module_name, _, class_name = class_path.rpartition(".")
    if module_name not in sys.modules and not class_path.startswith(_TRUSTED_PACKAGES):
        raise ValueError(
            f"the network class {class_path!r} is not part of mgd_lightning and its module is not "
            "imported; import the module that defines it before loading the checkpoint"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot find the network class {class_path!r}: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{class_path!r} is not a torch.nn.Module subclass")
    init_args = dict(spec.get("init_args") or {})
    init_args.update(overrides)
    network: nn.Module = cls(**init_args)
    return network


def network_from_checkpoint(path: str | os.PathLike[str], load_weights: bool = False) -> nn.Module:
    """Rebuild the network a checkpoint of this library's training modules describes.

    Args:
        path: a Lightning checkpoint written by ``SupervisedModule``, ``CPSModule`` or
            ``DistillationModule`` (it holds ``"mgd_network"``); read with ``weights_only=True``.
        load_weights: also load the trained weights (strictly, prefix ``network.``).

    Returns:
        The network, in training mode, on the CPU.

    Raises:
        ValueError: the checkpoint holds no network description (pass the network yourself).
    """
    checkpoint = load_checkpoint(path)
    spec = checkpoint.get("mgd_network") if isinstance(checkpoint, dict) else None
    if spec is None:
        raise ValueError(
            f"{os.fspath(path)!r} holds no network description ('mgd_network'); it was not "
            "written by this library's training modules: build the network yourself and load "
            "the weights with load_network_weights(network, path)"
        )
    init_args = dict(spec.get("init_args") or {})
    # The checkpoint's own weights replace whatever the network was first built from.
    for key, value in (("pretrained", False), ("weights", None), ("backbone_weights", None)):
        if key in init_args:
            init_args[key] = value
    network = build_network({"class_path": spec["class_path"], "init_args": init_args})
    if load_weights:
        load_network_weights(network, path)
    return network


def load_student(network_or_checkpoint: nn.Module | str | os.PathLike[str]) -> nn.Module:
    """The network to export, in eval mode on the CPU, as a plain module.

    Args:
        network_or_checkpoint: a network; a training module (its ``network``: the student of a
            ``DistillationModule``, branch 1 of a ``CPSModule``); or the path of a checkpoint of
            this library's training modules (rebuilt with
            :func:`~mgd_lightning.models.network_from_checkpoint`, weights loaded strictly).

    Returns:
        The network (not a copy when a module was given). A network rebuilt from a checkpoint
        is in eval mode; a given one keeps its mode (the export functions switch it to eval
        mode for the export and back).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the checkpoint holds no network description, or the argument is neither a
            module nor a path.
    """
    if isinstance(network_or_checkpoint, nn.Module):
        network = getattr(network_or_checkpoint, "network", network_or_checkpoint)
        if not isinstance(network, nn.Module):
            network = network_or_checkpoint
    elif isinstance(network_or_checkpoint, str | os.PathLike):
        path = Path(network_or_checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"checkpoint {path} does not exist (or is not a file); give the path of a "
                "checkpoint written by this library's training modules, e.g. runs/.../last.ckpt"
            )
        network = network_from_checkpoint(path, load_weights=True).eval()
    else:
        raise ValueError(
            "`network_or_checkpoint` must be an nn.Module or a checkpoint path, got "
            f"{type(network_or_checkpoint).__name__}"
        )
    return network
