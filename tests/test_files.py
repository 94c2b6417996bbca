"""Atomic writes and writable folders: nothing half-written, errors name the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgd_lightning.files import atomic_path, writable_folder, write_text_atomic


def test_write_text_atomic_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]


def test_atomic_path_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_writable_folder_names_a_file_in_the_way(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert writable_folder(tmp_path / "new" / "dir", "out").is_dir()
    with pytest.raises(NotADirectoryError, match=r"output_dir: .*sub .*is a file.*; choose"):
        writable_folder(blocker / "sub", "output_dir", "; choose another")
