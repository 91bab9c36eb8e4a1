"""Start-up stays instant: help, version and usage errors never import TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from lenet_cli.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
assert 'tensorflow' not in sys.modules, 'tensorflow was imported'
assert 'keras' not in sys.modules, 'keras was imported'
print('exit', code)
"""


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["--version"], 0),
        (["train", "--help"], 0),
        (["evaluate", "--help"], 0),
        (["predict", "--help"], 0),
        (["export", "--help"], 0),
        (["predict"], 2),
        (["evaluate", "--format", "xml"], 2),
        (["train", "--epochs", "0"], 2),
        (["train", "--dataset", "cifar"], 2),
        (["nonsense"], 2),
    ],
)
def test_no_tensorflow_import(argv, code):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"exit {code}"


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "lenet_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "lenet, version" in proc.stdout


def test_every_command_has_help_and_a_readme_section():
    from pathlib import Path

    from lenet_cli.cli import cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, command in cli.commands.items():
        assert command.help and command.short_help != "", name
        assert f"lenet {name}" in readme, f"README lacks a section for `lenet {name}`"
        assert "Example" in command.help, f"`lenet {name} --help` shows no example"
