"""``lenet train``'s presentation: load data, run the worker, print the result, handle signals."""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import click

from lenet_cli.store import runs
from lenet_cli.core.config import TrainConfig
from lenet_cli.cli.console import plural
from lenet_cli.core.errors import LenetError

SKIPPED_FILE = "skipped_pictures.tsv"  # a picture folder's unreadable or blank pictures: path, tab, why


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
            sys.stderr.write(f"Error: {self.what} did not finish within {self.seconds:g} s (--worker-timeout); "
                             "check that every worker is running and reachable at the addresses in TF_CONFIG / --workers\n")
            sys.stderr.flush()
            os._exit(1)

    @classmethod
    def start(cls, seconds: float, what: str) -> "StartupWatchdog":
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

    tasks = sorted({int(t) for t in re.findall(r"/job:\w+/replica:\d+/task:(\d+)", str(exc))} - {distribution.worker_index})
    lost = f"lost worker {', '.join(map(str, tasks))} (it stopped, failed or is unreachable)" if tasks else \
        "another worker stopped, failed or is unreachable"
    return (f"worker {distribution.worker_index}: a collective failed ({type(exc).__name__}): {lost}; each collective waits at "
            f"most --worker-timeout {distribution.worker_timeout:g} s. The last completed epoch's checkpoint is in the chief's run "
            f"directory; restart every worker with --resume")


def _interrupted_message(exc, run_dir, data_dir, distribution) -> str:
    """One line: what stopped training, what is kept, and the command that continues it."""
    name = signal.Signals(exc.signum).name
    if not exc.checkpoint_kept:  # no epoch completed: nothing resumable was kept
        kept = "the run directory is removed" if exc.run_dir_removed else f"no checkpoint is kept in {run_dir}"
        return f"{name}: stopped before the first epoch finished, so there is nothing to resume; {kept}"
    epochs = plural(exc.completed_epochs, "completed epoch")
    if distribution is None or distribution.mode != "multi-worker":
        return (f"{name}: stopped after {epochs}; checkpoint kept in {run_dir}. "
                f"Resume with: lenet train --resume {run_dir}" + (f" --data-dir {data_dir}" if data_dir else ""))
    cause = f"{name} on another worker" if exc.by_peer else name
    where = run_dir if distribution.is_chief else "<the chief's run directory>"
    return (f"worker {distribution.worker_index}: {cause}: every worker stopped after {epochs}; the chief keeps the checkpoint. "
            f"Resume by restarting every worker with: lenet train --resume {where} (and the same --distribute options)")


def print_result_table(metrics: dict, run_dir) -> None:
    """The finished run for people: where it is and how it scored (one row a line, greppable in a pipe)."""
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    table = Table(show_header=False, box=None)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("run", str(run_dir))
    table.add_row("test accuracy", f"{metrics['test_accuracy']:.4f} on {metrics['test_count']:,} {metrics['dataset']} test images")
    if metrics.get("val_accuracy") is not None:
        table.add_row("validation accuracy", f"{metrics['val_accuracy']:.4f} (best {metrics['best_val_accuracy']:.4f})")
    else:
        table.add_row("validation accuracy", "none: no validation split (--validation-size 0)")
    calibrated = metrics.get("calibration") or {}
    if calibrated.get("temperature") is not None:
        table.add_row("calibration", f"temperature {calibrated['temperature']:.3f}: validation ECE {calibrated['val_ece_before']:.2%} "
                                     f"-> {calibrated['val_ece_after']:.2%}")
    elif calibrated.get("skipped"):
        table.add_row("calibration", f"skipped: {calibrated['skipped']}")
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


