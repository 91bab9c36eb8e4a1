"""Each exit code means one thing on every command, and the manual's table documents each; ``--debug`` works after a command's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core import errors
from lenet_cli.core.errors import LenetError

EXIT_CODES_PAGE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "reliability.md"  # README links to it


def test_every_exit_code_has_one_row_in_the_manual():
    section = EXIT_CODES_PAGE.read_text(encoding="utf-8").split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+(?: / \d+)?) \|", section, flags=re.MULTILINE)
    assert len(rows) == len(set(rows)), f"a code is listed twice: {rows}"
    codes = {int(code) for row in rows for code in row.split(" / ")}
    named = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert named <= codes, f"undocumented: {sorted(named - codes)}"
    assert {0, 130, 143} <= codes


def test_error_classes_carry_their_own_code():
    assert errors.LenetError.exit_code == errors.EXIT_ERROR
    assert errors.MissingExtra.exit_code == errors.EXIT_MISSING_EXTRA
    assert errors.BelowBar.exit_code == errors.EXIT_BELOW_BAR
    assert errors.BadValue.exit_code == errors.EXIT_USAGE
    assert errors.StorageLost.exit_code == errors.EXIT_STORAGE_LOST
    assert (
        len(
            {
                errors.EXIT_ERROR,
                errors.EXIT_USAGE,
                errors.EXIT_MISSING_EXTRA,
                errors.EXIT_BELOW_BAR,
                errors.EXIT_STORAGE_LOST,
            }
        )
        == 5
    )


@pytest.mark.parametrize("argv", [["--debug", "evaluate"], ["evaluate", "--debug"]])
def test_debug_is_accepted_before_and_after_the_command(argv, tmp_path):
    result = CliRunner().invoke(cli, [*argv, "--runs-dir", str(tmp_path / "runs")])
    assert isinstance(result.exception, LenetError), result.output  # --debug: the traceback, not one line
    assert "no trained model found" in str(result.exception)


def test_without_debug_the_same_failure_is_one_line(tmp_path):
    result = CliRunner().invoke(
        cli, ["evaluate", "--runs-dir", str(tmp_path / "runs")]
    )  # predict would answer with a built-in model
    assert result.exit_code == errors.EXIT_ERROR
    assert result.stderr.startswith("Error: no trained model found") and result.stderr.count("\n") == 1


def test_debug_after_a_subcommand_of_a_group(tmp_path):
    result = CliRunner().invoke(cli, ["runs", "show", str(tmp_path / "nothing"), "--debug"])
    assert result.exception is not None and not isinstance(result.exception, SystemExit), result.output


def test_every_command_takes_debug():
    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path, command in walk(cli, []):
        if path:
            assert any("--debug" in p.opts for p in command.params), " ".join(path)
