"""``mgd-lightning export``: the parser of :func:`mgd_lightning.export.export`.

Example::

    mgd-lightning export --checkpoint runs/checkpoints/last.ckpt --format onnx \\
        --output student.onnx --opset 17 --verify
    mgd-lightning export --checkpoint runs/checkpoints/last.ckpt --format safetensors \\
        --output student.safetensors     # fp16 weights + network description, for this library
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from jsonargparse import ArgumentParser

from mgd_lightning.export import DEFAULT_OPSET, export, export_safetensors
from mgd_lightning.parsing import add_flag, add_size, command_parser, parse_size, run_command

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """The argument parser of ``mgd-lightning export``."""
    parser = command_parser(
        "mgd-lightning export",
        "Export the trained student of a checkpoint (any of this library's training modules) "
        "to ONNX or TorchScript (normalised (B, 3, H, W) float32 images in, logits "
        "(B, K, H, W) out; batch, height and width dynamic), or to a safetensors file of fp16 "
        "weights and the network description that mgd-lightning evaluate and load_student read.",
    )
    parser.add_argument("--checkpoint", type=str, required=True, help="checkpoint (last.ckpt)")
    parser.add_argument(
        "--format",
        type=Literal["onnx", "torchscript", "safetensors"],
        default="onnx",
        help="default: onnx",
    )
    parser.add_argument(
        "--output", type=str, required=True, help="file to write (.onnx, .pt, .safetensors)"
    )
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    add_size(parser, "example-size", 256, "H [W] of the traced example image (default 256)")
    add_flag(parser, "static", "ONNX: fixed (1, 3, H, W) input, no dynamic axes")
    add_flag(parser, "verify", "check the file against PyTorch at two sizes (ONNX: onnxruntime)")
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="tolerance of --verify (default 1e-4)"
    )
    return parser


def main(args: Sequence[str]) -> int:
    """Run ``mgd-lightning export`` with ``args`` (those after ``export``); returns the
    exit status (0 on success, 1 on error)."""
    parser = build_parser()
    options = parser.parse_args(list(args))
    size = parse_size(parser, "example-size", options.example_size)
    onnx_only = {"opset": options.opset, "dynamic": not options.static}

    def run() -> None:
        if options.format == "safetensors":
            path, digest = export_safetensors(options.checkpoint, options.output)
            print(f"wrote {path} (safetensors, fp16, sha256 {digest})")
            return
        path = export(
            options.checkpoint,
            options.output,
            options.format,
            example_size=size,
            verify=options.verify,
            atol=options.atol,
            **(onnx_only if options.format == "onnx" else {}),
        )
        print(f"wrote {path} ({options.format})")

    return run_command("mgd-lightning export", run)
