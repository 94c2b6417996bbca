"""FLOPs and parameter counts of students and teachers (docs/method.md#flops-and-parameters).

FLOP convention (the one that reproduces the paper's compression ratios): for one image,
the multiply-adds of every convolution and linear layer (bias not counted) plus
``2 x (output elements)`` for every BatchNorm. Activations, pooling, additions and
interpolation are not counted. Counted with forward hooks on a real forward pass.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from mgd_lightning.files import write_text_atomic
from mgd_lightning.models.deeplabv3plus import DeepLabV3Plus
from mgd_lightning.models.presets import (
    StudentMobileNetV2,
    StudentResNet18,
    TeacherResNet101,
    TeacherWideResNet50,
)
from mgd_lightning.models.spec import network_from_checkpoint

__all__ = [
    "PRESETS",
    "ProfileRow",
    "count_flops",
    "count_parameters",
    "format_report",
    "profile_report",
    "resolve_network",
    "write_report",
]


def _check_size(input_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(input_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size):
        raise ValueError(f"`input_size` must be two positive integers (H, W), got {input_size!r}")
    return size[0], size[1]


def count_flops(
    module: nn.Module, input_size: Sequence[int] = (512, 512), in_channels: int = 3
) -> int:
    """Count the FLOPs of one forward pass on one ``(1, in_channels, H, W)`` image.

    Convention: convolution and linear multiply-adds (``out_elements x C_in / groups x
    kernel_elements``; bias not counted) plus ``2 x out_elements`` for each BatchNorm.
    Other operations count 0. This is how thop counts, and with it the timm backbones of the
    paper give 17.21 (ResNet-18 deep stem, OS16), 1.53 (MobileNet-v2, OS32), 59.11
    (ResNet-101 deep stem, OS16) and 91.12 (WRN-50-2, OS16) GFLOPs at 512x512.

    The module runs in eval mode under ``torch.no_grad()`` on the device and dtype of its
    first parameter; its mode is restored afterwards.

    Args:
        module: a network taking ``(B, in_channels, H, W)`` images (e.g. ``net`` or
            ``net.backbone``).
        input_size: ``(H, W)``.
        in_channels: channels of the dummy input.

    Returns:
        The FLOP count (an integer).

    Examples:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        >>> count_flops(net, (4, 4))  # 8*4*4 * 3*3*3 + 2 * 8*4*4
        3712
    """
    height, width = _check_size(input_size)
    total = 0

    def conv_hook(m: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        conv = cast(_ConvNd, m)
        total += output.numel() * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)

    def linear_hook(m: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += output.numel() * cast(nn.Linear, m).in_features

    def bn_hook(_m: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += 2 * output.numel()

    handles = []
    for m in module.modules():
        if isinstance(m, _ConvNd):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, _BatchNorm):
            handles.append(m.register_forward_hook(bn_hook))
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, in_channels, height, width, device=device, dtype=dtype))
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Count the parameters of ``module`` (buffers such as BN running stats excluded).

    Args:
        module: any module.
        trainable_only: count only parameters with ``requires_grad=True``.

    Returns:
        The number of scalar parameters.

    Examples:
        >>> from torch import nn
        >>> count_parameters(nn.Conv2d(3, 8, 3))
        224
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class ProfileRow(NamedTuple):
    """One network of a :func:`profile_report`.

    Attributes:
        role: ``"student"``, ``"deep teacher"`` or ``"wide teacher"``.
        name: class name and timm backbone, e.g. ``"StudentResNet18 (resnet18)"``.
        backbone_params: parameters of ``net.backbone``.
        backbone_flops: FLOPs of ``net.backbone`` (see :func:`count_flops`).
        total_params: parameters of the whole network.
        total_flops: FLOPs of the whole network.
        backbone_ratio: ``backbone_flops`` over the student's (the paper's compression).
        total_ratio: ``total_flops`` over the student's.
    """

    role: str
    name: str
    backbone_params: int
    backbone_flops: int
    total_params: int
    total_flops: int
    backbone_ratio: float
    total_ratio: float


def profile_report(
    student: DeepLabV3Plus,
    deep: DeepLabV3Plus | None = None,
    wide: DeepLabV3Plus | None = None,
    input_size: Sequence[int] = (512, 512),
) -> list[ProfileRow]:
    """Params and FLOPs of a student and its teachers, with compression ratios.

    The paper's ratios (3.4-5.3x for ResNet-18, 38.7-59.6x for MobileNet-v2) are the
    ``backbone_ratio`` of the teachers.

    Args:
        student: the student network.
        deep: the deep teacher, or ``None`` to leave it out.
        wide: the wide teacher, or ``None`` to leave it out.
        input_size: ``(H, W)`` of the dummy image.

    Returns:
        One :class:`ProfileRow` per network, student first.
    """
    size = _check_size(input_size)
    entries = [("student", student), ("deep teacher", deep), ("wide teacher", wide)]
    measured: list[tuple[str, str, int, int, int, int]] = []
    for role, net in entries:
        if net is None:
            continue
        backbone = net.backbone
        name = type(net).__name__
        backbone_name = getattr(net, "backbone_name", None)
        if backbone_name:
            name += f" ({backbone_name})"
        measured.append(
            (
                role,
                name,
                count_parameters(backbone),
                count_flops(backbone, size),
                count_parameters(net),
                count_flops(net, size),
            )
        )
    base_backbone, base_total = measured[0][3], measured[0][5]
    return [
        ProfileRow(role, name, bp, bf, tp, tf, bf / base_backbone, tf / base_total)
        for role, name, bp, bf, tp, tf in measured
    ]


def format_report(rows: Sequence[ProfileRow], input_size: Sequence[int] = (512, 512)) -> str:
    """Render a :func:`profile_report` as a Markdown table.

    Args:
        rows: the report.
        input_size: ``(H, W)`` it was measured at (for the header only).

    Returns:
        A Markdown table, parameters in millions and FLOPs in G, one line per network.
    """
    height, width = _check_size(input_size)
    header = (
        "| Role | Network | Backbone params (M) | Backbone GFLOPs | Total params (M) "
        "| Total GFLOPs | Backbone ratio | Total ratio |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [f"FLOPs at {height}x{width}, one image (conv/linear MACs + 2 x BN outputs).", ""]
    lines.append(header)
    for r in rows:
        lines.append(
            f"| {r.role} | {r.name} | {r.backbone_params / 1e6:.2f} | "
            f"{r.backbone_flops / 1e9:.2f} | {r.total_params / 1e6:.2f} | "
            f"{r.total_flops / 1e9:.2f} | {r.backbone_ratio:.2f} | {r.total_ratio:.2f} |"
        )
    return "\n".join(lines)


#: Network names ``resolve_network`` accepts besides checkpoint paths, per role.
PRESETS: dict[str, dict[str, Callable[[int], DeepLabV3Plus]]] = {
    "student": {
        "resnet18": lambda k: StudentResNet18(num_classes=k),
        "mobilenetv2": lambda k: StudentMobileNetV2(num_classes=k),
    },
    "deep": {"resnet101": lambda k: TeacherResNet101(num_classes=k)},
    "wide": {"wrn50": lambda k: TeacherWideResNet50(num_classes=k)},
}


def resolve_network(role: str, value: str, num_classes: int) -> DeepLabV3Plus | None:
    """The network of ``role`` named by ``value``: a preset, a checkpoint path, or ``none``.

    Args:
        role: ``"student"``, ``"deep"`` or ``"wide"`` (the ``mgd-lightning profile`` option).
        value: a name of :data:`PRESETS` for the role, a checkpoint file, or ``"none"``
            (teachers only).
        num_classes: classes of a preset network (a checkpoint keeps its own).

    Raises:
        FileNotFoundError: ``value`` is neither a preset nor an existing file.
        ValueError: the checkpoint holds no network description or not a DeepLabV3Plus.
    """
    if value.lower() == "none":
        if role == "student":
            raise ValueError("--student cannot be 'none': the ratios are relative to it")
        return None
    presets = PRESETS[role]
    if value.lower() in presets:
        return presets[value.lower()](num_classes)
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"--{role} {value!r} is neither a preset ({', '.join(sorted(presets))}"
            f"{', none' if role != 'student' else ''}) nor an existing checkpoint file"
        )
    network: nn.Module = network_from_checkpoint(path, load_weights=False)
    if not isinstance(network, DeepLabV3Plus):
        raise ValueError(
            f"--{role} {path}: the checkpoint's network is a {type(network).__name__}, not a "
            "DeepLabV3Plus (the report needs its `backbone`)"
        )
    return network


def write_report(
    path: str | os.PathLike[str], rows: Sequence[ProfileRow], input_size: Sequence[int]
) -> Path:
    """Write the report atomically: ``.json`` (the rows) or anything else (the table)."""
    target = Path(path)
    size = _check_size(input_size)
    if target.suffix.lower() == ".json":
        text = json.dumps(
            {"input_size": list(size), "rows": [row._asdict() for row in rows]}, indent=2
        )
    else:
        text = format_report(rows, size)
    return write_text_atomic(target, text + "\n")
