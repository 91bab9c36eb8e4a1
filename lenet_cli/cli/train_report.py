"""What ``lenet train`` tells people: the lines above the progress display, the finished run's table, and why it stopped.

Apart from the command (:mod:`lenet_cli.cli.train`), which only wires the
engine's workflow to these: each function turns the engine's plain data (the
plan, ``metrics.json``, an interruption, a failed collective) into text, and
says the command that continues a stopped run.
"""

from __future__ import annotations

import signal

from lenet_cli.core.units import plural
from lenet_cli.store import runs


def lost_worker_message(exc, distribution) -> str:
    """A failed collective in one line: which worker was lost (when TensorFlow's error names it, or only one other
    worker exists) and how to go on."""
    import re

    tasks = sorted(
        {int(t) for t in re.findall(r"/job:\w+/replica:\d+/task:(\d+)", str(exc))} - {distribution.worker_index}
    )
    if not tasks and distribution.num_workers == 2:  # TensorFlow did not say (a deadline passed), but only one is left
        tasks = [1 - distribution.worker_index]
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


def interrupted_message(exc, run_dir, data_dir, distribution) -> str:
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


def progress_header(plan) -> list[str]:
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
