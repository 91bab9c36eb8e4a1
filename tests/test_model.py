"""The seed network: shape, layer names, parameter count, LRN and the objective's penalty."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lenet_cli.core import config as C  # noqa: E402
from lenet_cli.model.network import (  # noqa: E402
    LocalResponseNormalization,
    build_lenet,
    load_model_file,
)
from lenet_cli.model.objective import penalty_terms, regularized_kernels  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return build_lenet(seed=3)


def test_layer_names_and_order(model):
    names = [layer.name for layer in model.layers[1:]]
    assert names == list(C.LAYER_NAMES)


def test_output_is_probabilities(model):
    x = np.random.default_rng(0).random((5, 28, 28, 1)).astype("float32")
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("softmax_layer").output.shape[-1] == 10


def test_parameter_count_matches_the_seed_design(model):
    conv1 = 5 * 5 * 1 * 20 + 20
    conv2 = 3 * 3 * 20 * 50 + 50
    dot1 = 5 * 5 * 50 * 1200 + 1200
    dot2 = 1200 * 1200 + 1200
    logits = 1200 * 10 + 10
    assert model.count_params() == conv1 + conv2 + dot1 + dot2 + logits == 2_963_980


def _lrn_numpy(x, radius, bias, alpha, beta):
    squared = x**2
    out = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):
        lo, hi = max(0, c - radius), min(channels, c + radius + 1)
        out[..., c] = x[..., c] / (bias + alpha * squared[..., lo:hi].sum(-1)) ** beta
    return out


def test_lrn_matches_the_formula():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 20)).astype("float32")
    got = np.asarray(LocalResponseNormalization()(x))
    np.testing.assert_allclose(got, _lrn_numpy(x.astype("float64"), 5, 1.0, 1.0, 0.5), rtol=1e-5, atol=1e-6)


def test_lrn_config_round_trips():
    layer = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=0.5, beta=0.75, name="n")
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.depth_radius, clone.bias, clone.alpha, clone.beta) == (2, 2.0, 0.5, 0.75)


def test_penalty_equals_the_seed_objective_by_hand(model):
    l1, wd = 1e-4, 3e-4
    terms = {k: float(v) for k, v in penalty_terms(regularized_kernels(model), l1, wd).items()}
    expected_l1 = sum(l1 * np.abs(model.get_layer(n).get_weights()[0].astype("float64")).sum() for n in C.WEIGHT_LAYERS)
    expected_l2 = sum(
        wd * np.square(model.get_layer(n).get_weights()[0].astype("float64")).sum() / 2 for n in C.WEIGHT_LAYERS
    )
    assert terms["l1"] == pytest.approx(expected_l1, rel=1e-5)
    assert terms["l2"] == pytest.approx(expected_l2, rel=1e-5)
    dot1 = model.get_layer("dot_1").get_weights()[0].astype("float64")
    assert terms["l1_dot_1"] == pytest.approx(l1 * np.abs(dot1).sum(), rel=1e-5)


def test_penalty_ignores_biases_and_frozen_layers(model):
    layer = model.get_layer("conv_1")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + 100.0])
    try:
        with_bias = float(penalty_terms(regularized_kernels(model), 1e-3, 1e-3)["l1"])
        layer.set_weights([kernel, bias])
        without = float(penalty_terms(regularized_kernels(model), 1e-3, 1e-3)["l1"])
    finally:
        layer.set_weights([kernel, bias])
    assert with_bias == pytest.approx(without)
    frozen = regularized_kernels(model, frozen=("conv_1", "dot_1"))
    assert set(frozen) == {"conv_2", "dot_2", "logits_layer"}


def test_saved_model_reloads_in_safe_mode_with_identical_predictions(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    again = load_model_file(path)
    x = np.random.default_rng(2).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(again(x)))


@pytest.mark.parametrize("params", [(5, 1.0, 1.0, 0.5), (2, 2.0, 0.5, 0.75)])
def test_lrn_matches_tensorflow_op_values_and_gradients(params):
    """The matmul form is TensorFlow's LRN op, forward and backward, for any hyperparameters."""
    import tensorflow as tf

    radius, bias, alpha, beta = params
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 4, 4, 50)).astype("float32"))
    layer = LocalResponseNormalization(depth_radius=radius, bias=bias, alpha=alpha, beta=beta)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = layer(x)
        theirs = tf.nn.local_response_normalization(x, depth_radius=radius, bias=bias, alpha=alpha, beta=beta)
        weights = tf.constant(np.random.default_rng(3).normal(size=(3, 4, 4, 50)).astype("float32"))
        ours_loss = tf.reduce_sum(ours * weights)
        theirs_loss = tf.reduce_sum(theirs * weights)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(ours_loss, x).numpy(), tape.gradient(theirs_loss, x).numpy(), rtol=1e-4, atol=1e-5
    )
