"""``lenet train``'s presentation: load data, run the worker, print the result, handle signals."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import click

from lenet_cli import runs
from lenet_cli.config import TrainConfig
from lenet_cli.errors import LenetError


def resumed_config(run_dir: Path) -> TrainConfig:
    """The saved config of a run to resume.

    Raises:
        LenetError: the folder is not a resumable run.
    """
    path = Path(run_dir) / runs.CONFIG_FILE
    if not path.is_file() or not (Path(run_dir) / runs.CHECKPOINT_FILE).is_file():
        raise LenetError(f"{str(run_dir)!r} is not a resumable run: it needs {runs.CONFIG_FILE} and {runs.CHECKPOINT_FILE}")
    try:
        return TrainConfig.from_json_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise LenetError(f"{str(path)!r} is not a valid lenet config ({exc})") from None


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
                 output_format: str, resume: bool = False, deterministic: bool = False) -> int:
    """Load the dataset, train with a progress display on stderr, print the metrics on stdout; return the exit code."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    if not resume:
        runs.check_output_available(output)
    from lenet_cli.data import load_dataset

    data = load_dataset(cfg.dataset, data_dir, validation_size=cfg.validation_size, train_limit=cfg.train_limit,
                        log=lambda m: console.print(m, highlight=False))
    from lenet_cli.tf_setup import import_tensorflow

    with console.status("starting TensorFlow"):
        import_tensorflow()
    from lenet_cli.progress import RichProgress
    from lenet_cli.training import TrainingInterrupted, train

    run_dir = Path(output) if resume else runs.new_run_dir(cfg.dataset, runs_dir, output)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    header = [
        f"{'resuming' if resume else 'training'} {cfg.dataset}: {len(data.train):,} train / {len(data.validation):,} validation images from {data.source}",
        f"recipe: preset {cfg.preset}, {cfg.optimizer} lr {cfg.learning_rate:g} ({cfg.schedule}), batch {cfg.batch_size}, "
        f"{cfg.epochs} epochs, l1 {cfg.l1:g}, weight decay {cfg.weight_decay:g}, dropout {cfg.dropout:g}, augment {cfg.augment}",
    ]
    if cfg.init_from:
        header.append(f"weights from {cfg.init_from}")
    if cfg.freeze:
        header.append(f"frozen layers: {', '.join(cfg.freeze)}")
    header.append(f"run directory: {run_dir}")
    progress = RichProgress(console, cfg.epochs, steps, header=header)
    try:
        with StopOnSignal() as stop:
            result = train(cfg, data, run_dir, callbacks=[progress], tensorboard=tensorboard, histograms=histograms,
                           runs_dir=runs_dir, resume=resume, should_stop=stop, deterministic=deterministic)
    except TrainingInterrupted as exc:
        progress.on_train_end()
        name = signal.Signals(exc.signum).name
        click.echo(
            f"{name}: stopped after {exc.completed_epochs} completed epoch(s); checkpoint kept in {run_dir}. "
            f"Resume with: lenet train --resume {run_dir}" + (f" --data-dir {data_dir}" if data_dir else ""),
            err=True,
        )
        return 128 + exc.signum
    finally:
        progress.on_train_end()
    metrics = result.metrics
    if output_format == "json":
        click.echo(json.dumps({**metrics, "run_dir": str(run_dir)}, indent=2))
    else:
        click.echo(f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_count']:,} {cfg.dataset} test images")
        click.echo(f"run written to {run_dir}")
    if tensorboard:
        console.print(f"see it in TensorBoard: tensorboard --logdir {Path(run_dir) / runs.LOGS_DIR}", highlight=False)
    return 0
