"""Plain-data descriptions of networks, so checkpoints rebuild them without pickled code.

A network that defines ``init_args`` (a dict of plain values: its constructor arguments) can be
described as ``{"class_path": "pkg.module.Class", "init_args": {...}}`` and rebuilt from that
description. Training modules store the description of their network in every checkpoint
(key ``"mgd_network"``), which is how :func:`load_student` and ``TeacherPair`` rebuild a student
or a teacher from a checkpoint file alone.

A student alone can also be stored as a self-describing safetensors file
(:func:`mgd_lightning.export.export_safetensors` writes it, :func:`read_student_file` and
:func:`load_student` read it): its weights (fp16 by default) and, in the safetensors metadata,
``format`` (:data:`STUDENT_FILE_FORMAT`), ``network`` (the JSON description, with the
ImageNet-initialisation arguments cleared so that loading needs no other file) and ``info``
(JSON: how it was made).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mgd_lightning.models.batchnorm import shrink_batchnorm_inputs
from mgd_lightning.models.weights import (
    load_checkpoint,
    load_network_weights,
    load_state_dict_file,
    load_state_dict_strict,
)

__all__ = [
    "STUDENT_FILE_FORMAT",
    "build_network",
    "load_student",
    "network_from_checkpoint",
    "network_spec",
    "portable_spec",
    "read_student_file",
    "storage_state_dict",
]

#: The ``format`` metadata of a student safetensors file.
STUDENT_FILE_FORMAT = "mgd-lightning student v1"
#: Constructor arguments that load initial weights; cleared when stored weights replace them.
_INITIALISATION = (("pretrained", False), ("weights", None), ("backbone_weights", None))

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


def _without_initialisation(spec: dict[str, Any]) -> dict[str, Any]:
    init_args = dict(spec.get("init_args") or {})
    for key, value in _INITIALISATION:
        if key in init_args:
            init_args[key] = value
    return {**spec, "init_args": init_args}


def portable_spec(network: nn.Module, what: str = "the network") -> dict[str, Any]:
    """The description of a network whose stored weights replace its initialisation.

    :func:`network_spec` with ``pretrained`` False and ``weights`` and ``backbone_weights``
    None, so that rebuilding it reads no ImageNet or other weight file.

    Raises:
        ValueError: the network has no description (no ``init_args``).
    """
    spec = network_spec(network)
    if spec is None:
        raise ValueError(
            f"{what} ({type(network).__name__}) has no network description (`init_args`); "
            "store networks of this library (e.g. DeepLabV3Plus)"
        )
    return _without_initialisation(spec)


def storage_state_dict(
    network: nn.Module, dtype: torch.dtype = torch.float16, what: str = "the network"
) -> dict[str, Tensor]:
    """The network's state dict for a weight file: floating tensors in ``dtype``, contiguous.

    Integer buffers (BatchNorm's ``num_batches_tracked``) keep their dtype. Conv + BN channels
    of the backbone with huge values (near-dead channels of a fine-tuned re-parametrised
    backbone: filters of 3e7 were seen) are first scaled down in a copy, with the same eval-mode
    function (:func:`~mgd_lightning.models.batchnorm.shrink_batchnorm_inputs`); ``network``
    itself is not changed.

    Raises:
        ValueError: a value does not fit ``dtype`` (it would become inf); the message names
            the tensors.
    """
    backbone = getattr(network, "backbone", None)
    if isinstance(backbone, nn.Module) and dtype in (torch.float16, torch.bfloat16):
        network = copy.deepcopy(network)
        shrink_batchnorm_inputs(network.backbone)  # type: ignore[arg-type]
    state = {
        key: (value.detach().to(dtype) if value.is_floating_point() else value.detach())
        .contiguous()
        .cpu()
        for key, value in network.state_dict().items()
    }
    overflow = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if overflow:
        raise ValueError(
            f"{what} has values that do not fit {dtype} (they become inf): {overflow[:5]}; "
            "store it in a wider dtype (dtype=torch.float32) or rescale those layers"
        )
    return state


def read_student_file(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the student of a safetensors file of ``export_safetensors``, weights loaded.

    The stored (fp16) weights are cast to the network's dtype (fp32) and loaded strictly.

    Args:
        path: the ``.safetensors`` file.

    Returns:
        ``(network, info)``: the network in eval mode on the CPU, and the file's ``info``
        metadata (how it was made) with ``"network"`` (the description) added.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is damaged, not safetensors, or holds no student description.
    """
    from safetensors import SafetensorError, safe_open

    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"weights file {os.fspath(file)!r} does not exist (or is not a file); give a "
            "student .safetensors file written by export_safetensors or benchmarks/camvid.py"
        )
    try:
        with safe_open(os.fspath(file), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"cannot read {os.fspath(file)!r} as safetensors: it is truncated, damaged or not a "
            f"safetensors file ({str(error).strip().splitlines()[0] if str(error) else error!r}); "
            "replace it"
        ) from error
    if metadata.get("format") != STUDENT_FILE_FORMAT or "network" not in metadata:
        raise ValueError(
            f"{os.fspath(file)!r} is not a student file of this library (its metadata lacks "
            f"'format': {STUDENT_FILE_FORMAT!r} and 'network'); build the network yourself "
            "and load the weights with load_network_weights(network, path)"
        )
    try:
        spec = json.loads(metadata["network"])
        info = json.loads(metadata.get("info", "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{os.fspath(file)!r}: its metadata is not valid JSON: {error}") from error
    network = build_network(spec)
    reference = network.state_dict()
    state = {
        key: value.to(reference[key].dtype) if key in reference else value
        for key, value in load_state_dict_file(file).items()
    }
    load_state_dict_strict(network, state, source=os.fspath(file))
    return network.eval(), {**info, "network": spec}


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
    # The checkpoint's own weights replace whatever the network was first built from.
    network = build_network(_without_initialisation(spec))
    if load_weights:
        load_network_weights(network, path)
    return network


def load_student(network_or_checkpoint: nn.Module | str | os.PathLike[str]) -> nn.Module:
    """The network to export, in eval mode on the CPU, as a plain module.

    Args:
        network_or_checkpoint: a network; a training module (its ``network``: the student of a
            ``DistillationModule``, branch 1 of a ``CPSModule``); or the path of a checkpoint of
            this library's training modules (rebuilt with
            :func:`~mgd_lightning.models.network_from_checkpoint`, weights loaded strictly), or
            of a student ``.safetensors`` file (:func:`read_student_file`).

    Returns:
        The network (not a copy when a module was given). A network rebuilt from a checkpoint
        is in eval mode; a given one keeps its mode (the export functions switch it to eval
        mode for the export and back).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the checkpoint holds no network description (or is damaged), or the
            argument is neither a module nor a path.
    """
    if isinstance(network_or_checkpoint, nn.Module):
        network = getattr(network_or_checkpoint, "network", network_or_checkpoint)
        if not isinstance(network, nn.Module):
            network = network_or_checkpoint
    elif isinstance(network_or_checkpoint, str | os.PathLike):
        path = Path(network_or_checkpoint).expanduser()
        if path.suffix == ".safetensors":
            return read_student_file(path)[0]
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
