"""The MGD comparison on real images: CamVid, from scratch, on a CPU, in one command.

Trains, per partition (1/8 first), the deep and the wide teacher, the labeled-only ResNet-18
and MobileNet-v2 students and their MGD twins, and the step-by-step ablation of the ResNet-18
MGD student (pixel-level only, plus image-level; the full model adds region-level); repeats the
students over seeds (the teachers are trained once, with seed 0); evaluates every model on the
whole 240x180 ``val`` images (and ``test`` when the root has one); and writes
``results.json`` and ``results.md`` (mIoU mean and spread over seeds, per-class IoU,
parameters, FLOPs, training wall time, the machine) into the output folder::

    python benchmarks/camvid.py --data-root ../shared/data/camvid            # everything
    python benchmarks/camvid.py --data-root ../shared/data/camvid --seeds 0  # one seed
    python benchmarks/camvid.py --data-root ../shared/data/camvid --report-only

Every stage is an ordinary LightningCLI run of ``configs/camvid/common.yaml`` plus its stage
config (runnable alone with ``mgd-lightning fit -c ... -c ...``), trained in
``<out>/<partition>/s<seed>/<stage>``. Finished stages (``stage.json`` and the checkpoint it
names) are reused, so an interrupted run continues where it stopped; ``--retrain`` trains
everything again. The data root may also come from ``MGD_CAMVID_ROOT``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mgd_lightning.evaluation import evaluate_networks, mean_iou
from mgd_lightning.models.profile import count_flops, count_parameters
from mgd_lightning.pipeline import run_stage

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "camvid"


@dataclass(frozen=True)
class Stage:
    """One model of the comparison: a stage config, extra CLI arguments and what it needs."""

    name: str
    title: str
    config: str
    extra: tuple[str, ...] = ()
    needs_teachers: bool = False
    teacher: bool = False  # trained once (seed 0) and shared by every seed's students


STAGES: tuple[Stage, ...] = (
    Stage("teacher_deep", "Teacher deep (ResNet-50-D)", "teacher_deep.yaml", teacher=True),
    Stage("teacher_wide", "Teacher wide (WRN-26-2)", "teacher_wide.yaml", teacher=True),
    Stage("r18_sup", "ResNet-18, labeled only", "student_r18_supervised.yaml"),
    Stage(
        "r18_sup_half",
        "ResNet-18, labeled only, 1/2 labels",
        "student_r18_supervised.yaml",
        ("--data.init_args.partition=1-2",),
    ),
    Stage("r18_mgd", "ResNet-18, MGD", "student_r18_mgd.yaml", needs_teachers=True),
    Stage("mbv2_sup", "MobileNet-v2, labeled only", "student_mbv2_supervised.yaml"),
    Stage("mbv2_mgd", "MobileNet-v2, MGD", "student_mbv2_mgd.yaml", needs_teachers=True),
    Stage(
        "r18_mgd_pixel",
        "ResNet-18, MGD pixel only",
        "student_r18_mgd.yaml",
        ("--model.init_args.image_weight=0", "--model.init_args.region_weight=0"),
        needs_teachers=True,
    ),
    Stage(
        "r18_mgd_pixel_image",
        "ResNet-18, MGD pixel + image",
        "student_r18_mgd.yaml",
        ("--model.init_args.region_weight=0",),
        needs_teachers=True,
    ),
)
BY_NAME = {s.name: s for s in STAGES}
#: The ablation runs only at the first partition and seed 0 (it is the paper's Table 5 analogue).
ABLATION = ("r18_mgd_pixel", "r18_mgd_pixel_image")
#: Run once (first partition, first seed): the ablation, and the labeled-only student with four
#: times the labels (the 183 of the 1/2 partition): the headroom a semi-supervised method has.
ONCE = ("r18_sup_half", *ABLATION)
#: Pairs reported as "MGD minus labeled-only".
GAINS = (("r18_mgd", "r18_sup"), ("mbv2_mgd", "mbv2_sup"))


def stage_args(
    stage: Stage,
    data_root: str,
    partition: str,
    seed: int,
    stage_dir: Path,
    teachers: dict[str, str],
    extra: list[str],
) -> list[str]:
    """The LightningCLI arguments of one stage."""
    args = [
        "--config",
        os.fspath(CONFIG_DIR / "common.yaml"),
        "--config",
        os.fspath(CONFIG_DIR / stage.config),
        f"--seed_everything={seed}",
        f"--data.init_args.seed={seed}",
        f"--data.init_args.root={data_root}",
        f"--data.init_args.partition={partition}",
        f"--trainer.default_root_dir={stage_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *stage.extra,
        *extra,
    ]
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


def _evaluate_stage(
    name: str,
    network: torch.nn.Module,
    datamodule: Any,
    stage_dir: Path,
    record: dict[str, Any],
    has_test: bool,
) -> dict[str, Any]:
    """IoU on val (and test) of one trained stage, written to ``<stage_dir>/eval.json``."""
    out_file = stage_dir / "eval.json"
    if out_file.is_file() and record.get("reused"):
        saved = json.loads(out_file.read_text())
        if saved.get("checkpoint") == record["checkpoint"]:
            return saved
    class_names = list(datamodule.class_names)
    height, width = 180, 240  # CamVid here: whole 240x180 images
    result: dict[str, Any] = {
        "stage": name,
        "checkpoint": record["checkpoint"],
        "class_names": class_names,
        "params": count_parameters(network),
        "flops": count_flops(network, (height, width)),
        "seconds": record["seconds"],
        "cpu_seconds": record.get("cpu_seconds"),
        "steps": record["steps"],
        "network": getattr(network, "init_args", None),
    }
    for split in ("val", "test") if has_test else ("val",):
        per_class, _ = evaluate_networks({name: network}, datamodule, split, 0)
        ious = per_class[name]
        result[split] = {
            "miou": mean_iou(ious),
            "per_class_iou": dict(zip(class_names, ious, strict=True)),
        }
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run(
    data_root: str,
    out: Path,
    partitions: list[str],
    seeds: list[int],
    stages: list[str],
    retrain: bool,
    extra: list[str],
    progress_every: int,
) -> None:
    """Train (or reuse) and evaluate every stage, in the order that gives a full table first."""
    start = time.perf_counter()
    has_test = (Path(data_root) / "test.txt").is_file()
    teachers_of: dict[str, dict[str, str]] = {}
    val_of: dict[tuple[str, int, str], float] = {}
    plan: list[tuple[str, int, Stage]] = []
    for p_index, partition in enumerate(partitions):
        for seed in seeds:
            for stage in STAGES:
                if stage.name not in stages or (stage.teacher and seed != seeds[0]):
                    continue
                if stage.name in ONCE and (p_index > 0 or seed != seeds[0]):
                    continue
                plan.append((partition, seed, stage))
    _say(f"{len(plan)} stages; output {out.resolve()}; data {data_root}", start)
    for partition, seed, stage in plan:
        teacher_seed = seeds[0]
        stage_dir = out / partition / f"s{teacher_seed if stage.teacher else seed}" / stage.name
        teachers = teachers_of.get(partition, {})
        if stage.needs_teachers and len(teachers) < 2:
            raise RuntimeError(
                f"{stage.name} needs both teachers of {partition}: include "
                "teacher_deep and teacher_wide in --stages"
            )
        args = stage_args(stage, data_root, partition, seed, stage_dir, teachers, extra)
        network, datamodule, record = run_stage(
            f"{partition}/s{seed}/{stage.name}",
            args,
            stage_dir,
            not retrain,
            start,
            progress_every,
        )
        if stage.teacher:
            teachers_of.setdefault(partition, {})[stage.name] = record["checkpoint"]
        result = _evaluate_stage(stage.name, network, datamodule, stage_dir, record, has_test)
        miou = val_of[(partition, seed, stage.name)] = result["val"]["miou"]
        _say(f"{partition}/s{seed}/{stage.name}: val mIoU {100 * miou:.1f}", start)
        if stage.name == "r18_sup" and seed == seeds[0]:
            for teacher in ("teacher_deep", "teacher_wide"):
                lead = val_of.get((partition, seed, teacher), math.nan) - miou
                if not lead > 0.02:  # distillation gives only what the teachers know beyond
                    _say(
                        f"WARNING: {teacher} leads the labeled-only student by only "
                        f"{100 * lead:.1f} mIoU points: train the teachers longer",
                        start,
                    )
        del network, datamodule
    report(out, partitions, seeds)
    _say(f"total {time.perf_counter() - start:.0f} s", start)


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
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
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


def report(out: Path, partitions: list[str], seeds: list[int]) -> dict[str, Any]:
    """Collect every ``eval.json`` under ``out`` into ``results.json`` and ``results.md``."""
    results: dict[str, Any] = {
        "machine": _machine(),
        "command": " ".join(sys.argv),
        "partitions": {},
    }
    lines = [
        "# MGD on CamVid: results",
        "",
        "From scratch (no pretrained weights), evaluated on the whole 240x180 images of `val`",
        "(101 images; its scenes are also in `train`, so it flatters every model alike). IoU in",
        "percent: mean ± standard deviation over seeds, per-class IoU averaged over seeds.",
        "GFLOPs: multiply-adds of one 240x180 image. Time: training wall time of one run,",
        "mean over seeds.",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"GPU {results['machine']['gpu'] or 'none'}, torch {results['machine']['torch']}.",
    ]
    for partition in partitions:
        rows: dict[str, dict[int, dict[str, Any]]] = {}
        for stage in STAGES:
            for seed in seeds:
                path = out / partition / f"s{seed}" / stage.name / "eval.json"
                if path.is_file():
                    rows.setdefault(stage.name, {})[seed] = json.loads(path.read_text())
        if not rows:
            continue
        class_names = next(iter(next(iter(rows.values())).values()))["class_names"]
        part: dict[str, Any] = {"models": {}, "gains": {}}
        lines += [
            "",
            f"## Partition {partition}",
            "",
            "| model | seeds | mIoU | "
            + " | ".join(class_names)
            + " | params (M) | GFLOPs | steps | time |",
            "|---|---:|---:|" + "---:|" * len(class_names) + "---:|---:|---:|---:|",
        ]
        for name, by_seed in rows.items():
            runs = list(by_seed.values())
            mious = [r["val"]["miou"] for r in runs]
            per_class = {
                c: statistics.fmean(r["val"]["per_class_iou"][c] for r in runs) for c in class_names
            }
            seconds = statistics.fmean(r["seconds"] for r in runs)
            part["models"][name] = {
                "title": BY_NAME[name].title,
                "seeds": sorted(by_seed),
                "val_miou": mious,
                "val_miou_mean": statistics.fmean(mious),
                "val_per_class_iou": per_class,
                "test_miou": [r["test"]["miou"] for r in runs if "test" in r] or None,
                "params": runs[0]["params"],
                "flops": runs[0]["flops"],
                "steps": runs[0]["steps"],
                "seconds": seconds,
            }
            cells = " | ".join(
                "n/a" if math.isnan(v) else f"{100 * v:.1f}" for v in per_class.values()
            )
            lines.append(
                f"| {BY_NAME[name].title} | {len(runs)} | **{_fmt(mious)}** | {cells} | "
                f"{runs[0]['params'] / 1e6:.2f} | {runs[0]['flops'] / 1e9:.2f} | "
                f"{runs[0]['steps']} | {seconds / 60:.1f} min |"
            )
        gain_lines = []
        for mgd, sup in GAINS:
            common = sorted(set(rows.get(mgd, {})) & set(rows.get(sup, {})))
            if not common:
                continue
            diffs = [rows[mgd][s]["val"]["miou"] - rows[sup][s]["val"]["miou"] for s in common]
            part["gains"][mgd] = {"seeds": common, "val_miou_gain": diffs}
            gain_lines.append(
                f"- {BY_NAME[mgd].title} minus {BY_NAME[sup].title}: "
                f"**{_fmt(diffs, signed=True)}** mIoU points (seeds {common}, paired)."
            )
        baseline = rows.get("r18_sup", {}).get(seeds[0])
        for teacher in ("teacher_deep", "teacher_wide"):
            if baseline is not None and seeds[0] in rows.get(teacher, {}):
                lead = rows[teacher][seeds[0]]["val"]["miou"] - baseline["val"]["miou"]
                part["models"][teacher]["lead_over_r18_sup"] = lead
                gain_lines.append(
                    f"- {BY_NAME[teacher].title} minus ResNet-18, labeled only "
                    f"(seed {seeds[0]}): {100 * lead:+.1f} mIoU points."
                )
        if baseline is not None and seeds[0] in rows.get("r18_sup_half", {}):
            headroom = rows["r18_sup_half"][seeds[0]]["val"]["miou"] - baseline["val"]["miou"]
            part["headroom_r18"] = headroom
            gain_lines.append(
                f"- Headroom: ResNet-18 labeled only with 1/2 labels minus with {partition} labels "
                f"(seed {seeds[0]}): {100 * headroom:+.1f} mIoU points."
            )
        if gain_lines:
            lines += ["", *gain_lines]
        ablation = ["r18_sup", *ABLATION, "r18_mgd"]
        seed0 = seeds[0]
        if all(seed0 in rows.get(n, {}) for n in ablation):
            base = rows["r18_sup"][seed0]["val"]["miou"]
            lines += [
                "",
                f"Ablation (ResNet-18, seed {seed0}): what each granularity adds.",
                "",
                "| pixel | image | region | mIoU | vs labeled only |",
                "|:-:|:-:|:-:|---:|---:|",
            ]
            marks = {
                "r18_sup": "  |   |  ",
                "r18_mgd_pixel": "✓ |   |  ",
                "r18_mgd_pixel_image": "✓ | ✓ |  ",
                "r18_mgd": "✓ | ✓ | ✓",
            }
            for n in ablation:
                miou = rows[n][seed0]["val"]["miou"]
                lines.append(f"| {marks[n]} | {100 * miou:.1f} | {100 * (miou - base):+.1f} |")
            part["ablation"] = {n: rows[n][seed0]["val"]["miou"] for n in ablation}
        results["partitions"][partition] = part
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root",
        default=os.environ.get("MGD_CAMVID_ROOT"),
        help="CamVid root (default: $MGD_CAMVID_ROOT)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/camvid"))
    parser.add_argument("--partitions", nargs="+", default=["1-8"], choices=["1-8", "1-4", "1-2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--stages", nargs="+", default=[s.name for s in STAGES], choices=[s.name for s in STAGES]
    )
    parser.add_argument("--retrain", action="store_true", help="do not reuse finished stages")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only collect the finished stages' results into the table",
    )
    parser.add_argument("--progress-every", type=int, default=100)
    parser.add_argument(
        "extra", nargs="*", help="extra LightningCLI arguments for every stage, after `--`"
    )
    options = parser.parse_args(argv)
    if options.report_only:
        report(options.out, options.partitions, options.seeds)
        return 0
    if not options.data_root or not (Path(options.data_root) / "train.txt").is_file():
        parser.error(
            f"--data-root {options.data_root!r} is not a CamVid root (no train.txt): "
            "pass the folder holding train.txt, val.txt, images/, labels/ and splits/, "
            "or set MGD_CAMVID_ROOT"
        )
    run(
        options.data_root,
        options.out,
        options.partitions,
        options.seeds,
        options.stages,
        options.retrain,
        options.extra,
        options.progress_every,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
