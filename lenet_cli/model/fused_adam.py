"""Keras's Adam, updated by TensorFlow's one fused ``ResourceApplyAdam`` kernel.

Keras 3 writes Adam's update as about ten separate element-wise ops per
variable (two assign-adds, a square, a sqrt, a divide, ...), each a full pass
over the 3 M weights; on two cores those passes cost more than the dense
layers' matmuls (profile in bench/RESULTS.md). TensorFlow's fused kernel does
the same arithmetic in one multi-threaded pass over ``var``, ``m`` and ``v``::

    m += (g - m) * (1 - beta_1)
    v += (g^2 - v) * (1 - beta_2)
    var -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

which is Keras's ``Adam.update_step`` term for term, on the same slot
variables, so checkpoints, learning-rate schedules and ``optimizer.iterations``
are unchanged. AMSGrad, other backends and distribution strategies keep Keras's
own update.
"""

from __future__ import annotations

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
from keras import ops

from lenet_cli.model.ema import WarmUpEMA


class FusedAdam(WarmUpEMA, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with TensorFlow's fused update kernel (see the module docstring).

    With ``use_ema`` its weight average warms up (:mod:`lenet_cli.model.ema`).
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=ops.power(beta_1, step),
            beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype),
            use_locking=False,
        )
