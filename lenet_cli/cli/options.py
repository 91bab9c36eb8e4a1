"""Options and checks every command shares: one concept, one option name, the same values and behaviour everywhere.

Each is a plain decorator (``@runs_dir_option``) or a function that makes one
(``top_k_option("...")``), as sqlite-utils does; nothing here imports more
than Click and lenet's defaults.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from lenet_cli.core import config as C
from lenet_cli.core.env import DEBUG_ENV
from lenet_cli.core.errors import BadValue, LenetError


@dataclass(frozen=True)
class Settings:
    """What the root options decide for every command, carried in Click's context object (never the environment)."""

    debug: bool = False


def debug_requested(ctx: click.Context) -> bool:
    """``--debug`` on this invocation, or ``LENET_DEBUG=1`` in the environment."""
    settings = ctx.find_object(Settings)
    return bool(settings and settings.debug) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


def data_dir_option(fn):
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder holding mnist/ and fashion/ IDX files [default: $LENET_DATA_DIR, else ~/.cache/lenet, downloading if absent].",
    )(fn)


def runs_dir_option(fn):
    return click.option(
        "--runs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of run directories [default: $LENET_RUNS_DIR, else ./runs].",
    )(fn)


# --- One vocabulary: a concept has one option, with the same name, values and behaviour on every command ---

MODEL_PATH = click.Path(path_type=Path)
"""A model argument: a path, a run's name or a built-in's name, resolved (and refused) by the engine, not by Click."""


def model_option(dest: str = "model"):
    """``-m/--model``: which model a command uses (evaluate, export and serve also take it as their argument)."""
    return click.option(
        "--model",
        "-m",
        dest,
        type=MODEL_PATH,
        default=None,
        help="Run directory, run name, model file (.keras, .onnx, .tflite, a SavedModel directory), or a "
        "built-in model: mnist, fashion [default: the latest run].",
    )


def engine_option(fn):
    """``--engine``: which of a run's models answers (predict, evaluate, serve, explain's occlusion)."""
    return click.option(
        "--engine",
        type=click.Choice(C.ENGINES),
        default="auto",
        show_default=True,
        help="For a run (or the latest): auto answers with its TensorFlow-free model.tflite (LiteRT: no TensorFlow "
        "to start) when its check against model.keras passed, else with model.keras; keras always uses "
        "model.keras. A model file named directly answers itself.",
    )(fn)


def pick_model(argument: Path | None, option: Path | None) -> Path | None:
    """The model given as the argument or with ``--model``, never both."""
    if argument is not None and option is not None:
        raise click.UsageError("give the model once: as the argument or with --model, not both")
    return argument if argument is not None else option


def output_format_option(*choices: str):
    """``--format``: what stdout carries; a table for people in a terminal, JSON for programs otherwise."""

    def decorate(fn):
        return click.option(
            "--format",
            "output_format",
            type=click.Choice(choices),
            default=None,
            help=f"Output on stdout: {', '.join(choices)} [default: table in a terminal, else json].",
        )(fn)

    return decorate


def resolve_format(output_format: str | None) -> str:
    """The ``--format`` default every command shares."""
    return output_format or ("table" if sys.stdout.isatty() else "json")


def top_k_option(what: str):
    """``--top-k``: at least 1, and at most the model's class count (checked once the model is known: exit 2 above it)."""
    return click.option(
        "--top-k",
        type=click.IntRange(min=1),
        default=None,
        help=f"{what}, at most the model's classes [default: {C.DEFAULT_TOP_K}, or all of a model's classes if fewer].",
    )


def min_confidence_option(what: str):
    """``--min-confidence``: the top probability under which an answer counts as unsure (predict, serve, evaluate)."""
    return click.option(
        "--min-confidence",
        type=Probability(),
        default=C.MIN_CONFIDENCE,
        show_default=True,
        help=f"{what}; 0 never flags.",
    )


class Probability(click.FloatRange):
    """A number in [0, 1]; NaN is refused (it compares false with everything, so it would pass a range and never flag)."""

    name = "float range"

    def __init__(self):
        super().__init__(0, 1)

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number between 0 and 1", param, ctx)
        return number


def preprocess_options(fn):
    """``--preprocess`` and ``--invert``: how a picture becomes the network's 28x28 input (predict, explain, serve)."""
    fn = click.option(
        "--invert",
        type=click.Choice(C.INVERT_MODES),
        default="auto",
        show_default=True,
        help="Invert light-background pictures (auto detects).",
    )(fn)
    return click.option(
        "--preprocess",
        type=click.Choice(["auto", *C.PREPROCESS_MODES]),
        default="auto",
        show_default=True,
        help="How to turn a picture into the network's 28x28 input; auto = as the model's dataset was made.",
    )(fn)


