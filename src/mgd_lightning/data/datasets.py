"""Plain PyTorch datasets (no Lightning): labeled images with masks, images only, unlabeled pairs.

- :class:`SegmentationDataset` yields :class:`~mgd_lightning.data.batch.LabeledSample` dicts
  ``{"image", "mask", "name"}`` from a list of files.
- :class:`ImageDataset` yields :class:`~mgd_lightning.data.batch.ImageSample` dicts
  ``{"image", "name"}`` (unlabeled images, or prediction inputs).
- :class:`UnlabeledPairDataset` wraps any of them and yields, per index, that image and a
  *different* one (chosen at random), each independently augmented, plus a CutMix box mask:
  :class:`~mgd_lightning.data.batch.UnlabeledPairSample`.

Images are read with PIL as RGB (grayscale is expanded); masks with PIL as single-channel class
indices: palette ("P") PNGs give their indices, never colours. An optional ``label_map`` (e.g.
Cityscapes labelIds to trainIds) is applied first, then values are checked to lie in
``[0, num_classes)`` or equal ``ignore_index``. These per-file checks (readable, same size, valid
values) run lazily in ``__getitem__``; ``validate()`` runs them over the whole dataset up front.

Randomness: each ``__getitem__`` of a randomly transformed dataset draws one seed from torch's
global RNG (seeded per DataLoader worker by PyTorch, and by ``seed_everything(workers=True)``)
mixed with ``rank``; flips, scales, crops, the partner image and the CutMix boxes derive from it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mgd_lightning.data.batch import ImageSample, LabeledSample, UnlabeledPairSample
from mgd_lightning.data.mixing import cutmix_box_masks
from mgd_lightning.data.transforms import SegmentationTransform, eval_transform

__all__ = [
    "BaseSegmentationDataset",
    "ImageDataset",
    "RawSample",
    "SampleFiles",
    "SegmentationDataset",
    "UnlabeledPairDataset",
    "check_files_exist",
    "read_image",
    "read_mask",
]

_MAX_LISTED = 5
#: PIL modes of single-channel masks (palette, 8/16/32-bit grayscale, 1-bit).
_MASK_MODES = ("P", "L", "1", "I", "I;16", "I;16B", "I;16L")


class SampleFiles(NamedTuple):
    """Files of one sample."""

    name: str  # sample id
    image: Path
    mask: Path | None = None


class RawSample(NamedTuple):
    """A decoded, checked sample before transforms."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray | None  # (H, W) uint8 (int32 if ignore_index > 255) class indices
    name: str


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: if the file cannot be decoded (unreadable, not an image, truncated).
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(
            f"cannot read image {path}: {err}. The file is unreadable, not an image or "
            f"truncated; re-export it or remove its id from the split file"
        ) from err


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as ``(H, W)`` integer class indices (palette PNGs give their indices).

    Raises:
        ValueError: if the file cannot be decoded or is a colour (RGB) image.
    """
    try:
        with Image.open(path) as img:
            if img.mode in _MASK_MODES:
                array = np.asarray(img)
            else:
                raise ValueError(
                    f"mask {path} is a {img.mode} image; masks must be single-channel class "
                    f"indices (palette 'P' or grayscale 'L' PNG). Convert colour masks to "
                    f"class indices first"
                )
    except (OSError, SyntaxError) as err:
        raise ValueError(
            f"cannot read mask {path}: {err}. The file is unreadable or truncated"
        ) from err
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array


def check_files_exist(files: Sequence[SampleFiles], need_masks: bool, what: str) -> None:
    """Raise ``FileNotFoundError`` naming the first missing files and their count.

    Args:
        files: the samples to check.
        need_masks: whether masks must exist too.
        what: a description used in the message, e.g. ``"labeled set (splits/1-8/labeled.txt)"``.
    """
    missing: list[str] = []
    for f in files:
        if not f.image.is_file():
            missing.append(f"image {f.image} (id {f.name})")
        if need_masks and (f.mask is None or not f.mask.is_file()):
            missing.append(f"mask {f.mask} (id {f.name})")
    if missing:
        listed = "\n  ".join(missing[:_MAX_LISTED])
        more = ""
        if len(missing) > _MAX_LISTED:
            more = f"\n  ... and {len(missing) - _MAX_LISTED} more"
        raise FileNotFoundError(
            f"{len(missing)} file(s) of the {what} do not exist:\n  {listed}{more}\n"
            f"Check the data root and layout, or remove these ids from the split file"
        )


def _draw_seed(rank: int, drawn: int | None = None) -> int:
    """A per-sample seed mixed with the rank: ``drawn`` (from a resumable sampler's key) or one
    drawn from torch's global RNG (seeded per worker)."""
    if drawn is None:
        drawn = int(torch.randint(0, 2**62, (1,)).item())
    return int(np.random.SeedSequence([drawn, rank]).generate_state(1, np.uint64)[0] >> 1)


def _split_key(key: Any, rank: int) -> tuple[int, int]:
    """``(index, seed)`` from an index, or from a ``(index, seed)`` key of
    :class:`~mgd_lightning.data.sampling.ResumableRandomSampler`."""
    if isinstance(key, tuple | list):
        return int(key[0]), _draw_seed(rank, int(key[1]))
    return int(key), _draw_seed(rank)


class BaseSegmentationDataset(Dataset[Any], abc.ABC):
    """Common logic: transform, tensors, lazy checks and ``validate()``.

    Subclasses implement ``__len__`` and :meth:`read`.

    Args:
        transform: applied to every sample; defaults to :func:`eval_transform`.
        with_masks: yield ``{"image", "mask", "name"}`` if True, ``{"image", "name"}`` if False.
        num_classes: ``K``; mask values must lie in ``[0, K)`` or equal ``ignore_index``.
        ignore_index: mask value of unlabeled pixels.
    """

    #: mixed into the per-sample seeds; datamodules set it to the global rank
    rank: int = 0

    def __init__(
        self,
        transform: SegmentationTransform | None = None,
        with_masks: bool = True,
        num_classes: int | None = None,
        ignore_index: int = 255,
    ) -> None:
        self.transform = transform if transform is not None else eval_transform()
        self.with_masks = with_masks
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def read(self, index: int, with_mask: bool | None = None) -> RawSample:
        """The decoded, checked sample ``index`` (mask ``None`` if not read)."""

    def name(self, index: int) -> str:
        """The id of sample ``index`` (subclasses override when it needs no decoding)."""
        return self.read(index, with_mask=False).name

    @property
    def names(self) -> list[str]:
        """Ids of all samples, in order."""
        return [self.name(i) for i in range(len(self))]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        index, sample_seed = _split_key(key, self.rank)
        raw = self.read(index)
        seed = sample_seed if self.transform.is_random else None
        image, mask = self.transform(raw.image, raw.mask if self.with_masks else None, seed=seed)
        if self.with_masks:
            assert mask is not None
            return LabeledSample(image=image, mask=mask, name=raw.name)
        return ImageSample(image=image, name=raw.name)

    def failures(self) -> list[tuple[int, str]]:
        """Read every sample; ``(index, reason)`` of each one that fails the checks."""
        failed: list[tuple[int, str]] = []
        for index in range(len(self)):
            try:
                self.read(index)
            except (ValueError, FileNotFoundError) as err:
                failed.append((index, str(err)))
        return failed

    def validate(self) -> None:
        """Read and check every sample up front (readable, sizes, mask values).

        Raises:
            ValueError: listing the first failing samples and how many failed.
        """
        _raise_failures([reason for _, reason in self.failures()], len(self), "the checks")

    def _check_mask(self, mask: np.ndarray, image: np.ndarray, where: str) -> np.ndarray:
        if mask.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"image and mask of {where} have different sizes: image {image.shape[1]}x"
                f"{image.shape[0]} (WxH), mask {mask.shape[1]}x{mask.shape[0]}; they must match"
            )
        if self.num_classes is not None:
            bad = (mask >= self.num_classes) & (mask != self.ignore_index)
            if np.issubdtype(mask.dtype, np.signedinteger):
                bad |= mask < 0
            if bad.any():
                values = np.unique(mask[bad])
                raise ValueError(
                    f"mask of {where} has values {values[:10].tolist()} outside [0, "
                    f"{self.num_classes}) and not the ignore index {self.ignore_index}; "
                    f"map them with `label_map` (e.g. void -> {self.ignore_index}) or fix "
                    f"num_classes"
                )
        return mask


