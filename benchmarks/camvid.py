"""The MGD comparison on real images: CamVid, on a CPU, in one command.

Trains, per partition (1/8 first), the deep and the wide teacher; the headline pair, the
MobileNet-v2 student from ImageNet weights labeled-only and with MGD (both from the same
ImageNet file); the from-scratch ResNet-18 and MobileNet-v2 students and their MGD twins; and,
once (first partition, first seed), the pretrained labeled-only MobileNet-v2 with four times
the steps (is 1x on a plateau?), the labeled-only ResNet-18 with the 1/2 labels (the headroom)
and the step-by-step ablation of the ResNet-18 MGD student. Students are repeated over seeds;
teachers are trained once (first seed), and also scored together (the mean of their softmaxes,
``teachers_combined``: what the pixel term can pass on). Every model is scored on the whole
240x180 images of ``val``, of ``heldout`` (protocol ``heldout_0006R0``) and of ``test`` when the
root has one.
Writes ``results.json`` and ``results.md`` (mIoU per split, mean and spread over seeds,
per-class IoU, paired MGD-minus-labeled-only differences with a paired t-test, parameters,
FLOPs, training time, the machine)::

    python benchmarks/camvid.py --data-root ../shared/data/camvid            # everything
    python benchmarks/camvid.py --data-root ../shared/data/camvid --seeds 0  # one seed
    python benchmarks/camvid.py --data-root ../shared/data/camvid --jobs 2   # 2 stages at once
    python benchmarks/camvid.py --data-root ../shared/data/camvid --stages teacher_deep \\
        teacher_wide mbv2_pre_sup mbv2_pre_mgd --stage-config teacher_deep=teacher_deep_cps.yaml
    python benchmarks/camvid.py --report-only

Protocols (``--protocol``): ``heldout_0006R0`` (default) keeps the 101 training images of
sequence 0006R0 out of both pools (lists in ``configs/camvid/splits/heldout_0006R0/``) and
scores them as ``heldout``; ``standard`` is the former protocol (``splits/1-N`` of the root).

Every stage is an ordinary LightningCLI run of ``configs/camvid/common.yaml`` plus its stage
config (``--stage-config STAGE=FILE`` swaps it, e.g. another teacher recipe), trained in
``<out>[/<protocol>]/<partition>/s<seed>/<stage>``. Finished stages (``stage.json`` and the
checkpoint it names) are reused, so an interrupted run continues where it stopped; a finished
stage whose arguments differ from the new ones is refused (``--retrain``, or another ``--out``).
After the seed-0 pretrained MobileNet-v2 students, their fp16 student files are written to
``--weights-dir`` (``benchmarks/results/camvid/``; their rows are scored from those files, so
``mgd-lightning evaluate --weights FILE`` reproduces them exactly) with results.json and
results.md. The data root may also come from ``MGD_CAMVID_ROOT``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mgd_lightning.evaluation import evaluate_camvid_split
from mgd_lightning.export import export_safetensors
from mgd_lightning.files import write_text_atomic
from mgd_lightning.models.inference import MeanOfSoftmaxes
from mgd_lightning.models.profile import count_flops, count_parameters
from mgd_lightning.models.spec import read_student_file
from mgd_lightning.models.weights import sha256_file
from mgd_lightning.pipeline import run_stage
from mgd_lightning.stats import paired_t_test
from mgd_lightning.teacher_labels import TeacherLabelCacheCallback

PROJECT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT / "configs" / "camvid"
SPLITS_DIR = CONFIG_DIR / "splits"
WEIGHTS_DIR = PROJECT / "benchmarks" / "results" / "camvid"
#: The ImageNet MobileNet-v2 of the pretrained stages (their configs name it relative to here).
IMAGENET_MBV2 = (
    PROJECT.parent / "shared" / "weights" / "mobilenet_v2_imagenet"
    / "mobilenet_v2_imagenet_torchvision_layout.safetensors"
)
PROTOCOLS = ("heldout_0006R0", "standard")


@dataclass(frozen=True)
class Stage:
    """One model of the comparison: a stage config, extra CLI arguments and what it needs."""

    name: str
    title: str
    config: str
    extra: tuple[str, ...] = ()
    needs_teachers: bool = False
    teacher: bool = False  # trained once (first seed) and shared by every seed's students
    pretrained: bool = False  # its network starts from the ImageNet MobileNet-v2 file
    partition: str | None = None  # a fixed partition instead of the run's (the headroom)
    steps_factor: int = 1  # times the config's (or the command line's) max_steps
    export: str | None = None  # stem of its student file (seed 0, first partition)


STAGES: tuple[Stage, ...] = (
    Stage("teacher_deep", "Teacher deep (MobileNet-v2 ImageNet, head 256, stride 32)",
          "teacher_deep_pretrained.yaml", teacher=True, pretrained=True),
    Stage("teacher_wide", "Teacher wide (MobileNet-v2 ImageNet, head 384, stride 32)",
          "teacher_wide_pretrained.yaml", teacher=True, pretrained=True),
    Stage("mbv2_pre_sup", "MobileNet-v2 (ImageNet), labeled only",
          "student_mbv2_supervised_pretrained.yaml", pretrained=True,
          export="mbv2_pretrained_supervised"),
    Stage("mbv2_pre_mgd", "MobileNet-v2 (ImageNet), MGD", "student_mbv2_mgd_pretrained.yaml",
          needs_teachers=True, pretrained=True, export="mbv2_pretrained_mgd"),
    Stage("mbv2_pre_sup_4x", "MobileNet-v2 (ImageNet), labeled only, 4x steps",
          "student_mbv2_supervised_pretrained.yaml", pretrained=True, steps_factor=4),
    Stage("r18_sup", "ResNet-18 (scratch), labeled only", "student_r18_supervised.yaml"),
    Stage("r18_sup_half", "ResNet-18 (scratch), labeled only, 1/2 labels",
          "student_r18_supervised.yaml", partition="1-2"),
    Stage("r18_mgd", "ResNet-18 (scratch), MGD", "student_r18_mgd.yaml", needs_teachers=True),
    Stage("mbv2_sup", "MobileNet-v2 (scratch), labeled only", "student_mbv2_supervised.yaml"),
    Stage("mbv2_mgd", "MobileNet-v2 (scratch), MGD", "student_mbv2_mgd.yaml",
          needs_teachers=True),
    Stage(
        "mbv2_pre_mgd_pixel",
        "MobileNet-v2 (ImageNet), MGD pixel only",
        "student_mbv2_mgd_pretrained.yaml",
        ("--model.init_args.image_weight=0", "--model.init_args.region_weight=0"),
        needs_teachers=True,
        pretrained=True,
    ),
    Stage(
        "mbv2_pre_mgd_pixel_image",
        "MobileNet-v2 (ImageNet), MGD pixel + image",
        "student_mbv2_mgd_pretrained.yaml",
        ("--model.init_args.region_weight=0",),
        needs_teachers=True,
        pretrained=True,
    ),
)
BY_NAME = {s.name: s for s in STAGES}
#: The ablation of the headline student, only at the first partition and seed (the paper's
#: Table 5 analogue).
ABLATION = ("mbv2_pre_mgd_pixel", "mbv2_pre_mgd_pixel_image")
#: What a plain run trains (about 200 one-thread training minutes, docs/benchmarks.md): the
#: teachers, the headline pair over the seeds, its plateau check and its ablation. The
#: from-scratch rows (ResNet-18, MobileNet-v2, the 1/2-label headroom) run when named in
#: ``--stages``.
DEFAULT_STAGES = (
    "teacher_deep", "teacher_wide", "mbv2_pre_sup", "mbv2_pre_mgd", "mbv2_pre_sup_4x",
    *ABLATION,
)
#: Run once (first partition, first seed): the plateau check, the headroom and the pixel-only
#: ablation. The pixel + image student runs over every seed: without the region term it beat
#: the full MGD student by 4.7 / 4.3 mIoU on seed 0 (docs/benchmarks.md), so it is a candidate
#: recipe whose claim needs the seeds.
ONCE = ("mbv2_pre_sup_4x", "r18_sup_half", "mbv2_pre_mgd_pixel")
#: Pairs reported as "MGD minus labeled-only" (paired over seeds), headline first.
GAINS = (
    ("mbv2_pre_mgd", "mbv2_pre_sup"),
    ("mbv2_pre_mgd_pixel_image", "mbv2_pre_sup"),
    ("r18_mgd", "r18_sup"),
    ("mbv2_mgd", "mbv2_sup"),
)
#: The plateau evidence: (more steps, fewer steps).
PLATEAU = ("mbv2_pre_sup_4x", "mbv2_pre_sup")
#: Students the teachers must lead (distillation gives only what the teachers know beyond).
LEAD_OVER = ("mbv2_pre_sup", "r18_sup")
#: The two teachers scored together (mean of their softmaxes), in the first seed's folder.
COMBINED = "teachers_combined"
COMBINED_TITLE = "Teachers combined (mean of the deep and wide softmaxes)"


def protocol_dir(out: Path, protocol: str) -> Path:
    """Where a protocol's stages and results live (``standard``: ``out`` itself, as before)."""
    return out if protocol == "standard" else out / protocol


