"""The one compiled inference path: images to logits and probabilities, batched in one place.

Training's validation score and confusion matrix, its final test score,
``lenet evaluate`` and ``lenet predict`` with a Keras model all call a
:class:`KerasPredictor`. ``model.predict`` on numpy arrays pays a data-adapter and
callback overhead that makes it bimodal on a small CPU; one compiled
``tf.function`` called on pre-sliced batches holds the fast rate steadily.
"""

from __future__ import annotations

import numpy as np

from lenet_cli.core.config import INFERENCE_BATCH_SIZE, INPUT_SHAPE
from lenet_cli.core.tensorflow_env import import_tensorflow


class KerasPredictor:
    """Call a Keras model batch by batch through one compiled function.

    Accepts uint8 ``(n, 28, 28)`` images (scaled to [0, 1] inside the graph:
    a quarter of the bytes cross into TensorFlow) or float ``(n, 28, 28[, 1])``
    inputs already in [0, 1]. The class count is the model's.
    """

    def __init__(self, model, batch_size: int = INFERENCE_BATCH_SIZE):
        tf = import_tensorflow()
        from lenet_cli.core.inputs import scale_pixels
        from lenet_cli.model.network import logits_and_probabilities

        view = logits_and_probabilities(model)
        self.model = model
        self.batch_size = int(batch_size)
        self.num_classes = int(model.output_shape[-1])

        @tf.function(reduce_retracing=True)
        def outputs(x):
            if x.dtype == tf.uint8:  # traced once per input dtype
                x = scale_pixels(x)
            return view(x, training=False)

        self._outputs = outputs
        self._tf = tf

    def _run(self, images: np.ndarray, which: int) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.reshape((-1, *INPUT_SHAPE[:2]))
        else:
            images = images.reshape((-1, *INPUT_SHAPE)).astype(np.float32, copy=False)
        outputs = [
            self._outputs(self._tf.constant(images[start : start + self.batch_size]))[which].numpy()
            for start in range(0, len(images), self.batch_size)
        ]
        if not outputs:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return np.concatenate(outputs, axis=0)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits ``(n, classes)`` as float32: what the cross-entropy is computed from."""
        return self._run(images, 0)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` as float32 (the model's softmax output)."""
        return self._run(images, 1)

    def predict_classes(self, images: np.ndarray) -> np.ndarray:
        """The predicted class index of each image."""
        return self.logits(images).argmax(axis=1)