def _raise_failures(errors: list[str], total: int, what: str) -> None:
    if errors:
        listed = "\n- ".join(errors[:_MAX_LISTED])
        more = f"\n... and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise ValueError(f"{len(errors)} of {total} samples failed {what}:\n- {listed}{more}")


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """``(mode, (width, height))`` from the file's header, without decoding the pixels."""
    with Image.open(path) as img:
        return img.mode, img.size


def _mask_dtype(ignore_index: int) -> type[np.integer[Any]]:
    return np.uint8 if 0 <= ignore_index <= 255 else np.int32


class SegmentationDataset(BaseSegmentationDataset):
    """Images and masks from a list of files.

    Args:
        files: one :class:`SampleFiles` per sample (masks required if ``with_masks``).
        num_classes: ``K``.
        ignore_index: mask value of unlabeled pixels (default 255).
        label_map: optional ``{stored value: class index}`` applied to masks on reading; values
            not in the map are kept (e.g. ``{11: 255}`` for CamVid's void).
        transform: defaults to :func:`~mgd_lightning.data.transforms.eval_transform`.
        with_masks: if False the masks are not read and samples are ``{"image", "name"}``.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(root / "a.png")
        >>> Image.fromarray(np.full((4, 6), 11, np.uint8)).save(root / "a_mask.png")
        >>> ds = SegmentationDataset([SampleFiles("a", root / "a.png", root / "a_mask.png")],
        ...                          num_classes=11, label_map={11: 255})
        >>> sample = ds[0]
        >>> tuple(sample["image"].shape), sample["mask"].dtype, sample["mask"].unique().tolist()
        ((3, 4, 6), torch.int64, [255])
    """

    def __init__(
        self,
        files: Sequence[SampleFiles],
        num_classes: int,
        ignore_index: int = 255,
        label_map: Mapping[int, int] | None = None,
        transform: SegmentationTransform | None = None,
        with_masks: bool = True,
    ) -> None:
        super().__init__(transform, with_masks, num_classes, ignore_index)
        self.files = list(files)
        self.label_map = dict(label_map) if label_map else None
        self._lut = self._build_lut(255) if self.label_map else None

    def _build_lut(self, max_value: int) -> np.ndarray:
        assert self.label_map is not None
        size = max(max_value, *(k for k in self.label_map if k >= 0)) + 1
        lut = np.arange(size, dtype=np.int64)
        for key, value in self.label_map.items():
            if key >= 0:
                lut[key] = value
        return lut  # int64: values are checked before the cast to the mask dtype

    def __len__(self) -> int:
        return len(self.files)

    @property
    def names(self) -> list[str]:
        """Ids of all samples, in order."""
        return [f.name for f in self.files]

    def name(self, index: int) -> str:
        return self.files[index].name

    def read(self, index: int, with_mask: bool | None = None) -> RawSample:
        files = self.files[index]
        image = read_image(files.image)
        want_mask = self.with_masks if with_mask is None else with_mask
        if not want_mask:
            return RawSample(image, None, files.name)
        if files.mask is None:
            raise FileNotFoundError(f"sample {files.name!r} ({files.image}) has no mask file")
        mask = read_mask(files.mask)  # the stored values, e.g. uint16 for a 16-bit PNG
        if self.label_map is not None:
            lut = self._lut
            if lut is None or int(mask.max(initial=0)) >= len(lut):
                lut = self._build_lut(int(mask.max(initial=0)))
            if np.issubdtype(mask.dtype, np.signedinteger) and int(mask.min(initial=0)) < 0:
                mask = np.where(mask >= 0, lut[np.clip(mask, 0, None)], mask)
            else:
                mask = lut[mask]
        # Check the true values, then cast: a cast first would wrap 300 to 44 (uint8).
        mask = self._check_mask(mask, image, f"{files.name!r} ({files.mask})")
        mask = mask.astype(_mask_dtype(self.ignore_index), copy=False)
        return RawSample(image, mask, files.name)


    def check_headers(self) -> None:
        """Cheap checks of every file from its header alone (no pixel is decoded).

        Finds files that are not images (or are empty), colour masks, and images and masks of
        different sizes; a file truncated after its header is only found when it is read (or
        by :meth:`validate`).

        Raises:
            ValueError: listing the first failing samples and how many failed.
        """
        errors: list[str] = []
        for files in self.files:
            try:
                _, size = _header(files.image)
            except (OSError, SyntaxError, ValueError) as err:
                errors.append(f"cannot read image {files.image}: {err}")
                continue
            if not self.with_masks or files.mask is None:
                continue
            try:
                mode, mask_size = _header(files.mask)
            except (OSError, SyntaxError, ValueError) as err:
                errors.append(f"cannot read mask {files.mask}: {err}")
                continue
            if mode not in _MASK_MODES:
                errors.append(f"mask {files.mask} is a {mode} image; masks must be "
                              "single-channel class indices")
            elif mask_size != size:
                errors.append(
                    f"image and mask of {files.name!r} ({files.mask}) have different sizes: "
                    f"image {size[0]}x{size[1]} (WxH), mask {mask_size[0]}x{mask_size[1]}"
                )
        _raise_failures(errors, len(self.files), "the header checks (validate: true reads all)")


