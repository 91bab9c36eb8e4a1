"""One vocabulary: a concept has one option, with the same name, values and behaviour on every command."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli

OUTPUT_FORMATS = {"table", "json", "jsonl", "csv", "tsv"}
MODEL_COMMANDS = {"evaluate", "export", "predict", "explain", "serve"}
NO_RESULT_ON_STDOUT = {"serve", "docs"}  # a server: its requests get the answers; docs: one path, as `which` prints one
DIFFERENT_ON_PURPOSE = {
    "--output",  # a file, a folder or a run directory: what each command writes
    "--workers",  # train: the cluster's HOST:PORT addresses (TF_CONFIG's word); serve: how many processes answer (uvicorn's and gunicorn's word)
}


def _commands(group=cli, prefix=""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def _options():
    for name, command in _commands():
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                yield name, param


def _shape(param: click.Option):
    kind = param.type
    return (
        type(kind).__name__,
        tuple(getattr(kind, "choices", ())),
        getattr(kind, "min", None),
        getattr(kind, "max", None),
        param.is_flag,
        param.multiple,
        tuple(sorted(param.opts + param.secondary_opts)),
    )


def test_a_shared_option_has_one_shape_everywhere():
    seen: dict[str, tuple[str, tuple]] = {}
    for command, param in _options():
        long_name = max(param.opts, key=len)
        if long_name == "--format":
            continue  # each command offers its own subset of one list of formats: checked below
        shape = _shape(param)
        if long_name in seen:
            first, first_shape = seen[long_name]
            assert shape[0] == first_shape[0] and shape[1:] == first_shape[1:] or long_name in DIFFERENT_ON_PURPOSE, (
                f"{long_name}: `lenet {command}` {shape} differs from `lenet {first}` {first_shape}"
            )
        else:
            seen[long_name] = (command, shape)


def test_every_command_that_uses_a_model_takes_dash_m():
    for name, command in _commands():
        options = {max(p.opts, key=len): p for p in command.params if isinstance(p, click.Option)}
        if name in MODEL_COMMANDS:
            assert options["--model"].opts == ["--model", "-m"], name
            assert "runs_dir" in {p.name for p in command.params}, name


def test_every_command_prints_a_table_for_people_and_json_for_programs():
    for name, command in _commands():
        options = {max(p.opts, key=len): p for p in command.params if isinstance(p, click.Option)}
        if "--format" not in options:
            assert name in NO_RESULT_ON_STDOUT, f"`lenet {name}` has no --format"
            continue
        choices = set(options["--format"].type.choices)
        assert {"table", "json"} <= choices <= OUTPUT_FORMATS, f"`lenet {name} --format`: {choices}"
        assert options["--format"].default is None  # resolved alike: table in a terminal, else json


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--format", "onnx", "-o", "m.onnx"],
        ["export", "-o", "model.pt"],
        ["export", "--to", "onnx", "--quantize", "int8", "-o", "m.onnx"],
        ["predict", "--top-k", "0", "x.png"],
        ["train", "--format", "text"],
    ],
)
def test_usage_mistakes_exit_2_with_one_line(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.png").write_bytes(b"")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.strip().splitlines()[-1].startswith("Error:")


def test_top_k_above_the_class_count_is_a_usage_error_on_every_command(trained_run, synthetic_data_dir, tmp_path):
    from PIL import Image

    Image.new("L", (28, 28), 0).save(tmp_path / "x.png")
    for args in (
        ["evaluate", str(trained_run), "--data-dir", str(synthetic_data_dir)],
        ["predict", "-m", str(trained_run), str(tmp_path / "x.png")],
    ):
        result = CliRunner().invoke(cli, [*args, "--top-k", "11"])
        assert result.exit_code == 2 and "11 is more than the model's 10 classes" in result.stderr, (
            args,
            result.output,
        )


def test_the_model_is_given_once(trained_run):
    result = CliRunner().invoke(cli, ["evaluate", str(trained_run), "-m", str(trained_run)])
    assert result.exit_code == 2 and "not both" in result.stderr
