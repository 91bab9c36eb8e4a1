"""The fused Adam update is Keras's Adam, to float32 rounding, on the same slot variables."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from lenet_cli.model.fused_adam import FusedAdam  # noqa: E402


def _run(optimizer_class, steps=20, **kwargs):
    start = np.random.default_rng(0).normal(size=(300, 40)).astype("float32")
    variable = keras.Variable(start)
    optimizer = optimizer_class(learning_rate=keras.optimizers.schedules.CosineDecay(1e-2, 50), **kwargs)
    optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply_gradients([(gradient, variable)])

    for i in range(steps):
        step(tf.constant(np.random.default_rng(i + 1).normal(size=start.shape).astype("float32")))
    index = optimizer._get_variable_index(variable)
    return (
        variable.numpy(),
        optimizer._momentums[index].numpy(),
        optimizer._velocities[index].numpy(),
        int(optimizer.iterations.numpy()),
        start,
    )


def test_fused_update_matches_keras_adam():
    theirs = _run(keras.optimizers.Adam)
    ours = _run(FusedAdam)
    for mine, reference in zip(ours[:3], theirs[:3]):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)
    assert ours[3] == theirs[3] == 20
    assert np.abs(ours[0] - ours[4]).max() > 0.05  # the weights really moved


def test_amsgrad_falls_back_to_keras():
    theirs = _run(keras.optimizers.Adam, amsgrad=True)
    ours = _run(FusedAdam, amsgrad=True)
    np.testing.assert_array_equal(ours[0], theirs[0])
