"""Teacher passes of one MGD step: fp32, bf16 autocast, and bf16 autocast in channels_last.

Times both teachers of a shipped set over one step's views (``--batch`` images, 32 in the main
job: 8 labeled + 8 + 8 unlabeled + 8 mixed) on the synthetic test scenes, and prints each
setting's time and its speed-up over bf16 autocast (one run, ratios measured side by side), and
the pixel agreement of each setting's argmax with the fp32 teachers'.

    python benchmarks/teacher_passes.py                      # the shipped synthetic teachers
    python benchmarks/teacher_passes.py --threads 1 --repeats 20
    python benchmarks/teacher_passes.py --json benchmarks/results/teacher_passes.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

from mgd_lightning.data.synthetic import SyntheticScenes, SyntheticSegmentationDataset
from mgd_lightning.data.transforms import eval_transform
from mgd_lightning.files import write_text_atomic
from mgd_lightning.models import TeacherPair

SETTINGS = {
    "fp32": {"autocast_dtype": None},
    "bf16 autocast": {"autocast_dtype": "bfloat16"},
    "bf16 autocast, channels_last": {"autocast_dtype": "bfloat16", "channels_last": True},
}


def _images(batch: int) -> torch.Tensor:
    """``batch`` synthetic test scenes, through the datamodule's own evaluation transform."""
    scenes = SyntheticSegmentationDataset(
        SyntheticScenes(64, seed=0), range(batch), "test", transform=eval_transform()
    )
    return torch.stack([scenes[i]["image"] for i in range(batch)])


def _seconds(run: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shipped", default="synthetic", help="a shipped teacher set (name or folder)")
    p.add_argument("--batch", type=int, default=32, help="images per teacher pass (default 32)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        p.error("--batch and --repeats must be >= 1, --warmup >= 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    x = _images(args.batch)
    pairs = {name: TeacherPair.from_shipped(args.shipped, **kw) for name, kw in SETTINGS.items()}
    reference = {t: pairs["fp32"].run(t, x).logits.argmax(1) for t in ("deep", "wide")}
    rows = []
    for name, pair in pairs.items():

        def both(pair: TeacherPair = pair) -> object:
            return pair(x)

        seconds = _seconds(both, args.repeats, args.warmup)
        agreement = {
            t: float((pair.run(t, x).logits.argmax(1) == reference[t]).float().mean())
            for t in ("deep", "wide")
        }
        rows.append({"setting": name, "seconds": seconds, "agreement_with_fp32": agreement})
    base = next(r["seconds"] for r in rows if r["setting"] == "bf16 autocast")
    print(f"teachers: {args.shipped}; {args.batch} images of 64x64 per pass; "
          f"{torch.get_num_threads()} threads; {args.repeats} repeats")
    print("| setting | ms (both teachers) | speed-up over bf16 autocast "
          "| argmax = fp32 (deep, wide) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        speedup = r["speedup_over_bf16_autocast"] = base / r["seconds"]
        agree = r["agreement_with_fp32"]
        print(f"| {r['setting']} | {1000 * r['seconds']:.1f} | {speedup:.2f}x"
              f" | {100 * agree['deep']:.2f}%, {100 * agree['wide']:.2f}% |")
    if args.json:
        out = {"shipped": args.shipped, "batch": args.batch, "threads": torch.get_num_threads(),
               "repeats": args.repeats, "rows": rows}
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
