"""``mgd-lightning profile``: the table with ratios, from tiny checkpoints at a small size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _tiny_models import make_tiny
from mgd_lightning.cli import main
from mgd_lightning.models import DeepLabV3Plus, count_flops, network_spec

SIZE = "32"


def _checkpoint(folder: Path, name: str, head_channels: int) -> tuple[Path, DeepLabV3Plus]:
    """A file with the network description only (the report needs no trained weights)."""
    network = make_tiny(3, head_channels=head_channels)
    path = folder / f"{name}.ckpt"
    torch.save({"mgd_network": network_spec(network), "state_dict": {}}, path)
    return path, network


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, DeepLabV3Plus]]:
    folder = tmp_path_factory.mktemp("profile")
    return {"student": _checkpoint(folder, "s", 8), "deep": _checkpoint(folder, "d", 32)}


def test_table_with_ratios_and_json_output(
    checkpoints: dict[str, tuple[Path, DeepLabV3Plus]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (student_path, student), (deep_path, deep) = checkpoints["student"], checkpoints["deep"]
    output = tmp_path / "report" / "profile.json"
    args = ["--student", str(student_path), "--deep", str(deep_path), "--wide", "none"]
    assert main(["profile", *args, "--input-size", SIZE, "--output", str(output)]) == 0
    table = capsys.readouterr().out
    assert "| Role | Network |" in table and "Total ratio" in table
    lines = [line for line in table.splitlines() if line.startswith("| student")]
    assert len(lines) == 1 and lines[0].endswith("| 1.00 | 1.00 |")
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["input_size"] == [32, 32]
    assert [row["role"] for row in report["rows"]] == ["student", "deep teacher"]
    ratio = count_flops(deep, (32, 32)) / count_flops(student, (32, 32))
    assert report["rows"][1]["total_ratio"] == pytest.approx(ratio)
    assert f"| {ratio:.2f} |" in table


def test_markdown_output(
    checkpoints: dict[str, tuple[Path, DeepLabV3Plus]], tmp_path: Path
) -> None:
    path = checkpoints["student"][0]
    output = tmp_path / "profile.md"
    args = ["--student", str(path), "--deep", str(path), "--wide", "none"]
    assert main(["profile", *args, "--input-size", SIZE, "24", "--output", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    assert text.startswith("FLOPs at 32x24") and text.count("| 1.00 | 1.00 |") == 2


def test_bad_inputs_name_the_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--student", str(tmp_path / "nope.ckpt")]) == 1
    assert "--student" in capsys.readouterr().err
    assert main(["profile", "--student", "none"]) == 1
    assert "--student cannot be 'none'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["profile", "--output", str(tmp_path / "x.txt")])
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["profile", "--input-size", "0"])
    assert "--input-size" in capsys.readouterr().err