def eval_splits(data_root: str, protocol: str) -> dict[str, str]:
    """Split name -> what :func:`evaluate_camvid_split` takes (a root list or a list file)."""
    splits = {"val": "val"}
    if protocol != "standard":
        splits["heldout"] = os.fspath(SPLITS_DIR / protocol / "heldout.txt")
    if (Path(data_root) / "test.txt").is_file():
        splits["test"] = "test"
    return splits


def _config_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() or path.parent != Path(".") else CONFIG_DIR / name


def _max_steps(config: Path, extra: list[str]) -> int:
    given = [a.split("=", 1)[1] for a in extra if a.startswith("--trainer.max_steps=")]
    if given:
        return int(given[-1])
    return int(yaml.safe_load(config.read_text())["trainer"]["max_steps"])


def stage_dir_name(stage: Stage, configs: dict[str, str], cache: bool = False) -> str:
    """The stage's folder: its name, plus the config's stem when ``--stage-config`` swaps it,
    plus ``cache`` for an MGD stage trained from cached teacher labels."""
    config = configs.get(stage.name, stage.config)
    marks = [] if config == stage.config else [Path(config).stem]
    if cache and stage.needs_teachers:
        marks.append("cache")
    return stage.name if not marks else f"{stage.name}@{'+'.join(marks)}"


