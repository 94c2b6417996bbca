"""``mgd-lightning evaluate``: the parser of :func:`mgd_lightning.evaluation.evaluate_student_file`.

Scores a student safetensors file (``mgd-lightning export --format safetensors``, or the files
``benchmarks/camvid.py`` writes to ``benchmarks/results/camvid/``) on whole images of one split
of a CamVid-layout folder, exactly as the benchmark does. Examples::

    mgd-lightning evaluate --weights benchmarks/results/camvid/mbv2_pretrained_mgd_s0.safetensors \\
        --data.root ../shared/data/camvid --split val
    mgd-lightning evaluate --weights student.safetensors --data.root ../shared/data/camvid \\
        --split configs/camvid/splits/heldout_0006R0/heldout.txt --output heldout.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentParser

from mgd_lightning.evaluation import evaluate_student_file, format_scores
from mgd_lightning.files import write_text_atomic
from mgd_lightning.parsing import command_parser, run_command

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """The argument parser of ``mgd-lightning evaluate``."""
    parser = command_parser(
        "mgd-lightning evaluate",
        "Score a student safetensors file on whole images of one split of a CamVid-layout "
        "folder: mIoU and per-class IoU, as benchmarks/camvid.py computes them.",
    )
    parser.add_argument(
        "--weights", type=str, required=True, help="student .safetensors file (with its network)"
    )
    parser.add_argument(
        "--data.root", type=str, required=True, help="CamVid-layout folder (images/, labels/)"
    )
    parser.add_argument(
        "--split",
        type=str,
        default="val",
        help="a list under the root (val, test, train) or a list file of ids (default: val)",
    )
    parser.add_argument(
        "--output", type=str, default=None, help="also write the scores to this .json file"
    )
    return parser


def _plain(value: Any) -> Any:
    """JSON-safe: NaN (an absent class) as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def main(args: Sequence[str]) -> int:
    """Run ``mgd-lightning evaluate`` with ``args`` (those after ``evaluate``); print the
    scores. Returns the exit status (0 on success, 1 on error)."""
    parser = build_parser()
    options = parser.parse_args(list(args))

    def run() -> None:
        scores = evaluate_student_file(options.weights, options.data.root, options.split)
        print(format_scores(scores))
        if options.output is not None:
            write_text_atomic(options.output, json.dumps(_plain(scores), indent=2) + "\n")
            print(f"wrote {options.output}")

    return run_command("mgd-lightning evaluate", run)
