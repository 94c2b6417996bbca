"""Split files and nested partitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgd_lightning.data.splits import SplitEntry, nested_partition, read_split_file


def test_id_lines_with_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"2007_000032\r\n\r\n2007_000039\r\n2007_000063")
    assert [e.name for e in read_split_file(path)] == ["2007_000032", "2007_000039",
                                                        "2007_000063"]
    assert read_split_file(path)[0] == SplitEntry("2007_000032", None, None)


def test_cps_tab_format(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("/images/train/jena_000078_000019.png\t"
                    "/segmentation/train/jena_000078_000019_gtFine.png\n")
    (entry,) = read_split_file(path)
    assert entry == SplitEntry("jena_000078_000019", "images/train/jena_000078_000019.png",
                               "segmentation/train/jena_000078_000019_gtFine.png")


def test_u2pl_space_format(tmp_path: Path) -> None:
    path = tmp_path / "labeled.txt"
    path.write_text("JPEGImages/2007_000032.jpg SegmentationClassAug/2007_000032.png\n")
    (entry,) = read_split_file(path)
    assert entry == SplitEntry("2007_000032", "JPEGImages/2007_000032.jpg",
                               "SegmentationClassAug/2007_000032.png")


def test_bad_split_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        read_split_file(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="lists no sample"):
        read_split_file(empty)
    bad = tmp_path / "bad.txt"
    bad.write_text("a b c\n")
    with pytest.raises(ValueError, match="line 1"):
        read_split_file(bad)


def test_partitions_are_nested_disjoint_and_reproducible() -> None:
    ids = [f"id{i:04d}" for i in range(1000)]
    previous: set[str] = set()
    for ratio in (1 / 16, 1 / 8, 1 / 4, 1 / 2):
        labeled, unlabeled = nested_partition(ids, ratio, seed=3)
        assert len(labeled) == int(1000 * ratio)
        assert not set(labeled) & set(unlabeled)
        assert set(labeled) | set(unlabeled) == set(ids)
        assert previous <= set(labeled)
        previous = set(labeled)
        assert nested_partition(ids, ratio, seed=3) == (labeled, unlabeled)
    assert nested_partition(ids, 1 / 8, seed=4)[0] != nested_partition(ids, 1 / 8, seed=3)[0]


def test_partition_errors() -> None:
    with pytest.raises(ValueError, match="leaves no labeled image"):
        nested_partition(["a", "b", "c"], 0.1)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="labeled_ratio"):
            nested_partition(["a", "b"], bad)
    with pytest.raises(ValueError, match="duplicate"):
        nested_partition(["a", "a", "b"], 0.5)
