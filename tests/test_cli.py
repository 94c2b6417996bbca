"""The entry point and the parsers: dispatch, one parsing style, one error format."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mgd_lightning import cli
from mgd_lightning.parsing import (
    MGDLightningCLI,
    add_flag,
    add_size,
    build_cli,
    command_parser,
    parse_size,
    run_command,
)

ROOT = Path(__file__).resolve().parents[1]


def test_extra_commands_go_to_their_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    class _Command:
        @staticmethod
        def main(args: list[str]) -> int:
            calls.append(args)
            return 7

    monkeypatch.setitem(sys.modules, "tests_fake_command", _Command)  # type: ignore[arg-type]
    monkeypatch.setitem(cli.EXTRA_COMMANDS, "fake", "tests_fake_command")
    assert cli.main(["fake", "--x", "1"]) == 7
    assert calls == [["--x", "1"]]


def test_lightning_subcommands_build_the_cli_without_running(tmp_path: Path) -> None:
    config = ROOT / "configs" / "quickstart" / "student_supervised.yaml"
    built = cli.main(
        [
            "--config", str(config),
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--data.init_args.num_train=8",
        ],
        run=False,
    )
    assert isinstance(built, MGDLightningCLI)
    assert built.model.num_classes == built.datamodule.num_classes  # linked from the data
    assert built.model.class_names == built.datamodule.class_names
    names = [type(c).__name__ for c in built.trainer.callbacks]
    assert "ModelCheckpoint" in names  # the default callbacks were added
    assert cli.MGDLightningCLI is MGDLightningCLI and callable(build_cli)


def test_missing_ckpt_path_fails_before_building(tmp_path: Path) -> None:
    config = ROOT / "configs" / "quickstart" / "student_supervised.yaml"
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope"):
        cli.main(["fit", "--config", str(config), f"--ckpt_path={missing}"])


def test_command_parser_flags_sizes_and_config(tmp_path: Path) -> None:
    parser = command_parser("prog", "a test command")
    add_flag(parser, "fast", "go fast")
    add_size(parser, "input-size", 64, "H [W]")
    options = parser.parse_args(["--fast", "--input-size", "8", "12"])
    assert options.fast is True and parse_size(parser, "input-size", options.input_size) == (8, 12)
    assert parser.parse_args(["--fast", "false"]).fast is False
    assert parser.parse_args(["--no_fast"]).fast is False
    assert parse_size(parser, "input-size", parser.parse_args([]).input_size) == (64, 64)
    config = tmp_path / "c.yaml"
    config.write_text("fast: true\ninput_size: [5]\n")
    from_file = parser.parse_args(["--config", str(config)])
    assert from_file.fast is True and from_file.input_size == [5]
    with pytest.raises(SystemExit):
        parse_size(parser, "input-size", [0])


def test_run_command_prints_bad_input_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise FileNotFoundError("model.ckpt does not exist")

    assert run_command("mgd-lightning x", fail) == 1
    assert capsys.readouterr().err == "mgd-lightning x: error: model.ckpt does not exist\n"
    assert run_command("mgd-lightning x", lambda: None) == 0
