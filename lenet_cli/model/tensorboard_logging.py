"""What ``lenet train`` shows in TensorBoard, beside Keras's own TensorBoard callback.

* scalars (by Keras's ``TensorBoard`` callback, tags ``epoch_<name>``):
  cross-entropy, the L1 and weight-decay (L2) terms, the objective, accuracy,
  learning rate, and per-layer ``l1_<layer>`` / ``l2_<layer>`` terms, for
  ``train`` and ``validation`` side by side;
* ``inputs``: a grid of sample training images, once per run, at step 0;
* ``conv_1_filters``: the first layer's filters, tiled and normalized, each epoch;
* ``confusion_matrix``: :class:`ConfusionMatrixImage`, a labelled heatmap of
  the validation confusion matrix each epoch (also kept as ``confusion_matrix.json``).

Every epoch is logged at its number as the console and ``history.json`` give
it, from 1 (Keras counts from 0), so ``epoch 3/12`` is step 3 in TensorBoard,
and a resumed run carries on from the step it stopped after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
import numpy as np

from lenet_cli.core.tensorflow_env import import_tensorflow
from lenet_cli.store import runs
from lenet_cli.store.atomic import write_json_atomic

if TYPE_CHECKING:  # types only: the predictor is made when first needed
    from lenet_cli.model.inference import KerasPredictor

CONFUSION_JSON = "confusion_matrix.json"
SAMPLE_INPUTS = 64


def _png_to_summary_tensor(png: bytes):
    tf = import_tensorflow()
    return tf.expand_dims(tf.io.decode_png(png, channels=4), 0)


def epoch_step(epoch: int) -> int:
    """The TensorBoard step of Keras's 0-based ``epoch``: its number from 1, as the console and ``history.json`` show it."""
    return epoch + 1


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback with each epoch's summaries at :func:`epoch_step` (1-based)."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch_step(epoch), logs)


class _LazyWriterCallback(keras.callbacks.Callback):
    """A callback that opens its summary writer only when first needed and closes it at the end."""

    def __init__(self, log_dir: str | Path | None):
        super().__init__()
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            tf = import_tensorflow()
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        return self._writer

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


