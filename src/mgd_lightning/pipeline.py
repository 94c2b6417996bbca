"""The whole MGD recipe as one workflow: teachers, students, evaluation, report.

Gets the deep and the wide teacher (loads a shipped set, or trains them), trains the
labeled-only student and the MGD student (each stage an ordinary LightningCLI config, also
runnable alone with ``mgd-lightning fit --config``), evaluates all of them on one held-out
split, and writes ``results.json``, ``results.md`` and ``figure.png`` to the output folder::

    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml   # shipped teachers
    mgd-lightning pipeline --config configs/quickstart/teachers.yaml   # retrains the teachers
    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml --reuse   # skip done stages
    mgd-lightning pipeline --config configs/quickstart/pipeline.yaml --smoke   # tiny, ~1 minute

Trained teachers are also written as a shipped set (``<out_dir>/teachers``: fp16 safetensors
and a manifest, :mod:`mgd_lightning.models.shipped`) that ``teachers: <that folder>`` loads.

``mgd_lightning.commands.pipeline`` is the command's parser over :func:`run_pipeline`. A stage
is *finished* when its folder holds ``stage.json`` (written after training) and the
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
from lightning.pytorch import LightningDataModule
from torch import nn

from mgd_lightning.evaluation import evaluate_networks, mean_iou
from mgd_lightning.files import write_text_atomic
from mgd_lightning.models.profile import count_flops, count_parameters
from mgd_lightning.models.shipped import load_shipped_teacher, read_manifest, save_shipped_teachers
from mgd_lightning.models.weights import load_network_weights
from mgd_lightning.parsing import build_cli
from mgd_lightning.report import results_markdown, write_figure
from mgd_lightning.teacher_labels import TeacherLabelCacheCallback

__all__ = [
    "ABLATION",
    "LONGER",
    "SAME_TIME",
    "SMOKE_ARGS",
    "SMOKE_STUDENT_ARGS",
    "STAGES",
    "TEACHERS",
    "run_pipeline",
    "run_stage",
]

#: The teacher stages (trained with ``teachers="train"``, else loaded from a shipped set).
TEACHERS: tuple[str, ...] = ("teacher_deep", "teacher_wide")
#: The stages in the order they run; the MGD student needs both teachers.
STAGES: tuple[str, ...] = (*TEACHERS, "student_supervised", "student_mgd")
#: Optional model: the labeled-only student given the MGD student's wall time.
SAME_TIME = "student_supervised_same_time"
#: Optional model: the labeled-only student given ``longer_baseline`` times its steps.
LONGER = "student_supervised_longer"
#: Optional models: the MGD student with only some of its terms (the ablation), from the MGD
#: student's config with these arguments.
ABLATION: dict[str, tuple[str, ...]] = {
    "student_mgd_pixel": (
        "--model.init_args.image_weight=0",
        "--model.init_args.region_weight=0",
    ),
    "student_mgd_pixel_image": ("--model.init_args.region_weight=0",),
}
#: Overrides of ``--smoke``: tiny images, tiny networks, a few steps, no bf16 (for tests).
SMOKE_ARGS: tuple[str, ...] = (
    "--trainer.max_steps=2",
    "--trainer.log_every_n_steps=1",
    "--trainer.precision=32-true",
    "--data.init_args.image_size=32",
    "--data.init_args.num_train=32",
    "--data.init_args.labeled_ratio=0.25",
    "--data.init_args.num_val=4",
    "--data.init_args.num_test=4",
    "--data.init_args.batch_size=2",
    "--model.init_args.network.init_args.head_channels=8",
)
#: Further ``--smoke`` overrides of the students: the smallest backbone.
SMOKE_STUDENT_ARGS: tuple[str, ...] = ("--model.init_args.network.init_args.backbone=resnet10t",)
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
    with warnings.catch_warnings():  # "args given and sys.argv too": intended here
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        return build_cli(args, run=False)


def _stage_args(
    config: Path,
    stage_dir: Path,
    seed: int,
    common: Sequence[str],
    extra: Sequence[str],
    max_time: tuple[float, int] | None = None,
    shipped: str | None = None,
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
    if shipped is not None:
        args.append(f"--model.init_args.teachers.init_args.shipped={shipped}")
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
    callbacks: Sequence[pl.Callback] = (),
) -> tuple[nn.Module, LightningDataModule, dict[str, Any]]:
    """Train one stage (or reuse its finished checkpoint); returns network, data and record.

    ``callbacks`` are added to the stage's trainer when it trains.
    """
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
    cli.trainer.callbacks.extend([*callbacks, _Progress(stage, start, progress_every)])
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
    write_text_atomic(record_file, json.dumps(record, indent=2) + "\n")
    _say(f"{stage}: done in {seconds:.0f} s, {record['steps']} steps -> {path}", start)
    return network, cli.datamodule, record


def _teacher_stages(
    config_dir: Path,
    out: Path,
    seed: int,
    common: Sequence[str],
    per_stage: dict[str, list[str]],
    reuse: bool,
    start: float,
    progress_every: int,
) -> Path:
    """Train both teachers and write them as a shipped set to ``<out>/teachers``.

    Returns the set's manifest.
    """
    networks: dict[str, nn.Module] = {}
    records: dict[str, dict[str, Any]] = {}
    for stage in TEACHERS:
        args = _stage_args(
            _config(config_dir, stage), out / stage, seed, common, per_stage.get(stage, ())
        )
        networks[stage], _, records[stage] = run_stage(
            stage, args, out / stage, reuse, start, progress_every
        )
    shipped = save_shipped_teachers(
        networks["teacher_deep"],
        networks["teacher_wide"],
        out / "teachers",
        info={
            "made_by": f"mgd_lightning.pipeline.run_pipeline(config_dir={str(config_dir)!r}, "
            f"seed={seed}), common arguments {list(common)}",
            "teachers": {
                role: {
                    "seconds": records[f"teacher_{role}"]["seconds"],
                    "steps": records[f"teacher_{role}"]["steps"],
                }
                for role in ("deep", "wide")
            },
        },
    )
    _say(f"teachers written as a shipped set: {shipped}", start)
    return shipped


def _shipped_teachers(
    source: str, start: float
) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]], Path]:
    """Load a shipped teacher set (files checked against its manifest); no training."""
    manifest = read_manifest(source)
    networks: dict[str, nn.Module] = {}
    records: dict[str, dict[str, Any]] = {}
    for role in ("deep", "wide"):
        network, origin = load_shipped_teacher(role, source)
        entry = manifest["teachers"][role]
        networks[f"teacher_{role}"] = network
        records[f"teacher_{role}"] = {
            "checkpoint": origin["path"],
            "sha256": origin["sha256"],
            "seconds": float(entry.get("seconds", float("nan"))),
            "steps": int(entry.get("steps", 0)),
            "reused": True,
        }
    path = Path(manifest["root"]) / "manifest.json"
    _say(f"teachers: shipped set {path} (SHA-256 checked); not trained", start)
    return networks, records, path


def _config(config_dir: Path, stage: str) -> Path:
    base = {SAME_TIME: "student_supervised", LONGER: "student_supervised"}.get(stage, stage)
    config = config_dir / f"{'student_mgd' if stage in ABLATION else base}.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"stage config {config} not found (set `config_dir`)")
    return config


def run_pipeline(
    config_dir: str = "configs/quickstart",
    out_dir: str = "runs/quickstart",
    seed: int = 0,
    teachers: str = "train",
    reuse: bool = False,
    smoke: bool = False,
    common_args: list[str] | None = None,
    stage_args: dict[str, list[str]] | None = None,
    same_time_baseline: bool = False,
    longer_baseline: int = 0,
    ablation: bool = False,
    split: Literal["test", "val"] = "test",
    figure_images: int = 4,
    progress_every: int = 100,
    teacher_label_cache: bool = False,
) -> dict[str, Any]:
    """Get the teachers, train the students, evaluate, and write the results.

    Args:
        config_dir: folder of the stage configs ``<stage>.yaml`` (relative paths are taken from
            the current directory).
        out_dir: output folder; stage ``s`` trains in ``<out_dir>/<s>``, results at the top.
        seed: ``seed_everything`` of every stage (the data itself is fixed by the data config).
        teachers: ``"train"`` trains the teacher stages and writes them as a shipped set to
            ``<out_dir>/teachers``; otherwise the teachers are loaded from a shipped set: its
            name in the package (``"synthetic"``), its folder or its ``manifest.json``.
        reuse: load finished stages from their checkpoints instead of retraining them.
        smoke: add :data:`SMOKE_ARGS` (tiny data, tiny networks, two steps): a quick check.
        common_args: extra LightningCLI arguments for every trained stage (e.g.
            ``["--trainer.max_steps=100"]``).
        stage_args: extra LightningCLI arguments per stage name.
        same_time_baseline: also train the labeled-only student for the MGD student's wall time
            (``trainer.max_time``) and report it as ``student_supervised_same_time``.
        longer_baseline: if > 0, also train the labeled-only student for this many times its
            steps (``student_supervised_longer``): whether more steps would still help it.
        ablation: also train the MGD student with the pixel-level term only and with the
            pixel- and image-level terms (:data:`ABLATION`).
        split: ``"test"`` or ``"val"``: where all models are evaluated.
        figure_images: rows of the figure (the first images of the split).
        progress_every: print a progress line every this many steps.
        teacher_label_cache: train the MGD students from cached teacher labels
            (:class:`~mgd_lightning.teacher_labels.TeacherLabelCacheCallback`, one cache in
            ``<out_dir>/teacher_labels``).
    """
    if split not in ("test", "val"):
        raise ValueError(f"`split` must be 'test' or 'val', got {split!r}")
    if isinstance(longer_baseline, bool) or not isinstance(longer_baseline, int) or (
        longer_baseline < 0
    ):
        raise ValueError(f"`longer_baseline` must be an integer >= 0, got {longer_baseline!r}")
    start, cpu_start = time.perf_counter(), time.process_time()
    out, configs = Path(out_dir), Path(config_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = [*(SMOKE_ARGS if smoke else ()), *(common_args or [])]
    per_stage = dict(stage_args or {})
    known = {*STAGES, SAME_TIME, LONGER, *ABLATION}
    unknown = sorted(set(per_stage) - known)
    if unknown:
        raise ValueError(f"`stage_args` names unknown stages {unknown}; stages are {sorted(known)}")
    order = [
        "student_supervised",
        *([LONGER] if longer_baseline else []),
        "student_mgd",
        *(ABLATION if ablation else []),
        *([SAME_TIME] if same_time_baseline else []),
    ]
    _say(f"teachers: {teachers}; students: {', '.join(order)}; output folder {out.resolve()}",
         start)
    source = teachers
    if teachers == "train":
        source = os.fspath(
            _teacher_stages(configs, out, seed, common, per_stage, reuse, start, progress_every)
        )
    # Trained or not, the students learn from (and the report evaluates) the shipped files.
    networks, records, shipped = _shipped_teachers(source, start)
    for record in records.values():
        record["reused"] = teachers != "train"
    datamodule: LightningDataModule | None = None
    for stage in order:
        max_time = None
        extra = list(ABLATION.get(stage, ())) + list(per_stage.get(stage, ()))
        if stage == SAME_TIME:
            sup = records["student_supervised"]
            budget = float(records["student_mgd"]["seconds"])
            rate = sup["steps"] / max(float(sup["seconds"]), 1e-3)
            max_time = (budget, max(1, math.ceil(1.2 * rate * budget)))
        if stage == LONGER:
            extra.insert(0, f"--trainer.max_steps={longer_baseline * _max_steps(records)}")
        distils = stage == "student_mgd" or stage in ABLATION
        if smoke:
            extra = [*SMOKE_STUDENT_ARGS, *extra]
        args = _stage_args(
            _config(configs, stage),
            out / stage,
            seed,
            common,
            extra,
            max_time,
            shipped=os.fspath(shipped) if distils else None,
        )
        cache = teacher_label_cache and distils
        callbacks = [TeacherLabelCacheCallback(out / "teacher_labels")] if cache else []
        networks[stage], stage_data, records[stage] = run_stage(
            stage, args, out / stage, reuse, start, progress_every, callbacks
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
    figure_names = [n for n in (*STAGES,) if n in networks]
    results: dict[str, Any] = {
        "split": split,
        "num_images": shown["num_images"],
        "image_size": image_size,
        "seed": seed,
        "class_names": class_names,
        "miou_unit": "fraction (0-1); results.md shows percent",
        "teachers": os.fspath(shipped),
        "teacher_label_cache": teacher_label_cache,
        "models": models,
        "total_seconds": 0.0,
        "command": " ".join(["mgd-lightning", "pipeline", *sys.argv[2:]])
        if sys.argv[1:2] == ["pipeline"]
        else None,
    }
    figure_path = out / "figure.png"
    write_figure(
        figure_path, shown, figure_names, getattr(datamodule, "palette", []), class_names
    )
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    results["total_cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    json_path, md_path = out / "results.json", out / "results.md"
    write_text_atomic(json_path, json.dumps(results, indent=2, default=str) + "\n")
    markdown = results_markdown(results)
    write_text_atomic(md_path, markdown)
    print(markdown.split("![predictions]")[0].rstrip(), flush=True)
    _say(f"wrote {json_path.resolve()}", start)
    _say(f"wrote {md_path.resolve()}", start)
    _say(f"wrote {figure_path.resolve()}", start)
    _say(f"total {timedelta(seconds=round(results['total_seconds']))}", start)
    return results


def _max_steps(records: dict[str, dict[str, Any]]) -> int:
    """The labeled-only student's step count (the longer baseline multiplies it)."""
    return max(1, int(records["student_supervised"]["steps"]))
