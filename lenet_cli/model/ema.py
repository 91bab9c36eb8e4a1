"""Keras's weight averaging (``use_ema``) with a warm-up, so that short runs gain from it too.

Keras's optimizers average with a fixed momentum from the first step, and the
average starts as a copy of the initial weights: with ``ema_momentum=0.999``
the random initialisation still carries ``0.999**n`` of the weight after ``n``
steps, 37 % after 1,000 steps, which cost 5-17 points of validation accuracy
on the short screening runs in bench/RESULTS.md. TensorFlow's own
``tf.train.ExponentialMovingAverage(num_updates=...)`` solves this by capping
the momentum at ``(1 + t) / (10 + t)`` on step ``t``; the mixin here does the
same inside Keras's update, so the average follows the weights early and
becomes the requested long average once ``t`` is large (about 9,000 steps for
0.999). Everything else (the slot variables, ``finalize_variable_values``,
checkpoints) is Keras's.
"""

from __future__ import annotations

from typing import Any

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
from keras import ops


def warmed_up_momentum(momentum, iterations):
    """``min(momentum, (1 + t) / (10 + t))`` on step ``t``: TensorFlow's ``num_updates`` rule."""
    t = ops.cast(iterations, "float32")
    return ops.minimum(ops.cast(momentum, "float32"), (1.0 + t) / (10.0 + t))


class WarmUpEMA:
    """Mixin for a Keras optimizer: its ``use_ema`` average with the momentum warm-up above."""

    # Set by the Keras optimizer this is mixed into (annotations only: no class attributes shadow Keras's).
    use_ema: bool
    ema_momentum: float
    iterations: Any
    _model_variables_moving_average: list[Any]

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        momentum = warmed_up_momentum(self.ema_momentum, self.iterations)
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = ops.cast(momentum, variable.dtype)
                average.assign(ops.add(ops.multiply(m, average), ops.multiply(ops.subtract(1.0, m), variable)))


class RMSprop(WarmUpEMA, keras.optimizers.RMSprop):
    """Keras's RMSprop; with ``use_ema``, the warmed-up average."""


class SGD(WarmUpEMA, keras.optimizers.SGD):
    """Keras's SGD; with ``use_ema``, the warmed-up average."""
