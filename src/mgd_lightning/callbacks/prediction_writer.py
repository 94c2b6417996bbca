"""``PredictionWriter``: one palette PNG per predicted image (and optional overlays)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from mgd_lightning.data.classes import default_palette
from mgd_lightning.files import writable_folder
from mgd_lightning.visualise import Palette, denormalise, overlay, palette_png, save_png

__all__ = ["PredictionWriter"]


class PredictionWriter(BasePredictionWriter):
    """Write each predicted class map as a palette PNG named after its sample.

    Works with the ``predict_step`` of every training module (``{"prediction": (B, H, W)
    int64, "name": list[str]}``; a bare ``(B, H, W)`` class-map tensor or ``(B, K, H, W)``
    logits also work). ``<output_dir>/<name>.png`` is a "P" mode PNG whose pixel values are the
    class indices and whose palette is the dataset's, so it opens in colour and reads back as
    a mask. With ``overlay=True``, ``<output_dir>/overlays/<name>.png`` shows the colours over
    the (de-normalised) input image. Names with ``/`` make sub-folders. Files are written
    atomically (temporary file, then rename).

    From the command line::

        mgd-lightning predict --config fit.yaml --ckpt_path last.ckpt \\
            --trainer.callbacks+=mgd_lightning.callbacks.PredictionWriter \\
            --trainer.callbacks.output_dir=preds --return_predictions=false

    Args:
        output_dir: folder of the PNGs (created).
        palette: ``K`` RGB triples; ``None`` takes the datamodule's ``palette`` (VOC,
            Cityscapes, CamVid, synthetic, folder) or else the VOC colour map.
        overlay: also write the overlays (needs ``"image"`` in the predict batches).
        overlay_alpha: opacity of the class colours in the overlays, in [0, 1].
        write_index_png: write the palette class maps (turn off for overlays only).
        overwrite: replace PNGs that already exist (from an earlier run). ``False`` raises
            ``FileExistsError`` naming the file instead; two samples of one run with the same
            name always raise.
        image_mean: per-channel mean the images were normalised with (ImageNet by default).
        image_std: per-channel std the images were normalised with.

    Raises:
        ValueError: bad arguments, or a sample name that would leave ``output_dir``.
        NotADirectoryError: ``output_dir`` (or a parent) is a file.
        PermissionError: ``output_dir`` is not writable.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        palette: Palette | None = None,
        overlay: bool = False,
        overlay_alpha: float = 0.5,
        write_index_png: bool = True,
        overwrite: bool = False,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f"`overlay_alpha` must be in [0, 1], got {overlay_alpha!r}")
        if not overlay and not write_index_png:
            raise ValueError("nothing to write: set `write_index_png=True` and/or `overlay=True`")
        self.output_dir = Path(output_dir).expanduser()
        self.palette = None if palette is None else [tuple(int(v) for v in c) for c in palette]
        self.overlay = overlay
        self.overlay_alpha = overlay_alpha
        self.write_index_png = write_index_png
        self.overwrite = overwrite
        self.image_mean = image_mean
        self.image_std = image_std
        self._written: set[Path] = set()
        self._palette: list[tuple[int, ...]] | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        writable_folder(
            self.output_dir, f"output_dir {self.output_dir}", "; choose another `output_dir`"
        )
        self._written = set()
        self._palette = self._resolve_palette(trainer, pl_module)

    def _resolve_palette(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> list[tuple[int, ...]]:
        if self.palette is not None:
            return list(self.palette)
        datamodule = getattr(trainer, "datamodule", None)
        palette = getattr(datamodule, "palette", None)
        if palette:
            return [tuple(int(v) for v in c) for c in palette]
        return list(default_palette(int(getattr(pl_module, "num_classes", 256) or 256)))

    # ------------------------------------------------------------------ writing
    def _destination(self, folder: Path, name: str) -> Path:
        relative = PurePosixPath(name.replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(
                f"sample name {name!r} would write outside {self.output_dir}; names must be "
                "relative paths without '..'"
            )
        target = folder.joinpath(*relative.parts)
        target = target.with_name(target.name + ".png")
        if target in self._written:
            raise FileExistsError(
                f"two predicted samples are both named {name!r} ({target}); give the samples "
                "unique names"
            )
        if target.exists() and not self.overwrite:
            raise FileExistsError(
                f"{target} already exists (from an earlier run?); choose another `output_dir` "
                "or set `overwrite=True` (--trainer.callbacks.overwrite=true)"
            )
        return target

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        classes, names = _unpack(prediction, batch)
        if names is None:
            first = batch_idx * classes.shape[0]
            prefix = f"{dataloader_idx}_" if dataloader_idx else ""
            names = [f"{prefix}{first + i:06d}" for i in range(classes.shape[0])]
        if len(names) != classes.shape[0]:
            raise ValueError(
                f"{len(names)} names for {classes.shape[0]} predictions in batch {batch_idx}"
            )
        palette = (
            self._palette
            if self._palette is not None
            else self._resolve_palette(trainer, pl_module)
        )
        images = batch.get("image") if isinstance(batch, dict) else None
        if self.overlay and images is None:
            raise ValueError(
                "`overlay=True` needs the input images: the predict batches have no 'image'"
            )
        classes = classes.detach().cpu()
        mean_std: dict[str, Sequence[float]] = {}
        if self.image_mean is not None:
            mean_std["mean"] = self.image_mean
        if self.image_std is not None:
            mean_std["std"] = self.image_std
        for i, name in enumerate(names):
            class_map = classes[i].numpy()
            if self.write_index_png:
                target = self._destination(self.output_dir, str(name))
                save_png(palette_png(class_map, palette), target)
                self._written.add(target)
            if self.overlay:
                assert images is not None
                target = self._destination(self.output_dir / "overlays", str(name))
                rgb = denormalise(images[i].detach().float().cpu(), **mean_std)
                save_png(overlay(rgb, class_map, palette, self.overlay_alpha), target)
                self._written.add(target)


def _unpack(prediction: Any, batch: Any) -> tuple[Tensor, list[str] | None]:
    """The ``(B, H, W)`` class maps and the names of one predict batch."""
    names = None
    if isinstance(prediction, dict):
        names = prediction.get("name")
        prediction = prediction.get("prediction")
    if names is None and isinstance(batch, dict):
        names = batch.get("name")
    if not isinstance(prediction, Tensor):
        raise ValueError(
            "PredictionWriter needs predict_step to return a (B, H, W) class-map tensor or a "
            f"dict with 'prediction'; got {type(prediction).__name__}"
        )
    if prediction.dim() == 4:
        prediction = prediction.argmax(dim=1)
    if prediction.dim() != 3:
        raise ValueError(
            f"predictions must have shape (B, H, W) or (B, K, H, W), got {tuple(prediction.shape)}"
        )
    if isinstance(names, str):
        names = [names]
    return prediction, None if names is None else [str(n) for n in names]
