"""``lenet train``'s presentation: load data, run the worker, print the result, handle signals."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

import click

from lenet_cli.cli.options import (
    DATASET,
    DATASET_HELP,
    TRAIN_DEFAULTS,
    LayerList,
    data_dir_option,
    default_text,
    distribute_options,
    merge_freeze,
    mlflow_options,
    output_format_option,
    resolve_format,
    runs_dir_option,
)
from lenet_cli.core import config as C
from lenet_cli.core.errors import LenetError
from lenet_cli.core.units import plural
from lenet_cli.store import runs


class StartupWatchdog:
    """End the process (exit code 1) when a multi-worker cluster is not joined within ``seconds``.

    TensorFlow's cluster start-up blocks in C++ with no timeout of its own, and
    while it waits it may hold the GIL, so no Python exception or thread can
    interrupt it. Two guards: a thread that prints a clear message and calls
    ``os._exit(1)`` (when the GIL is free, e.g. in the first collectives), and
    ``faulthandler.dump_traceback_later`` two seconds later, which runs in C and
    ends the process with a ``Timeout`` stack dump when the GIL is held.
    """

    def __init__(self, seconds: float, what: str):
        self.seconds = seconds
        self.what = what
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        if not self._done.wait(self.seconds):
            sys.stderr.write(
                f"Error: {self.what} did not finish within {self.seconds:g} s (--worker-timeout); "
                "check that every worker is running and reachable at the addresses in TF_CONFIG / --workers\n"
            )
            sys.stderr.flush()
            os._exit(1)

    @classmethod
    def start(cls, seconds: float, what: str) -> StartupWatchdog:
        watchdog = cls(seconds, what)
        sys.stderr.write(f"waiting up to {seconds:g} s for every worker to join (--worker-timeout)\n")
        faulthandler.dump_traceback_later(seconds + 2, exit=True)
        watchdog._thread.start()
        return watchdog

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        self._done.set()


def _lost_worker_message(exc, distribution) -> str:
    """A failed collective in one line: which worker was lost (when TensorFlow's error names it) and how to go on."""
    import re

    tasks = sorted(
        {int(t) for t in re.findall(r"/job:\w+/replica:\d+/task:(\d+)", str(exc))} - {distribution.worker_index}
    )
    lost = (
        f"lost worker {', '.join(map(str, tasks))} (it stopped, failed or is unreachable)"
        if tasks
        else "another worker stopped, failed or is unreachable"
    )
    return (
        f"worker {distribution.worker_index}: a collective failed ({type(exc).__name__}): {lost}; each collective waits at "
        f"most --worker-timeout {distribution.worker_timeout:g} s. The last completed epoch's checkpoint is in the chief's run "
        f"directory; restart every worker with --resume"
    )


def _interrupted_message(exc, run_dir, data_dir, distribution) -> str:
    """One line: what stopped training, what is kept, and the command that continues it."""
    name = signal.Signals(exc.signum).name
    if not exc.checkpoint_kept:  # no epoch completed: nothing resumable was kept
        kept = "the run directory is removed" if exc.run_dir_removed else f"no checkpoint is kept in {run_dir}"
        return f"{name}: stopped before the first epoch finished, so there is nothing to resume; {kept}"
    epochs = plural(exc.completed_epochs, "completed epoch")
    if distribution is None or distribution.mode != "multi-worker":
        return (
            f"{name}: stopped after {epochs}; checkpoint kept in {run_dir}. "
            f"Resume with: lenet train --resume {run_dir}" + (f" --data-dir {data_dir}" if data_dir else "")
        )
    cause = f"{name} on another worker" if exc.by_peer else name
    where = run_dir if distribution.is_chief else "<the chief's run directory>"
    return (
        f"worker {distribution.worker_index}: {cause}: every worker stopped after {epochs}; the chief keeps the checkpoint. "
        f"Resume by restarting every worker with: lenet train --resume {where} (and the same --distribute options)"
    )


def print_result_table(metrics: dict, run_dir) -> None:
    """The finished run for people: where it is and how it scored (one row a line, greppable in a pipe)."""
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    table = Table(show_header=False, box=None)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("run", str(run_dir))
    table.add_row(
        "test accuracy", f"{metrics['test_accuracy']:.4f} on {metrics['test_count']:,} {metrics['dataset']} test images"
    )
    if metrics.get("val_accuracy") is not None:
        table.add_row("validation accuracy", f"{metrics['val_accuracy']:.4f} (best {metrics['best_val_accuracy']:.4f})")
    else:
        table.add_row("validation accuracy", "none: no validation split (--validation-size 0)")
    calibrated = metrics.get("calibration") or {}
    if calibrated.get("temperature") is not None:
        table.add_row(
            "calibration",
            f"temperature {calibrated['temperature']:.3f}: validation ECE {calibrated['val_ece_before']:.2%} "
            f"-> {calibrated['val_ece_after']:.2%}",
        )
    elif calibrated.get("skipped"):
        table.add_row("calibration", f"skipped: {calibrated['skipped']}")
    if "as_answered" in calibrated:
        answered = calibrated["as_answered"]
        table.add_row("answers", f"{answered['views']}: validation ECE {answered['val_ece']:.2%}")
    fast = metrics.get(runs.FAST_MODEL_KEY)
    if fast is not None and fast["ok"]:
        table.add_row(
            "fast model",
            f"{fast['file']} (no TensorFlow needed): largest probability difference from model.keras "
            f"{fast['max_abs_diff']:.1e}, same class on {fast['argmax_agreement']:.2%} of {fast['images']:,} "
            f"{fast['compared_on']} images",
        )
    elif fast is not None:
        table.add_row("fast model", f"none ({fast['error']}): commands answer with model.keras")
    table.add_row("train time", f"{metrics['train_seconds']:.1f} s")
    stdout_console().print(table)


def _is_op_error(exc: BaseException) -> bool:
    import tensorflow as tf

    return isinstance(exc, tf.errors.OpError)


class StopOnSignal:
    """SIGINT / SIGTERM ask training to stop at the next step; a second Ctrl-C aborts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __call__(self) -> int | None:
        return self.signum


def _header(plan) -> list[str]:
    """The lines above the progress display: data, recipe, weights, strategy and run directory."""
    cfg, data, distribution = plan.config, plan.data, plan.distribution
    header = [
        f"{'resuming' if plan.resume else 'training'} {cfg.dataset}: {len(data.train):,} train / {len(data.validation):,} validation images from {data.source}",
        f"recipe: preset {cfg.preset}, {cfg.optimizer} lr {cfg.learning_rate:g} ({cfg.schedule}), batch {cfg.batch_size}, "
        f"{plural(cfg.epochs, 'epoch')}, l1 {cfg.l1:g}, weight decay {cfg.weight_decay:g}, dropout {cfg.dropout:g}, augment {cfg.augment}",
    ]
    if cfg.init_from:
        header.append(f"weights from {cfg.init_from}")
    if cfg.freeze:
        header.append(f"frozen layers: {', '.join(cfg.freeze)}")
    if distribution is not None:
        share = cfg.batch_size / distribution.num_replicas
        header.append(f"{distribution.describe()}; global batch {cfg.batch_size}, {share:g} per replica")
    header.append(f"run directory: {plan.run_dir}")
    return header


def _say(console, message: str) -> None:
    """A step or a note for people on stderr; a warning shows even under ``--quiet``."""
    if console.quiet and message.startswith("warning:"):
        click.echo(message, err=True)
    else:
        console.print(message, highlight=False, soft_wrap=True)


def run_training(request, quiet: bool, output_format: str) -> int:
    """Train with a progress display on stderr, print the metrics on stdout; return the exit code."""
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.engine.interrupted import TrainingInterrupted
    from lenet_cli.engine.train import train
    from lenet_cli.store.atomic import WriteFailed

    console = stderr_console(quiet=quiet)
    shown: dict = {}

    stop = StopOnSignal()
    signals = contextlib.ExitStack()

    def progress_for(plan) -> list:
        # Ctrl-C / SIGTERM stop at the next step from here on: after the strategy is built, since TensorFlow's
        # multi-worker start-up installs a SIGTERM handler of its own (before this, they end the process as usual)
        from lenet_cli.cli.progress import (
            RichProgress,
        )  # a Keras callback: imported once TensorFlow runs, after the inputs are checked

        signals.enter_context(stop)
        steps = math.ceil(len(plan.data.train) / plan.config.batch_size)
        shown["plan"] = plan
        shown["progress"] = RichProgress(console, plan.config.epochs, steps, header=_header(plan))
        return [shown["progress"]]

    def end_progress() -> None:
        if "progress" in shown:
            shown["progress"].on_train_end()

    try:
        with signals:
            outcome = train(
                request,
                callbacks_for=progress_for,
                log=lambda m: _say(console, m),
                should_stop=stop,
                start_watchdog=StartupWatchdog.start,
                status=console.status,
            )
    except WriteFailed as exc:
        run_dir = shown["plan"].run_dir if "plan" in shown else None
        if run_dir is None or not (Path(run_dir) / runs.CHECKPOINT_FILE).is_file():
            raise
        raise LenetError(
            f"{exc}; the last completed epoch's checkpoint is kept: once there is space, continue with "
            f"lenet train --resume {run_dir}"
        ) from None
    except TrainingInterrupted as exc:
        end_progress()
        plan = shown["plan"]
        click.echo(_interrupted_message(exc, plan.run_dir, request.data_dir, plan.distribution), err=True)
        return 128 + exc.signum
    except Exception as exc:
        distribution = shown["plan"].distribution if "plan" in shown else None
        if distribution is None or distribution.mode != "multi-worker" or not _is_op_error(exc):
            raise
        raise LenetError(_lost_worker_message(exc, distribution)) from None
    finally:
        end_progress()
    distribution, run_dir = outcome.distribution, outcome.run_dir
    if distribution is not None:
        console.print(
            f"worker {distribution.worker_index}: final weights sha256 {outcome.weights_sha256}",
            highlight=False,
            soft_wrap=True,
        )
        if not outcome.writes_the_run:
            click.echo(f"worker {distribution.worker_index} done (the chief writes the run)")
            return 0
    metrics = outcome.metrics
    if output_format == "json":
        click.echo(json.dumps({**metrics, "run_dir": str(run_dir)}, indent=2))
    else:
        print_result_table(metrics, run_dir)
    if request.tensorboard:
        console.print(f"see it in TensorBoard: tensorboard --logdir {Path(run_dir) / runs.LOGS_DIR}", highlight=False)
    return 0


def apply_recipe(ctx, param, path):
    """``--recipe FILE``: the file's options become this command's defaults, so any option given on the line still wins."""
    if path is None:
        return None
    from lenet_cli.core.errors import BadValue
    from lenet_cli.core.tune_space import option_name, read_recipe, unknown_recipe_key

    try:
        recipe = read_recipe(path)
    except BadValue as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    names = {
        opt.lstrip("-"): p.name
        for p in ctx.command.params
        if isinstance(p, click.Option)
        for opt in p.opts
        if opt.startswith("--")
    }
    names.update({p.name: p.name for p in ctx.command.params if p.name not in ("recipe", "resume")})
    unknown = [key for key in recipe if names.get(option_name(key)) in (None, "recipe", "resume")]
    if unknown:
        known = sorted(name for name, dest in names.items() if "_" not in name and dest not in ("recipe", "resume"))
        raise click.BadParameter(f"{str(path)!r} {unknown_recipe_key(unknown[0], known)}", ctx=ctx, param=param)
    ctx.default_map = {**(ctx.default_map or {}), **{names[option_name(key)]: value for key, value in recipe.items()}}
    return path


@click.command()
@click.option(
    "--recipe",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    is_eager=True,
    callback=apply_recipe,
    help="Start from a recipe file: lenet tune's <study>-best.json, or a table of these options' values in TOML "
    '(recipe.toml: dropout = 0.3) or JSON ({"dropout": 0.3}); an option given here overrides it.',
)
@click.option("--dataset", type=DATASET, default="mnist", show_default=True, help=f"What to train on. {DATASET_HELP}")
@click.option(
    "--preprocess",
    type=click.Choice(["auto", *C.PREPROCESS_MODES]),
    default=None,
    help="Picture folders: how each picture becomes a 28x28 input, as lenet predict does it: mnist (digit-like: dark or "
    "light ink, cropped and centred) or fashion (article-like) [default: auto: mnist, or a named dataset's own].",
)
@click.option(
    "--preset",
    type=click.Choice(C.PRESETS),
    default="default",
    show_default=True,
    help="'seed' uses the original tutorial's values (Adam 0.01, L1 1e-4, weight decay 1e-4, constant rate).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help=f"Passes over the training split {default_text('epochs')}. With --resume: the run's new end "
    f"(its completed epochs to finish now; more to extend it, the schedule stretched to the new end).",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help=f"Images per step {default_text('batch_size')}."
)
@click.option(
    "--optimizer",
    type=click.Choice(C.OPTIMIZERS),
    default=None,
    help=f"Optimizer; sgd uses momentum {C.SGD_MOMENTUM} [default: {TRAIN_DEFAULTS.optimizer}].",
)
@click.option(
    "--learning-rate",
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Peak learning rate {default_text('learning_rate', '{:g}')}.",
)
@click.option(
    "--schedule",
    type=click.Choice(C.SCHEDULES),
    default=None,
    help=f"Learning-rate schedule [default: {TRAIN_DEFAULTS.schedule}].",
)
@click.option(
    "--warmup-epochs",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Linear warm-up before the schedule [default: {TRAIN_DEFAULTS.warmup_epochs:g}].",
)
@click.option(
    "--l1",
    type=click.FloatRange(min=0),
    default=None,
    help=f"L1 coefficient on kernels [default: {TRAIN_DEFAULTS.l1:g}].",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Weight decay: coefficient of sum(w^2)/2 on kernels [default: {TRAIN_DEFAULTS.weight_decay:g}].",
)
@click.option(
    "--dropout",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help=f"Rate of dropout_1, dropout_2 and dropout_3 {default_text('dropout', '{:g}')}.",
)
@click.option(
    "--dense-units",
    type=click.IntRange(min=1),
    default=None,
    help=f"Width of dot_1 and dot_2 [default: {TRAIN_DEFAULTS.dense_units}].",
)
@click.option(
    "--augment",
    type=click.Choice(C.AUGMENTATIONS),
    default=None,
    help=f"Training augmentation policy (Keras Random* layers, never in the saved model): shift (2 px), flip "
    f"(horizontal: clothing only), flip-shift, digits (shift, rotate 8 deg, zoom 8 %), clothing (flip, shift, "
    f"random erasing), writers (elastic, pen width, rotation, low resolution, shift), writers-tones (writers "
    f"and a tone curve), tones (flip, "
    f"tone curve: gamma 0.4-2.5, contrast) {default_text('augment')}.",
)
@click.option(
    "--ema",
    "ema_momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help=f"Ship an exponential moving average of the weights with this momentum (e.g. 0.999); 0 = the last weights "
    f"{default_text('ema_momentum', '{:g}')}.",
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help=f"Spread this share of each training target over the other classes {default_text('label_smoothing', '{:g}')}.",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=None,
    help="After training, fit a temperature on the validation split and fold it into logits_layer, so the model's "
    "confidence matches its accuracy; predictions never change [default: on; off with --preset seed].",
)
@click.option(
    "--test-time-flip/--no-test-time-flip",
    default=None,
    help="Answer with the mean of each picture's and its mirror image's probabilities (in predict, evaluate, serve "
    "and benchmark; exports stay one view): for classes a left-right flip keeps, such as clothes "
    "[default: on for fashion, off otherwise].",
)
@click.option(
    "--precision",
    type=click.Choice(C.PRECISIONS),
    default=None,
    help=f"Training arithmetic: float32; bfloat16 (mixed: weights, LRN, logits and loss stay float32, and the model "
    f"ships in float32); auto (bfloat16 only with native support: AVX512_BF16 or AMX CPUs, or a GPU) "
    f"{default_text('precision')}.",
)
@click.option("--seed", type=int, default=None, help=f"Random seed [default: {TRAIN_DEFAULTS.seed}].")
@click.option(
    "--validation-size",
    type=click.IntRange(min=0),
    default=None,
    help=f"Training images held out for validation [default: {TRAIN_DEFAULTS.validation_size}].",
)
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train on only the first N training images (quick trials).",
)
@click.option(
    "--init-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Start from this model's weights (a run directory, a run's name or a .keras file); shapes must match.",
)
@click.option(
    "--freeze",
    type=LayerList(),
    multiple=True,
    callback=merge_freeze,
    help=f"Layers that keep their weights and get no penalty: {', '.join(C.WEIGHT_LAYERS)} (comma-separated or repeated).",
)
@data_dir_option
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory to create [default: <runs-dir>/<dataset>-<timestamp>].",
)
@runs_dir_option
@click.option(
    "--tensorboard/--no-tensorboard", default=True, show_default=True, help="Write TensorBoard logs to <run>/logs."
)
@click.option("--histograms", is_flag=True, help="Also log weight histograms each epoch.")
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Continue an interrupted run (its folder or its name) from its last completed epoch, with its saved config.",
)
@click.option(
    "--keep-checkpoint",
    is_flag=True,
    help="Keep checkpoint.npz once the run has finished (it is deleted then by default).",
)
@click.option(
    "--deterministic",
    is_flag=True,
    help="Use TensorFlow's deterministic ops: with --seed, runs are bitwise reproducible.",
)
@distribute_options
@mlflow_options(register=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress display; print only the result.")
@output_format_option(*C.TRAIN_FORMATS)
@click.pass_context
def train(
    ctx,
    recipe,
    dataset,
    preset,
    data_dir,
    output,
    runs_dir,
    tensorboard,
    histograms,
    resume,
    keep_checkpoint,
    deterministic,
    distribute,
    devices,
    workers,
    task_index,
    worker_timeout,
    mlflow,
    mlflow_experiment,
    mlflow_register,
    quiet,
    output_format,
    **options,
):
    """Train the LeNet and write a self-describing run directory.

    \b
    Examples:
      lenet train --dataset fashion --data-dir ~/data
      lenet train --dataset mnist --epochs 3 --train-limit 5000 --quiet
      lenet train --preset seed          # the original tutorial's values
      lenet train --recipe runs/tune/fashion-best.json   # lenet tune's best
      lenet train --mlflow http://127.0.0.1:5000         # tracked in MLflow

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
    Distributed (docs/guides/distributed.md): two local replicas, or one process per host:
      lenet train --distribute mirrored --devices 2
      lenet train --distribute multi-worker --workers h1:2222,h2:2222 --task-index 0
    """
    if resume is not None and recipe is not None:
        raise click.UsageError("--resume continues with the run's saved config; drop --recipe")
    from lenet_cli.engine.train import TrainRequest

    fields = dict(
        data_dir=data_dir,
        output=output,
        runs_dir=runs_dir,
        tensorboard=tensorboard,
        histograms=histograms,
        deterministic=deterministic,
        distribute=distribute,
        devices=devices,
        workers=workers,
        task_index=task_index,
        worker_timeout=worker_timeout,
        keep_checkpoint=keep_checkpoint,
        mlflow=mlflow,
        mlflow_experiment=mlflow_experiment,
        mlflow_register=mlflow_register,
    )
    if resume is not None:
        from lenet_cli.engine.resume import resume_request

        recipe_given = {
            name: value
            for name, value in {"dataset": dataset, "preset": preset, **options}.items()
            if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
        }  # the engine refuses each but epochs
        request = resume_request(resume, recipe_given, **fields)
    else:
        if options.get("init_from") is not None:
            options["init_from"] = str(options["init_from"])
        request = TrainRequest(C.resolve_config(dataset, preset, **options), **fields)
    ctx.exit(run_training(request, quiet=quiet, output_format=resolve_format(output_format)))
