"""``FolderDataModule``: a user's own images and masks in plain folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mgd_lightning.data.classes import default_palette
from mgd_lightning.data.datasets import SampleFiles
from mgd_lightning.data.splits import SplitEntry
from mgd_lightning.datamodules.base import Stage
from mgd_lightning.datamodules.file import FileDataModule

__all__ = ["IMAGE_EXTENSIONS", "FolderDataModule", "read_class_file"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_class_file(path: str | Path) -> tuple[list[str], list[tuple[int, int, int]], int]:
    """Read class names, palette and ignore index from a small YAML or JSON file.

    Format (YAML shown; JSON with the same keys works)::

        class_names: [background, road, car]
        palette: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]   # optional
        ignore_index: 255                                   # optional, default 255

    Returns:
        ``(class_names, palette, ignore_index)``; a missing palette is the VOC colour map.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if keys are missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"class file {path} does not exist; write a YAML/JSON file with `class_names` "
            f"(and optionally `palette`, `ignore_index`)"
        )
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("class_names"), list) or not (
        data["class_names"]
    ):
        raise ValueError(f"class file {path} must hold a non-empty `class_names` list")
    names = [str(n) for n in data["class_names"]]
    palette_raw = data.get("palette")
    if palette_raw is None:
        palette = default_palette(len(names))
    else:
        try:
            palette = [(int(c[0]), int(c[1]), int(c[2])) for c in palette_raw]
            ok = len(palette) == len(names) and all(len(c) == 3 for c in palette_raw)
        except (TypeError, ValueError, IndexError, KeyError):
            ok = False
        if not ok:
            raise ValueError(
                f"class file {path}: `palette` must list {len(names)} [r, g, b] triples, one "
                f"per class name"
            )
    ignore_index = int(data.get("ignore_index", 255))
    return names, palette, ignore_index


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


class FolderDataModule(FileDataModule):
    """Your own data: folders of images and single-channel index masks.

    Layout under ``root`` (folder names configurable)::

        classes.yaml                     class_names, optional palette and ignore_index
        train/images/<id>.<png|jpg|...>  labeled training images
        train/masks/<id>.png             their masks (class indices, palette PNGs fine)
        val/images/, val/masks/          validation
        test/images/, test/masks/        optional; test falls back to val
        unlabeled/<id>.<png|jpg|...>     optional unlabeled images

    Partition: ``labeled_split`` (ids) or ``labeled_ratio`` keep a subset of ``train`` labeled
    and put the rest of ``train`` in the unlabeled set; without either, all of ``train`` is
    labeled. Images of ``unlabeled_dir`` are always added to the unlabeled set. Predict reads
    ``predict_dir`` (images only) if given, else the test split.

    Args:
        root: the data folder.
        class_file: YAML/JSON class file, relative to ``root`` or absolute.
        image_dir: image sub-folder name inside each split folder.
        mask_dir: mask sub-folder name inside each split folder.
        unlabeled_dir: folder of unlabeled images (relative to ``root``), or None.
        predict_dir: folder of images to predict (relative to ``root`` or absolute), or None.
        mask_suffix: mask file name = ``<id><mask_suffix>``.
        ignore_index: mask value of unlabeled pixels; default: the class file's
            ``ignore_index`` (255 if it names none).
        **kwargs: the shared settings of :class:`FileDataModule` and
            :class:`SemiSupervisedDataModule`.
    """

    layout_help = (
        "  classes.yaml (class_names, palette, ignore_index),\n"
        "  train/images/<id>.png|jpg, train/masks/<id>.png, val/images/, val/masks/,\n"
        "  [test/images/, test/masks/], [unlabeled/<id>.png|jpg]"
    )

    def __init__(
        self,
        root: str | Path,
        class_file: str = "classes.yaml",
        image_dir: str = "images",
        mask_dir: str = "masks",
        unlabeled_dir: str | None = "unlabeled",
        predict_dir: str | None = None,
        mask_suffix: str = ".png",
        ignore_index: int | None = None,
        **kwargs: Any,
    ) -> None:
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise FileNotFoundError(
                f"data root {root_path} does not exist or is not a folder. Expected layout of "
                f"FolderDataModule:\n{self.layout_help}"
            )
        class_path = Path(class_file)
        names, palette, file_ignore_index = read_class_file(
            class_path if class_path.is_absolute() else root_path / class_path
        )
        super().__init__(
            root_path, num_classes=len(names), class_names=names, palette=palette,
            ignore_index=file_ignore_index if ignore_index is None else ignore_index, **kwargs,
        )
        self.image_dir = image_dir
        self.mask_dir = mask_dir
        self.unlabeled_dir = unlabeled_dir
        self.predict_dir = predict_dir
        self.mask_suffix = mask_suffix

    def _split_images(self, split: str) -> list[SplitEntry]:
        folder = self.root / split / self.image_dir
        if not folder.is_dir():
            raise self._missing(folder, f"{split} image folder")
        return [SplitEntry(p.stem, str(p.relative_to(self.root)), None)
                for p in _list_images(folder)]

    def _train_entries(self) -> list[SplitEntry]:
        return self._split_images("train")

    def _default_files(self, name: str, split: str) -> SampleFiles:
        image_folder = self.root / split / self.image_dir
        candidates = [image_folder / f"{name}{ext}" for ext in IMAGE_EXTENSIONS]
        image = next((c for c in candidates if c.is_file()), candidates[0])
        return SampleFiles(name, image, self.root / split / self.mask_dir
                           / f"{name}{self.mask_suffix}")

    def _unlabeled_entries(self) -> list[SplitEntry]:
        if self.unlabeled_dir is None or not (self.root / self.unlabeled_dir).is_dir():
            return []
        folder = self.root / self.unlabeled_dir
        return [SplitEntry(p.stem, str(p.relative_to(self.root)), "")
                for p in _list_images(folder)]

    def _split_entries(self) -> tuple[list[SplitEntry], list[SplitEntry], str]:
        extra = self._unlabeled_entries()
        if self.labeled_split is None and self.labeled_ratio is None:
            return self._train_entries(), extra, f"{self.root}/train + {self.unlabeled_dir}"
        labeled, rest, source = super()._split_entries()
        return labeled, rest + extra, f"{source} + {self.unlabeled_dir}"

    def _eval_entries(self, stage: Stage) -> tuple[list[SplitEntry], str, bool]:
        if stage == "predict" and self.predict_dir is not None:
            folder = Path(self.predict_dir).expanduser()
            folder = folder if folder.is_absolute() else self.root / folder
            if not folder.is_dir():
                raise self._missing(folder, "predict folder")
            return [SplitEntry(p.stem, str(p.resolve()), "") for p in _list_images(folder)], \
                "predict", False
        split = "test" if stage != "val" and (self.root / "test" / self.image_dir).is_dir() \
            else "val"
        return self._split_images(split), split, True