class ConfusionMatrixImage(_LazyWriterCallback):
    """After each epoch, predict the validation split and log its confusion matrix as an image.

    The image is a labelled heatmap (class names on both axes, counts in the
    cells, row-normalized colour, the epoch and accuracy in the title), written
    with ``tf.summary.image`` under ``log_dir`` (the run's validation logs). The
    latest matrix is also kept as JSON at ``json_path``.

    Args:
        images: validation images, uint8 ``(n, 28, 28)``.
        labels: their labels.
        class_names: names for the axes.
        log_dir: where the image summaries go; None to keep only the JSON (``--no-tensorboard``).
        json_path: where the latest matrix is kept; None to skip.
        predict_classes: optional ``images -> predicted class indices``; by
            default the callback predicts with the model in batches.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        log_dir: str | Path | None,
        json_path: str | Path | None = None,
        predict_classes: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        super().__init__(log_dir)
        self.images = images
        self.labels = np.asarray(labels)
        self.class_names = list(class_names)
        self.json_path = Path(json_path) if json_path is not None else None
        self.predict_classes = predict_classes
        self._predictor: KerasPredictor | None = None
        self.latest: dict | None = None

    def _predict(self) -> np.ndarray:
        if self.predict_classes is not None:
            return np.asarray(self.predict_classes(self.images))
        if self._predictor is None:
            from lenet_cli.model.inference import KerasPredictor

            self._predictor = KerasPredictor(self.model)
        return self._predictor.predict_classes(self.images)

    def on_epoch_end(self, epoch, logs=None):
        if len(self.labels) == 0:
            return
        from lenet_cli.core.metrics import confusion_matrix
        from lenet_cli.viz.confusion import render_confusion_matrix_png

        predicted = self._predict()
        matrix = confusion_matrix(self.labels, predicted, len(self.class_names))
        accuracy = float(np.trace(matrix) / matrix.sum())
        if self.log_dir is not None:
            png = render_confusion_matrix_png(
                matrix, self.class_names, f"epoch {epoch + 1}: validation accuracy {accuracy:.4f}"
            )
            tf = import_tensorflow()
            with self.writer.as_default():
                tf.summary.image("confusion_matrix", _png_to_summary_tensor(png), step=epoch_step(epoch))
            self.writer.flush()
        self.latest = {
            "epoch": epoch + 1,
            "split": "validation",
            "accuracy": accuracy,
            "count": int(matrix.sum()),
            "class_names": self.class_names,
            "matrix": matrix.tolist(),
        }
        if self.json_path is not None:
            write_json_atomic(self.json_path, self.latest)


class InputAndFilterImages(_LazyWriterCallback):
    """Log a grid of sample inputs once, and the conv_1 filters each epoch (the seed's ``visualize``).

    The inputs go in when the first epoch begins, at step 0: a run resumed
    after it does not log them again.
    """

    def __init__(self, sample_images: np.ndarray, log_dir: str | Path, layer_name: str = "conv_1", scale: int = 8):
        super().__init__(log_dir)
        self.sample_images = sample_images
        self.layer_name = layer_name
        self.scale = scale

    def _log_grid(self, tag: str, grid: np.ndarray, step: int, scale: int = 1):
        tf = import_tensorflow()
        if scale > 1:
            grid = np.kron(grid, np.ones((scale, scale), dtype=grid.dtype))
        with self.writer.as_default():
            tf.summary.image(tag, grid[None, :, :, None].astype(np.float32), step=step)

    def on_epoch_begin(self, epoch, logs=None):
        from lenet_cli.viz.pixels import tile_images

        if epoch == 0 and len(self.sample_images):
            from lenet_cli.core.inputs import as_model_input

            images = as_model_input(self.sample_images)[..., 0]
            self._log_grid("inputs", tile_images(images, normalize=False), 0, scale=2)

    def on_epoch_end(self, epoch, logs=None):
        from lenet_cli.viz.pixels import tile_images

        kernel = keras.ops.convert_to_numpy(self.model.get_layer(self.layer_name).kernel)  # (h, w, in, out)
        filters = np.transpose(kernel[:, :, 0, :], (2, 0, 1))
        self._log_grid(
            f"{self.layer_name}_filters", tile_images(filters, normalize=True), epoch_step(epoch), scale=self.scale
        )
        self.writer.flush()


def run_callbacks(
    run_dir: Path, data, tensorboard: bool = True, histograms: bool = False, predict_classes=None
) -> list:
    """What every run records: ``confusion_matrix.json`` always, and with ``tensorboard`` the logs under ``<run>/logs``."""
    if tensorboard:
        return tensorboard_callbacks(
            run_dir / runs.LOGS_DIR,
            data,
            histograms=histograms,
            predict_classes=predict_classes,
            json_path=run_dir / CONFUSION_JSON,
        )
    if not len(data.validation):
        return []
    return [
        ConfusionMatrixImage(
            data.validation.images,
            data.validation.labels,
            data.class_names,
            None,
            json_path=run_dir / CONFUSION_JSON,
            predict_classes=predict_classes,
        )
    ]


def tensorboard_callbacks(
    log_dir: Path, data, histograms: bool = False, predict_classes=None, json_path: Path | None = None
) -> list:
    """Keras's TensorBoard callback plus the image callbacks, all logging under ``log_dir``."""
    callbacks = [
        EpochTensorBoard(
            log_dir=str(log_dir),
            histogram_freq=1 if histograms else 0,
            write_graph=False,
            write_images=False,
            update_freq="epoch",
            profile_batch=0,
        ),
        InputAndFilterImages(data.train.images[:SAMPLE_INPUTS], log_dir / "train"),
    ]
    if len(data.validation):
        callbacks.append(
            ConfusionMatrixImage(
                data.validation.images,
                data.validation.labels,
                data.class_names,
                log_dir / "validation",
                json_path=json_path if json_path is not None else log_dir.parent / CONFUSION_JSON,
                predict_classes=predict_classes,
            )
        )
    return callbacks