class ImageDataset(SegmentationDataset):
    """Images only (unlabeled training images or prediction inputs): ``{"image", "name"}``.

    Args:
        files: one :class:`SampleFiles` per image; masks, if given, are not read.
        transform: defaults to :func:`~mgd_lightning.data.transforms.eval_transform`.
    """

    def __init__(
        self, files: Sequence[SampleFiles], transform: SegmentationTransform | None = None
    ) -> None:
        super().__init__(files, num_classes=0, transform=transform, with_masks=False)
        self.num_classes = None


class UnlabeledPairDataset(Dataset[UnlabeledPairSample]):
    """Two different unlabeled images per sample, independently augmented, and a CutMix mask.

    Item ``i`` pairs image ``i`` (``image_a``) with an image ``j != i`` drawn uniformly from the
    others (``image_b``); the partner, both augmentations and the mask derive from a per-sample
    seed (see the module docstring), so pairs change every epoch and are reproducible under
    ``seed_everything(workers=True)``. ``same_image=True`` reproduces the reference's
    accidental pairing of an image with itself (docs/method.md#reference-quirks).

    The mask is :func:`~mgd_lightning.data.mixing.cutmix_box_masks` at the output size:
    ``n_boxes`` toggling boxes, each covering ``p / n_boxes`` with ``p ~ U(prop_range)``.

    Args:
        source: dataset providing ``read(index)``; only its images are used.
        transform: random training transform (must output a fixed size, i.e. crop).
        n_boxes: boxes per CutMix mask.
        prop_range: range of the area share ``p``.
        same_image: pair every image with itself (fidelity switch; default off).
    """

    rank: int = 0

    def __init__(
        self,
        source: BaseSegmentationDataset,
        transform: SegmentationTransform,
        n_boxes: int = 3,
        prop_range: tuple[float, float] = (0.25, 0.5),
        same_image: bool = False,
    ) -> None:
        if len(source) < 2 and not same_image:
            raise ValueError(
                f"the unlabeled set has {len(source)} image(s); pairing needs at least 2 "
                f"different images (add unlabeled images)"
            )
        self.source = source
        self.transform = transform
        self.n_boxes = n_boxes
        self.prop_range = (float(prop_range[0]), float(prop_range[1]))
        self.same_image = same_image

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]) -> UnlabeledPairSample:
        index, seed = _split_key(key, self.rank)
        rng = np.random.default_rng(seed)
        n = len(self.source)
        partner = index if self.same_image else (index + 1 + int(rng.integers(n - 1))) % n
        seed_a, seed_b, seed_mask = (int(s) for s in rng.integers(0, 2**62, size=3))
        raw_a = self.source.read(index, with_mask=False)
        raw_b = self.source.read(partner, with_mask=False)
        image_a, _ = self.transform(raw_a.image, seed=seed_a)
        image_b, _ = self.transform(raw_b.image, seed=seed_b)
        if image_a.shape != image_b.shape:
            raise ValueError(
                f"unlabeled images {raw_a.name!r} and {raw_b.name!r} have different sizes after "
                f"the transform ({tuple(image_a.shape)} vs {tuple(image_b.shape)}); the training "
                f"transform must crop to a fixed size"
            )
        generator = torch.Generator().manual_seed(seed_mask)
        height, width = image_a.shape[-2:]
        mask = cutmix_box_masks(1, int(height), int(width), self.n_boxes, self.prop_range,
                                generator=generator)[0]
        return UnlabeledPairSample(
            image_a=image_a, image_b=image_b, cutmix_mask=mask, name_a=raw_a.name,
            name_b=raw_b.name,
        )
