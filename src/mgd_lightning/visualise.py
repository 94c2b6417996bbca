"""Pictures of class maps: palette colouring, overlays, labelled panels and atomic PNG writes.

Plain numpy/Pillow helpers shared by :mod:`mgd_lightning.callbacks` (prediction writer, training
panels) and usable from any script. Images are ``(H, W, 3)`` ``uint8`` RGB arrays; class maps
are ``(H, W)`` integer arrays (or tensors) of class indices.

Example:
    >>> import numpy as np
    >>> classes = np.array([[0, 1], [2, 255]])
    >>> colourise(classes, [(0, 0, 0), (255, 0, 0), (0, 255, 0)], ignore_index=255)[..., 0]
    array([[  0, 255],
           [  0, 255]], dtype=uint8)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from mgd_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mgd_lightning.files import atomic_path

__all__ = [
    "IGNORE_COLOUR",
    "Palette",
    "colourise",
    "denormalise",
    "overlay",
    "palette_png",
    "panel",
    "save_png",
]

#: A palette: one ``(r, g, b)`` triple (ints in [0, 255]) per class.
Palette = Sequence[Sequence[int]]

#: Colour of ``ignore_index`` pixels (and of indices outside the palette) in colour images.
IGNORE_COLOUR: tuple[int, int, int] = (255, 255, 255)


def _palette_array(palette: Palette) -> np.ndarray:
    array = np.asarray(palette, dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise ValueError(
            f"`palette` must be a non-empty list of (r, g, b) triples, got {palette!r}"
        )
    if array.min() < 0 or array.max() > 255:
        raise ValueError("`palette` colours must be integers in [0, 255]")
    return array.astype(np.uint8)


def _as_numpy(array: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _class_map(classes: Tensor | np.ndarray) -> np.ndarray:
    array = _as_numpy(classes)
    if array.ndim != 2:
        raise ValueError(f"a class map must have shape (H, W), got {array.shape}")
    return array.astype(np.int64)


def colourise(
    classes: Tensor | np.ndarray,
    palette: Palette,
    ignore_index: int | None = 255,
    ignore_colour: Sequence[int] = IGNORE_COLOUR,
) -> np.ndarray:
    """Colour a class map with a palette.

    Args:
        classes: ``(H, W)`` class indices.
        palette: ``K`` RGB triples.
        ignore_index: pixels with this value get ``ignore_colour`` (so do indices outside
            ``[0, K)``).
        ignore_colour: RGB colour of ignored pixels.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB image.
    """
    array = _class_map(classes)
    colours = _palette_array(palette)
    valid = (array >= 0) & (array < len(colours))
    if ignore_index is not None:
        valid &= array != ignore_index
    out = np.empty((*array.shape, 3), dtype=np.uint8)
    out[...] = np.asarray(ignore_colour, dtype=np.uint8)
    out[valid] = colours[array[valid]]
    return out


def denormalise(
    image: Tensor | np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Undo the ImageNet normalisation of the transforms, back to displayable RGB.

    Args:
        image: ``(3, H, W)`` normalised float image (as the datamodules yield it).
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel std on the [0, 1] scale.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB image.

    Examples:
        >>> import torch
        >>> denormalise(torch.zeros(3, 1, 1))[0, 0].tolist()  # the mean colour
        [124, 116, 104]
    """
    array = _as_numpy(image).astype(np.float32)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"`image` must have shape (3, H, W), got {array.shape}")
    rgb = (
        array * np.asarray(std, np.float32)[:, None, None]
        + np.asarray(mean, np.float32)[:, None, None]
    )
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def overlay(
    image: np.ndarray,
    classes: Tensor | np.ndarray,
    palette: Palette,
    alpha: float = 0.5,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """Blend the coloured class map over an image: ``(1 - alpha) * image + alpha * colours``.

    Ignored pixels keep the image's own colour.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB image (e.g. from :func:`denormalise`).
        classes: ``(H, W)`` class indices.
        palette: ``K`` RGB triples.
        alpha: opacity of the class colours, in [0, 1].
        ignore_index: value of pixels left uncoloured.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha!r}")
    array = _class_map(classes)
    if image.shape != (*array.shape, 3):
        raise ValueError(
            f"`image` {image.shape} and `classes` {array.shape} must have the same (H, W)"
        )
    colours = colourise(array, palette, ignore_index).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    keep = (array < 0) | (array >= len(palette))
    if ignore_index is not None:
        keep |= array == ignore_index
    blended[keep] = image[keep]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def palette_png(classes: Tensor | np.ndarray, palette: Palette) -> Image.Image:
    """A palette ("P" mode) image whose pixel values are the class indices.

    Reading it back with ``np.asarray(Image.open(path))`` gives the class map; viewers show the
    palette colours. Unused palette entries are black.

    Args:
        classes: ``(H, W)`` class indices in ``[0, 256)``.
        palette: up to 256 RGB triples.

    Returns:
        A Pillow image in mode ``"P"``.
    """
    array = _class_map(classes)
    colours = _palette_array(palette)
    if len(colours) > 256:
        raise ValueError(f"a PNG palette holds at most 256 colours, got {len(colours)}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(
            f"class indices must be in [0, 255] for a palette PNG, got [{array.min()}, "
            f"{array.max()}]"
        )
    image = Image.fromarray(array.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[: len(colours)] = colours
    image.putpalette(flat.reshape(-1).tolist())
    return image


def panel(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    gap: int = 2,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """Tile images into a grid, one row per sample, with an optional title row on top.

    Args:
        rows: ``rows[i][j]`` is the ``(H, W, 3)`` ``uint8`` image of sample ``i``, column ``j``;
            every row has the same number of columns (images may differ in size).
        titles: one title per column (drawn with Pillow's default font), or ``None``.
        gap: pixels between tiles.
        background: RGB colour of the gaps and the title row.

    Returns:
        ``(H_total, W_total, 3)`` ``uint8`` RGB image.
    """
    if not rows or not rows[0]:
        raise ValueError("`rows` must hold at least one row with at least one image")
    columns = len(rows[0])
    if any(len(row) != columns for row in rows):
        raise ValueError("every row of `rows` must have the same number of images")
    if titles is not None and len(titles) != columns:
        raise ValueError(f"`titles` has {len(titles)} entries for {columns} columns")
    widths = [max(row[j].shape[1] for row in rows) for j in range(columns)]
    heights = [max(image.shape[0] for image in row) for row in rows]
    title_height = 14 if titles is not None else 0
    total_w = sum(widths) + gap * (columns + 1)
    total_h = title_height + sum(heights) + gap * (len(rows) + 1)
    canvas = np.empty((total_h, total_w, 3), dtype=np.uint8)
    canvas[...] = np.asarray(background, dtype=np.uint8)
    top = title_height + gap
    for row, height in zip(rows, heights, strict=True):
        left = gap
        for image, width in zip(row, widths, strict=True):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"panel images must have shape (H, W, 3), got {image.shape}")
            canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
            left += width + gap
        top += height + gap
    if titles is None:
        return canvas
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    left = gap
    for title, width in zip(titles, widths, strict=True):
        draw.text((left + 1, 1), title, fill=(0, 0, 0))
        left += width + gap
    return np.asarray(picture)


def save_png(image: Image.Image | np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a PNG atomically: to a temporary file in the same folder, then renamed.

    A crash never leaves a half-written PNG under ``path``; parent folders are created.

    Args:
        image: a Pillow image or an ``(H, W, 3)`` / ``(H, W)`` ``uint8`` array.
        path: destination file.

    Returns:
        The destination path.
    """
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    with atomic_path(path) as temporary:
        picture.save(temporary, format="PNG")
    return Path(path)