def stage_args(
    stage: Stage,
    data_root: str,
    partition: str,
    seed: int,
    stage_dir: Path,
    teachers: dict[str, str],
    extra: list[str],
    protocol: str = "heldout_0006R0",
    configs: dict[str, str] | None = None,
    backbone_weights: str | None = None,
) -> list[str]:
    """The LightningCLI arguments of one stage."""
    config = _config_path((configs or {}).get(stage.name, stage.config))
    partition = stage.partition or partition
    if protocol == "standard":
        data = [f"--data.init_args.partition={partition}"]
    else:
        folder = SPLITS_DIR / protocol / partition
        data = [
            f"--data.init_args.labeled_split={folder / 'labeled.txt'}",
            f"--data.init_args.unlabeled_split={folder / 'unlabeled.txt'}",
        ]
    args = [
        "--config",
        os.fspath(CONFIG_DIR / "common.yaml"),
        "--config",
        os.fspath(config),
        f"--seed_everything={seed}",
        f"--data.init_args.seed={seed}",
        f"--data.init_args.root={data_root}",
        *data,
        f"--trainer.default_root_dir={stage_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *stage.extra,
        *extra,
    ]
    if stage.pretrained:
        weights = backbone_weights or os.fspath(IMAGENET_MBV2)
        args.append(f"--model.init_args.network.init_args.backbone_weights={weights}")
    if stage.steps_factor != 1:
        args.append(f"--trainer.max_steps={stage.steps_factor * _max_steps(config, extra)}")
    if stage.needs_teachers:
        args += [
            f"--model.init_args.teachers.init_args.deep_weights={teachers['teacher_deep']}",
            f"--model.init_args.teachers.init_args.wide_weights={teachers['teacher_wide']}",
        ]
    return args


def _say(message: str, start: float) -> None:
    elapsed = int(time.perf_counter() - start)
    print(
        f"[camvid {elapsed // 3600:d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}] {message}",
        flush=True,
    )


def _check_reuse(stage_dir: Path, args: list[str]) -> None:
    """Refuse to reuse a finished stage trained with other arguments (the data root aside)."""
    record_file = stage_dir / "stage.json"
    if not record_file.is_file():
        return
    old = json.loads(record_file.read_text()).get("args", [])
    root = "--data.init_args.root="
    differing = sorted(
        {a for a in old if not a.startswith(root)} ^ {a for a in args if not a.startswith(root)}
    )
    if differing:
        raise RuntimeError(
            f"{stage_dir} holds a finished stage trained with other arguments "
            f"({' '.join(differing)}); pass --retrain to train it again, or use another --out"
        )


def _score_splits(
    network: torch.nn.Module, data_root: str, splits: dict[str, str], result: dict[str, Any]
) -> None:
    """Add ``class_names`` and, per split, its source, image count, mIoU and per-class IoU."""
    for split, source in splits.items():
        scores = evaluate_camvid_split(network, data_root, source)
        result.setdefault("class_names", list(scores["per_class_iou"]))
        result[split] = {
            "source": source,
            "num_images": scores["num_images"],
            "miou": scores["miou"],
            "per_class_iou": scores["per_class_iou"],
        }


def _evaluate_stage(
    stage: Stage,
    network: torch.nn.Module,
    data_root: str,
    splits: dict[str, str],
    stage_dir: Path,
    record: dict[str, Any],
    weights_file: Path | None,
    info: dict[str, Any],
) -> dict[str, Any]:
    """IoU on every split of one trained stage, written to ``<stage_dir>/eval.json``.

    With ``weights_file``, the student is first written there (fp16 safetensors) and the
    scores are those of the network read back from it, so ``mgd-lightning evaluate``
    reproduces them exactly.
    """
    out_file = stage_dir / "eval.json"
    if out_file.is_file() and record.get("reused"):
        saved = json.loads(out_file.read_text())
        saved_file = saved.get("weights_file") or {}
        if (
            saved.get("checkpoint") == record["checkpoint"]
            and set(splits) <= set(saved)
            and (weights_file is None or (
                weights_file.is_file()
                and saved_file.get("path") == os.fspath(weights_file)
                and sha256_file(weights_file) == saved_file.get("sha256")
            ))
        ):
            return saved
    height, width = 180, 240  # CamVid here: whole 240x180 images
    result: dict[str, Any] = {
        "stage": stage.name,
        "checkpoint": record["checkpoint"],
        "params": count_parameters(network),
        "flops": count_flops(network, (height, width)),
        "seconds": record["seconds"],
        "cpu_seconds": record.get("cpu_seconds"),
        "steps": record["steps"],
        "network": getattr(network, "init_args", None),
        "teacher_label_cache": bool(info.get("teacher_label_cache")),
    }
    if weights_file is not None:
        path, digest = export_safetensors(network, weights_file, info=info)
        network = read_student_file(path)[0]
        result["weights_file"] = {"path": os.fspath(path), "sha256": digest}
    _score_splits(network, data_root, splits, result)
    write_text_atomic(out_file, json.dumps(result, indent=2) + "\n")
    return result


