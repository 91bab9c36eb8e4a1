"""The seed's objective, in one place: cross-entropy + l1 * sum|w| + weight_decay * sum(w^2) / 2.

The penalty covers the conv and dense *kernels* of the layers that train
(biases and frozen layers excluded), each term per layer and in total, so every
term can be logged on its own.

The training step differentiates only the cross-entropy
(:meth:`Objective.data_loss`) and adds the penalty's exact gradient,
``l1 * sign(w) + weight_decay * w``, to each kernel's gradient
(:meth:`Objective.add_penalty_gradients`) before the optimizer sees it: the
same update as differentiating the whole objective (a test holds them to
1e-6), without the Abs/Square/Sum forward pass and the Tile/Sign/Mul backward
pass that automatic differentiation of ``sum|w|`` and ``sum(w^2)`` costs on
every step (15 % of the step's op time, though on two cores those ops mostly
overlapped other work: wall-clock speed is unchanged within the noise,
bench/RESULTS.md). The penalty's *value* (:meth:`Objective.penalties`) is
computed only where it is logged. Every reported cross-entropy (train, validation,
``lenet evaluate``) is the softmax cross-entropy of the logits, computed by
Keras's ``SparseCategoricalCrossentropy(from_logits=True)`` inside the step and
by :func:`lenet_cli.core.metrics.mean_cross_entropy` on logits outside it (a test
holds the two to 1e-6).
"""

from __future__ import annotations

from typing import Any

from lenet_cli.core.tensorflow_env import import_tensorflow

import_tensorflow()  # quietly, and with lenet's settings, before Keras loads TensorFlow
import keras
from keras import ops

from lenet_cli.core import config as C


def regularized_kernels(model: keras.Model, frozen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The kernels the objective penalizes: weight layers that train, by layer name."""
    return {name: model.get_layer(name).kernel for name in C.WEIGHT_LAYERS if name not in frozen}


def penalty_terms(kernels: dict[str, Any], l1: float, weight_decay: float) -> dict[str, Any]:
    """Per-layer ``l1_<name>`` and ``l2_<name>`` terms and their totals ``l1`` and ``l2``.

    ``l2`` is the weight-decay term ``weight_decay * sum(w^2) / 2``.
    """
    terms: dict[str, Any] = {}
    l1_total = 0.0
    l2_total = 0.0
    for name, kernel in kernels.items():
        l1_term = l1 * ops.sum(ops.abs(kernel))
        l2_term = weight_decay * ops.sum(ops.square(kernel)) / 2.0
        terms[f"l1_{name}"] = l1_term
        terms[f"l2_{name}"] = l2_term
        l1_total = l1_total + l1_term
        l2_total = l2_total + l2_term
    terms["l1"] = l1_total
    terms["l2"] = l2_total
    return terms


class Objective:
    """The objective of one model under one recipe's coefficients.

    Args:
        model: the network whose kernels are penalized.
        l1: coefficient of ``sum|w|``.
        weight_decay: coefficient of ``sum(w^2) / 2``.
        frozen: layers that do not train, and so carry no penalty.
    """

    def __init__(
        self,
        model: keras.Model,
        l1: float,
        weight_decay: float,
        frozen: tuple[str, ...] = (),
        label_smoothing: float = 0.0,
    ):
        self.kernels = regularized_kernels(model, tuple(frozen))
        self.l1 = float(l1)
        self.weight_decay = float(weight_decay)
        self.label_smoothing = float(label_smoothing)
        self.term_names = [f"{kind}_{name}" for name in self.kernels for kind in ("l1", "l2")]
        if self.label_smoothing > 0:  # Keras's sparse loss has no smoothing: the one-hot form does
            self._smoothed = keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=self.label_smoothing, reduction="sum"
            )
        self._cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    @classmethod
    def for_run(cls, model: keras.Model, run_config: dict) -> Objective:
        """The objective a run trained with, from its saved ``config.json`` values."""
        return cls(
            model,
            float(run_config.get("l1", 0.0)),
            float(run_config.get("weight_decay", 0.0)),
            tuple(run_config.get("freeze") or ()),
        )

    def penalties(self) -> dict[str, Any]:
        """``l1``, ``l2`` and the per-layer terms of the current weights, as float32 scalars."""
        terms = penalty_terms(self.kernels, self.l1, self.weight_decay)
        return {name: ops.cast(value, "float32") for name, value in terms.items()}

    def data_loss(self, labels, logits, global_batch_size):
        """The cross-entropy part of what one replica minimises, and its summed value.

        The cross-entropy is summed over this replica's examples and divided by
        the *global* batch size, so the all-reduced gradient equals the
        single-device gradient of the mean. The penalty is not in it: its
        gradient is added by :meth:`add_penalty_gradients`.

        With label smoothing the cross-entropy is against the smoothed targets
        (what is minimised); every score outside training uses the true labels.

        Returns:
            ``(loss, cross_entropy_sum)``.
        """
        if self.label_smoothing > 0:
            cross_entropy_sum = self._smoothed(ops.one_hot(labels, ops.shape(logits)[-1]), logits)
        else:
            cross_entropy_sum = self._cross_entropy(labels, logits)
        return cross_entropy_sum / ops.cast(global_batch_size, "float32"), cross_entropy_sum

    def add_penalty_gradients(self, gradients, variables, replicas: int = 1):
        """``gradients`` plus the penalty's gradient ``l1 * sign(w) + weight_decay * w`` on each penalized kernel.

        Exactly what differentiating ``l1 * sum|w| + weight_decay * sum(w^2) / 2``
        gives (TensorFlow's gradient of ``|w|`` is ``sign(w)``, 0 at 0), divided
        by ``replicas`` because a distributed step sums every replica's gradient.
        Other variables (biases, layers that do not train) are passed through.
        """
        if self.l1 == 0 and self.weight_decay == 0:
            return list(gradients)
        penalized = {id(kernel) for kernel in self.kernels.values()}
        out = []
        for gradient, variable in zip(gradients, variables):
            if id(variable) in penalized:
                extra = 0.0
                if self.l1:
                    extra = (self.l1 / replicas) * ops.sign(variable)
                if self.weight_decay:
                    extra = extra + (self.weight_decay / replicas) * variable
                gradient = gradient + ops.cast(extra, gradient.dtype)
            out.append(gradient)
        return out
