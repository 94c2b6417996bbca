"""``mgd-lightning export``: the trained student alone, as ONNX or TorchScript.

Example::

    mgd-lightning export --checkpoint runs/checkpoints/last.ckpt --format onnx \\
        --output student.onnx --opset 17 --verify
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mgd_lightning.export import DEFAULT_OPSET, export_onnx, export_torchscript

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mgd-lightning export``."""
    parser = argparse.ArgumentParser(
        prog="mgd-lightning export",
        description=(
            "Export the trained student of a checkpoint (any of this library's training "
            "modules) to ONNX or TorchScript. The model takes normalised (B, 3, H, W) float32 "
            "images and returns logits (B, K, H, W); batch, height and width are dynamic."
        ),
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (e.g. last.ckpt)")
    parser.add_argument(
        "--format", choices=("onnx", "torchscript"), default="onnx", help="default: onnx"
    )
    parser.add_argument("--output", required=True, help="file to write (.onnx or .pt)")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    parser.add_argument(
        "--example-size",
        type=int,
        nargs="+",
        default=[256],
        metavar="N",
        help="H [W] of the example image the graph is traced with (default 256)",
    )
    parser.add_argument(
        "--static", action="store_true", help="ONNX: fixed (1, 3, H, W) input, no dynamic axes"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the file against PyTorch at two sizes (ONNX needs onnxruntime)",
    )
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="tolerance of --verify (default 1e-4)"
    )
    return parser


def main(args: Sequence[str]) -> int:
    """Run ``mgd-lightning export``; returns the exit status (0 on success, 1 on error).

    Args:
        args: the arguments after ``export``.
    """
    parser = build_parser()
    options = parser.parse_args(list(args))
    if len(options.example_size) not in (1, 2):
        parser.error("--example-size takes one or two integers (H [W])")
    size = tuple(options.example_size) * (3 - len(options.example_size))
    try:
        if options.format == "onnx":
            path = export_onnx(
                options.checkpoint,
                options.output,
                opset=options.opset,
                example_size=size,
                dynamic=not options.static,
                verify=options.verify,
                atol=options.atol,
            )
        else:
            path = export_torchscript(
                options.checkpoint,
                options.output,
                example_size=size,
                verify=options.verify,
                atol=options.atol,
            )
    except (ImportError, OSError, ValueError) as error:
        print(f"mgd-lightning export: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({options.format})")
    return 0