def _evaluate_combined(
    teachers: dict[str, tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]],
    data_root: str,
    splits: dict[str, str],
    folder: Path,
) -> dict[str, Any]:
    """IoU of the two teachers together on every split, written to ``<folder>/eval.json``.

    ``teachers``: name -> (network, stage record, the stage's eval.json). Reused when both
    teachers were reused and the saved scores name the same checkpoints and splits.
    """
    names = ("teacher_deep", "teacher_wide")
    checkpoints = [teachers[n][1]["checkpoint"] for n in names]
    out_file = folder / "eval.json"
    if out_file.is_file() and all(teachers[n][1].get("reused") for n in names):
        saved = json.loads(out_file.read_text())
        if saved.get("checkpoints") == checkpoints and set(splits) <= set(saved):
            return saved
    network = MeanOfSoftmaxes(*(teachers[n][0] for n in names))
    result: dict[str, Any] = {
        "stage": COMBINED,
        "title": COMBINED_TITLE,
        "checkpoints": checkpoints,
        "params": sum(teachers[n][2]["params"] for n in names),
        "flops": sum(teachers[n][2]["flops"] for n in names),
        "seconds": sum(teachers[n][1]["seconds"] for n in names),
        "cpu_seconds": None,
        "steps": max(teachers[n][1]["steps"] for n in names),
        "teacher_label_cache": False,
    }
    _score_splits(network, data_root, splits, result)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_file, json.dumps(result, indent=2) + "\n")
    return result


def make_plan(
    partitions: list[str], seeds: list[int], stages: list[str]
) -> list[tuple[str, int, Stage]]:
    """(partition, seed, stage) in training order: teachers once (first seed), ONCE stages on
    the first partition and seed, the others for every seed."""
    plan: list[tuple[str, int, Stage]] = []
    for p_index, partition in enumerate(partitions):
        for seed in seeds:
            for stage in STAGES:
                if stage.name not in stages or (stage.teacher and seed != seeds[0]):
                    continue
                if stage.name in ONCE and (p_index > 0 or seed != seeds[0]):
                    continue
                plan.append((partition, seed, stage))
    return plan


def _label(partition: str, seed: int, stage: Stage) -> str:
    return f"{partition}/s{seed}/{stage.name}"


def run(
    data_root: str,
    out: Path,
    partitions: list[str],
    seeds: list[int],
    stages: list[str],
    retrain: bool,
    extra: list[str],
    progress_every: int,
    protocol: str = "heldout_0006R0",
    configs: dict[str, str] | None = None,
    backbone_weights: str | None = None,
    weights_dir: Path = WEIGHTS_DIR,
    teacher_label_cache: bool = False,
    only: set[str] | None = None,
) -> None:
    """Train (or reuse) and evaluate every stage, in the order that gives a full table first.

    With ``only`` (labels ``<partition>/s<seed>/<stage>``, a worker of :func:`run_jobs`) just
    those stages, reusing the finished teachers they need, and no report.

    With ``teacher_label_cache`` the MGD stages train from cached teacher labels
    (:class:`~mgd_lightning.teacher_labels.TeacherLabelCacheCallback`, one cache in each stage's
    folder) and their folders end in ``@cache``.
    """
    start = time.perf_counter()
    configs = dict(configs or {})
    base = protocol_dir(out, protocol)
    splits = eval_splits(data_root, protocol)
    teachers_of: dict[str, dict[str, str]] = {}
    # partition -> teacher -> (network, stage record, eval.json), until both are scored together
    teacher_runs: dict[str, dict[str, tuple[torch.nn.Module, Any, Any]]] = {}
    val_of: dict[tuple[str, int, str], float] = {}
    minutes: list[tuple[str, float, bool]] = []
    plan = make_plan(partitions, seeds, stages)
    if only is not None:  # one worker of --jobs: its stages, and the finished teachers they need
        needs = {p for p, s, st in plan if st.needs_teachers and _label(p, s, st) in only}
        plan = [(p, s, st) for p, s, st in plan
                if _label(p, s, st) in only or (st.teacher and p in needs)]
    _say(
        f"{len(plan)} stages; protocol {protocol}; splits {', '.join(splits)}; output "
        f"{base.resolve()}; data {data_root}",
        start,
    )
    for partition, seed, stage in plan:
        stage_seed = seeds[0] if stage.teacher else seed
        cached = teacher_label_cache and stage.needs_teachers
        stage_dir = (base / partition / f"s{stage_seed}"
                     / stage_dir_name(stage, configs, teacher_label_cache))
        teachers = teachers_of.get(partition, {})
        label = _label(partition, seed, stage)
        if only is not None and label not in only and not (stage_dir / "stage.json").is_file():
            raise RuntimeError(f"{label} is needed but not finished: run it first")
        if stage.needs_teachers and len(teachers) < 2:
            raise RuntimeError(
                f"{stage.name} needs both teachers of {partition}: include "
                "teacher_deep and teacher_wide in --stages"
            )
        args = stage_args(
            stage, data_root, partition, seed, stage_dir, teachers, extra, protocol, configs,
            backbone_weights,
        )
        # A --jobs worker reuses the teachers it was not asked for, even with --retrain.
        reuse = not retrain or (only is not None and label not in only)
        if reuse:
            _check_reuse(stage_dir, args)
        callbacks = [TeacherLabelCacheCallback(stage_dir / "teacher_labels")] if cached else []
        network, datamodule, record = run_stage(
            label, args, stage_dir, reuse, start, progress_every, callbacks
        )
        del datamodule
        if stage.teacher:
            teachers_of.setdefault(partition, {})[stage.name] = record["checkpoint"]
        weights_file = None
        if stage.export and seed == 0 and partition == partitions[0]:
            weights_file = weights_dir / f"{stage.export}_s0.safetensors"
        info = {
            "stage": stage.name, "title": stage.title, "protocol": protocol,
            "partition": stage.partition or partition, "seed": seed, "steps": record["steps"],
            "config": configs.get(stage.name, stage.config),
            "teacher_label_cache": cached,
            "evaluation": "whole 240x180 images (mgd_lightning.evaluation.evaluate_camvid_split)",
        }
        result = _evaluate_stage(
            stage, network, data_root, splits, stage_dir, record, weights_file, info
        )
        miou = val_of[(partition, seed, stage.name)] = result["val"]["miou"]
        spent = record["seconds"] / 60
        minutes.append((label, spent, bool(record.get("reused"))))
        scores = ", ".join(f"{s} mIoU {100 * result[s]['miou']:.1f}" for s in splits)
        reused = " (reused)" if record.get("reused") else ""
        _say(f"{label}: {scores}; trained in {spent:.1f} min{reused}", start)
        if stage.teacher:
            pair = teacher_runs.setdefault(partition, {})
            pair[stage.name] = (network, record, result)
            if len(pair) == 2:
                both = _evaluate_combined(
                    pair, data_root, splits, base / partition / f"s{stage_seed}" / COMBINED
                )
                scores = ", ".join(f"{s} mIoU {100 * both[s]['miou']:.1f}" for s in splits)
                _say(f"{partition}/s{stage_seed}/{COMBINED}: {scores}", start)
                pair.clear()
        if stage.name in LEAD_OVER and seed == seeds[0]:
            for teacher in ("teacher_deep", "teacher_wide"):
                if (partition, seed, teacher) not in val_of:  # not in this run's stages
                    continue
                lead = val_of[(partition, seed, teacher)] - miou
                if not lead > 0.02:  # distillation gives only what the teachers know beyond
                    _say(
                        f"WARNING: {teacher} leads {stage.title} by only {100 * lead:.1f} val "
                        "mIoU points: swap in a stronger teacher recipe (--stage-config)",
                        start,
                    )
        del network
    _say("minutes per stage (training wall time):", start)
    for label, spent, was_reused in minutes:
        print(f"  {label:<40} {spent:7.1f} min{'  (reused)' if was_reused else ''}", flush=True)
    if only is None:
        report(out, partitions, seeds, protocol, weights_dir)
    _say(f"total {(time.perf_counter() - start) / 60:.1f} min", start)


