"""ImageNet weights for the backbones: public layouts mapped by name, with a load report.

A backbone here is timm's ``features_only`` network. Weight files people hold come in other
layouts; :func:`load_backbone_state` maps each onto the backbone **by name** (never by position)
and reports what it loaded:

- **timm** (``resnet18``, ``resnet18d``, ``resnet101s``, ``wide_resnet50_2``,
  ``mobilenetv2_100``, ...): the backbone's own names. The classifier (``fc``, ``classifier``,
  MobileNet's ``conv_head``/``bn2``) is skipped as the classification head.
- **timm avg-pool downsampling** (the ``*d`` ResNets, e.g. ``resnet18d``): their projection
  shortcut is ``downsample.0`` avg-pool, ``.1`` conv, ``.2`` BN; the reference's ResNets have no
  pool, so ``.1``/``.2`` load into ``.0``/``.1`` (the same tensors; the network keeps its
  strided 1x1 conv).
- **torchvision**: ``resnet18``, ``resnet101``, ``wide_resnet50_2`` share timm's ResNet names.
  ``mobilenet_v2`` (``features.N...``) is renamed to timm's ``mobilenetv2_100`` names
  (``features.0`` -> ``conv_stem``/``bn1``, ``features.1..17`` -> ``blocks.i.j``,
  ``features.18`` and ``classifier`` are the head).
- **this library**: a whole-network state dict (``backbone.*``) or a training checkpoint
  (``network.backbone.*``, ``branch1.backbone.*``, ``student.backbone.*``); ``module.``
  (DistributedDataParallel) is removed too.

What the file cannot fill (absent, or of another shape) would stay randomly initialised. That is
an error naming the parts, unless the caller opts in (``allow_partial=True``) or asks for a part
to stay random (``random_prefixes``, e.g. the reference's random deep stem).

``pretrained=True`` of the presets goes through timm's hub loading (:func:`timm_state_dict`):
online it downloads once into the Hugging Face cache; offline without the file in the cache it
fails at once with an error saying how to pass a local file instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor, nn

from mgd_lightning.models.weights import LIGHTNING_PREFIXES, load_state_dict_file

__all__ = [
    "BackboneLoadReport",
    "load_backbone_file",
    "load_backbone_state",
    "map_backbone_state",
    "timm_state_dict",
]

#: Wrapper prefixes removed before mapping, tried in order (the first one present wins).
_WRAPPERS: tuple[str, ...] = (
    *(f"{prefix}backbone." for prefix in LIGHTNING_PREFIXES),
    "backbone.",
    "module.",
)
_LISTED = 12


@dataclass
class BackboneLoadReport:
    """What a backbone load did, tensor by tensor (names are the backbone's own).

    Attributes:
        source: the file or hub tag the tensors came from.
        layout: the layout recognised (``"timm"``, ``"torchvision mobilenet_v2"``, ...).
        total: number of tensors in the backbone's state dict.
        loaded: backbone names filled from the source.
        absent: backbone names the source does not have (left as they were).
        mismatched: ``"name (file shape, network shape)"`` for tensors of another shape.
        kept_random: backbone names left as they were on request (``random_prefixes``).
        head: source names skipped as the classification head.
        unused: other source names with no place in the backbone.
    """

    source: str
    layout: str
    total: int
    loaded: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    kept_random: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines: counts, and the names of what did not load and why."""
        lines = [
            f"backbone weights from {self.source} ({self.layout} layout): loaded "
            f"{len(self.loaded)} of {self.total} tensors"
        ]
        if self.kept_random:
            lines.append(f"kept random on request: {_listing(_modules(self.kept_random))}")
        if self.absent:
            lines.append(f"absent from the file: {_listing(_modules(self.absent))}")
        if self.mismatched:
            lines.append(f"shape mismatch: {_listing(self.mismatched)}")
        if self.head:
            lines.append(f"skipped, classification head: {_listing(_modules(self.head))}")
        if self.unused:
            lines.append(f"skipped, not in this backbone: {_listing(_modules(self.unused))}")
        return "\n  ".join(lines)


def _modules(names: Iterable[str]) -> list[str]:
    """Tensor names reduced to their module names, in order, without repeats."""
    return list(dict.fromkeys(n.rpartition(".")[0] or n for n in names))


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    more = len(items) - _LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _strip_wrapper(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    for prefix in _WRAPPERS:
        if any(key.startswith(prefix) for key in state):
            kept = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            return kept, prefix
    return dict(state), ""


def _torchvision_mobilenet_v2_names(backbone: nn.Module) -> dict[str, str]:
    """torchvision ``mobilenet_v2`` module names -> timm ``mobilenetv2_100`` names."""
    names = {
        "features.0.0": "conv_stem",
        "features.0.1": "bn1",
        "features.18.0": "conv_head",
        "features.18.1": "bn2",
        "classifier.1": "classifier",
    }
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        return names
    index = 1
    for i, stage in enumerate(blocks):
        block: nn.Module
        for j, block in enumerate(stage.children()):
            tv, tm = f"features.{index}.conv", f"blocks.{i}.{j}"
            if hasattr(block, "conv_pwl"):  # expansion 6: pw, dw, pw-linear
                parts = {"0.0": "conv_pw", "0.1": "bn1", "1.0": "conv_dw", "1.1": "bn2",
                         "2": "conv_pwl", "3": "bn3"}
            else:  # expansion 1: dw, pw-linear
                parts = {"0.0": "conv_dw", "0.1": "bn1", "1": "conv_pw", "2": "bn2"}
            names.update({f"{tv}.{a}": f"{tm}.{b}" for a, b in parts.items()})
            index += 1
    return names


_AVG_DOWN = re.compile(r"^(layer\d+\.\d+\.downsample\.)([12])\.")


def _translate(
    state: dict[str, Tensor], backbone: nn.Module, own: set[str]
) -> tuple[dict[str, Tensor], str]:
    """Rename a state dict of a known public layout into the backbone's names."""
    keys = set(state)
    if "conv_stem.weight" in own and any(k.startswith("features.") for k in keys):
        table = _torchvision_mobilenet_v2_names(backbone)
        renamed = {}
        for key, value in state.items():
            module, _, leaf = key.rpartition(".")
            renamed[f"{table.get(module, module)}.{leaf}"] = value
        return renamed, "torchvision mobilenet_v2"
    if (
        any(k.endswith("downsample.2.weight") for k in keys)
        and any(k.endswith("downsample.1.weight") for k in own)
        and not any(k.endswith("downsample.2.weight") for k in own)
    ):
        renamed = {
            _AVG_DOWN.sub(lambda m: f"{m.group(1)}{int(m.group(2)) - 1}.", key): value
            for key, value in state.items()
        }
        return renamed, "timm avg-pool downsampling (resnet*d)"
    if any(k.startswith("features.") for k in keys):
        return state, "torchvision"
    return state, "timm/torchvision"


def _head_names(backbone_name: str | None, backbone_kwargs: Mapping[str, Any]) -> set[str]:
    """Names of timm's full classification model (its head is what the backbone lacks)."""
    if backbone_name is None:
        return set()
    with torch.device("meta"):
        full = timm.create_model(backbone_name, pretrained=False, **backbone_kwargs)
    return set(full.state_dict())


_HEAD_PREFIXES = ("fc.", "classifier.", "head.", "conv_head.", "bn2.", "global_pool.")


def map_backbone_state(
    backbone: nn.Module,
    state: Mapping[str, Tensor],
    source: str,
    backbone_name: str | None = None,
    backbone_kwargs: Mapping[str, Any] | None = None,
    random_prefixes: Sequence[str] = (),
    only_prefixes: Sequence[str] | None = None,
) -> tuple[dict[str, Tensor], BackboneLoadReport]:
    """Map ``state`` onto ``backbone``'s names and say what fits; loads nothing.

    Args:
        backbone: the timm ``features_only`` network to fill.
        state: names to tensors in any layout listed in this module's docstring.
        source: what to name in the report (a path, a hub tag).
        backbone_name: the timm model name of ``backbone``; its full model tells the
            classification head apart from other unused names.
        backbone_kwargs: the ``timm.create_model`` arguments ``backbone`` was built with.
        random_prefixes: backbone names starting with one of these are not taken from
            ``state`` (kept as they are, reported as "kept random on request").
        only_prefixes: when given, only backbone names starting with one of these are taken.

    Returns:
        ``(tensors to load, report)``; the tensors use the backbone's names and shapes.
    """
    own = backbone.state_dict()
    stripped, wrapper = _strip_wrapper(state)
    renamed, layout = _translate(stripped, backbone, set(own))
    if wrapper:
        layout = f"mgd-lightning checkpoint ({wrapper!r} prefix)" if wrapper != "module." else (
            f"{layout}, DistributedDataParallel 'module.' prefix"
        )
    report = BackboneLoadReport(source=source, layout=layout, total=len(own))
    head = _head_names(backbone_name, backbone_kwargs or {}) - set(own)

    def wanted(key: str) -> bool:
        return only_prefixes is None or any(key.startswith(p) for p in only_prefixes)

    selected: dict[str, Tensor] = {}
    for key, value in own.items():
        if not wanted(key):
            continue
        if any(key.startswith(p) for p in random_prefixes):
            report.kept_random.append(key)
        elif key not in renamed:
            report.absent.append(key)
        elif renamed[key].shape != value.shape:
            report.mismatched.append(
                f"{key} (file {tuple(renamed[key].shape)}, network {tuple(value.shape)})"
            )
        else:
            selected[key] = renamed[key]
            report.loaded.append(key)
    for key in renamed:
        if key in own or not wanted(key):
            continue
        if key in head or key.startswith(_HEAD_PREFIXES):
            report.head.append(key)
        else:
            report.unused.append(key)
    return selected, report


def load_backbone_state(
    backbone: nn.Module,
    sources: Sequence[tuple[Mapping[str, Tensor], str, Sequence[str] | None]],
    backbone_name: str | None = None,
    backbone_kwargs: Mapping[str, Any] | None = None,
    random_prefixes: Sequence[str] = (),
    allow_partial: bool = False,
    hint: str = "",
) -> list[BackboneLoadReport]:
    """Fill ``backbone`` from one or more state dicts, mapped by name; print a report.

    Args:
        backbone: the timm ``features_only`` network.
        sources: ``(state dict, name, only_prefixes)`` triples, applied in order; a later
            source fills only the names its ``only_prefixes`` select (``None``: all).
        backbone_name: timm model name of ``backbone`` (to recognise its head).
        backbone_kwargs: its ``timm.create_model`` arguments.
        random_prefixes: backbone names to keep as they are (e.g. ``("conv1.",)``, a random
            deep stem).
        allow_partial: load what fits even when other backbone tensors would stay random
            (they are listed in the report).
        hint: appended to the error message (another way out, e.g. a preset option).

    Returns:
        One :class:`BackboneLoadReport` per source (each is also printed on rank 0).

    Raises:
        ValueError: some backbone tensors would stay random (absent from every source, or of
            another shape) and ``allow_partial`` is false; the message names them.
    """
    selected: dict[str, Tensor] = {}
    reports = []
    for state, name, only in sources:
        mapped, report = map_backbone_state(
            backbone, state, name, backbone_name, backbone_kwargs, random_prefixes, only
        )
        selected.update(mapped)
        reports.append(report)
    kept = {k for k in backbone.state_dict() if k.startswith(tuple(random_prefixes))}
    unfilled = [
        name
        for report in reports
        for name in report.absent + [m.split(" ")[0] for m in report.mismatched]
        if name not in selected and name not in kept and not name.endswith("num_batches_tracked")
    ]
    summaries = "\n".join(report.summary() for report in reports)
    if unfilled and not allow_partial:
        raise ValueError(
            f"{summaries}\nthese backbone parts would stay randomly initialised: "
            f"{_listing(_modules(unfilled))}. Pass weights of this backbone's layout (see "
            f"docs/models.md), or opt in to a partial load with `allow_partial=True`{hint}"
        )
    backbone.load_state_dict(selected, strict=False)
    rank_zero_info(summaries)
    return reports


def load_backbone_file(
    backbone: nn.Module,
    path: str | os.PathLike[str],
    backbone_name: str | None = None,
    backbone_kwargs: Mapping[str, Any] | None = None,
    random_prefixes: Sequence[str] = (),
    allow_partial: bool = False,
    hint: str = "",
) -> BackboneLoadReport:
    """Fill ``backbone`` from a local safetensors/torch file (see :func:`load_backbone_state`)."""
    state = load_state_dict_file(path)
    return load_backbone_state(
        backbone,
        [(state, repr(os.fspath(path)), None)],
        backbone_name,
        backbone_kwargs,
        random_prefixes,
        allow_partial,
        hint,
    )[0]


def timm_state_dict(tag: str) -> dict[str, Tensor]:
    """The ImageNet weights of a timm ``model.tag`` (e.g. ``"resnet18.tv_in1k"``), by timm's hub.

    timm downloads the file once into the Hugging Face cache (``HF_HOME``); with
    ``HF_HUB_OFFLINE=1`` it reads the cache only.

    Raises:
        RuntimeError: the weights cannot be had (offline and not cached, no network); the
            message says how to pass a local file instead.
    """
    try:
        model = timm.create_model(tag, pretrained=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise RuntimeError(
            f"cannot get timm's pretrained weights {tag!r} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). They come from the Hugging Face "
            "hub (cached under HF_HOME after the first download); offline, pass a local "
            "weights file instead: `pretrained=False, backbone_weights=<file>` (torchvision, "
            "timm or mgd-lightning layout, see docs/models.md)"
        ) from err
    return {k: v.detach() for k, v in model.state_dict().items()}
