"""Why do the CamVid teachers lead on ``val`` and hardly on ``heldout``? Probes of finished stages.

Reads the stages a run of ``benchmarks/camvid.py`` finished (``<out>/<protocol>/<partition>/s0``)
and scores each network, unchanged, on ``val`` and ``heldout`` under input changes that test two
explanations of the cross-sequence gap:

- **exposure**: the ``heldout`` images (sequence 0006R0) are brighter than the training pool
  (mean pixel value 138 against 97). Pixel values scaled by 0.8 and 0.7 (and clipped), so that
  ``heldout`` reaches the training pool's exposure: if exposure were the gap, this would help.
- **test-time flips**: the mean of the softmaxes on the image and its mirror, a cheap test-time
  ensemble; and the two teachers together (mean of their softmaxes), what the pixel term of MGD
  distils.

Scores through :func:`mgd_lightning.evaluation.evaluate_networks` (whole 240x180 images, fp32),
as the benchmark does; prints a table and writes ``teacher_probes.json`` beside the stages::

    python benchmarks/camvid_teacher_probes.py --data-root ../shared/data/camvid \\
        --out runs/camvid
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from mgd_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mgd_lightning.datamodules.camvid import CamVidDataModule
from mgd_lightning.evaluation import EVAL_BATCH_SIZE, evaluate_networks, mean_iou
from mgd_lightning.files import write_text_atomic
from mgd_lightning.models.inference import MeanOfSoftmaxes, logits_of
from mgd_lightning.models.spec import network_from_checkpoint

PROJECT = Path(__file__).resolve().parents[1]
HELDOUT = PROJECT / "configs" / "camvid" / "splits" / "heldout_0006R0" / "heldout.txt"
STAGES = ("teacher_deep", "teacher_wide", "mbv2_pre_sup")
EXPOSURES = (0.8, 0.7)


class Exposure(torch.nn.Module):
    """``network`` on images whose pixel values were multiplied by ``factor`` (and clipped)."""

    def __init__(self, network: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.network, self.factor = network, factor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = ((images * self.std + self.mean) * self.factor).clamp(0.0, 1.0)
        return logits_of(self.network((pixels - self.mean) / self.std))


def _stage_network(folder: Path) -> torch.nn.Module:
    record_file = folder / "stage.json"
    if not record_file.is_file():
        raise FileNotFoundError(
            f"{record_file} does not exist: run benchmarks/camvid.py with this --out and "
            "--stages first (the probes score finished stages)"
        )
    checkpoint = json.loads(record_file.read_text())["checkpoint"]
    return network_from_checkpoint(checkpoint, load_weights=True).eval()


def probes(data_root: str, out: Path, partition: str = "1-8") -> dict[str, dict[str, float]]:
    """mIoU (percent) of every probe on ``val`` and ``heldout``: probe name -> split -> mIoU."""
    folder = out / "heldout_0006R0" / partition / "s0"
    networks = {name: _stage_network(folder / name) for name in STAGES}
    probes_by_name: dict[str, torch.nn.Module] = {}
    for name, network in networks.items():
        probes_by_name[name] = network
        for factor in EXPOSURES:
            probes_by_name[f"{name}, pixels x{factor}"] = Exposure(network, factor)
        probes_by_name[f"{name}, mirror-averaged"] = MeanOfSoftmaxes(network, mirror=True)
    pair = networks["teacher_deep"], networks["teacher_wide"]
    probes_by_name["teachers combined"] = MeanOfSoftmaxes(*pair)
    probes_by_name["teachers combined, mirror-averaged"] = MeanOfSoftmaxes(*pair, mirror=True)
    table: dict[str, dict[str, float]] = {name: {} for name in probes_by_name}
    for split, source in (("val", "val"), ("heldout", os.fspath(HELDOUT))):
        datamodule = CamVidDataModule(Path(data_root).expanduser(), batch_size=EVAL_BATCH_SIZE,
                                      eval_batch_size=EVAL_BATCH_SIZE, val_split=source)
        with torch.inference_mode():
            per_class, _ = evaluate_networks(probes_by_name, datamodule, "val", 0)
        for name, ious in per_class.items():
            table[name][split] = round(100 * mean_iou(ious), 1)
            print(f"{split:8s} {name:45s} {table[name][split]:5.1f}", flush=True)
    write_text_atomic(folder / "teacher_probes.json", json.dumps(table, indent=2) + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("MGD_CAMVID_ROOT"),
                        help="CamVid-layout folder (default: $MGD_CAMVID_ROOT)")
    parser.add_argument("--out", type=Path, default=Path("runs/camvid"),
                        help="the --out of the benchmark run (protocol heldout_0006R0) to probe")
    parser.add_argument("--partition", default="1-8")
    args = parser.parse_args(argv)
    if not args.data_root:
        parser.error("give --data-root (or set MGD_CAMVID_ROOT)")
    table = probes(args.data_root, args.out, args.partition)
    print("\n| probe (seed 0) | val mIoU | heldout mIoU |\n|---|---:|---:|")
    for name, scores in table.items():
        print(f"| {name} | {scores['val']:.1f} | {scores['heldout']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