def run_jobs(
    argv: list[str], plan: list[tuple[str, int, Stage]], jobs: int, logs: Path
) -> list[str]:
    """Run the stages of ``plan`` as up to ``jobs`` worker processes at once.

    Each worker is this script with ``argv`` and ``--only <its stage>``, on
    ``cores // jobs`` torch threads, its output in ``logs/<label>.log``. A stage that needs the
    teachers starts once both of its partition's teachers have finished. After a failure no
    new stage starts; the running ones finish.

    Returns:
        The labels of the stages that failed (empty when all succeeded).
    """
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, _cores() // jobs))}
    teachers: dict[str, set[str]] = {}  # partition -> its teacher stages
    for partition, seed, stage in plan:
        if stage.teacher:
            teachers.setdefault(partition, set()).add(_label(partition, seed, stage))
    pending = list(plan)
    running: dict[str, tuple[subprocess.Popen[bytes], float, Path]] = {}  # label -> process
    finished: set[str] = set()
    failed: list[str] = []
    logs.mkdir(parents=True, exist_ok=True)
    while pending or running:
        for item in list(pending):
            partition, _, stage = item
            label = _label(*item)
            if failed or len(running) >= jobs:
                break
            if stage.needs_teachers and not teachers.get(partition, set()) <= finished:
                continue
            log = logs / f"{label.replace('/', '_')}.log"
            command = [sys.executable, str(Path(__file__).resolve()), "--jobs", "1",
                       "--only", label, *argv]
            with log.open("wb") as handle:
                process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                           env=env)
            running[label] = (process, time.perf_counter(), log)
            pending.remove(item)
            _say(f"{label}: started (log {log})", start)
        if failed and not running:
            break
        time.sleep(1.0)
        for label, (process, began, log) in list(running.items()):
            if process.poll() is None:
                continue
            del running[label]
            minutes = (time.perf_counter() - began) / 60
            if process.returncode == 0:
                finished.add(label)
                _say(f"{label}: done in {minutes:.1f} min", start)
            else:
                failed.append(label)
                _say(f"{label}: FAILED (exit {process.returncode}); see {log}", start)
    _say(f"{len(finished)} stages done, {len(failed)} failed, {len(pending)} not started; "
         f"{(time.perf_counter() - start) / 60:.1f} min with {jobs} jobs", start)
    return failed


