"""Every example runs in its smallest configuration."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_losses_plain_pytorch_runs() -> None:
    terms = _load("losses_plain_pytorch").main(steps=2)
    assert set(terms) == {"sup", "pixel", "image", "region", "total"}
    assert all(math.isfinite(v) for v in terms.values())
