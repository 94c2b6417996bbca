"""Cost of one MGD training step against its bare network passes and the reference order.

Measures, in one process, interleaving the variants round by round (warm-up first, then the
median of ``--steps`` rounds):

- ``t_step``: a full ``MGDModule`` step (forward, losses, backward, optimizer step);
- ``t_nets``: the bare network passes that step needs, each timed alone and summed (student
  forward + backward on the labeled and on the mixed batch; each teacher's forward over its
  views, with the step's teacher settings);
- ``t_reference``: the reference order (docs/method.md#reference-iteration): two extra no-grad
  student passes, four separate fp32 passes per teacher, same modules;
- ``t_step_cached`` (``--cache``): the step with cached teacher labels (teachers on the mixed
  batch only);
- peak memory of each (``--memory``: a fresh subprocess per phase builds everything, resets
  the kernel's peak-RSS counter, runs the phase twice and reports the peak above the resident
  set before it; torch's CPU allocations are plain malloc, so RSS sees them).

Wall time and process CPU time are both recorded; on a shared machine the CPU time is the
steadier of the two. Also measures the pixel agreement of bf16 teachers with fp32 teachers
on real CamVid images (``--data-root``), and of cached-and-warped labels with labels
recomputed on the view. Random weights unless ``--deep-weights``/``--wide-weights``.

Usage::

    python benchmarks/step.py --json benchmarks/results/step.json
    python benchmarks/step.py --smoke --json /tmp/step.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mgd_lightning.data.mixing import cutmix_box_masks, mix
from mgd_lightning.models import (
    DeepLabV3Plus,
    StudentResNet18,
    TeacherResNet101,
    TeacherWideResNet50,
)
from mgd_lightning.models.teachers import TeacherPair
from mgd_lightning.tasks import MGDModule

_PRESETS = {
    "StudentResNet18": StudentResNet18,
    "TeacherResNet101": TeacherResNet101,
    "TeacherWideResNet50": TeacherWideResNet50,
}


def _network(name: str, num_classes: int) -> torch.nn.Module:
    if name in _PRESETS:
        return _PRESETS[name](num_classes=num_classes)
    return DeepLabV3Plus(name, num_classes=num_classes, head_channels=16)  # timm backbone


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="StudentResNet18")
    p.add_argument("--deep", default="TeacherResNet101")
    p.add_argument("--wide", default="TeacherWideResNet50")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=2, help="labeled images = unlabeled pairs")
    p.add_argument("--num-classes", type=int, default=11)
    p.add_argument("--precision", choices=["32", "bf16-mixed"], default="32",
                   help="student precision (as Lightning's flag; torch.autocast here)")
    p.add_argument("--teacher-autocast", choices=["auto", "none", "bfloat16"], default="auto")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--cache", action="store_true", help="also time the cached-label step")
    p.add_argument("--memory", action="store_true", help="peak memory per phase (subprocesses)")
    p.add_argument("--memory-only", action="store_true", help="only the memory phases")
    p.add_argument("--data-root", default="/work/shared/data/camvid")
    p.add_argument("--agreement-images", type=int, default=8)
    p.add_argument("--smoke", action="store_true", help="tiny networks, 64 px, 1+1 steps")
    p.add_argument("--json", default="benchmarks/results/step.json")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # memory subprocess
    args = p.parse_args(argv)
    if args.smoke:
        args.student = args.deep = args.wide = "resnet10t"
        args.crop, args.steps, args.warmup = 64, 1, 1
        args.agreement_images = min(args.agreement_images, 2)
    return args


class _Setup:
    """Modules and one fixed batch, built once and shared by all variants."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.manual_seed(0)
        k, b, c = args.num_classes, args.batch, args.crop
        autocast = None if args.teacher_autocast == "none" else args.teacher_autocast
        self.teachers = TeacherPair(_network(args.deep, k), _network(args.wide, k),
                                    autocast_dtype=autocast)
        self.fp32_teachers = TeacherPair(self.teachers.deep, self.teachers.wide,
                                         autocast_dtype=None, concat_views=False)
        student = _network(args.student, k)
        self.module = MGDModule(copy.deepcopy(student), self.teachers, num_classes=k)
        self.cached_module = MGDModule(copy.deepcopy(student), self.teachers, num_classes=k)
        self.ref_student = copy.deepcopy(student)
        self.net_student = copy.deepcopy(student)
        self.optimizers = {
            name: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
            for name, m in (("step", self.module.network), ("cached", self.cached_module.network),
                            ("reference", self.ref_student))
        }
        g = torch.Generator().manual_seed(0)
        x_l = torch.randn(b, 3, c, c, generator=g)
        y = torch.randint(0, k, (b, c, c), generator=g)
        u_a, u_b = torch.randn(b, 3, c, c, generator=g), torch.randn(b, 3, c, c, generator=g)
        box = cutmix_box_masks(b, c, c, generator=g)
        self.batch: dict[str, Any] = {
            "labeled": {"image": x_l, "mask": y},
            "unlabeled": {"image_a": u_a, "image_b": u_b, "cutmix_mask": box},
        }
        labels = torch.randint(0, k, (3, b, 2, c, c), generator=g).to(torch.uint8)
        self.cached_batch = copy.deepcopy(self.batch)
        self.cached_batch["labeled"]["teacher_labels"] = labels[0]
        self.cached_batch["unlabeled"]["teacher_labels_a"] = labels[1]
        self.cached_batch["unlabeled"]["teacher_labels_b"] = labels[2]
        self.student_dtype = torch.bfloat16 if args.precision == "bf16-mixed" else None

    def _autocast(self) -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.student_dtype is not None)

    # ---------------------------------------------------------------- variants
    def step(self) -> None:
        self._module_step(self.module, self.batch, self.optimizers["step"])

    def cached_step(self) -> None:
        self._module_step(self.cached_module, self.cached_batch, self.optimizers["cached"])

    def _module_step(self, module: MGDModule, batch: dict[str, Any], opt: Any) -> None:
        module.train()
        with self._autocast():
            loss = module.training_step(batch, 0)
        assert loss is not None
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def nets(self) -> dict[str, float]:
        """Each bare pass timed alone (wall seconds, CPU seconds)."""
        lab, unl = self.batch["labeled"], self.batch["unlabeled"]
        x_l, u_a, u_b = lab["image"], unl["image_a"], unl["image_b"]
        x_m = mix(u_a, u_b, unl["cutmix_mask"])
        views = torch.cat([x_l, u_a, u_b, x_m])
        wall = cpu = 0.0
        student = self.net_student.train()
        for x in (x_l, x_m):
            w0, c0 = time.perf_counter(), time.process_time()
            with self._autocast():
                logits, features = student(x)
            (logits.float().sum() + features.float().sum()).backward()
            wall, cpu = wall + time.perf_counter() - w0, cpu + time.process_time() - c0
            student.zero_grad(set_to_none=True)
        for name in ("deep", "wide"):
            teacher = getattr(self.teachers, name)
            dtype = self.teachers.resolved_autocast_dtype("cpu")
            w0, c0 = time.perf_counter(), time.process_time()
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16,
                                                         enabled=dtype is not None):
                teacher(views)
            wall, cpu = wall + time.perf_counter() - w0, cpu + time.process_time() - c0
        return {"wall": wall, "cpu": cpu}

    def reference(self) -> None:
        """The reference order: 4 student passes, 4 separate fp32 passes per teacher.

        See docs/method.md#reference-iteration.
        """
        lab, unl = self.batch["labeled"], self.batch["unlabeled"]
        x_l, y = lab["image"], lab["mask"]
        u_a, u_b, box = unl["image_a"], unl["image_b"], unl["cutmix_mask"]
        student, teachers = self.ref_student.train(), self.fp32_teachers
        with torch.no_grad(), self._autocast():  # 1. no-grad student (reverse terms only)
            s_a, s_b = student(u_a).logits, student(u_b).logits
        t_a = teachers.run("wide", u_a), teachers.run("deep", u_a)
        t_b = teachers.run("wide", u_b), teachers.run("deep", u_b)
        labels_s = mix(s_a.float(), s_b.float(), box).argmax(1)  # 2. mixed logits -> argmax
        labels_m = [mix(a.logits, b_.logits, box).argmax(1)
                    for a, b_ in zip(t_a, t_b, strict=True)]
        x_m = mix(u_a, u_b, box)
        with self._autocast():  # 3. student on x_m
            s_m = student(x_m)
        t_m = teachers.run("wide", x_m), teachers.run("deep", x_m)
        loss = sum(F.cross_entropy(s_m.logits.float(), lm) for lm in labels_m)  # 4.
        loss = loss + sum(F.cross_entropy(t.logits, labels_s) for t in t_m)  # reverse, no grad
        loss = loss + 0.002 * (s_m.logits.float().mean((2, 3))
                               - t_m[1].logits.mean((2, 3))).abs().sum()
        from mgd_lightning.losses.functional import region_content_loss
        loss = loss + 100 * region_content_loss(s_m.features, t_m[0].features)
        with self._autocast():  # 5. student on x_l, teachers on x_l
            s_l = student(x_l)
        t_l = teachers.run("wide", x_l), teachers.run("deep", x_l)
        labels_sl = s_l.logits.detach().argmax(1)
        for t in t_l:
            loss = loss + F.cross_entropy(s_l.logits.float(), t.logits.argmax(1))
            loss = loss + F.cross_entropy(t.logits, labels_sl)
        loss = loss + F.cross_entropy(s_l.logits.float(), y, ignore_index=255)
        loss.backward()  # 6.
        opt = self.optimizers["reference"]
        opt.step()
        opt.zero_grad(set_to_none=True)


