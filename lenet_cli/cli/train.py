"""``lenet train``: the command, and the run it drives with a progress display, the result, and signal handling.

The command builds the engine's request (or, with ``--resume``, asks the
engine for the run's own) and hands it to :func:`run_training`, which calls
:func:`lenet_cli.engine.train.train` and presents what comes back. The options
are declared in :mod:`lenet_cli.cli.train_options`, the text people read is
made in :mod:`lenet_cli.cli.train_report`, and stopping on a signal lives in
:mod:`lenet_cli.cli.signals`.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import click

from lenet_cli.cli.options import distribute_options, mlflow_options, output_format_option, resolve_format
from lenet_cli.cli.signals import StartupWatchdog, StopOnSignal
from lenet_cli.cli.train_options import recipe_options, run_options
from lenet_cli.cli.train_report import interrupted_message, lost_worker_message, print_result_table, progress_header
from lenet_cli.core import config as C
from lenet_cli.core.errors import LenetError
from lenet_cli.store import runs


def _is_op_error(exc: BaseException) -> bool:
    import tensorflow as tf

    return isinstance(exc, tf.errors.OpError)


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
        shown["progress"] = RichProgress(console, plan.config.epochs, steps, header=progress_header(plan))
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
        click.echo(interrupted_message(exc, plan.run_dir, request.data_dir, plan.distribution), err=True)
        return 128 + exc.signum
    except Exception as exc:
        distribution = shown["plan"].distribution if "plan" in shown else None
        if distribution is None or distribution.mode != "multi-worker" or not _is_op_error(exc):
            raise
        raise LenetError(lost_worker_message(exc, distribution)) from None
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


@click.command()
@recipe_options
@run_options
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
