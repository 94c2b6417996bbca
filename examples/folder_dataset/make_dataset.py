"""Write a small folder dataset in the layout ``FolderDataModule`` reads.

Layout (see docs/data.md)::

    ROOT/classes.yaml                 class names, palette, ignore index
    ROOT/train/images/<id>.png        RGB images
    ROOT/train/masks/<id>.png         single-channel class indices (255 = ignore)
    ROOT/val/images, ROOT/val/masks
    ROOT/unlabeled/<id>.png           images without masks

The images here are synthetic scenes, written to disk so that the example runs anywhere; put
your own photos and masks in the same layout.

Run: ``python examples/folder_dataset/make_dataset.py /tmp/my_data``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from mgd_lightning.data.synthetic import SYNTHETIC_CLASS_NAMES, SYNTHETIC_PALETTE, SyntheticScenes


def make(
    root: Path, num_labeled: int = 16, num_unlabeled: int = 48, num_val: int = 8, size: int = 64
) -> Path:
    scenes = SyntheticScenes(image_size=size, seed=1)
    root.mkdir(parents=True, exist_ok=True)
    classes = {
        "class_names": list(SYNTHETIC_CLASS_NAMES),
        "palette": [list(c) for c in SYNTHETIC_PALETTE],
        "ignore_index": 255,
    }
    (root / "classes.yaml").write_text(yaml.safe_dump(classes))
    index = 0
    for split, count in (("train", num_labeled), ("val", num_val)):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            image, mask = scenes.render(index)
            Image.fromarray(np.asarray(image)).save(root / split / "images" / f"{index:04d}.png")
            Image.fromarray(np.asarray(mask, dtype=np.uint8)).save(
                root / split / "masks" / f"{index:04d}.png"
            )
            index += 1
    (root / "unlabeled").mkdir(exist_ok=True)
    for _ in range(num_unlabeled):
        image, _ = scenes.render(index)
        Image.fromarray(np.asarray(image)).save(root / "unlabeled" / f"{index:04d}.png")
        index += 1
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    print("wrote", make(parser.parse_args().root))