def run_training(cfg: TrainConfig, data_dir, output, runs_dir, tensorboard: bool, histograms: bool, quiet: bool,
                 output_format: str, resume: bool = False, deterministic: bool = False, distribute: str = "none",
                 devices: int | None = None, workers: str | None = None, task_index: int | None = None,
                 worker_timeout: float = 120, keep_checkpoint: bool = False) -> int:
    """Load the dataset, train with a progress display on stderr, print the metrics on stdout; return the exit code.

    Under ``--distribute multi-worker`` only the chief writes the run directory;
    the other workers train in a temporary directory that is removed at the end.
    """
    from lenet_cli.cli.console import stderr_console

    console = stderr_console(quiet=quiet)
    if not resume:
        runs.check_output_available(output)
    runs.check_writable(runs.runs_root(runs_dir), "the runs folder")  # LATEST goes there
    if output is not None:
        runs.check_writable(output, "the run directory" if resume else "--output")
    from lenet_cli.data.idx import load_dataset

    if resume:
        data_dir = runs.remembered_data_dir(data_dir, cfg.to_json_dict(), cfg.dataset)
    previous_fingerprint = cfg.data_fingerprint
    if cfg.preprocess == "auto":
        cfg = dataclasses.replace(cfg, preprocess=None)
    data = load_dataset(cfg.dataset, data_dir, validation_size=cfg.validation_size, train_limit=cfg.train_limit,
                        log=lambda m: console.print(m, highlight=False), preprocess=cfg.preprocess)
    cfg = dataclasses.replace(cfg, data_source=str(Path(data.source).resolve()), validation_size=len(data.validation),
                              preprocess=cfg.preprocess or data.preprocess, class_names=tuple(data.class_names),
                              data_fingerprint=data.fingerprint)
    if resume and previous_fingerprint and data.fingerprint and previous_fingerprint != data.fingerprint:
        console.print(f"warning: {cfg.dataset}'s files changed since this run started (fingerprint {previous_fingerprint[:12]}... "
                      f"is now {data.fingerprint[:12]}...)", highlight=False, soft_wrap=True)
    from lenet_cli.core.tensorflow_env import import_tensorflow

    with console.status("starting TensorFlow"):
        import_tensorflow()
    from lenet_cli.model.distributed import build_distribution

    with console.status(f"joining the cluster (up to {worker_timeout:g} s)" if distribute == "multi-worker" else "building the strategy"):
        distribution = build_distribution(distribute, devices=devices, workers=workers, task_index=task_index,
                                          worker_timeout=worker_timeout, start_watchdog=StartupWatchdog.start)

    scratch = None
    if distribution is not None and not distribution.is_chief:
        scratch = Path(tempfile.mkdtemp(prefix=f"lenet-worker{distribution.worker_index}-"))
        if resume:  # the chief's run directory must be on storage every worker can read
            for name in (runs.CONFIG_FILE, runs.CHECKPOINT_FILE, runs.HISTORY_FILE):
                if (Path(output) / name).is_file():
                    shutil.copy2(Path(output) / name, scratch / name)
        run_dir = scratch
        tensorboard = False
    else:
        existed = resume or (output is not None and Path(output).exists())
        from lenet_cli.data.sources import run_name

        run_dir = Path(output) if resume else runs.new_run_dir(run_name(cfg.dataset), runs_dir, output)
    try:
        if data.skipped and (distribution is None or distribution.is_chief):
            from lenet_cli.store.atomic import write_text_atomic

            write_text_atomic(run_dir / SKIPPED_FILE, "".join(f"{path}\t{why}\n" for path, why in data.skipped))
        return _train_and_report(cfg, data, data_dir, run_dir, runs_dir, tensorboard, histograms, console, output_format, resume,
                                 deterministic, distribution, keep_checkpoint)
    except BaseException:
        if scratch is None and not existed and not (run_dir / runs.CHECKPOINT_FILE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed start (a bad --init-from, say) leaves nothing half-made
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _train_and_report(cfg, data, data_dir, run_dir, runs_dir, tensorboard, histograms, console, output_format, resume, deterministic,
                      distribution, keep_checkpoint) -> int:
    from lenet_cli.store.atomic import WriteFailed
    from lenet_cli.cli.progress import RichProgress
    from lenet_cli.engine.trainer import TrainingInterrupted, train

    steps = math.ceil(len(data.train) / cfg.batch_size)
    header = [
        f"{'resuming' if resume else 'training'} {cfg.dataset}: {len(data.train):,} train / {len(data.validation):,} validation images from {data.source}",
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
    header.append(f"run directory: {run_dir}")
    progress = RichProgress(console, cfg.epochs, steps, header=header)
    callbacks = [progress]
    if distribution is not None and distribution.watchdog is not None:
        from lenet_cli.model.distributed import first_step_callback

        callbacks.append(first_step_callback(distribution))
    marker = runs.running_marker(run_dir) if distribution is None or distribution.is_chief else contextlib.nullcontext()
    try:
        with StopOnSignal() as stop, marker:
            result = train(cfg, data, run_dir, callbacks=callbacks, tensorboard=tensorboard, histograms=histograms,
                           runs_dir=runs_dir, resume=resume, should_stop=stop, deterministic=deterministic,
                           distribution=distribution, keep_checkpoint=keep_checkpoint)
    except WriteFailed as exc:
        if not (Path(run_dir) / runs.CHECKPOINT_FILE).is_file():
            raise
        raise LenetError(f"{exc}; the last completed epoch's checkpoint is kept: once there is space, continue with "
                         f"lenet train --resume {run_dir}") from None
    except TrainingInterrupted as exc:
        progress.on_train_end()
        click.echo(_interrupted_message(exc, run_dir, data_dir, distribution), err=True)
        return 128 + exc.signum
    except Exception as exc:
        if distribution is None or distribution.mode != "multi-worker" or not _is_op_error(exc):
            raise
        raise LenetError(_lost_worker_message(exc, distribution)) from None
    finally:
        progress.on_train_end()
    if distribution is not None:
        console.print(f"worker {distribution.worker_index}: final weights sha256 {result.weights_sha256}", highlight=False, soft_wrap=True)
        if not distribution.is_chief:
            click.echo(f"worker {distribution.worker_index} done (the chief writes the run)")
            return 0
    metrics = result.metrics
    if output_format == "json":
        click.echo(json.dumps({**metrics, "run_dir": str(run_dir)}, indent=2))
    else:
        print_result_table(metrics, run_dir)
    if tensorboard:
        console.print(f"see it in TensorBoard: tensorboard --logdir {Path(run_dir) / runs.LOGS_DIR}", highlight=False)
    return 0
