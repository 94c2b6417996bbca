"""The pipeline's report: ``figure.png`` (predictions side by side) and ``results.md``.

Both are built from the results dict of :func:`mgd_lightning.pipeline.run_pipeline` and the
images :func:`mgd_lightning.evaluation.evaluate_networks` returns.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mgd_lightning.visualise import Palette, colourise, denormalise, save_png

__all__ = ["TITLES", "results_markdown", "write_figure"]

#: Display names of the pipeline's models.
TITLES: dict[str, str] = {
    "teacher_deep": "Teacher (deep)",
    "teacher_wide": "Teacher (wide)",
    "student_supervised": "Student, labeled only",
    "student_mgd": "Student, MGD",
    "student_supervised_same_time": "Student, labeled only, MGD's wall time",
    "student_supervised_longer": "Student, labeled only, more steps",
    "student_mgd_pixel": "Student, MGD pixel level only",
    "student_mgd_pixel_image": "Student, MGD pixel + image level",
}


def _wrap(title: str, width: int) -> list[str]:
    """Wrap a column title to ``width`` pixels (default bitmap font, ~6 px a character)."""
    lines: list[str] = []
    line = ""
    for word in title.split():
        if len(line) + len(word) + 1 > width // 6 and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return lines


def write_figure(
    path: str | os.PathLike[str],
    shown: dict[str, Any],
    names: Sequence[str],
    palette: Palette,
    class_names: Sequence[str],
) -> None:
    """Grid: one row per image; input, ground truth, then each model, in the class palette.

    Args:
        path: the PNG to write (atomically); nothing is written when ``shown`` has no images.
        shown: ``"image"``, ``"mask"`` and each name -> tensors, as
            :func:`~mgd_lightning.evaluation.evaluate_networks` returns them.
        names: the models, in column order.
        palette: one RGB triple per class (a legend is drawn below the grid).
        class_names: the legend's names.
    """
    images = shown["image"]
    if images is None:
        return
    rows, (height, width) = images.shape[0], images.shape[-2:]
    scale = max(1, 128 // max(height, width))
    cell_h, cell_w, header, pad = height * scale, width * scale, 28, 4
    columns = ["input", "ground truth", *[TITLES.get(n, n) for n in names]]
    legend_h = 22
    canvas = Image.new(
        "RGB",
        (len(columns) * (cell_w + pad) + pad, header + rows * (cell_h + pad) + pad + legend_h),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(columns):
        x = pad + c * (cell_w + pad)
        for i, text in enumerate(_wrap(title, cell_w)[:2]):
            draw.text((x, 2 + 12 * i), text, fill=(0, 0, 0))
    for r in range(rows):
        cells = [denormalise(images[r]), colourise(shown["mask"][r], palette)]
        cells += [colourise(shown[name][r], palette) for name in names]
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
    save_png(canvas, path)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def results_markdown(results: dict[str, Any]) -> str:
    """``results.md``: the table of every model's mIoU, per-class IoU, size, cost and time."""
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
            f"| {TITLES.get(name, name)} | **{100 * row['miou']:.1f}** | {per_class} | "
            f"{row['params'] / 1e6:.2f} | {row['flops'] / 1e9:.3f} | {row['steps']} | "
            f"{row['seconds']:.0f}{reused} |"
        )
    models = results["models"]
    if "student_mgd" in models and "student_supervised" in models:
        gain = 100 * (models["student_mgd"]["miou"] - models["student_supervised"]["miou"])
        lines += ["", f"MGD student minus labeled-only student: **{gain:+.1f}** mIoU points."]
    same_time = "student_supervised_same_time"
    if same_time in models and "student_mgd" in models:
        gain = 100 * (models["student_mgd"]["miou"] - models[same_time]["miou"])
        lines.append(
            f"MGD student minus labeled-only student with the same wall time: **{gain:+.1f}**."
        )
    longer, supervised = models.get("student_supervised_longer"), models.get("student_supervised")
    if longer and supervised:
        gain = 100 * (longer["miou"] - supervised["miou"])
        factor = longer["steps"] / max(supervised["steps"], 1)
        lines.append(
            f"Labeled-only student given {factor:.1f} times the steps ({longer['steps']}, "
            f"{longer['seconds']:.0f} s): **{gain:+.1f}** points (labels, not steps, limit it "
            "when this is small)."
        )
        mgd = models.get("student_mgd")
        if mgd and not longer.get("reused"):
            gain = 100 * (mgd["miou"] - longer["miou"])
            lines.append(
                f"MGD student ({mgd['seconds']:.0f} s) minus that longer labeled-only student: "
                f"**{gain:+.1f}**."
            )
    teachers = [models[t]["miou"] for t in ("teacher_deep", "teacher_wide") if t in models]
    if teachers and "student_mgd" in models:
        share = models["student_mgd"]["miou"] / max(teachers)
        lines.append(f"MGD student / better teacher: **{100 * share:.0f}%**.")
    steps = [
        ("pixel level", "student_mgd_pixel"),
        ("+ image level", "student_mgd_pixel_image"),
        ("+ region level (full MGD)", "student_mgd"),
    ]
    if supervised and all(name in models for _, name in steps):
        lines += [
            "",
            "Ablation (same seed and steps; gain over the labeled-only student):",
            "",
            "| terms | mIoU | gain |",
            "|---|---:|---:|",
        ]
        for label, name in steps:
            miou = models[name]["miou"]
            lines.append(
                f"| {label} | {100 * miou:.1f} | {100 * (miou - supervised['miou']):+.1f} |"
            )
    if results.get("teachers"):
        lines += ["", f"Teachers: `{results['teachers']}` (weights checked by SHA-256)."]
    lines += ["", "![predictions](figure.png)", ""]
    return "\n".join(lines)
