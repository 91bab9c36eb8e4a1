"""The ``lenet`` command line: parse, call a worker module, present the result.

Nothing here imports TensorFlow at module level: ``lenet --help`` and usage
errors answer without it. Worker modules are imported inside each command.

Exit codes: 0 success; 1 a handled error (bad file, bad data, a failed
``--min-accuracy`` gate, a failed input in ``predict``); 2 a usage error;
130 / 143 training interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from lenet_cli import __version__
from lenet_cli.core import config as C
from lenet_cli.cli.dataset_option import DATASET, DATASET_HELP
from lenet_cli.core.errors import LenetError
from lenet_cli.core.tensorflow_env import DEBUG_ENV


@dataclass(frozen=True)
class Settings:
    """What the root options decide for every command, carried in Click's context object (never the environment)."""

    debug: bool = False


def debug_requested(ctx: click.Context) -> bool:
    """``--debug`` on this invocation, or ``LENET_DEBUG=1`` in the environment."""
    settings = ctx.find_object(Settings)
    return bool(settings and settings.debug) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


class LenetGroup(click.Group):
    """Turn the project's expected errors into one line on stderr and exit code 1, and Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if debug_requested(ctx):
                raise
            click.echo("Interrupted by Ctrl-C.", err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except LenetError as exc:
            if debug_requested(ctx):
                raise
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


@click.group(cls=LenetGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="lenet")
@click.option("--debug", is_flag=True, help=f"Show full tracebacks and TensorFlow's logs (or set {DEBUG_ENV}=1).")
@click.pass_context
def cli(ctx, debug: bool):
    """Train, evaluate, explain and ship LeNet networks on MNIST and Fashion-MNIST.

    \b
    Quick start:
      lenet train --dataset fashion --data-dir ~/data
      lenet evaluate
      lenet predict digit.png
    """
    ctx.obj = Settings(debug=debug)
    from lenet_cli.core.tensorflow_env import prepare_tensorflow_env, show_native_logs

    if debug_requested(ctx):
        show_native_logs()
    prepare_tensorflow_env()  # before any command imports TensorFlow, however indirectly


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

def model_option(dest: str = "model"):
    """``-m/--model``: which model a command uses (evaluate, export and serve also take it as their argument)."""
    return click.option("--model", "-m", dest, type=click.Path(exists=True, path_type=Path), default=None,
                        help="Run directory or model file (.keras, .onnx, .tflite, a SavedModel directory) [default: the latest run].")


def pick_model(argument: Path | None, option: Path | None) -> Path | None:
    """The model given as the argument or with ``--model``, never both."""
    if argument is not None and option is not None:
        raise click.UsageError("give the model once: as the argument or with --model, not both")
    return argument if argument is not None else option


def output_format_option(*choices: str):
    """``--format``: what stdout carries; a table for people in a terminal, JSON for programs otherwise."""
    def decorate(fn):
        return click.option("--format", "output_format", type=click.Choice(choices), default=None,
                            help=f"Output on stdout: {', '.join(choices)} [default: table in a terminal, else json].")(fn)
    return decorate


def resolve_format(output_format: str | None) -> str:
    """The ``--format`` default every command shares."""
    return output_format or ("table" if sys.stdout.isatty() else "json")


def top_k_option(what: str):
    """``--top-k``: at least 1, and at most the model's class count (checked once the model is known: exit 2 above it)."""
    return click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help=f"{what} (at most the model's classes).")


def min_confidence_option(what: str):
    """``--min-confidence``: the top probability under which an answer counts as unsure (predict, serve, evaluate)."""
    return click.option("--min-confidence", type=click.FloatRange(0, 1), default=C.MIN_CONFIDENCE, show_default=True,
                        help=f"{what}; 0 never flags.")


def check_top_k(top_k: int, num_classes: int) -> None:
    """``--top-k`` above the model's class count is a usage error (exit 2), on every command alike."""
    if top_k > num_classes:
        raise click.BadParameter(f"{top_k} is more than the model's {num_classes} classes", param_hint="'--top-k'")