def image_inputs(fn):
    """IMAGE... arguments with ``--recursive`` and ``--files-from`` (predict, explain)."""
    fn = click.option(
        "--files-from",
        type=click.Path(exists=True, dir_okay=False, allow_dash=True),
        default=None,
        help="Read input paths from this file, one per line ('-' for stdin).",
    )(fn)
    fn = click.option("--recursive", "-r", is_flag=True, help="Descend into subdirectories of directory inputs.")(fn)
    return click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True))(fn)


def check_inputs(inputs, files_from) -> None:
    if not inputs and files_from is None:
        raise click.UsageError("give at least one image, directory, '-' (stdin) or --files-from")
    if "-" in inputs and files_from == "-":
        raise click.UsageError("stdin can carry either an image (-) or a list of paths (--files-from -), not both")


TRAIN_DEFAULTS = C.TrainConfig()


def default_text(field: str, fmt: str = "{}") -> str:
    """'[default: X]', or '[default: X for mnist, Y for fashion]' when the datasets differ."""
    values = {name: C.DATASET_DEFAULTS[name].get(field, getattr(TRAIN_DEFAULTS, field)) for name in C.DATASETS}
    if len(set(values.values())) == 1:
        return f"[default: {fmt.format(values['mnist'])}]"
    return "[default: " + ", ".join(f"{fmt.format(v)} for {name}" for name, v in values.items()) + "]"


class LayerList(click.ParamType):
    """Comma-separated layer names, each one of the network's weight layers."""

    name = "LAYER[,LAYER...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = tuple(n.strip() for n in str(value).split(",") if n.strip())
        unknown = [n for n in names if n not in C.WEIGHT_LAYERS]
        if unknown:
            self.fail(f"unknown layer {unknown[0]!r}; choose from: {', '.join(C.WEIGHT_LAYERS)}", param, ctx)
        return names


def merge_freeze(ctx, param, value):
    merged: list[str] = []
    for group in value or ():
        for name in group:
            if name not in merged:
                merged.append(name)
    return tuple(merged) or None


