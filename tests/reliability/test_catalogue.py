"""Every entry of docs/errors.md names a test that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_catalogue_entry_has_a_test() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    rows = re.findall(r"^\| (E\d\d) \|.*`(tests/[^`]+)::(test_\w+)` \|$", text, flags=re.M)
    assert len(rows) >= 15
    ids = [row[0] for row in rows]
    assert len(set(ids)) == len(ids), "duplicate entry numbers"
    missing = [
        f"{entry}: {path}::{name}"
        for entry, path, name in rows
        if f"def {name}(" not in (ROOT / path).read_text()
    ]
    assert not missing, f"entries whose test does not exist: {missing}"
