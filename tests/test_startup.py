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


def test_bad_training_data_is_refused_before_tensorflow_starts(tmp_path):
    """A missing data folder or a malformed pixel CSV is refused in a fraction of a second: TensorFlow is not loaded first."""
    bad_csv = tmp_path / "pixels.csv"
    bad_csv.write_text("label,a\n1,2\n", encoding="utf-8")
    for argv in (
        ["train", "--data-dir", str(tmp_path / "nowhere"), "--runs-dir", str(tmp_path / "runs")],
        ["train", "--dataset", str(bad_csv), "--runs-dir", str(tmp_path / "runs")],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "exit 1"
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "lenet_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "lenet, version" in proc.stdout


def test_every_command_has_help_and_a_readme_section():
    from pathlib import Path

    from lenet_cli.cli import cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name, command in cli.commands.items():
        summary = command.get_short_help_str(limit=200)
        assert command.help and len(summary.split()) >= 3 and not summary.endswith("..."), (
            f"`lenet {name}` has no one-line summary"
        )
        assert f"lenet {name}" in readme, f"README lacks a section for `lenet {name}`"
        assert "Example" in command.help, f"`lenet {name} --help` shows no example"


def test_tensorflow_loads_quietly_with_onednn_on(trained_run, synthetic_data_dir):
    """A command that loads TensorFlow prints nothing of TensorFlow's own on stderr, and runs with oneDNN on.

    TensorFlow logs its oneDNN notice before absl starts, past ``TF_CPP_MIN_LOG_LEVEL``;
    lenet turns oneDNN on (TensorFlow leaves it off on AVX2 CPUs) and must keep that notice quiet.
    """
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "LENET_TF_LOG", "LENET_DEBUG")
    }
    env["LENET_VERIFY_CHECKSUMS"] = "0"
    probe = (
        "import sys\n"
        "from lenet_cli.cli.main import cli\n"
        "try:\n"
        "    cli.main(sys.argv[1:], prog_name='lenet')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print('onednn', _pywrap_util_port.IsMklEnabled())\n"
    )
    argv = [
        "evaluate",
        str(trained_run),
        "--engine",
        "keras",
        "--data-dir",
        str(synthetic_data_dir),
        "--format",
        "json",
    ]
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "onednn True"
    assert "oneDNN" not in proc.stderr and "I0000" not in proc.stderr and "absl" not in proc.stderr, proc.stderr


def test_predict_exits_fast_with_its_output_complete(trained_run, tmp_path):
    """``lenet predict`` with a Keras model skips TensorFlow's slow teardown, yet every line and the exit code arrive.

    The probe registers an ``atexit`` handler: a normal interpreter shutdown runs it,
    ``os._exit`` (the fast exit) does not.
    """
    from PIL import Image

    Image.new("L", (40, 40), 0).save(tmp_path / "blank0.png")
    digit = Image.new("L", (40, 40), 0)
    digit.paste(255, (15, 8, 24, 32))
    digit.save(tmp_path / "one.png")
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('interpreter teardown ran\\n'))\n"
        "from lenet_cli.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    argv = [
        "predict",
        "--model",
        str(trained_run),
        "--engine",
        "keras",
        str(tmp_path / "one.png"),
        str(tmp_path / "blank0.png"),
        "--format",
        "jsonl",
    ]
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the blank image is an error record
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and '"error": null' in lines[0] and "no content found" in lines[1]
    assert "1 of 2 inputs failed" in proc.stderr
    assert "interpreter teardown ran" not in proc.stderr
    help_run = subprocess.run(
        [sys.executable, "-c", probe, "predict", "--help"], capture_output=True, text=True, timeout=60
    )
    assert (
        help_run.returncode == 0 and "interpreter teardown ran" in help_run.stderr
    )  # without TensorFlow: a normal exit


def test_ctrl_c_while_the_command_line_loads_is_one_line_and_exit_130():
    """The console script's first imports can be interrupted too: one line, exit 130, no traceback."""
    probe = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'click':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "from lenet_cli.__main__ import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130
    assert proc.stderr == "Interrupted by Ctrl-C.\n"


@pytest.mark.parametrize("value", ["nan", "NaN", "-0.1", "1.5"])
def test_min_confidence_must_be_a_number_between_0_and_1(value):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=["predict", "x.png", "--min-confidence", value])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip().splitlines()[-1] == "exit 2", proc.stderr
    assert "--min-confidence" in proc.stderr


def test_help_loads_no_array_or_terminal_library():
    """``lenet --help`` and ``lenet export --help`` read the format table and the defaults without numpy, Pillow or rich."""
    probe = PROBE.replace(
        "assert 'keras' not in sys.modules, 'keras was imported'",
        "heavy = {{m.split('.')[0] for m in sys.modules}} & {{'numpy', 'PIL', 'rich', 'keras'}}\nassert not heavy, heavy",
    )
    for argv in (["--help"], ["export", "--help"], ["train", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", probe.format(argv=argv)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
