"""The step benchmark runs end to end on tiny networks and writes its JSON keys."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step.py"


def test_step_benchmark_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("_step_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "step.json"
    module.main(["--smoke", "--agreement-images", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    for key in ("overhead", "speedup", "bf16_agreement", "t_step", "t_nets", "t_reference"):
        assert key in result
    assert result["overhead"] > 0 and result["speedup"] > 0