def _cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": _cores(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt(values: list[float], signed: bool = False) -> str:
    mean, std = _mean_std([100 * v for v in values])
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return f"{text} ± {std:.1f}" if len(values) > 1 else text


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and inf as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _stage_rows(
    base: Path, partition: str, seeds: list[int]
) -> dict[str, dict[int, dict[str, Any]]]:
    """Stage name -> seed -> eval.json, whatever the stage's config (the folder's suffix)."""
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for stage in STAGES:
        for seed in seeds:
            folder = base / partition / f"s{seed}"
            found = sorted(folder.glob(f"{stage.name}/eval.json")) + sorted(
                folder.glob(f"{stage.name}@*/eval.json")
            )
            if found:
                rows.setdefault(stage.name, {})[seed] = json.loads(found[-1].read_text())
        if stage.name == "teacher_wide":
            for seed in seeds:
                combined = base / partition / f"s{seed}" / COMBINED / "eval.json"
                if combined.is_file():
                    rows.setdefault(COMBINED, {})[seed] = json.loads(combined.read_text())
    return rows


def _title(name: str) -> str:
    return COMBINED_TITLE if name == COMBINED else BY_NAME[name].title


def report(
    out: Path,
    partitions: list[str],
    seeds: list[int],
    protocol: str = "heldout_0006R0",
    weights_dir: Path | None = WEIGHTS_DIR,
) -> dict[str, Any]:
    """Collect every ``eval.json`` of a protocol into ``results.json`` and ``results.md``.

    Both go to the protocol's folder, and, when student files were written, beside them in
    ``weights_dir`` too.
    """
    base = protocol_dir(out, protocol)
    results: dict[str, Any] = {
        "machine": _machine(),
        "command": " ".join(sys.argv),
        "protocol": protocol,
        "evaluation": "whole 240x180 images; mgd_lightning.evaluation.evaluate_camvid_split",
        "weights_files": {},
        "partitions": {},
    }
    held = "`heldout` (the 101 training images of sequence 0006R0, kept out of training), "
    lines = [
        f"# MGD on CamVid: results (protocol {protocol})",
        "",
        "Evaluated on the whole 240x180 images of `val` (101 images of sequence 0016E5, which",
        "is also in `train`), " + (held if protocol != "standard" else "")
        + "and `test` when the root has one. IoU in percent: mean ± standard deviation over",
        "seeds; per-class IoU averaged over seeds. GFLOPs: multiply-adds of one 240x180 image.",
        "Time: training wall time of one run, mean over seeds. Rows marked (ImageNet) start",
        "from the ImageNet MobileNet-v2; (scratch) rows from random weights.",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"GPU {results['machine']['gpu'] or 'none'}, torch {results['machine']['torch']}.",
    ]
    for partition in partitions:
        rows = _stage_rows(base, partition, seeds)
        if not rows:
            continue
        first = next(iter(next(iter(rows.values())).values()))
        class_names = first["class_names"]
        splits = [s for s in ("val", "heldout", "test") if s in first]
        part: dict[str, Any] = {"splits": splits, "models": {}, "gains": {}}
        lines += [
            "",
            f"## Partition {partition}",
            "",
            "| model | seeds | " + " | ".join(f"{s} mIoU" for s in splits)
            + " | params (M) | GFLOPs | steps | time |",
            "|---|---:|" + "---:|" * len(splits) + "---:|---:|---:|---:|",
        ]
        for name, by_seed in rows.items():
            runs = list(by_seed.values())
            model: dict[str, Any] = {"title": _title(name), "seeds": sorted(by_seed)}
            if any(r.get("teacher_label_cache") for r in runs):
                model["title"] += " (cached teacher labels)"
                model["teacher_label_cache"] = True
            for split in splits:
                mious = [r[split]["miou"] for r in runs if split in r]
                model[f"{split}_miou"] = mious
                model[f"{split}_miou_mean"] = statistics.fmean(mious) if mious else None
                model[f"{split}_per_class_iou"] = {
                    c: statistics.fmean(r[split]["per_class_iou"][c] for r in runs if split in r)
                    for c in class_names
                } if mious else None
            model.update(
                params=runs[0]["params"], flops=runs[0]["flops"], steps=runs[0]["steps"],
                seconds=statistics.fmean(r["seconds"] for r in runs),
            )
            part["models"][name] = model
            cells = " | ".join(f"**{_fmt(model[f'{s}_miou'])}**" for s in splits)
            lines.append(
                f"| {model['title']} | {len(runs)} | {cells} | {runs[0]['params'] / 1e6:.2f} | "
                f"{runs[0]['flops'] / 1e9:.2f} | {runs[0]['steps']} | "
                f"{model['seconds'] / 60:.1f} min |"
            )
            for r in runs:
                if "weights_file" in r:
                    stem = Path(r["weights_file"]["path"]).stem
                    results["weights_files"][stem] = {
                        **r["weights_file"],
                        "file": Path(r["weights_file"]["path"]).name,
                        "stage": name,
                        "partition": partition,
                        **{f"{s}_miou": r[s]["miou"] for s in splits},
                    }
        for split in splits:
            lines += [
                "",
                f"Per-class IoU on `{split}`:",
                "",
                "| model | " + " | ".join(class_names) + " |",
                "|---|" + "---:|" * len(class_names),
            ]
            for model in part["models"].values():
                per_class = model[f"{split}_per_class_iou"] or {}
                cells = " | ".join(
                    "n/a" if math.isnan(v) else f"{100 * v:.1f}" for v in per_class.values()
                )
                lines.append(f"| {model['title']} | {cells} |")
        notes = []
        for mgd, sup in GAINS:
            common = sorted(set(rows.get(mgd, {})) & set(rows.get(sup, {})))
            if not common:
                continue
            gain: dict[str, Any] = {"seeds": common}
            for split in splits:
                test = paired_t_test(
                    [rows[mgd][s][split]["miou"] for s in common],
                    [rows[sup][s][split]["miou"] for s in common],
                )
                diffs = [rows[mgd][s][split]["miou"] - rows[sup][s][split]["miou"]
                         for s in common]
                gain[split] = {"differences": diffs, **test._asdict()}
                p_text = f", paired t-test p = {test.p_value:.3f}" if test.n >= 2 else ""
                notes.append(
                    f"- {BY_NAME[mgd].title} minus labeled only, `{split}`: "
                    f"**{_fmt(diffs, signed=True)}** mIoU points (seeds {common}, paired"
                    f"{p_text})."
                )
            part["gains"][mgd] = gain
        seed0 = seeds[0]
        more, fewer = PLATEAU
        if seed0 in rows.get(more, {}) and seed0 in rows.get(fewer, {}):
            plateau = {s: rows[more][seed0][s]["miou"] - rows[fewer][seed0][s]["miou"]
                       for s in splits}
            part["plateau"] = {"stages": [more, fewer], "seed": seed0, **plateau}
            notes.append(
                f"- Plateau: {BY_NAME[fewer].title}, 4x steps minus 1x steps (seed {seed0}): "
                + ", ".join(f"`{s}` {100 * v:+.1f}" for s, v in plateau.items())
                + " mIoU points."
            )
        for student in LEAD_OVER:
            baseline = rows.get(student, {}).get(seed0)
            for teacher in ("teacher_deep", "teacher_wide", COMBINED):
                if baseline is not None and seed0 in rows.get(teacher, {}):
                    lead = {s: rows[teacher][seed0][s]["miou"] - baseline[s]["miou"]
                            for s in splits}
                    part["models"][teacher][f"lead_over_{student}"] = lead
                    notes.append(
                        f"- {_title(teacher)} minus {BY_NAME[student].title} "
                        f"(seed {seed0}): "
                        + ", ".join(f"`{s}` {100 * v:+.1f}" for s, v in lead.items())
                        + " mIoU points."
                    )
        baseline = rows.get("r18_sup", {}).get(seed0)
        if baseline is not None and seed0 in rows.get("r18_sup_half", {}):
            headroom = rows["r18_sup_half"][seed0]["val"]["miou"] - baseline["val"]["miou"]
            part["headroom_r18"] = headroom
            notes.append(
                f"- Headroom: ResNet-18 labeled only with 1/2 labels minus with {partition} "
                f"labels (seed {seed0}, `val`): {100 * headroom:+.1f} mIoU points."
            )
        if notes:
            lines += ["", *notes]
        ablation = ["mbv2_pre_sup", *ABLATION, "mbv2_pre_mgd"]
        if all(seed0 in rows.get(n, {}) for n in ablation):
            lines += [
                "",
                f"Ablation (MobileNet-v2 from ImageNet weights, seed {seed0}): what each "
                "granularity adds.",
                "",
                "| pixel | image | region | "
                + " | ".join(f"{s} mIoU | vs labeled only" for s in splits) + " |",
                "|:-:|:-:|:-:|" + "---:|---:|" * len(splits),
            ]
            marks = {
                "mbv2_pre_sup": "  |   |  ",
                "mbv2_pre_mgd_pixel": "✓ |   |  ",
                "mbv2_pre_mgd_pixel_image": "✓ | ✓ |  ",
                "mbv2_pre_mgd": "✓ | ✓ | ✓",
            }
            part["ablation"] = {}
            for n in ablation:
                cells = []
                for split in splits:
                    miou = rows[n][seed0][split]["miou"]
                    base_miou = rows["mbv2_pre_sup"][seed0][split]["miou"]
                    cells.append(f"{100 * miou:.1f} | {100 * (miou - base_miou):+.1f}")
                lines.append(f"| {marks[n]} | " + " | ".join(cells) + " |")
                part["ablation"][n] = {split: rows[n][seed0][split]["miou"] for split in splits}
        results["partitions"][partition] = part
    if results["weights_files"]:
        lines += ["", "Student files (fp16 safetensors; `mgd-lightning evaluate --weights FILE "
                  "--data.root DIR --split val` reproduces their rows):", ""]
        lines += [f"- `{w['file']}`: SHA-256 `{w['sha256']}`"
                  for w in results["weights_files"].values()]
    text_json = json.dumps(_plain(results), indent=2) + "\n"
    text_md = "\n".join(lines) + "\n"
    targets = [base]
    if weights_dir is not None and results["weights_files"]:
        targets.append(weights_dir)
    for folder in targets:
        write_text_atomic(folder / "results.json", text_json)
        write_text_atomic(folder / "results.md", text_md)
    print(text_md, flush=True)
    return results


