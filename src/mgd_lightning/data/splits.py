"""Split files (ID lists) and seeded, nested labeled/unlabeled partitions.

Split-file formats understood by :func:`read_split_file`, one sample per line (blank lines and
``\\r`` line ends are ignored):

- an id, e.g. ``2007_000032`` (VOC, CamVid, CPS-style VOC subsets);
- an image path and a mask path relative to the data root, separated by a tab or spaces, e.g.
  the CPS Cityscapes format ``/images/train/x.png<TAB>/segmentation/train/x_gtFine.png`` (a
  leading ``/`` is relative to the root) or the U2PL format
  ``JPEGImages/2007_000032.jpg SegmentationClassAug/2007_000032.png``;
- an image path alone (the mask is then found from the id by the datamodule's layout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "SplitEntry",
    "heldout_partitions",
    "nested_partition",
    "read_split_file",
    "sample_name",
]

_NAME_SUFFIXES = ("_leftImg8bit", "_gtFine_labelTrainIds", "_gtFine_labelIds", "_gtFine")


class SplitEntry(NamedTuple):
    """One line of a split file."""

    name: str  # sample id
    image: str | None  # image path relative to the data root, if the line gives one
    mask: str | None  # mask path relative to the data root, if the line gives one


def sample_name(path: str | Path) -> str:
    """The sample id of a file: its stem without a Cityscapes suffix such as ``_leftImg8bit``.

    Examples:
        >>> sample_name("/images/train/jena_000078_000019_leftImg8bit.png")
        'jena_000078_000019'
    """
    stem = Path(path).stem
    for suffix in _NAME_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def read_split_file(path: str | Path) -> list[SplitEntry]:
    """Read a split file (formats in the module docstring).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if a line has more than two fields or the file lists no sample.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    entries: list[SplitEntry] = []
    text = path.read_text(encoding="utf-8")
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip().lstrip("/") for f in fields if f.strip()]
        if len(fields) == 1 and ("/" in fields[0] or Path(fields[0]).suffix.lower() in
                                 {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}):
            entries.append(SplitEntry(sample_name(fields[0]), fields[0], None))
        elif len(fields) == 1:
            entries.append(SplitEntry(fields[0], None, None))
        elif len(fields) == 2:
            entries.append(SplitEntry(sample_name(fields[0]), fields[0], fields[1]))
        else:
            raise ValueError(
                f"{path}, line {line_no}: expected an id, or an image path and a mask path "
                f"separated by a tab or a space, got {len(fields)} fields: {raw!r}"
            )
    if not entries:
        raise ValueError(f"split file {path} lists no sample; give a file with one id per line")
    return entries


def nested_partition(
    names: Sequence[str], labeled_ratio: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split ``names`` into labeled and unlabeled sets, nested across ratios.

    One seeded permutation of the names is drawn; the labeled set is its first
    ``floor(N * labeled_ratio)`` names. With the same names and seed, the 1/16 labeled set is
    therefore inside the 1/8 one, and so on. Both sets keep the order of ``names``.

    Args:
        names: all training ids (unique).
        labeled_ratio: share of labeled images, in ``(0, 1)``.
        seed: seed of the permutation.

    Returns:
        ``(labeled, unlabeled)``: disjoint lists that together cover ``names``.

    Raises:
        ValueError: for a ratio outside ``(0, 1)``, duplicate names, or a ratio that leaves no
            labeled image.

    Examples:
        >>> ids = [f"{i:02d}" for i in range(32)]
        >>> l16, _ = nested_partition(ids, 1 / 16, seed=0)
        >>> l8, u8 = nested_partition(ids, 1 / 8, seed=0)
        >>> len(l16), len(l8), len(u8), set(l16) <= set(l8)
        (2, 4, 28, True)
    """
    if isinstance(labeled_ratio, bool) or not 0.0 < float(labeled_ratio) < 1.0:
        raise ValueError(
            f"`labeled_ratio` must be in (0, 1) (e.g. 0.125 for the 1/8 partition), "
            f"got {labeled_ratio!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError("the training list has duplicate ids; remove them before partitioning")
    n = len(names)
    n_labeled = math.floor(n * float(labeled_ratio) + 1e-9)
    if n_labeled == 0:
        raise ValueError(
            f"`labeled_ratio`={labeled_ratio} of {n} training images leaves no labeled image; "
            f"use labeled_ratio >= {1.0 / max(n, 1):.4g} or give a labeled split file"
        )
    order = np.random.default_rng(seed).permutation(n)
    chosen = np.zeros(n, dtype=bool)
    chosen[order[:n_labeled]] = True
    labeled = [name for name, c in zip(names, chosen, strict=True) if c]
    unlabeled = [name for name, c in zip(names, chosen, strict=True) if not c]
    return labeled, unlabeled


def heldout_partitions(
    names: Sequence[str],
    heldout_prefix: str,
    ratios: dict[str, float],
    seed: int = 0,
) -> tuple[list[str], dict[str, tuple[list[str], list[str]]]]:
    """Keep the ids starting with ``heldout_prefix`` out, and partition the rest.

    The protocol of a cross-sequence check: one sequence of the training list (CamVid's
    ``0006R0``) is in neither the labeled nor the unlabeled pool and is scored as an extra
    evaluation split. The remaining ids are partitioned with :func:`nested_partition` (one
    seeded permutation, so the labeled sets are nested across ratios).

    Args:
        names: all training ids, in the order of the training list (unique).
        heldout_prefix: the prefix of the held-out ids (e.g. ``"0006R0_"``).
        ratios: partition name -> labeled share, e.g. ``{"1-8": 1 / 8}``.
        seed: seed of the permutation.

    Returns:
        ``(heldout, partitions)``: the held-out ids, and partition name -> ``(labeled,
        unlabeled)``, all in the order of ``names``.

    Raises:
        ValueError: no id or every id starts with ``heldout_prefix`` (and as
            :func:`nested_partition`).

    Examples:
        >>> ids = [f"A_{i}" for i in range(16)] + [f"B_{i}" for i in range(4)]
        >>> heldout, parts = heldout_partitions(ids, "B_", {"1-8": 1 / 8, "1-4": 1 / 4})
        >>> len(heldout), [len(parts[p][0]) for p in ("1-8", "1-4")]
        (4, [2, 4])
        >>> set(parts["1-8"][0]) <= set(parts["1-4"][0])
        True
    """
    heldout = [n for n in names if n.startswith(heldout_prefix)]
    rest = [n for n in names if not n.startswith(heldout_prefix)]
    if not heldout or not rest:
        raise ValueError(
            f"`heldout_prefix`={heldout_prefix!r} matches {len(heldout)} of {len(names)} ids; "
            "it must hold out some ids and leave some to train on"
        )
    return heldout, {
        name: nested_partition(rest, ratio, seed) for name, ratio in ratios.items()
    }
