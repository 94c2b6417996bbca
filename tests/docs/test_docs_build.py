"""The documentation site builds without a warning, and the API reference covers every package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is in the docs extra")
def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").exists()


def test_api_reference_covers_every_subpackage() -> None:
    packages = sorted(
        p.name for p in (ROOT / "src" / "mgd_lightning").iterdir()
        if (p / "__init__.py").exists() and p.name != "commands"
    )
    pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    missing = [name for name in packages if f"::: mgd_lightning.{name}" not in pages]
    assert not missing, f"add docs/api pages for {missing}"
