"""``mgd-lightning profile``: parameters, FLOPs and compression ratios, student vs teachers.

Examples::

    mgd-lightning profile                                  # the paper's ResNet-18 setting
    mgd-lightning profile --student mobilenetv2 --input-size 512
    mgd-lightning profile --student runs/student/last.ckpt --deep none --wide none
    mgd-lightning profile --output profile.json            # or .md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from mgd_lightning.models.deeplabv3plus import DeepLabV3Plus
from mgd_lightning.models.presets import (
    StudentMobileNetV2,
    StudentResNet18,
    TeacherResNet101,
    TeacherWideResNet50,
)
from mgd_lightning.models.profile import ProfileRow, format_report, profile_report
from mgd_lightning.models.spec import network_from_checkpoint

__all__ = ["PRESETS", "build_parser", "main", "resolve_network"]

#: Network names the command accepts besides checkpoint paths, per role.
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mgd-lightning profile``."""
    parser = argparse.ArgumentParser(
        prog="mgd-lightning profile",
        description=(
            "Parameters and FLOPs of the student and both teachers, with the compression "
            "ratios (teacher / student). Networks are presets or checkpoints of this library."
        ),
    )
    parser.add_argument(
        "--student", default="resnet18", help="resnet18 (default), mobilenetv2, or a checkpoint"
    )
    parser.add_argument(
        "--deep", default="resnet101", help="resnet101 (default), a checkpoint, or none"
    )
    parser.add_argument("--wide", default="wrn50", help="wrn50 (default), a checkpoint, or none")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        default=[512],
        metavar="N",
        help="H [W] of the dummy image (default 512)",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        default=21,
        help="classes of the preset networks (default 21, VOC); checkpoints keep their own",
    )
    parser.add_argument(
        "--output", help="also write the report to this file: .json (rows) or .md (the table)"
    )
    return parser


def _write_report(path: Path, rows: Sequence[ProfileRow], size: tuple[int, int]) -> None:
    if path.suffix.lower() == ".json":
        text = json.dumps(
            {"input_size": list(size), "rows": [row._asdict() for row in rows]}, indent=2
        )
    else:
        text = format_report(rows, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def main(args: Sequence[str]) -> int:
    """Run ``mgd-lightning profile``; print the table; returns the exit status.

    Args:
        args: the arguments after ``profile``.
    """
    parser = build_parser()
    options = parser.parse_args(list(args))
    if len(options.input_size) not in (1, 2) or min(options.input_size) <= 0:
        parser.error("--input-size takes one or two positive integers (H [W])")
    if options.num_classes < 1:
        parser.error("--num-classes must be a positive integer")
    if options.output is not None and Path(options.output).suffix.lower() not in (".json", ".md"):
        parser.error(f"--output {options.output!r} must end in .json or .md")
    size = (options.input_size[0], options.input_size[-1])
    try:
        student = resolve_network("student", options.student, options.num_classes)
        deep = resolve_network("deep", options.deep, options.num_classes)
        wide = resolve_network("wide", options.wide, options.num_classes)
        assert student is not None
        rows = profile_report(student, deep, wide, size)
        print(format_report(rows, size))
        if options.output is not None:
            _write_report(Path(options.output), rows, size)
    except (OSError, ValueError) as error:
        print(f"mgd-lightning profile: error: {error}", file=sys.stderr)
        return 1
    return 0
