"""A rich progress display for training, as a Keras callback (modelled on ``ProgbarLogger``).

Everything goes to stderr: a live bar per epoch (step, objective, accuracy,
images/s, ETA) and one greppable line per finished epoch, never wrapped, so
``grep img/s train.log`` finds each epoch whole however long the line::

    epoch 3/12: objective 0.2314, cross_entropy 0.2201, accuracy 0.9121, val_objective 0.2011, val_cross_entropy 0.1898, val_accuracy 0.9302 (lr 5.00e-04, 3,050 img/s)

``objective`` is the whole minimised quantity (cross-entropy + L1 + L2),
``cross_entropy`` its data term: the same two names as in history.json,
metrics, TensorBoard and ``lenet evaluate``.
"""

from __future__ import annotations

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from lenet_cli.cli.console import stderr_console


class RichProgress(keras.callbacks.Callback):
    """Show training progress on ``console`` (default: :func:`stderr_console`); ``header`` lines are printed once at the start.

    Header and epoch lines are printed whole (``soft_wrap``) whatever console
    is passed: off a terminal a wrapped line would break ``grep``.
    """

    def __init__(self, console: Console | None, epochs: int, steps: int, header: list[str] | None = None):
        super().__init__()
        self.console = console if console is not None else stderr_console()
        self.epochs = epochs
        self.steps = steps
        self.header = header or []
        self._progress: Progress | None = None
        self._task = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        for line in self.header:
            self.console.print(line, highlight=False, soft_wrap=True)
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("objective {task.fields[objective]:.4f}  acc {task.fields[acc]:.4f}  {task.fields[rate]:,.0f} img/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(
            "train", total=self.steps, epoch=epoch + 1, epochs=self.epochs, objective=0.0, acc=0.0, rate=0.0
        )

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        elapsed = logs.get("elapsed") or 1e-9
        self._progress.update(
            self._task,
            completed=batch + 1,
            objective=logs.get("objective", 0.0),
            acc=logs.get("accuracy", 0.0),
            rate=logs.get("images", 0) / elapsed,
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
        self._progress.console.print(line, highlight=False, soft_wrap=True)

    def on_train_end(self, logs=None):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
