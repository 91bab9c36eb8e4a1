"""A rich progress display for training, as a Keras callback (modelled on ``ProgbarLogger``).

Everything goes to stderr: a live bar per epoch (step, objective, accuracy,
images/s, the epoch's ETA, and the whole run's elapsed time and ETA; a figure
not measured yet shows as a dash) and one greppable line per finished epoch, never wrapped, so
``grep img/s train.log`` finds each epoch whole however long the line::

    epoch 3/12: objective 0.2314, cross_entropy 0.2201, accuracy 0.9121, val_objective 0.2011, ...
        (the line goes on: val_cross_entropy 0.1898, val_accuracy 0.9302 (lr 5.00e-04, 3,050 img/s))

``objective`` is the whole minimised quantity (cross-entropy + L1 + L2),
``cross_entropy`` its data term: the same two names as in history.json,
metrics, TensorBoard and ``lenet evaluate``.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from lenet_cli.cli.console import stderr_console

NOT_YET = "\u2014"  # an em dash: shown for a figure with no measurement behind it yet (never a made-up 0)


def _clock_text(seconds: float) -> str:
    """``0:03:12``, as rich writes its own remaining time."""
    return str(datetime.timedelta(seconds=max(0, round(seconds))))


def step_figures(objective: float | None, accuracy: float | None, images_per_second: float | None) -> str:
    """The live figures of the epoch so far: a dash for each one not measured yet."""
    return (
        f"objective {NOT_YET if objective is None else f'{objective:.4f}'}  "
        f"acc {NOT_YET if accuracy is None else f'{accuracy:.4f}'}  "
        f"{NOT_YET if images_per_second is None else f'{images_per_second:,.0f}'} img/s"
    )


def run_figures(elapsed: float, steps_done: int, steps_left: int) -> str:
    """The whole run so far: wall time since training started, and the time left at the pace of the steps done in it."""
    left = NOT_YET if steps_done == 0 else _clock_text(elapsed / steps_done * steps_left)
    return f"run {_clock_text(elapsed)} elapsed, {left} left"


class RichProgress(keras.callbacks.Callback):
    """Show training progress on ``console`` (default: :func:`stderr_console`); ``header`` lines are printed once at the start.

    Header and epoch lines are printed whole (``soft_wrap``) whatever console
    is passed: off a terminal a wrapped line would break ``grep``.
    """

    def __init__(
        self,
        console: Console | None,
        epochs: int,
        steps: int,
        header: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.console = console if console is not None else stderr_console()
        self.epochs = epochs
        self.steps = steps
        self.header = header or []
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._epoch = 0
        self._clock = clock
        self._started = 0.0
        # a resumed run starts past its first epochs: its pace counts only its own steps
        self._first_epoch: int | None = None

    def on_train_begin(self, logs=None):
        for line in self.header:
            self.console.print(line, highlight=False, soft_wrap=True)
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[figures]}"),
            TimeRemainingColumn(),
            TextColumn("\u00b7 {task.fields[run]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._started = self._clock()

    def _live(self) -> Progress:
        assert self._progress is not None, "Keras calls on_train_begin before any epoch or batch hook"
        return self._progress

    def _run_text(self, epoch: int, steps_in_epoch: int) -> str:
        first = epoch if self._first_epoch is None else self._first_epoch
        done = (epoch - first) * self.steps + steps_in_epoch
        left = (self.epochs - epoch) * self.steps - steps_in_epoch
        return run_figures(self._clock() - self._started, done, left)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._first_epoch is None:
            self._first_epoch = epoch
        progress = self._live()
        if self._task is not None:
            progress.remove_task(self._task)
        self._task = progress.add_task(
            "train",
            total=self.steps,
            epoch=epoch + 1,
            epochs=self.epochs,
            figures=step_figures(None, None, None),
            run=self._run_text(epoch, 0),
        )

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        elapsed = logs.get("elapsed")
        assert self._task is not None, "Keras calls on_epoch_begin before the epoch's batches"
        self._live().update(
            self._task,
            completed=batch + 1,
            figures=step_figures(
                logs.get("objective"),
                logs.get("accuracy"),
                logs["images"] / elapsed if elapsed and "images" in logs else None,
            ),
            run=self._run_text(self._epoch, batch + 1),
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        line = (
            f"epoch {epoch + 1}/{self.epochs}: objective {logs.get('objective', float('nan')):.4f}, "
            f"cross_entropy {logs.get('cross_entropy', float('nan')):.4f}, "
            f"accuracy {logs.get('accuracy', float('nan')):.4f}, "
            f"val_objective {logs.get('val_objective', float('nan')):.4f}, "
            f"val_cross_entropy {logs.get('val_cross_entropy', float('nan')):.4f}, "
            f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f} "
            f"(lr {logs.get('learning_rate', float('nan')):.2e}, {logs.get('images_per_second', 0):,.0f} img/s)"
        )
        self._live().console.print(line, highlight=False, soft_wrap=True)

    def on_train_end(self, logs=None):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
