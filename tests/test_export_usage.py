"""``lenet export`` refuses what cannot work before anything loads: a suffix that names another format, a missing extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lenet_cli.core.errors import EXIT_MISSING_EXTRA

PROBE = """
import sys
{block}
from lenet_cli.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
print('tensorflow' in sys.modules, file=sys.stdout)
print('exit', code)
"""

BLOCK_EXTRAS = "for name in {names!r}:\n    sys.modules[name] = None  # import name -> ImportError, find_spec -> None"


def _export(tmp_path, args, missing=()):
    """Run ``lenet export`` in a fresh interpreter against an existing (tiny, fake) model file; return stdout lines, stderr, exit."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"not loaded: every check here comes first")
    argv = ["export", str(model), *[a.format(tmp=tmp_path) for a in args]]
    block = BLOCK_EXTRAS.format(names=list(missing)) if missing else ""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(block=block, argv=argv)], capture_output=True, text=True, timeout=60
    )
    lines = proc.stdout.strip().splitlines()
    return lines, proc.stderr, int(lines[-1].split()[1])


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["--to", "keras", "-o", "{tmp}/kmodel"],
            "a keras export writes a .keras file, and '{tmp}/kmodel' does not end in .keras",
        ),
        (["--to", "keras", "-o", "{tmp}/k.onnx"], "'{tmp}/k.onnx' names a onnx file"),
        (["--to", "litert", "-o", "{tmp}/m.onnx"], "a litert export writes a .tflite file"),
        (["--to", "onnx", "-o", "{tmp}/m.tflite"], "'{tmp}/m.tflite' names a litert file"),
        (
            ["--to", "savedmodel", "-o", "{tmp}/sm.keras"],
            "a SavedModel is a folder, and '{tmp}/sm.keras' names a keras file",
        ),
        (["--to", "all", "-o", "{tmp}/all.onnx"], "an export to all formats writes a folder"),
    ],
)
def test_a_suffix_that_names_another_format_is_one_line_and_exit_2(tmp_path, args, says):
    lines, stderr, code = _export(tmp_path, args)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("Error: ") and says.format(tmp=tmp_path) in stderr
    assert "Traceback" not in stderr
    assert lines[0] == "False", "TensorFlow was imported before the refusal"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"], "something was written"


def test_every_missing_extra_is_named_at_once(tmp_path):
    lines, stderr, code = _export(
        tmp_path, ["--to", "all", "-o", "{tmp}/dist"], missing=("tf2onnx", "onnxruntime", "ai_edge_litert")
    )
    assert code == EXIT_MISSING_EXTRA
    assert stderr.strip() == "Error: --to all needs the litert and onnx extras: pip install 'lenet-cli[litert,onnx]'"
    assert lines[0] == "False"
    assert not (tmp_path / "dist").exists()


def test_no_verify_needs_no_runtime_extra(tmp_path):
    """LiteRT's writer is TensorFlow's own: only verifying the file needs the litert extra."""
    from lenet_cli.engine.export_request import missing_extras

    assert missing_extras(("litert",), verify=False) == []


def test_the_api_names_the_field_where_the_command_line_names_the_option(tmp_path, monkeypatch):
    """The engine's refusal speaks in fields (``to='all'``); the command line says the same as ``--to all``."""
    from lenet_cli import api
    from lenet_cli.cli.options import in_flags
    from lenet_cli.core.errors import MissingExtra

    for name in ("tf2onnx", "onnxruntime", "ai_edge_litert"):
        monkeypatch.setitem(sys.modules, name, None)
    model = tmp_path / "model.keras"
    model.write_bytes(b"not loaded: the missing extra is found first")
    with pytest.raises(MissingExtra) as caught:
        api.export(model, output=tmp_path / "dist", to="all")
    assert str(caught.value) == "to='all' needs the litert and onnx extras: pip install 'lenet-cli[litert,onnx]'"
    assert caught.value.hint == "pip install 'lenet-cli[litert,onnx]'"
    assert in_flags(caught.value) == "--to all needs the litert and onnx extras: pip install 'lenet-cli[litert,onnx]'"
    assert not (tmp_path / "dist").exists()
