"""Keras's Adam, with each large weight's whole update in one pass: penalty gradient, Adam and the moving average.

Keras 3 writes Adam's update as about ten separate element-wise ops per
variable (two assign-adds, a square, a sqrt, a divide, ...), each a full pass
over the 3 M weights; on two cores those passes cost more than the dense
layers' matmuls (profile in bench/RESULTS.md). The objective's penalty
gradient (``l1 * sign(w) + weight_decay * w``, four more passes) and the
weights' moving average (``use_ema``, four more) add to it. Here every
variable of at least :data:`FUSED_MIN_SIZE` elements (the dense kernels: 99 %
of the weights) is updated by one XLA-compiled function that reads ``g``,
``w``, ``m``, ``v`` and the average once and writes them back once::

    g' = g + l1 * sign(w) + weight_decay * w          (a penalized kernel; see take_penalty)
    m += (g' - m) * (1 - beta_1)
    v += (g'^2 - v) * (1 - beta_2)
    w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)
    average = momentum * average + (1 - momentum) * w  (with use_ema; momentum warmed up, lenet_cli.ema)

which is Keras's ``Adam.update_step`` and Keras's moving average term for
term, on the same slot variables, so checkpoints, learning-rate schedules and
``optimizer.iterations`` are unchanged. Smaller variables go through
TensorFlow's fused ``ResourceApplyAdam`` kernel (one compiled function per
shape is not worth its compile time for them). AMSGrad, other backends and
distribution strategies keep Keras's own update.
"""

from __future__ import annotations

import math

from lenet_cli.tf_setup import import_tensorflow

tf = import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras  # noqa: E402
from keras import ops  # noqa: E402

from lenet_cli.ema import WarmUpEMA, warmed_up_momentum  # noqa: E402

FUSED_MIN_SIZE = 100_000  # elements: dot_1's and dot_2's kernels (1.5 M and 1.4 M), not the convolutions or biases


def _read(handle, dtype):
    return tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)


@tf.function(jit_compile=True)
def _fused_update(var, m, v, average, grad, lr, beta_1, beta_2, epsilon, step, l1, weight_decay, momentum, penalized, averaged):
    """One pass over a variable (resource handles): the penalty gradient where ``penalized``, Adam, the average where ``averaged``.

    ``penalized`` and ``averaged`` are Python booleans (one compiled variant each).
    """
    dtype = grad.dtype
    w = _read(var, dtype)
    if penalized:
        grad = grad + l1 * tf.sign(w) + weight_decay * w
    m_new = _read(m, dtype)
    m_new = m_new + (grad - m_new) * (1.0 - beta_1)
    v_new = _read(v, dtype)
    v_new = v_new + (grad * grad - v_new) * (1.0 - beta_2)
    alpha = lr * tf.sqrt(1.0 - tf.pow(beta_2, step)) / (1.0 - tf.pow(beta_1, step))
    w = w - (m_new * alpha) / (tf.sqrt(v_new) + epsilon)
    tf.raw_ops.AssignVariableOp(resource=m, value=m_new)
    tf.raw_ops.AssignVariableOp(resource=v, value=v_new)
    tf.raw_ops.AssignVariableOp(resource=var, value=w)
    if averaged:
        tf.raw_ops.AssignVariableOp(resource=average, value=momentum * _read(average, dtype) + (1.0 - momentum) * w)


class FusedAdam(WarmUpEMA, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with fused update passes (see the module docstring).

    With ``use_ema`` its weight average warms up (:mod:`lenet_cli.ema`).
    :meth:`take_penalty` moves an objective's penalty gradient into the update.
    """

    _penalty: tuple[frozenset, float, float] | None = None

    def take_penalty(self, objective) -> None:
        """From now on add ``objective``'s penalty gradient, ``l1 * sign(w) + weight_decay * w``, inside each kernel's update.

        The caller then passes the gradient of the data loss alone: the update
        is the same as applying ``objective.add_penalty_gradients`` first (a
        test holds them to 1e-6), without four more passes over each kernel.
        Single-device training only: a distributed step adds the penalty
        itself, split over replicas.
        """
        self._penalty = (frozenset(self._var_key(kernel) for kernel in objective.kernels.values()),
                         float(objective.l1), float(objective.weight_decay))

    def _penalty_of(self, variable) -> tuple[float, float]:
        if self._penalty is None or self._var_key(variable) not in self._penalty[0]:
            return 0.0, 0.0
        return self._penalty[1], self._penalty[2]

    def _fused_path(self) -> bool:
        return not self.amsgrad and keras.backend.backend() == "tensorflow" and not tf.distribute.has_strategy()

    def _fuses(self, variable) -> bool:
        """Whether ``variable``'s whole update, moving average included, is one compiled pass."""
        return self._fused_path() and math.prod(int(d) for d in variable.shape) >= FUSED_MIN_SIZE

    def update_step(self, gradient, variable, learning_rate):
        l1, weight_decay = self._penalty_of(variable)
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        if self._fuses(variable):
            index = self._get_variable_index(variable)
            averaged = bool(self.use_ema)
            average = self._model_variables_moving_average[index].handle if averaged else None
            momentum = warmed_up_momentum(self.ema_momentum, self.iterations) if averaged else 0.0
            _fused_update(variable.handle, self._momentums[index].handle, self._velocities[index].handle, average, gradient,
                          ops.cast(learning_rate, dtype), ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype),
                          ops.cast(self.epsilon, dtype), ops.cast(self.iterations + 1, dtype), ops.cast(l1, dtype),
                          ops.cast(weight_decay, dtype), ops.cast(momentum, dtype), bool(l1 or weight_decay), averaged)
            return
        if l1 or weight_decay:
            gradient = gradient + ops.cast(l1 * ops.sign(variable) + weight_decay * variable, dtype)
        if not self._fused_path():
            return super().update_step(gradient, variable, learning_rate)
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
            grad=gradient,
            use_locking=False,
        )

    def _averaged_in_update(self, variable) -> bool:
        return self._fuses(variable)
