"""Training-loader throughput of the semi-supervised datamodules (CamVid and synthetic).

For each dataset it reports:

- the per-sample cost of decoding/generating one raw sample, of the training transform alone,
  of one labeled sample and of one unlabeled pair (two images + CutMix mask), single process;
- training steps per second of ``train_dataloader()`` (a CombinedLoader yielding ``batch_size``
  labeled images and ``unlabeled_batch_size`` unlabeled pairs per step) with 0 and 2 workers,
  and the images per second that makes (labeled + 2 x unlabeled).

Usage::

    python benchmarks/data_throughput.py --camvid-root ../shared/data/camvid --batches 30 \
        --json outputs/data_throughput.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from mgd_lightning.datamodules import (
    CamVidDataModule,
    SemiSupervisedDataModule,
    SyntheticDataModule,
)


def _per_sample_ms(fn: Any, n: int) -> float:
    fn(0)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e3


def _loader_rate(dm: SemiSupervisedDataModule, batches: int) -> tuple[float, float]:
    loader = dm.train_dataloader()
    iterator = iter(loader)
    next(iterator)  # start workers, first batch
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        batch, _, _ = next(iterator)
        images += len(batch["labeled"]["name"]) + 2 * len(batch["unlabeled"]["name_a"])
    elapsed = time.perf_counter() - start
    del iterator
    return batches / elapsed, images / elapsed


def bench(name: str, make: Any, batches: int, samples: int) -> dict[str, Any]:
    dm = make(0)
    dm.setup("fit")
    labeled, unlabeled = dm.labeled_dataset, dm.unlabeled_dataset
    assert labeled is not None and unlabeled is not None
    n = len(labeled)
    raw = [labeled.read(i % n) for i in range(min(samples, n))]
    transform = dm.train_transform()
    row: dict[str, Any] = {
        "dataset": name,
        "crop": f"{dm.crop_size[0]}x{dm.crop_size[1]}",
        "batch": f"{dm.batch_size}+{dm.unlabeled_batch_size}",
        "read_ms": _per_sample_ms(lambda i: labeled.read(i % n), samples),
        "transform_ms": _per_sample_ms(
            lambda i: transform(raw[i % len(raw)].image, raw[i % len(raw)].mask, seed=i),
            samples),
        "labeled_ms": _per_sample_ms(lambda i: labeled[i % n], samples),
        "pair_ms": _per_sample_ms(lambda i: unlabeled[i % len(unlabeled)], samples),
    }
    for workers in (0, 2):
        dm_w = make(workers)
        dm_w.setup("fit")
        steps, images = _loader_rate(dm_w, batches)
        row[f"steps_s_w{workers}"] = steps
        row[f"images_s_w{workers}"] = images
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
    parser.add_argument("--camvid-root", type=Path, default=default_root)
    parser.add_argument("--batches", type=int, default=30, help="timed steps per loader")
    parser.add_argument("--samples", type=int, default=50, help="samples per per-sample timing")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    rows = []
    if (args.camvid_root / "train.txt").is_file():
        rows.append(bench("camvid", lambda w: CamVidDataModule(
            args.camvid_root, batch_size=args.batch_size, num_workers=w), args.batches,
            args.samples))
    else:
        print(f"CamVid not found at {args.camvid_root}; skipped")
    rows.append(bench("synthetic-64", lambda w: SyntheticDataModule(
        batch_size=args.batch_size, num_workers=w), args.batches, args.samples))
    rows.append(bench("synthetic-128", lambda w: SyntheticDataModule(
        image_size=128, batch_size=args.batch_size, num_workers=w), args.batches, args.samples))

    header = (f"{'dataset':<14}{'crop':>9}{'batch':>7}{'read ms':>9}{'tf ms':>8}{'lab ms':>8}"
              f"{'pair ms':>9}{'steps/s w0':>12}{'img/s w0':>10}{'steps/s w2':>12}"
              f"{'img/s w2':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['dataset']:<14}{r['crop']:>9}{r['batch']:>7}{r['read_ms']:>9.2f}"
              f"{r['transform_ms']:>8.2f}{r['labeled_ms']:>8.2f}{r['pair_ms']:>9.2f}"
              f"{r['steps_s_w0']:>12.1f}{r['images_s_w0']:>10.0f}{r['steps_s_w2']:>12.1f}"
              f"{r['images_s_w2']:>10.0f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