def preprocess_options(fn):
    """``--preprocess`` and ``--invert``: how a picture becomes the network's 28x28 input (predict, explain, serve)."""
    fn = click.option("--invert", type=click.Choice(C.INVERT_MODES), default="auto", show_default=True,
                      help="Invert light-background pictures (auto detects).")(fn)
    return click.option("--preprocess", type=click.Choice(["auto", *C.PREPROCESS_MODES]), default="auto", show_default=True,
                        help="How to turn a picture into the network's 28x28 input; auto = as the model's dataset was made.")(fn)


def image_inputs(fn):
    """IMAGE... arguments with ``--recursive`` and ``--files-from`` (predict, explain)."""
    fn = click.option("--files-from", type=click.Path(exists=True, dir_okay=False, allow_dash=True), default=None,
                      help="Read input paths from this file, one per line ('-' for stdin).")(fn)
    fn = click.option("--recursive", "-r", is_flag=True, help="Descend into subdirectories of directory inputs.")(fn)
    return click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True))(fn)


def check_inputs(inputs, files_from) -> None:
    if not inputs and files_from is None:
        raise click.UsageError("give at least one image, directory, '-' (stdin) or --files-from")
    if "-" in inputs and files_from == "-":
        raise click.UsageError("stdin can carry either an image (-) or a list of paths (--files-from -), not both")


_D = C.TrainConfig()


def _default_text(field: str, fmt: str = "{}") -> str:
    """'[default: X]', or '[default: X for mnist, Y for fashion]' when the datasets differ."""
    values = {name: C.DATASET_DEFAULTS[name].get(field, getattr(_D, field)) for name in C.DATASETS}
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


def _merge_freeze(ctx, param, value):
    merged: list[str] = []
    for group in value or ():
        for name in group:
            if name not in merged:
                merged.append(name)
    return tuple(merged) or None


def distribute_options(fn):
    """``--distribute`` and the options that place this process in a strategy (see docs/scaling.md)."""
    for option in reversed([
        click.option("--distribute", type=click.Choice(C.DISTRIBUTE_MODES), default="none", show_default=True,
                     help="Data-parallel training: mirrored over local GPUs (or --devices CPU devices), or multi-worker from "
                          "TF_CONFIG / --workers. --batch-size is the global batch."),
        click.option("--devices", type=click.IntRange(min=1), default=None,
                     help="mirrored: split the CPU into N logical devices, one replica each (testing) [default: $LENET_CPU_DEVICES, else the GPUs]."),
        click.option("--workers", default=None, metavar="HOST:PORT,...",
                     help="multi-worker: every worker's address, in the same order on all workers; builds TF_CONFIG (worker 0 is the chief)."),
        click.option("--task-index", type=click.IntRange(min=0), default=None, help="multi-worker with --workers: this worker's position in --workers."),
        click.option("--worker-timeout", type=click.FloatRange(min=1), default=120, show_default=True,
                     help="multi-worker: seconds to wait for the cluster to form, and for any one collective, before failing."),
    ]):
        fn = option(fn)
    return fn


@cli.command()
@click.option("--dataset", type=DATASET, default="mnist", show_default=True, help=f"What to train on. {DATASET_HELP}")
@click.option("--preprocess", type=click.Choice(["auto", *C.PREPROCESS_MODES]), default=None,
              help="Picture folders: how each picture becomes a 28x28 input, as lenet predict does it: mnist (digit-like: dark or light ink, cropped and centred) or fashion (article-like) [default: auto: mnist, or a named dataset's own].")
