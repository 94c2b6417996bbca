"""The teacher-pass benchmark runs on the shipped teachers and writes its figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "teacher_passes.py"


def _load() -> object:
    spec = importlib.util.spec_from_file_location("_teacher_passes", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_passes_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = _load()
    out = tmp_path / "passes.json"
    assert module.main(["--batch", "2", "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["setting"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "bf16 autocast", "bf16 autocast, channels_last"}
    assert rows["fp32"]["agreement_with_fp32"] == {"deep": 1.0, "wide": 1.0}
    assert rows["bf16 autocast"]["speedup_over_bf16_autocast"] == 1.0
    assert all(r["seconds"] > 0 for r in rows.values())
    assert "speed-up over bf16 autocast" in capsys.readouterr().out


def test_teacher_passes_benchmark_rejects_an_empty_batch() -> None:
    with pytest.raises(SystemExit) as exit_info:
        _load().main(["--batch", "0"])
    assert exit_info.value.code == 2
