"""``mgd-lightning pipeline``: the parser of :func:`mgd_lightning.pipeline.run_pipeline`.

Examples::

    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml   # shipped teachers
    mgd-lightning pipeline --config configs/quickstart/teachers.yaml   # teachers retrained
    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml --reuse   # skip done stages
    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml --smoke   # tiny, ~1 minute
"""

from __future__ import annotations

from collections.abc import Sequence

from jsonargparse import ArgumentParser

from mgd_lightning.parsing import add_flag, command_parser, run_command
from mgd_lightning.pipeline import run_pipeline

__all__ = ["build_parser", "main"]

_FLAGS = {
    "reuse": "load finished stages from their checkpoints instead of retraining them",
    "smoke": "tiny data, tiny networks, two steps a stage: a quick check",
    "same_time_baseline": "also train the labeled-only student for the MGD student's wall time",
    "ablation": "also train the MGD student with the pixel level only and pixel + image level",
    "teacher_label_cache": "train the MGD student from cached teacher labels (faster steps)",
}


def build_parser() -> ArgumentParser:
    """The argument parser of ``mgd-lightning pipeline``: the arguments of ``run_pipeline``."""
    parser = command_parser(
        "mgd-lightning pipeline",
        "Load (or train) both teachers, train the labeled-only and the MGD student; evaluate "
        "them on one held-out split; write results.json, results.md and figure.png.",
    )
    parser.add_function_arguments(run_pipeline, skip=set(_FLAGS))
    for name, help in _FLAGS.items():
        add_flag(parser, name, help)
    return parser


def main(args: Sequence[str]) -> int:
    """Run ``mgd-lightning pipeline``; returns the exit status (0 on success, 1 on error)."""
    options = build_parser().parse_args(list(args))
    kwargs = {k: v for k, v in vars(options).items() if k != "config" and not k.startswith("__")}
    return run_command("mgd-lightning pipeline", lambda: run_pipeline(**kwargs))
