"""``lenet train``'s presentation: load data, run the worker, print the result."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from lenet_cli import runs
from lenet_cli.config import TrainConfig


def run_training(cfg: TrainConfig, data_dir, output, runs_dir, tensorboard: bool, histograms: bool, quiet: bool, output_format: str) -> None:
    """Load the dataset, train with a progress display on stderr, print the metrics on stdout."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    runs.check_output_available(output)
    from lenet_cli.data import load_dataset

    data = load_dataset(cfg.dataset, data_dir, validation_size=cfg.validation_size, train_limit=cfg.train_limit,
                        log=lambda m: console.print(m, highlight=False))
    from lenet_cli.tf_setup import import_tensorflow

    with console.status("starting TensorFlow"):
        import_tensorflow()
    from lenet_cli.progress import RichProgress
    from lenet_cli.training import train

    run_dir = runs.new_run_dir(cfg.dataset, runs_dir, output)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    header = [
        f"training {cfg.dataset}: {len(data.train):,} train / {len(data.validation):,} validation images from {data.source}",
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
        result = train(cfg, data, run_dir, callbacks=[progress], tensorboard=tensorboard, histograms=histograms, runs_dir=runs_dir)
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