def distribute_options(fn):
    """``--distribute`` and the options that place this process in a strategy (see docs/guides/distributed.md)."""
    for option in reversed(
        [
            click.option(
                "--distribute",
                type=click.Choice(C.DISTRIBUTE_MODES),
                default="none",
                show_default=True,
                help="Data-parallel training: mirrored over local GPUs (or --devices CPU devices), or multi-worker from "
                "TF_CONFIG / --workers. --batch-size is the global batch.",
            ),
            click.option(
                "--devices",
                type=click.IntRange(min=1),
                default=None,
                help="mirrored: split the CPU into N logical devices, one replica each (testing) [default: $LENET_CPU_DEVICES, else the GPUs].",
            ),
            click.option(
                "--workers",
                default=None,
                metavar="HOST:PORT,...",
                help="multi-worker: every worker's address, in the same order on all workers; builds TF_CONFIG (worker 0 is the chief).",
            ),
            click.option(
                "--task-index",
                type=click.IntRange(min=0),
                default=None,
                help="multi-worker with --workers: this worker's position in --workers.",
            ),
            click.option(
                "--worker-timeout",
                type=click.FloatRange(min=1),
                default=C.WORKER_TIMEOUT,
                show_default=True,
                help="multi-worker: seconds to wait for the cluster to form, and for any one collective, before failing.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


class ByteSize(click.ParamType):
    """A size in bytes: ``8388608``, ``512k``, ``8M`` or ``8MiB`` (k/M/G are powers of 1024)."""

    name = "BYTES"
    UNITS = {
        "": 1,
        "b": 1,
        "k": 1024,
        "kb": 1024,
        "kib": 1024,
        "m": 1024**2,
        "mb": 1024**2,
        "mib": 1024**2,
        "g": 1024**3,
        "gb": 1024**3,
        "gib": 1024**3,
    }

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        digits = text.rstrip("abgikm")
        try:
            size = int(float(digits) * self.UNITS[text[len(digits) :]])
        except (ValueError, KeyError):
            self.fail(f"{value!r} is not a size; write e.g. 8388608, 512k or 8M", param, ctx)
        if size < 1:
            self.fail(f"{value!r} must be at least 1 byte", param, ctx)
        return size


DATASET_HELP = (
    "A name ({names}) or a path: a folder of the four MNIST-layout IDX files (+ classes.txt), a folder of "
    "pictures with one sub-folder per class (train/ and test/ optional), or a CSV of pixels "
    "(label,pixel0..pixel783)."
).format(names=", ".join(C.NAMED_DATASETS))


class DatasetParam(click.ParamType):
    """A name from :data:`lenet_cli.core.config.NAMED_DATASETS`, or an existing file or folder (made absolute)."""

    name = "NAME|PATH"

    def convert(self, value, param, ctx):
        if value in C.NAMED_DATASETS:
            return value
        path = Path(value).expanduser()
        if path.exists():
            return str(path.resolve())
        self.fail(
            f"{value!r} is neither a dataset name ({', '.join(C.NAMED_DATASETS)}) nor an existing file or folder",
            param,
            ctx,
        )

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        names = [CompletionItem(name) for name in C.NAMED_DATASETS if name.startswith(incomplete)]
        return names + [CompletionItem(incomplete, type="file")]


DATASET = DatasetParam()

FIELD_FLAGS = {
    "ema_momentum": "--ema",
    "output_format": "--format",
    "export_format": "--to",
    "space_file": "--space",
    "tags": "KEY=VALUE",
    "runs": "RUNS",
    "note": "TEXT",
}  # lenet runs tag/note/rm/compare's arguments
"""Request fields whose option is not the field's name in kebab case."""


def flag_for(field: str) -> str:
    """The command-line option that sets a request's ``field`` (``top_k`` -> ``--top-k``)."""
    return FIELD_FLAGS.get(field, "--" + field.replace("_", "-"))


def in_flags(exc: LenetError) -> str:
    """``exc``'s message as a command-line user reads it: each field it mentions as its option.

    ``init_from='runs/a'`` becomes ``--init-from runs/a`` (the value as a shell word), a bare ``epochs`` ``--epochs``.
    """
    message = str(exc)
    for field in exc.mentions:
        flag = flag_for(field)

        def as_option(found: re.Match[str], flag: str = flag) -> str:
            return f"{flag} {_shell_word(found.group(1))}"

        message = re.sub(
            rf"(?<![\w-]){re.escape(field)}=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;)]+)", as_option, message
        )
        message = re.sub(rf"(?<![\w-]){re.escape(field)}(?![\w-])", flag, message)
    return message


def _shell_word(value: str) -> str:
    """A value as Python wrote it (``'runs/a'``, ``3``), as one shell word (``runs/a``, ``3``)."""
    import ast
    import shlex

    if value[:1] in "'\"":
        try:
            return shlex.quote(str(ast.literal_eval(value)))
        except (ValueError, SyntaxError):
            return value
    return value


def bad_value_error(exc: BadValue) -> click.BadParameter:
    """A value the engine refuses, told under the option the user typed: exit 2, as for Click's own checks."""
    return click.BadParameter(in_flags(exc), param_hint=f"'{flag_for(exc.field)}'")


def picture_options(top_k_help: str):
    """What every command that answers for pictures takes (``PictureRequest``'s fields): inputs, model, engine, runs folder,
    preprocessing and ``--top-k``; predict and explain."""

    def decorate(fn):
        fn = top_k_option(top_k_help)(fn)
        fn = preprocess_options(fn)
        fn = runs_dir_option(fn)
        fn = engine_option(fn)
        fn = model_option()(fn)
        return image_inputs(fn)

    return decorate


def mlflow_options(register: bool):
    """``--mlflow``, ``--mlflow-experiment`` (and ``--mlflow-register``): MLflow tracking for train and tune."""

    def decorate(fn):
        if register:
            fn = click.option(
                "--mlflow-register",
                default=None,
                metavar="NAME",
                help="Register the finished run's model under NAME in MLflow's model registry (a new version each run).",
            )(fn)
        fn = click.option(
            "--mlflow-experiment",
            default=None,
            metavar="NAME",
            help="The MLflow experiment [default: lenet-<dataset>].",
        )(fn)
        return click.option(
            "--mlflow",
            default=None,
            metavar="URI",
            help="Log params, per-epoch metrics, figures and the model to this MLflow tracking server (http://HOST:PORT) "
            "or folder (file:/PATH) [default: $MLFLOW_TRACKING_URI; off when unset]. Needs the mlflow extra.",
        )(fn)

    return decorate