@click.option("--preset", type=click.Choice(C.PRESETS), default="default", show_default=True,
              help="'seed' uses the original tutorial's values (Adam 0.01, L1 1e-4, weight decay 1e-4, constant rate).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help=f"Passes over the training split {_default_text('epochs')}. With --resume: the run's new end "
                   f"(its completed epochs to finish now; more to extend it, the schedule stretched to the new end).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help=f"Images per step {_default_text('batch_size')}.")
@click.option("--optimizer", type=click.Choice(C.OPTIMIZERS), default=None, help=f"Optimizer; sgd uses momentum {C.SGD_MOMENTUM} [default: {_D.optimizer}].")
@click.option("--learning-rate", "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help=f"Peak learning rate {_default_text('learning_rate', '{:g}')}.")
@click.option("--schedule", type=click.Choice(C.SCHEDULES), default=None, help=f"Learning-rate schedule [default: {_D.schedule}].")
@click.option("--warmup-epochs", type=click.FloatRange(min=0), default=None, help=f"Linear warm-up before the schedule [default: {_D.warmup_epochs:g}].")
@click.option("--l1", type=click.FloatRange(min=0), default=None, help=f"L1 coefficient on kernels [default: {_D.l1:g}].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None, help=f"Weight decay: coefficient of sum(w^2)/2 on kernels [default: {_D.weight_decay:g}].")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None, help=f"Rate of dropout_1, dropout_2 and dropout_3 {_default_text('dropout', '{:g}')}.")
@click.option("--dense-units", type=click.IntRange(min=1), default=None, help=f"Width of dot_1 and dot_2 [default: {_D.dense_units}].")
@click.option("--augment", type=click.Choice(C.AUGMENTATIONS), default=None,
              help=f"Training augmentation policy (Keras Random* layers, never in the saved model): shift (2 px), flip "
                   f"(horizontal: clothing only), flip-shift, digits (shift, rotate 8 deg, zoom 8 %), clothing (flip, shift, "
                   f"random erasing) {_default_text('augment')}.")
@click.option("--ema", "ema_momentum", type=click.FloatRange(0, 1, max_open=True), default=None,
              help=f"Ship an exponential moving average of the weights with this momentum (e.g. 0.999); 0 = the last weights "
                   f"{_default_text('ema_momentum', '{:g}')}.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=None,
              help=f"Spread this share of each training target over the other classes {_default_text('label_smoothing', '{:g}')}.")
@click.option("--calibrate/--no-calibrate", default=None,
              help="After training, fit a temperature on the validation split and fold it into logits_layer, so the model's "
                   "confidence matches its accuracy; predictions never change [default: on; off with --preset seed].")
@click.option("--precision", type=click.Choice(C.PRECISIONS), default=None,
              help=f"Training arithmetic: float32; bfloat16 (mixed: weights, LRN, logits and loss stay float32, and the model "
                   f"ships in float32); auto (bfloat16 only with native support: AVX512_BF16 or AMX CPUs, or a GPU) "
                   f"{_default_text('precision')}.")
@click.option("--seed", type=int, default=None, help=f"Random seed [default: {_D.seed}].")
@click.option("--validation-size", type=click.IntRange(min=0), default=None, help=f"Training images held out for validation [default: {_D.validation_size}].")
@click.option("--train-limit", type=click.IntRange(min=1), default=None, help="Train on only the first N training images (quick trials).")
@click.option("--init-from", type=click.Path(exists=True, path_type=Path), default=None,
              help="Start from this model's weights (a run directory or .keras file); shapes must match.")
@click.option("--freeze", type=LayerList(), multiple=True, callback=_merge_freeze,
              help=f"Layers that keep their weights and get no penalty: {', '.join(C.WEIGHT_LAYERS)} (comma-separated or repeated).")
@data_dir_option
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run directory to create [default: <runs-dir>/<dataset>-<timestamp>].")
@runs_dir_option
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True, help="Write TensorBoard logs to <run>/logs.")
@click.option("--histograms", is_flag=True, help="Also log weight histograms each epoch.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Continue an interrupted run from its last completed epoch, with its saved config.")
@click.option("--keep-checkpoint", is_flag=True, help="Keep checkpoint.npz once the run has finished (it is deleted then by default).")
@click.option("--deterministic", is_flag=True, help="Use TensorFlow's deterministic ops: with --seed, runs are bitwise reproducible.")
@distribute_options
@click.option("--quiet", "-q", is_flag=True, help="No progress display; print only the result.")
@output_format_option(*C.TRAIN_FORMATS)
@click.pass_context
def train(ctx, dataset, preset, data_dir, output, runs_dir, tensorboard, histograms, resume, keep_checkpoint, deterministic, distribute,
          devices, workers, task_index, worker_timeout, quiet, output_format, **options):
    """Train the LeNet and write a self-describing run directory.

    \b
    Examples:
      lenet train --dataset fashion --data-dir ~/data
      lenet train --dataset mnist --epochs 3 --train-limit 5000 --quiet
      lenet train --preset seed          # the original tutorial's values

    \b
    Warm start: train on MNIST, then fine-tune on Fashion-MNIST with the
    convolutions frozen:
      lenet train --dataset mnist --output runs/mnist-base
      lenet train --dataset fashion --init-from runs/mnist-base --freeze conv_1,conv_2

    \b
    Ctrl-C (or SIGTERM) stops at the next step and keeps the last completed
    epoch's checkpoint (exit 130 / 143); continue with:
      lenet train --resume runs/fashion-20261127-101500

    \b
    Distributed (docs/scaling.md): two local replicas, or one process per host:
      lenet train --distribute mirrored --devices 2
      lenet train --distribute multi-worker --workers h1:2222,h2:2222 --task-index 0
    """
    from lenet_cli.cli.train import run_training

    if devices is not None and distribute != "mirrored":
        raise click.UsageError("--devices needs --distribute mirrored")
    if (workers is not None or task_index is not None) and distribute != "multi-worker":
        raise click.UsageError("--workers and --task-index need --distribute multi-worker")
    if (workers is None) != (task_index is None):
        raise click.UsageError("--workers and --task-index go together")

    if resume is not None:
        given = [name for name in ("dataset", "preset", "output", *options)
                 if name != "epochs" and ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            raise click.UsageError(f"--resume continues with the run's saved config (only --epochs may change); "
                                   f"drop --{given[0].replace('_', '-')}")
        from lenet_cli.model.checkpoint import resumable_config

        try:
            cfg = resumable_config(resume, options["epochs"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--epochs") from None
        output = resume
    else:
        if options.get("init_from") is not None:
            options["init_from"] = str(options["init_from"])
        cfg = C.resolve_config(dataset, preset, **options)
    exit_code = run_training(cfg, data_dir=data_dir, output=output, runs_dir=runs_dir, tensorboard=tensorboard,
                             histograms=histograms, quiet=quiet, output_format=resolve_format(output_format),
                             resume=resume is not None, deterministic=deterministic,
                             distribute=distribute, devices=devices, workers=workers, task_index=task_index,
                             worker_timeout=worker_timeout, keep_checkpoint=keep_checkpoint)
    ctx.exit(exit_code)


@cli.command()
@click.argument("model", required=False, type=click.Path(exists=True, path_type=Path))
@model_option("model_option")
@runs_dir_option
@click.option("--dataset", type=DATASET, default=None, help="Dataset to score on, a name or a path [default: the one the model was trained on].")
@click.option("--split", type=click.Choice(C.SPLITS), default="test", show_default=True, help="Which split to score.")
@data_dir_option
@click.option("--batch-size", type=click.IntRange(min=1), default=C.INFERENCE_BATCH_SIZE, show_default=True, help="Images per inference batch.")
@top_k_option("k of the top-k accuracy")
@output_format_option(*C.EVALUATE_FORMATS)
@click.option("--confusion-png", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the labelled confusion-matrix image here.")
@click.option("--misclassified", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a gallery of the most confident mistakes here (PNG).")
@click.option("--misclassified-count", type=click.IntRange(min=1), default=32, show_default=True, help="How many mistakes the gallery shows.")
@click.option("--reliability-png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the reliability diagram (accuracy against confidence, 15 bins) here.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=None, help="Exit with code 1 when accuracy is below this (a CI gate).")
@min_confidence_option("Report how often `lenet predict` would flag an answer as unsure at this threshold, and the mistakes it catches")
def evaluate(model, model_option, runs_dir, dataset, split, data_dir, batch_size, top_k, output_format, confusion_png, misclassified,
             misclassified_count, reliability_png, min_accuracy, min_confidence):
    """Score a trained model: accuracy, top-k, cross-entropy, calibration, per-class metrics, confusion matrix.

    MODEL (or --model) is a run directory or a model file; without it, the
    latest run (named in <runs-dir>/LATEST, else the newest run holding a
    model.keras).

    \b
    Examples:
      lenet evaluate
      lenet evaluate runs/fashion-20261127-101500 --format json
      lenet evaluate --split validation --confusion-png cm.png --min-accuracy 0.99
    """
    from lenet_cli.cli.evaluate import run_evaluate

    run_evaluate(pick_model(model, model_option), runs_dir, dataset, split, data_dir, batch_size, top_k, resolve_format(output_format), confusion_png, misclassified,
                 misclassified_count, min_accuracy, reliability_png, min_confidence)


class ExportOutputFormat(click.Choice):
    """``--format``'s choices for export; ``--format onnx`` (the spelling before ``--to``) gets a pointer to ``--to``."""

    def convert(self, value, param, ctx):
        if value in (*C.EXPORT_FORMATS, "all"):
            self.fail(f"--format chooses what stdout shows ({', '.join(self.choices)}); the model format is --to {value}", param, ctx)
        return super().convert(value, param, ctx)


@cli.command("export")
@click.argument("model", required=False, type=click.Path(exists=True, path_type=Path))
@model_option("model_option")
@runs_dir_option
@click.option("--to", "export_format", type=click.Choice([*C.EXPORT_FORMATS, "all"]), default=None,
              help="The model format to write; 'all' writes model.keras, saved_model/, model.tflite and model.onnx into the "
                   "--output directory [default: from the --output suffix: .keras, .tflite, .onnx].")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="The file (a directory for savedmodel and all) to write.")
@click.option("--quantize", type=click.Choice(C.QUANTIZE_MODES), default="none", show_default=True,
              help="LiteRT only: int8 weights (dynamic), or int8 weights and activations calibrated on 300 training images (int8).")
@click.option("--dataset", type=DATASET, default=None, help="The model's dataset (a name or a path) when its metadata does not say [default: the one it was trained on].")
@data_dir_option
@click.option("--verify/--no-verify", default=True, show_default=True, help="Compare each export with the Keras model on 1,000 test images before keeping it.")
@click.option("--format", "output_format", type=ExportOutputFormat(["table", "json"]), default=None,
              help="Output on stdout: table, json [default: table in a terminal, else json].")
@click.option("--json", "as_json", is_flag=True, hidden=True)  # the old spelling of --format json
def export(model, model_option, runs_dir, export_format, output, quantize, dataset, data_dir, verify, output_format, as_json):
    """Export a trained model to Keras, SavedModel, LiteRT or ONNX, verified against Keras.

    MODEL (or --model) is a run directory or a .keras file; without it, the
    latest run. Each export is loaded in its own runtime and compared with the
    Keras model on 1,000 test images (float: max |Δprob| <= 1e-4 and the same
    class on 99.9 %; quantized: accuracy drop <= 0.5 points); one that fails
    is not kept. The dataset, class names and preprocessing travel with it, so
    `lenet predict` and `lenet evaluate` take the exported file as MODEL.

    \b
    Examples:
      lenet export --output model.onnx
      lenet export runs/mnist-20261127-101500 --to all --output dist/
      lenet export --to litert --quantize int8 --output model-int8.tflite
      lenet export --to savedmodel --output saved_model --format json
    """
    from lenet_cli.engine.export import format_from_output
    from lenet_cli.cli.export import run_export

    if export_format is None:
        try:
            export_format = format_from_output(output)
        except LenetError as exc:
            raise click.BadParameter(str(exc), param_hint="--output") from None
    if quantize != "none" and export_format not in ("litert", "all"):
        raise click.UsageError(f"--quantize {quantize} applies to LiteRT only; use it with --to litert or --to all")
    output_format = "json" if as_json else resolve_format(output_format)
    run_export(pick_model(model, model_option), export_format, output, quantize, dataset, runs_dir, data_dir, verify, output_format)


@cli.command()
@image_inputs
@model_option()
@runs_dir_option
@preprocess_options
@top_k_option("How many classes to list per image")
@min_confidence_option("Flag answers whose confidence is below this (low_confidence in records, '?' in the table)")
@output_format_option(*C.PREDICT_FORMATS)
@click.option("--save-preprocessed", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the exact 28x28 inputs the network saw into this folder.")
@click.option("--batch-size", type=click.IntRange(min=1), default=512, show_default=True, help="Images decoded and predicted per batch.")
@click.pass_context
def predict(ctx, inputs, recursive, files_from, model, runs_dir, preprocess, invert, top_k, min_confidence, output_format, save_preprocessed,
            batch_size):
    """Classify image files (PNG, JPEG, BMP, GIF, TIFF, WebP), directories or stdin.

    Pictures are preprocessed the way the model's dataset was made (MNIST:
    white on black, the digit fitted into 20x20 and centred by mass;
    Fashion-MNIST: the article inverted and fitted to 28x28), so photos and
    drawings of any size and background work. An answer whose confidence is
    under --min-confidence is flagged as unsure (how often that happens on
    the test split, and how many mistakes it catches: `lenet evaluate`).
    Exit code 1 when any input failed (the others are still predicted).

    \b
    Examples:
      lenet predict digit.png photo.jpg
      lenet predict --model runs/mnist-20261127-101500 scans/ --recursive --format jsonl
      cat digit.png | lenet predict - --format json
      find . -name '*.png' | lenet predict --files-from - --format tsv > predictions.tsv
    """
    from lenet_cli.cli.predict import run_predict

    check_inputs(inputs, files_from)
    ctx.exit(run_predict(inputs, model, runs_dir, recursive, files_from, preprocess, invert, top_k, resolve_format(output_format),
                         save_preprocessed, batch_size, min_confidence))


runs_format_option = output_format_option("table", "json", "jsonl", "csv")


def _runs_parent_option(ctx, name, value):
    """A ``lenet runs`` option given before the subcommand (``lenet runs --runs-dir D show X``) counts too."""
    return value if value is not None or ctx.parent is None else ctx.parent.params.get(name)


@cli.group("runs", invoke_without_command=True)
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_group(ctx, runs_dir, output_format):
    """List the runs folder: status, epochs, accuracy, wall time, size; show or compare runs.

    Reads only each run's small JSON files (config.json, metrics.json,
    history.json, RUNNING), so hundreds of runs list in well under a second.
    Status is finished, interrupted after k/n epochs (resume it with
    `lenet train --resume RUN`), or running.

    \b
    Examples:
      lenet runs
      lenet runs --format csv > runs.csv
      lenet runs show mnist-20261127-101500
      lenet runs compare runs/mnist-base runs/fashion-20261127-101500
    """
    if ctx.invoked_subcommand is not None:
        return
    from lenet_cli.store import runs as run_files
    from lenet_cli.engine.runs import list_runs
    from lenet_cli.cli.runs import default_format, print_run_list

    print_run_list(list_runs(runs_dir), default_format(output_format), run_files.runs_root(runs_dir))


@runs_group.command("show")
@click.argument("run")
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_show(ctx, run, runs_dir, output_format):
    """One run in detail: status, config, metrics and every file with its size.

    RUN is a run directory, or a run's name under the runs folder.

    \b
    Example:
      lenet runs show mnist-20261127-101500 --format json
    """
    from lenet_cli.engine.runs import show_run
    from lenet_cli.cli.runs import default_format, print_run_details

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    print_run_details(show_run(run, runs_dir), default_format(_runs_parent_option(ctx, "output_format", output_format)))


@runs_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@runs_dir_option
@runs_format_option
@click.option("--all", "include_same", is_flag=True, help="Also list config values the two runs share.")
@click.pass_context
def runs_compare(ctx, run_a, run_b, runs_dir, output_format, include_same):
    """Two runs side by side: the config values that differ, and every metric.

    RUN_A and RUN_B are run directories or names under the runs folder.

    \b
    Example:
      lenet runs compare mnist-20261127-101500 mnist-20261128-093000
    """
    from lenet_cli.engine.runs import compare_runs
    from lenet_cli.cli.runs import default_format, print_comparison

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    comparison = compare_runs(run_a, run_b, runs_dir, include_same=include_same)
    print_comparison(comparison, default_format(_runs_parent_option(ctx, "output_format", output_format)), include_same)


# --- lenet serve ---------------------------------------------------------------------------------

from lenet_cli.core.serve_settings import ServeSettings  # noqa: E402  (import-light: defaults only)

_SERVE = ServeSettings()


class ByteSize(click.ParamType):
    """A size in bytes: ``8388608``, ``512k``, ``8M`` or ``8MiB`` (k/M/G are powers of 1024)."""

    name = "BYTES"
    UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        digits = text.rstrip("abgikm")
        try:
            size = int(float(digits) * self.UNITS[text[len(digits):]])
        except (ValueError, KeyError):
            self.fail(f"{value!r} is not a size; write e.g. 8388608, 512k or 8M", param, ctx)
        if size < 1:
            self.fail(f"{value!r} must be at least 1 byte", param, ctx)
        return size


@cli.command()
@click.argument("model", required=False, type=click.Path(exists=True, path_type=Path))
@model_option("model_option")
@runs_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on (0: any free port).")
@preprocess_options
@top_k_option("Classes per image; a request's ?top_k= overrides it")
@min_confidence_option("Flag answers whose confidence is below this (low_confidence); a request's ?min_confidence= overrides it")
@click.option("--batching/--no-batching", default=_SERVE.batching, show_default=True,
              help="Predict requests that arrive together in one model call.")
@click.option("--max-batch", type=click.IntRange(min=1), default=_SERVE.max_batch, show_default=True, help="Most images in one model call.")
@click.option("--batch-timeout", type=click.FloatRange(min=0), default=_SERVE.batch_timeout_ms, show_default=True,
              help="Milliseconds a batch may wait for requests already being read or decoded (never when none are).")
@click.option("--max-bytes", type=ByteSize(), default=_SERVE.max_bytes, show_default=True, help="Largest request body accepted (413 above).")
@click.option("--max-images", type=click.IntRange(min=1), default=_SERVE.max_images, show_default=True, help="Most images in one request (413 above).")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One line per request on stderr.")
def serve(model, model_option, runs_dir, host, port, preprocess, invert, top_k, min_confidence, batching, max_batch, batch_timeout, max_bytes,
          max_images, access_log):
    """Serve a model over HTTP: a drawing page, a JSON API and TensorFlow Serving's REST API.

    MODEL is a run directory or a model file (.keras, .onnx, .tflite, a
    SavedModel directory); without it, the latest run. Needs the serve extra:
    pip install 'lenet-cli[serve]'. Endpoints: GET / (the drawing page),
    POST /predict, POST /v1/models/lenet:predict, GET /healthz, /readyz,
    /metadata, /metrics, /docs. Ctrl-C or SIGTERM drains the requests in
    flight and exits 0.

    \b
    Examples:
      lenet serve                                  # the latest run, on http://127.0.0.1:8000/
      lenet serve model.onnx --port 8080           # no TensorFlow: ready in about a second
      curl -F file=@digit.png http://127.0.0.1:8000/predict
    """
    from lenet_cli.serve.runner import run_serve

    settings = ServeSettings(batching=batching, max_batch=max_batch, batch_timeout_ms=batch_timeout, max_bytes=max_bytes,
                             max_images=max_images, preprocess=preprocess, invert=invert, top_k=top_k,
                             min_confidence=min_confidence)
    ctx = click.get_current_context()
    ctx.exit(run_serve(pick_model(model, model_option), runs_dir, host, port, settings, access_log, lambda line: click.echo(line, err=True)))


# --- lenet explain -------------------------------------------------------------------------------

@cli.command()
@image_inputs
@model_option()
@runs_dir_option
@preprocess_options
@top_k_option("How many classes the sheet and the record list")
@click.option("--method", type=click.Choice(["integrated-gradients", "occlusion"]), default=None,
              help="Attribution method [default: integrated-gradients for .keras models; .onnx, .tflite and SavedModels need occlusion].")
@click.option("--target", default=None, metavar="CLASS",
              help="Explain this class (a name or an index) instead of the predicted one.")
@click.option("--steps", type=click.IntRange(1, 1000), default=50, show_default=True, help="Integrated Gradients: steps along the path from the black baseline.")
@click.option("--output-dir", "-o", type=click.Path(path_type=Path), default=Path("explanations"), show_default=True,
              help="Folder for the PNG sheets (one per image, named after it).")
@output_format_option("table", "json", "jsonl")
@click.pass_context
def explain(ctx, inputs, recursive, files_from, model, runs_dir, preprocess, invert, top_k, method, target, steps, output_dir, output_format):
    """Show what the network saw and which pixels made it answer: one PNG sheet per image.

    Each sheet shows the picture as given, the 28x28 input after
    preprocessing, the top-k classes, an attribution map over the input (red:
    evidence for the class, blue: against it), the conv_1 and conv_2 feature
    maps and the conv_1 filters. Integrated Gradients (Sundararajan et al.
    2017) needs a .keras model; occlusion sensitivity (Zeiler and Fergus
    2014) works with every model, without TensorFlow for .onnx and .tflite.
    Inputs and model selection as in `lenet predict`; exit code 1 when any
    input failed (the others are still explained).

    \b
    Examples:
      lenet explain digit.png                         # the latest run; writes explanations/digit.png
      lenet explain scans/ --model runs/mnist-20261127-101500 --format jsonl
      lenet explain shirt.jpg --target Pullover --output-dir why/
      lenet explain --model model.onnx --method occlusion digit.png
    """
    from lenet_cli.cli.explain import run_explain

    check_inputs(inputs, files_from)
    ctx.exit(run_explain(inputs, model, runs_dir, recursive, files_from, preprocess, invert, top_k, method, target, steps,
                         output_dir, resolve_format(output_format)))


FAST_EXIT_COMMANDS = ("predict", "evaluate", "explain")  # commands whose work is all on disk and stdout when they return


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    TensorFlow's interpreter shutdown costs 1.3-1.7 s on a 2-core machine (its
    thread pools and module teardown), longer than a whole ``lenet predict``
    with an ``.onnx`` model. ``predict`` and ``evaluate`` have written and
    flushed everything when they return, so once TensorFlow is loaded they leave
    with ``os._exit`` after flushing stdout and stderr. Only here, in the real
    process entry point: in-process callers (tests, ``cli.main``) exit normally.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="lenet")
    except SystemExit as exc:
        command = next((a for a in args if not a.startswith("-")), None)
        if command in FAST_EXIT_COMMANDS and "tensorflow" in sys.modules:
            _exit_now(exc.code)
        raise


def _exit_now(code) -> None:
    """Flush what the user is owed, then end the process without interpreter teardown."""
    status = 0 if code is None else code if isinstance(code, int) else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
