"""``mgd-lightning profile``: the parser of :mod:`mgd_lightning.models.profile`'s report.

Parameters, FLOPs and compression ratios, student vs teachers. Examples::

    mgd-lightning profile                                  # the paper's ResNet-18 setting
    mgd-lightning profile --student mobilenetv2 --input-size 512
    mgd-lightning profile --student runs/student/last.ckpt --deep none --wide none
    mgd-lightning profile --output profile.json            # or .md
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jsonargparse import ArgumentParser

from mgd_lightning.models.profile import (
    format_report,
    profile_report,
    resolve_network,
    write_report,
)
from mgd_lightning.parsing import add_size, command_parser, parse_size, run_command

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """The argument parser of ``mgd-lightning profile``."""
    parser = command_parser(
        "mgd-lightning profile",
        "Parameters and FLOPs of the student and both teachers, with the compression ratios "
        "(teacher / student). Networks are presets or checkpoints of this library.",
    )
    parser.add_argument(
        "--student",
        type=str,
        default="resnet18",
        help="resnet18 (default), mobilenetv2, or a checkpoint",
    )
    parser.add_argument(
        "--deep", type=str, default="resnet101", help="resnet101 (default), a checkpoint, or none"
    )
    parser.add_argument(
        "--wide", type=str, default="wrn50", help="wrn50 (default), a checkpoint, or none"
    )
    add_size(parser, "input-size", 512, "H [W] of the dummy image (default 512)")
    parser.add_argument(
        "--num-classes",
        "--num_classes",
        type=int,
        default=21,
        help="classes of the preset networks (default 21, VOC); checkpoints keep their own",
    )
    parser.add_argument(
        "--output",
        type=str,
        default=None,
        help="also write the report to this file: .json (rows) or .md (the table)",
    )
    return parser


def main(args: Sequence[str]) -> int:
    """Run ``mgd-lightning profile`` with ``args`` (those after ``profile``); print the table.

    Returns the exit status (0 on success, 1 on error).
    """
    parser = build_parser()
    options = parser.parse_args(list(args))
    size = parse_size(parser, "input-size", options.input_size)
    if options.num_classes < 1:
        parser.error("--num-classes must be a positive integer")
    if options.output is not None and Path(options.output).suffix.lower() not in (".json", ".md"):
        parser.error(f"--output {options.output!r} must end in .json or .md")

    def run() -> None:
        student = resolve_network("student", options.student, options.num_classes)
        deep = resolve_network("deep", options.deep, options.num_classes)
        wide = resolve_network("wide", options.wide, options.num_classes)
        assert student is not None
        rows = profile_report(student, deep, wide, size)
        print(format_report(rows, size))
        if options.output is not None:
            write_report(options.output, rows, size)

    return run_command("mgd-lightning profile", run)