def _timed(fn: Callable[[], Any]) -> dict[str, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if isinstance(out, dict):
        return out
    return {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}


def _proc_status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _run_phase(args: argparse.Namespace) -> None:
    """Subprocess entry: build, then run one phase twice and print its peak-RSS growth.

    The peak counter is reset after the build, so the figure is the phase's own peak above the
    resident set before it (models, optimizer, batch). Without ``clear_refs`` it falls back to
    ``ru_maxrss``, which then also holds the build's peak (an upper bound on the base).
    """
    import gc

    setup = _Setup(args)
    fn = {"step": setup.step, "nets": setup.nets, "reference": setup.reference,
          "cached": setup.cached_step}[args.phase]
    gc.collect()
    exact = _reset_peak()
    base = _proc_status_mib("VmRSS") if exact else None
    if base is None:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for _ in range(2):
        fn()
    peak = _proc_status_mib("VmHWM") if exact else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"phase": args.phase, "base_mib": base, "peak_mib": peak,
                      "delta_mib": peak - base, "method": "VmHWM" if exact else "ru_maxrss"}))


def _memory(argv: list[str], phases: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for phase in phases:
        cmd = [sys.executable, __file__, *argv, "--phase", phase]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[phase] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _camvid_images(root: Path, count: int, split: str = "val") -> list[Any]:
    import numpy as np

    from mgd_lightning.data.datasets import read_image

    ids = (root / f"{split}.txt").read_text().split()[:count]
    return [np.asarray(read_image(root / "images" / split / f"{i}.png")) for i in ids]


def _agreement_bf16(setup: _Setup, images: list[Any]) -> dict[str, float]:
    """Share of pixels where bf16-autocast teachers give the fp32 teachers' argmax."""
    from mgd_lightning.data.transforms import eval_transform

    t = eval_transform()
    bf16 = TeacherPair(setup.teachers.deep, setup.teachers.wide, autocast_dtype="bfloat16")
    agree = {"deep": 0, "wide": 0}
    total = 0
    for image in images:
        x = t(image)[0][None]
        ref, low = setup.fp32_teachers([x]), bf16([x])
        for name in agree:
            a = getattr(ref, name)[0].logits.argmax(1)
            b = getattr(low, name)[0].logits.argmax(1)
            agree[name] += int((a == b).sum())
        total += int(x.shape[-2] * x.shape[-1])
    return {name: v / total for name, v in agree.items()}


def _agreement_cache(setup: _Setup, images: list[Any], crop: int) -> dict[str, float]:
    """Cached (native resolution) + warped labels vs labels recomputed on random views."""
    import albumentations as A
    import numpy as np

    from mgd_lightning.data.transforms import eval_transform, train_transform
    from mgd_lightning.teacher_labels import (
        NO_LABEL,
        build_teacher_label_cache,
        geometry_from_applied,
    )

    pair = setup.fp32_teachers
    ev = eval_transform()
    with tempfile.TemporaryDirectory() as tmp:
        cache = build_teacher_label_cache(pair, [ev(im)[0] for im in images], tmp)
        tr = train_transform(crop_size=crop)
        compose = A.Compose(list(tr.compose.transforms), seed=0, save_applied_params=True)
        agree = valid = padded = 0
        rng = np.random.default_rng(0)
        for i, image in enumerate(images):
            import random

            seed = int(rng.integers(2**31))
            compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
            out = compose(image=image)
            geometry = geometry_from_applied(image.shape, out["applied_transforms"])
            view = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))[None]
            warped = cache.view_labels(i, geometry).long()  # (2, h, w)
            fresh = pair([view])
            inside = warped[0] != NO_LABEL
            for t, name in enumerate(("deep", "wide")):
                labels = getattr(fresh, name)[0].logits.argmax(1)[0]
                agree += int((labels == warped[t])[inside].sum())
                valid += int(inside.sum())
            padded += int((~inside).sum())
        return {"agreement": agree / max(valid, 1),
                "padded_share": padded / (len(images) * crop * crop)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = _parse(raw)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.phase:
        _run_phase(args)
        return {}
    if args.memory_only:
        phases = ["step", "nets", "reference"] + (["cached"] if args.cache else [])
        mem = _memory([a for a in raw if a != "--memory-only"], phases)
        for phase, m in mem.items():
            print(f"memory {phase:<10} +{m['delta_mib']:.0f} MiB over {m['base_mib']:.0f} MiB")
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"memory_mib": mem, "config": vars(args)}, indent=1))
        return {"memory_mib": mem}
    setup = _Setup(args)
    variants: dict[str, Callable[[], Any]] = {
        "step": setup.step, "nets": setup.nets, "reference": setup.reference}
    if args.cache:
        variants["step_cached"] = setup.cached_step
    for _ in range(args.warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for r in range(args.steps):  # interleaved rounds, rotating the order
        names = list(variants)
        names = names[r % len(names):] + names[: r % len(names)]
        for name in names:
            times[name].append(_timed(variants[name]))
    med = {k: {m: statistics.median(t[m] for t in v) for m in ("wall", "cpu")}
           for k, v in times.items()}
    # Cost of the non-finite guard's host sync (tasks/base.py), per step.
    total = torch.ones((), requires_grad=True) * 2
    w0 = time.perf_counter()
    for _ in range(1000):
        bool(torch.isfinite(total))
    guard_s = (time.perf_counter() - w0) / 1000

    result: dict[str, Any] = {
        "overhead": med["step"]["wall"] / med["nets"]["wall"],
        "speedup": med["reference"]["wall"] / med["step"]["wall"],
        "overhead_cpu": med["step"]["cpu"] / med["nets"]["cpu"],
        "speedup_cpu": med["reference"]["cpu"] / med["step"]["cpu"],
    }
    if args.cache:
        result["speedup_cached"] = med["reference"]["wall"] / med["step_cached"]["wall"]
        result["speedup_cached_cpu"] = med["reference"]["cpu"] / med["step_cached"]["cpu"]
    root = Path(args.data_root)
    images = _camvid_images(root, args.agreement_images) if root.is_dir() else []
    bf16 = _agreement_bf16(setup, images) if images else {}
    result["bf16_agreement"] = min(bf16.values()) if bf16 else None
    result["bf16_agreement_per_teacher"] = bf16
    if args.cache and images:
        result["cache_agreement"] = _agreement_cache(setup, images, args.crop)
    result.update({
        "t_step": med["step"], "t_nets": med["nets"], "t_reference": med["reference"],
        "t_step_cached": med.get("step_cached"), "raw": times,
        "nonfinite_guard_s": guard_s,
        "teacher_autocast": str(setup.teachers.resolved_autocast_dtype("cpu")),
        "config": {k: v for k, v in vars(args).items() if k != "phase"},
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(),
                    "processor": platform.processor(), "torch": torch.__version__},
    })
    if args.memory:
        phases = ["step", "nets", "reference"] + (["cached"] if args.cache else [])
        result["memory_mib"] = _memory([a for a in raw if a != "--memory"], phases)
    _print_table(result)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return result


def _print_table(r: dict[str, Any]) -> None:
    print(f"{'variant':<14}{'wall s':>10}{'cpu s':>10}")
    for key in ("t_step", "t_nets", "t_reference", "t_step_cached"):
        if r.get(key):
            print(f"{key:<14}{r[key]['wall']:>10.3f}{r[key]['cpu']:>10.3f}")
    print(f"overhead = t_step / t_nets = {r['overhead']:.3f} (cpu {r['overhead_cpu']:.3f})")
    print(f"speedup = t_reference / t_step = {r['speedup']:.3f} (cpu {r['speedup_cpu']:.3f})")
    if "speedup_cached" in r:
        print(f"speedup cached = {r['speedup_cached']:.3f} (cpu {r['speedup_cached_cpu']:.3f})")
    print(f"bf16 agreement = {r['bf16_agreement']} {r['bf16_agreement_per_teacher']}")
    if "cache_agreement" in r:
        print(f"cache agreement = {r['cache_agreement']}")
    if "memory_mib" in r:
        for phase, m in r["memory_mib"].items():
            print(f"memory {phase:<10} +{m['delta_mib']:.0f} MiB over {m['base_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
