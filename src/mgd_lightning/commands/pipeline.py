"""``mgd-lightning pipeline``: the whole MGD recipe in one command.

Trains the deep and the wide teacher, the labeled-only student and the MGD student (each stage
an ordinary LightningCLI config, also runnable alone with ``mgd-lightning fit --config``),
evaluates all of them on one held-out split, and writes ``results.json``, ``results.md`` and
``figure.png`` to the output folder::

    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml
    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml --reuse   # skip done stages
    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml --smoke   # tiny, ~1 minute

A stage is *finished* when its folder holds ``stage.json`` (written after training) and the
checkpoint it names; with ``--reuse`` such a stage is loaded instead of retrained.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex

from mgd_lightning.models.inference import segment
from mgd_lightning.models.profile import count_flops, count_parameters
from mgd_lightning.models.weights import load_network_weights

__all__ = ["STAGES", "evaluate_networks", "main", "mean_iou", "run_pipeline", "run_stage"]

#: The stages in the order they run; the MGD student needs both teachers.
STAGES: tuple[str, ...] = ("teacher_deep", "teacher_wide", "student_supervised", "student_mgd")
#: Optional fifth model: the labeled-only student given the MGD student's wall time.
SAME_TIME = "student_supervised_same_time"
_TITLES = {
    "teacher_deep": "Teacher (deep)",
    "teacher_wide": "Teacher (wide)",
    "student_supervised": "Student, labeled only",
    "student_mgd": "Student, MGD",
    SAME_TIME: "Student, labeled only, MGD's wall time",
}
#: Overrides of ``--smoke``: tiny images, tiny networks, a few steps, no bf16 (for tests).
SMOKE_ARGS: tuple[str, ...] = (
    "--trainer.max_steps=2",
    "--trainer.log_every_n_steps=1",
    "--trainer.precision=32-true",
    "--data.init_args.image_size=32",
    "--data.init_args.num_train=32",
    "--data.init_args.num_val=4",
    "--data.init_args.num_test=4",
    "--data.init_args.batch_size=2",
    "--model.init_args.network.init_args.backbone=resnet10t",
    "--model.init_args.network.init_args.head_channels=8",
)
_STAGE_FILE = "stage.json"


def _say(message: str, start: float) -> None:
    elapsed = time.perf_counter() - start
    print(f"[pipeline {int(elapsed) // 60:d}:{int(elapsed) % 60:02d}] {message}", flush=True)


class _Progress(pl.Callback):
    """Print one line every ``every`` training steps: stage, step, loss, elapsed time."""

    def __init__(self, stage: str, start: float, every: int) -> None:
        self.stage, self.start, self.every = stage, start, max(1, every)
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        step = trainer.global_step
        if step % self.every and step != trainer.max_steps:
            return
        loss = trainer.callback_metrics.get("train_loss")
        loss_text = f", loss {float(loss):.3f}" if loss is not None else ""
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        seconds = time.perf_counter() - self.fit_start
        _say(f"{self.stage}: step {step}/{total}{loss_text} ({seconds:.0f} s)", self.start)


def _build_cli(args: list[str]) -> Any:
    """The stage's LightningCLI, parsed and instantiated but not run."""
    from mgd_lightning.cli import main as cli_main

    with warnings.catch_warnings():  # "args given and sys.argv too": intended here
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        return cli_main(args, run=False)