def _parse_configs(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, str]:
    configs = {}
    for item in items:
        name, _, config = item.partition("=")
        if name not in BY_NAME or not config:
            parser.error(
                f"--stage-config {item!r}: give STAGE=FILE with STAGE one of {list(BY_NAME)}"
            )
        if not _config_path(config).is_file():
            parser.error(
                f"--stage-config {item!r}: {_config_path(config)} does not exist (a bare name "
                f"is looked up in {CONFIG_DIR})"
            )
        configs[name] = config
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root",
        default=os.environ.get("MGD_CAMVID_ROOT"),
        help="CamVid root (default: $MGD_CAMVID_ROOT)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/camvid"))
    parser.add_argument("--protocol", default=PROTOCOLS[0], choices=PROTOCOLS,
                        help="heldout_0006R0 (default): sequence 0006R0 kept out and scored as "
                        "`heldout`; standard: the root's splits/1-N")
    parser.add_argument("--partitions", nargs="+", default=["1-8"], choices=["1-8", "1-4", "1-2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--stages", nargs="+", default=list(DEFAULT_STAGES), choices=[s.name for s in STAGES],
        help="stages to train (default: the teachers, the pretrained MobileNet-v2 pair, its "
        "4x-steps check and its ablation; add r18_sup r18_mgd mbv2_sup mbv2_mgd r18_sup_half "
        "for the from-scratch rows)"
    )
    parser.add_argument(
        "--stage-config", nargs="+", default=[], metavar="STAGE=FILE",
        help="swap a stage's config (a file of configs/camvid or a path), e.g. "
        "teacher_deep=teacher_deep_cps.yaml; its folder becomes <stage>@<config stem>",
    )
    parser.add_argument(
        "--backbone-weights", default=None,
        help=f"ImageNet MobileNet-v2 file of the pretrained stages (default: {IMAGENET_MBV2})",
    )
    parser.add_argument(
        "--weights-dir", type=Path, default=WEIGHTS_DIR,
        help="where the seed-0 pretrained MobileNet-v2 student files and a copy of the results "
        f"go (default: {WEIGHTS_DIR})",
    )
    parser.add_argument(
        "--teacher-label-cache", action="store_true",
        help="train the MGD stages from cached teacher labels (teachers then run only on the "
        "mixed batch; folders <stage>@cache); docs/benchmarks.md gives its label agreement",
    )
    parser.add_argument("--retrain", action="store_true", help="do not reuse finished stages")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only collect the finished stages' results into the table",
    )
    parser.add_argument("--progress-every", type=int, default=100)
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="stages trained at once, each as its own process on cores/jobs torch threads "
        "(logs in <out>/<protocol>/logs/); 2 on a 2-core machine keeps both cores busy",
    )
    parser.add_argument("--only", nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "extra", nargs="*", help="extra LightningCLI arguments for every stage, after `--`"
    )
    options = parser.parse_args(argv)
    configs = _parse_configs(parser, options.stage_config)
    if options.jobs < 1:
        parser.error(f"--jobs {options.jobs}: give 1 or more")
    if options.report_only:
        report(options.out, options.partitions, options.seeds, options.protocol,
               options.weights_dir)
        return 0
    if not options.data_root or not (Path(options.data_root) / "train.txt").is_file():
        parser.error(
            f"--data-root {options.data_root!r} is not a CamVid root (no train.txt): "
            "pass the folder holding train.txt, val.txt, images/, labels/ and splits/, "
            "or set MGD_CAMVID_ROOT"
        )
    if options.backbone_weights is None and not IMAGENET_MBV2.is_file() and any(
        BY_NAME[s].pretrained for s in options.stages
    ):
        parser.error(
            f"the pretrained stages need the ImageNet MobileNet-v2 file {IMAGENET_MBV2}: pass "
            "--backbone-weights, or leave the mbv2_pre_* stages out of --stages"
        )
    if options.jobs > 1:
        argv = list(sys.argv[1:] if argv is None else argv)
        plan = make_plan(options.partitions, options.seeds, options.stages)
        failed = run_jobs(_without_jobs(argv), plan, options.jobs,
                          protocol_dir(options.out, options.protocol) / "logs")
        if failed:
            print(f"stages failed: {', '.join(failed)} (their logs are named above)",
                  file=sys.stderr)
            return 1
        report(options.out, options.partitions, options.seeds, options.protocol,
               options.weights_dir)
        return 0
    run(
        options.data_root,
        options.out,
        options.partitions,
        options.seeds,
        options.stages,
        options.retrain,
        options.extra,
        options.progress_every,
        options.protocol,
        configs,
        options.backbone_weights,
        options.weights_dir,
        options.teacher_label_cache,
        set(options.only) if options.only else None,
    )
    return 0


def _without_jobs(argv: list[str]) -> list[str]:
    """``argv`` without ``--jobs N`` / ``--jobs=N`` (the workers get ``--jobs 1``)."""
    kept: list[str] = []
    skip = False
    for index, item in enumerate(argv):
        if skip:
            skip = False
        elif item == "--":
            return kept + argv[index:]
        elif item == "--jobs":
            skip = True
        elif not item.startswith("--jobs="):
            kept.append(item)
    return kept


if __name__ == "__main__":
    sys.exit(main())