def _stage_args(
    stage: str,
    config: Path,
    stage_dir: Path,
    seed: int,
    common: Sequence[str],
    extra: Sequence[str],
    teachers: dict[str, str],
    max_time: tuple[float, int] | None,
) -> list[str]:
    args = [
        "--config",
        os.fspath(config),
        f"--seed_everything={seed}",
        f"--trainer.default_root_dir={stage_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    args += list(common) + list(extra)
    if teachers:
        args += [
            f"--model.init_args.teachers.init_args.deep_weights={teachers['teacher_deep']}",
            f"--model.init_args.teachers.init_args.wide_weights={teachers['teacher_wide']}",
        ]
    if max_time is not None:
        seconds, steps = max_time
        # max_time stops it; max_steps (a generous estimate from the labeled-only stage's
        # speed) only keeps the poly schedule finite.
        args += [
            f"--trainer.max_time={_max_time(seconds)}",
            f"--trainer.max_steps={steps}",
            "--trainer.max_epochs=-1",
        ]
    return args


def _max_time(seconds: float) -> str:
    total = max(1, round(seconds))
    return f"00:{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _logger_dir(cli: Any, stage_dir: Path) -> None:
    """Point a file logger of the stage at its folder (the configs name runs/quickstart/...)."""
    logger = cli.trainer.logger
    if logger is None:
        return
    for attribute in ("_root_dir", "_save_dir"):
        if hasattr(logger, attribute):
            setattr(logger, attribute, os.fspath(stage_dir))


def run_stage(
    stage: str,
    args: list[str],
    stage_dir: Path,
    reuse: bool,
    start: float,
    progress_every: int,
) -> tuple[nn.Module, LightningDataModule, dict[str, Any]]:
    """Train one stage (or reuse its finished checkpoint); returns network, data and record."""
    record_file = stage_dir / _STAGE_FILE
    record: dict[str, Any] | None = None
    if reuse and record_file.is_file():
        record = json.loads(record_file.read_text())
        if not Path(record.get("checkpoint", "")).is_file():
            record = None
    stage_dir.mkdir(parents=True, exist_ok=True)
    cli = _build_cli(args)
    network: nn.Module = cli.model.network
    if record is not None:
        load_network_weights(network, record["checkpoint"])
        _say(
            f"{stage}: reusing {record['checkpoint']} (trained in {record['seconds']:.0f} s); "
            "not retrained",
            start,
        )
        differing = sorted(set(record.get("args", [])) ^ set(args))
        if differing:
            _say(
                f"{stage}: note, the reused run had other arguments ({' '.join(differing)})", start
            )
        record = {**record, "reused": True}
        return network, cli.datamodule, record
    if record_file.exists():
        record_file.unlink()
    _logger_dir(cli, stage_dir)
    cli.trainer.callbacks.append(_Progress(stage, start, progress_every))
    _say(f"{stage}: training ({' '.join(args[:2])})", start)
    began, cpu_began = time.perf_counter(), time.process_time()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu_began
    checkpoint = cli.trainer.checkpoint_callback
    path = getattr(checkpoint, "last_model_path", "") if checkpoint is not None else ""
    if not path:  # no checkpoint callback configured: save one ourselves
        path = os.fspath(stage_dir / "checkpoints" / "last.ckpt")
        cli.trainer.save_checkpoint(path)
    record = {
        "stage": stage,
        "checkpoint": os.fspath(Path(path).resolve()),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "steps": int(cli.trainer.global_step),
        "args": args,
        "reused": False,
    }
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    _say(f"{stage}: done in {seconds:.0f} s, {record['steps']} steps -> {path}", start)
    return network, cli.datamodule, record


def mean_iou(per_class_iou: Sequence[float]) -> float:
    """Mean over the classes that occur (NaN IoU: class absent from labels and predictions)."""
    valid = [v for v in per_class_iou if not math.isnan(v)]
    return sum(valid) / len(valid) if valid else float("nan")


@torch.no_grad()
def evaluate_networks(
    networks: dict[str, nn.Module],
    datamodule: LightningDataModule,
    split: str,
    num_figure_images: int,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per-class IoU of every network on ``split``, and the first images' predictions."""
    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    num_classes = int(datamodule.num_classes)  # type: ignore[attr-defined]
    ignore_index = int(getattr(datamodule, "ignore_index", 255))
    metrics = {
        name: MulticlassJaccardIndex(
            num_classes, average="none", ignore_index=ignore_index, zero_division=float("nan")
        )
        for name in networks
    }
    for network in networks.values():
        network.eval()
    shown: dict[str, Any] = {"image": [], "mask": [], **{name: [] for name in networks}}
    count = 0
    for batch in loader:
        images, masks = batch["image"], batch["mask"]
        take = max(0, num_figure_images - count)
        for name, network in networks.items():
            prediction = segment(network, images).argmax(dim=1)
            metrics[name].update(prediction, masks)
            if take:
                shown[name].append(prediction[:take])
        if take:
            shown["image"].append(images[:take])
            shown["mask"].append(masks[:take])
        count += images.shape[0]
    per_class = {name: [float(v) for v in metric.compute()] for name, metric in metrics.items()}
    figure: dict[str, Any] = {k: torch.cat(v) if v else None for k, v in shown.items()}
    figure["num_images"] = count
    return per_class, figure


def _figure(
    path: Path,
    shown: dict[str, Any],
    names: list[str],
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str],
) -> None:
    """Grid: one row per image; input, ground truth, then each model, in the class palette."""
    import numpy as np
    from PIL import Image, ImageDraw

    from mgd_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    images = shown["image"]
    if images is None:
        return
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    colours[255] = (255, 255, 255)  # ignore
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rows, (height, width) = images.shape[0], images.shape[-2:]
    scale = max(1, 128 // max(height, width))
    cell_h, cell_w, header, pad = height * scale, width * scale, 28, 4
    columns = ["input", "ground truth", *[_TITLES.get(n, n) for n in names]]
    legend_h = 22
    canvas = Image.new(
        "RGB",
        (len(columns) * (cell_w + pad) + pad, header + rows * (cell_h + pad) + pad + legend_h),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(columns):
        x = pad + c * (cell_w + pad)
        words, line = title.split(), ""
        lines: list[str] = []
        for word in words:  # wrap to the cell width (default bitmap font, ~6 px a character)
            if len(line) + len(word) + 1 > cell_w // 6 and line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        for i, text in enumerate(lines[:2]):
            draw.text((x, 2 + 12 * i), text, fill=(0, 0, 0))
    for r in range(rows):
        rgb = ((images[r].float() * std + mean).clamp(0, 1) * 255).round().byte()
        cells = [rgb.permute(1, 2, 0).numpy(), colours[shown["mask"][r].numpy().astype(np.int64)]]
        cells += [colours[shown[name][r].numpy().astype(np.int64)] for name in names]
        for c, cell in enumerate(cells):
            tile = Image.fromarray(np.ascontiguousarray(cell)).resize(
                (cell_w, cell_h), Image.Resampling.NEAREST
            )
            canvas.paste(tile, (pad + c * (cell_w + pad), header + pad + r * (cell_h + pad)))
    x, y = pad, header + rows * (cell_h + pad) + pad + 4
    for name, colour in zip(class_names, palette, strict=False):
        draw.rectangle(
            (x, y, x + 12, y + 12), fill=tuple(int(v) for v in colour), outline=(0, 0, 0)
        )
        draw.text((x + 16, y + 1), name, fill=(0, 0, 0))
        x += 22 + 7 * len(name)
    canvas.save(path)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def _markdown(results: dict[str, Any]) -> str:
    class_names = results["class_names"]
    lines = [
        "# MGD pipeline results",
        "",
        f"Held-out split: `{results['split']}` ({results['num_images']} images, "
        f"{results['image_size'][0]}x{results['image_size'][1]}); seed {results['seed']}; "
        f"total {results['total_seconds']:.0f} s wall, "
        f"{results.get('total_cpu_seconds', float('nan')):.0f} s CPU. IoU in percent; "
        "FLOPs of one image at this size (multiply-adds, `count_flops`); seconds of "
        "training (reused stages: the time they took when trained).",
        "",
        "| model | mIoU | "
        + " | ".join(class_names)
        + " | params (M) | GFLOPs | steps | seconds |",
        "|---|---:|" + "---:|" * len(class_names) + "---:|---:|---:|---:|",
    ]
    for name, row in results["models"].items():
        per_class = " | ".join(_pct(row["per_class_iou"][c]) for c in class_names)
        reused = " (reused)" if row.get("reused") else ""
        lines.append(
            f"| {_TITLES.get(name, name)} | **{100 * row['miou']:.1f}** | {per_class} | "
            f"{row['params'] / 1e6:.2f} | {row['flops'] / 1e9:.3f} | {row['steps']} | "
            f"{row['seconds']:.0f}{reused} |"
        )
    models = results["models"]
    if "student_mgd" in models and "student_supervised" in models:
        gain = 100 * (models["student_mgd"]["miou"] - models["student_supervised"]["miou"])
        lines += ["", f"MGD student minus labeled-only student: **{gain:+.1f}** mIoU points."]
    if SAME_TIME in models and "student_mgd" in models:
        gain = 100 * (models["student_mgd"]["miou"] - models[SAME_TIME]["miou"])
        lines.append(
            f"MGD student minus labeled-only student with the same wall time: **{gain:+.1f}**."
        )
    lines += ["", "![predictions](figure.png)", ""]
    return "\n".join(lines)


def run_pipeline(
    config_dir: str = "configs/quickstart",
    out_dir: str = "runs/quickstart",
    seed: int = 0,
    reuse: bool = False,
    smoke: bool = False,
    common_args: list[str] | None = None,
    stage_args: dict[str, list[str]] | None = None,
    same_time_baseline: bool = False,
    split: Literal["test", "val"] = "test",
    figure_images: int = 4,
    progress_every: int = 100,
) -> dict[str, Any]:
    """Run the four stages, evaluate, and write the results; returns the results dict.

    Args:
        config_dir: folder of the stage configs ``<stage>.yaml`` (relative paths are taken from
            the current directory).
        out_dir: output folder; stage ``s`` trains in ``<out_dir>/<s>``, results at the top.
        seed: ``seed_everything`` of every stage (the data itself is fixed by the data config).
        reuse: load finished stages from their checkpoints instead of retraining them.
        smoke: add :data:`SMOKE_ARGS` (tiny data, tiny networks, two steps): a quick check.
        common_args: extra LightningCLI arguments for every stage (e.g.
            ``["--trainer.max_steps=100"]``).
        stage_args: extra LightningCLI arguments per stage name.
        same_time_baseline: also train the labeled-only student for the MGD student's wall time
            (``trainer.max_time``) and report it as ``student_supervised_same_time``.
        split: ``"test"`` or ``"val"``: where all models are evaluated.
        figure_images: rows of the figure (the first images of the split).
        progress_every: print a progress line every this many steps.
    """
    if split not in ("test", "val"):
        raise ValueError(f"`split` must be 'test' or 'val', got {split!r}")
    start, cpu_start = time.perf_counter(), time.process_time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = [*(SMOKE_ARGS if smoke else ()), *(common_args or [])]
    per_stage = dict(stage_args or {})
    unknown = sorted(set(per_stage) - {*STAGES, SAME_TIME})
    if unknown:
        raise ValueError(f"`stage_args` names unknown stages {unknown}; stages are {STAGES}")
    networks: dict[str, nn.Module] = {}
    records: dict[str, dict[str, Any]] = {}
    datamodule: LightningDataModule | None = None
    order = [*STAGES, *([SAME_TIME] if same_time_baseline else [])]
    _say(f"stages: {', '.join(order)}; output folder {out.resolve()}", start)
    for stage in order:
        config = Path(config_dir) / f"{'student_supervised' if stage == SAME_TIME else stage}.yaml"
        if not config.is_file():
            raise FileNotFoundError(f"stage config {config} not found (set `config_dir`)")
        teachers = (
            {t: records[t]["checkpoint"] for t in ("teacher_deep", "teacher_wide")}
            if stage == "student_mgd"
            else {}
        )
        max_time = None
        if stage == SAME_TIME:
            sup = records["student_supervised"]
            budget = float(records["student_mgd"]["seconds"])
            rate = sup["steps"] / max(float(sup["seconds"]), 1e-3)
            max_time = (budget, max(1, math.ceil(1.2 * rate * budget)))
        args = _stage_args(
            stage, config, out / stage, seed, common, per_stage.get(stage, ()), teachers, max_time
        )
        networks[stage], stage_data, records[stage] = run_stage(
            stage, args, out / stage, reuse, start, progress_every
        )
        if stage == "student_mgd":
            datamodule = stage_data
    assert datamodule is not None

    _say(f"evaluating {len(networks)} models on the {split} split", start)
    per_class, shown = evaluate_networks(networks, datamodule, split, figure_images)
    class_names = list(getattr(datamodule, "class_names", [str(i) for i in range(100)]))
    image_size = list(getattr(datamodule, "image_size", shown["image"].shape[-2:]))
    models: dict[str, Any] = {}
    for name, network in networks.items():
        ious = per_class[name]
        models[name] = {
            "miou": mean_iou(ious),
            "per_class_iou": dict(zip(class_names, ious, strict=False)),
            "params": count_parameters(network),
            "flops": count_flops(network, tuple(image_size)),
            "seconds": records[name]["seconds"],
            "cpu_seconds": records[name].get("cpu_seconds"),
            "steps": records[name]["steps"],
            "reused": records[name]["reused"],
            "checkpoint": records[name]["checkpoint"],
            "network": getattr(network, "init_args", None),
        }
    results: dict[str, Any] = {
        "split": split,
        "num_images": shown["num_images"],
        "image_size": image_size,
        "seed": seed,
        "class_names": class_names,
        "miou_unit": "fraction (0-1); results.md shows percent",
        "models": models,
        "total_seconds": 0.0,
        "command": " ".join(["mgd-lightning", "pipeline", *sys.argv[2:]])
        if sys.argv[1:2] == ["pipeline"]
        else None,
    }
    figure_path = out / "figure.png"
    _figure(figure_path, shown, list(networks), getattr(datamodule, "palette", []), class_names)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    results["total_cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(_markdown(results))
    print(_markdown(results).split("![predictions]")[0].rstrip(), flush=True)
    _say(f"wrote {json_path.resolve()}", start)
    _say(f"wrote {md_path.resolve()}", start)
    _say(f"wrote {figure_path.resolve()}", start)
    _say(f"total {timedelta(seconds=round(results['total_seconds']))}", start)
    return results


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="mgd-lightning pipeline",
        description="Train both teachers, the labeled-only and the MGD student; evaluate them "
        "on one held-out split; write results.json, results.md and figure.png.",
    )
    parser.add_argument("--config", action="config", help="a pipeline YAML (keys as below)")
    parser.add_function_arguments(run_pipeline)
    return parser


_FLAGS = ("--reuse", "--smoke", "--same_time_baseline")


def _bare_flags(args: list[str]) -> list[str]:
    """Let the boolean options stand alone: ``--reuse`` means ``--reuse=true``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in _FLAGS and (following is None or following.startswith("--")):
            arg = f"{arg}=true"
        out.append(arg)
    return out


def main(args: Sequence[str]) -> int:
    """Entry point of ``mgd-lightning pipeline``; returns the exit status."""
    parser = _parser()
    config = parser.parse_args(_bare_flags(list(args)))
    kwargs = {k: v for k, v in vars(config).items() if k not in ("config", "__path__")}
    kwargs = {k: v for k, v in kwargs.items() if not k.startswith("__")}
    run_pipeline(**kwargs)
    return 0
