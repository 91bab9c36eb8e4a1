"""One training core: one objective, one predictor, a self-describing checkpoint, clean boundaries."""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli

PACKAGE = Path(__file__).resolve().parent.parent / "lenet_cli"
MAX_FUNCTION_LINES = 80


def test_evaluate_and_train_agree_on_the_validation_cross_entropy(trained_run, synthetic_data_dir):
    history = json.loads((trained_run / "history.json").read_text())
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(trained_run),
            "--split",
            "validation",
            "--format",
            "json",
            "--data-dir",
            str(synthetic_data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["count"] == 100
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["calibration"]["val_cross_entropy_before"] == pytest.approx(
        history[-1]["val_cross_entropy"], abs=1e-5
    )
    assert report["cross_entropy"] == pytest.approx(
        metrics["val_cross_entropy"], abs=1e-5
    )  # the shipped (calibrated) model
    assert report["accuracy"] == pytest.approx(history[-1]["val_accuracy"], abs=1e-12)  # calibration changes no answer
    from lenet_cli.core.config import TrainConfig
    from lenet_cli.model.network import load_model_file

    cfg, model = TrainConfig.load(trained_run / "config.json"), load_model_file(trained_run / "model.keras")
    kernels = [
        model.get_layer(name).kernel.numpy().astype(np.float64)
        for name in ("conv_1", "conv_2", "dot_1", "dot_2", "logits_layer")
    ]
    penalty = sum(cfg.l1 * np.abs(k).sum() + cfg.weight_decay * np.square(k).sum() / 2 for k in kernels)
    assert report["objective"] == pytest.approx(report["cross_entropy"] + penalty, abs=1e-5)


def test_the_training_loss_and_the_reported_cross_entropy_are_one_definition():
    """Keras's from-logits loss (minimised in the step) equals metrics.mean_cross_entropy (every report)."""
    import keras

    from lenet_cli.core.metrics import mean_cross_entropy

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(257, 10)) * 6).astype(np.float32)
    logits[0] = [60, 0, 0, 0, 0, 0, 0, 0, 0, -60]  # a confident mistake: nothing may clip it
    labels = rng.integers(0, 10, size=257)
    labels[0] = 9
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(keras_loss) == pytest.approx(mean_cross_entropy(labels, logits), rel=1e-6)


def test_objective_terms_add_up_and_skip_frozen_layers():
    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.objective import Objective

    model = build_lenet(dense_units=8, seed=0)
    objective = Objective(model, l1=1e-3, weight_decay=1e-2, frozen=("conv_1",))
    terms = {k: float(v) for k, v in objective.penalties().items()}
    kernels = {name: model.get_layer(name).kernel.numpy() for name in ("conv_2", "dot_1", "dot_2", "logits_layer")}
    assert "l1_conv_1" not in terms and set(objective.term_names) == {f"{k}_{n}" for n in kernels for k in ("l1", "l2")}
    assert terms["l1"] == pytest.approx(1e-3 * sum(np.abs(w).sum() for w in kernels.values()), rel=1e-5)
    assert terms["l2"] == pytest.approx(1e-2 * sum((w**2).sum() for w in kernels.values()) / 2, rel=1e-5)
    labels = np.array([1, 2, 3], dtype=np.int32)
    logits = np.zeros((3, 10), dtype=np.float32)
    loss, cross_entropy_sum = objective.data_loss(labels, logits, 6)  # a replica's half of a global batch of 6
    assert float(cross_entropy_sum) == pytest.approx(3 * np.log(10), rel=1e-6)
    assert float(loss) == pytest.approx(np.log(10) / 2, rel=1e-6)


def test_penalty_gradients_equal_automatic_differentiation_of_the_whole_objective():
    """The analytic l1 * sign(w) + wd * w, split over replicas, is the gradient of the penalty (frozen layers untouched)."""
    import tensorflow as tf

    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.objective import Objective

    model = build_lenet(dense_units=8, seed=0)
    model.get_layer("dot_2").kernel.assign(np.zeros((8, 8), np.float32))  # sign(0) = 0, as TensorFlow's Abs gradient
    objective = Objective(model, l1=1e-3, weight_decay=1e-2, frozen=("conv_1",))
    variables = [w for layer in model.layers for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        terms = objective.penalties()
        total = terms["l1"] + terms["l2"]
    expected = [np.zeros(v.shape) if g is None else g for g, v in zip(tape.gradient(total, variables), variables)]
    zeros = [tf.zeros_like(v) for v in variables]
    for replicas in (1, 2):
        got = objective.add_penalty_gradients(zeros, variables, replicas)
        for want, have, variable in zip(expected, got, variables):
            np.testing.assert_allclose(np.asarray(have), np.asarray(want) / replicas, atol=1e-9, err_msg=variable.path)
    assert not np.any(np.asarray(got[variables.index(model.get_layer("conv_1").kernel)]))


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_train_step_updates_equal_differentiating_the_whole_objective(ema_momentum):
    """Three steps of lenet's step (penalty gradient beside the loss, fused Adam) match Keras's Adam on autodiff of CE + l1 + l2 to 1e-6.

    The reference is Keras's own Adam update and moving average (with lenet's
    momentum warm-up), op by op, on the gradient of the whole objective.
    """
    import keras
    import tensorflow as tf

    from lenet_cli.core.config import resolve_config
    from lenet_cli.model.ema import WarmUpEMA
    from lenet_cli.model.network import build_lenet, logits_and_probabilities
    from lenet_cli.model.objective import Objective
    from lenet_cli.model.train_step import TrainStep, make_optimizer

    units = 16
    cfg = resolve_config(
        "mnist",
        l1=1e-3,
        weight_decay=1e-2,
        dropout=0.0,
        dense_units=units,
        schedule="constant",
        augment="none",
        ema_momentum=ema_momentum,
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 32, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(3, 32)).astype(np.int32)

    ours = build_lenet(dense_units=units, dropout=0.0, seed=0)
    ours_optimizer = make_optimizer(cfg, 10)
    step = TrainStep.for_config(cfg, ours, ours_optimizer)
    sums = step.steps(images, labels)

    class KerasAdam(WarmUpEMA, keras.optimizers.Adam):
        """Keras's Adam update, op by op, with lenet's moving-average warm-up."""

    reference = build_lenet(dense_units=units, dropout=0.0, seed=0)
    ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    optimizer = KerasAdam(learning_rate=cfg.learning_rate, **ema)
    variables = [w for layer in reference.layers for w in layer.trainable_weights]
    optimizer.build(variables)
    objective = Objective(reference, cfg.l1, cfg.weight_decay)
    view = logits_and_probabilities(reference)
    first_terms = None
    for x, y in zip(images, labels):
        with tf.GradientTape() as tape:
            logits, _ = view(tf.cast(x[..., None], tf.float32) / 255.0, training=True)
            terms = objective.penalties()
            first_terms = first_terms or {k: float(v) for k, v in terms.items()}
            loss = (
                tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
                + terms["l1"]
                + terms["l2"]
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    for a, b in zip(ours.weights, reference.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)
    start = build_lenet(dense_units=units, dropout=0.0, seed=0).get_layer("dot_1").kernel
    assert (
        np.abs(np.asarray(ours.get_layer("dot_1").kernel) - np.asarray(start)).max() > 1e-4
    )  # the weights really moved
    if ema_momentum:
        for a, b in zip(ours_optimizer._model_variables_moving_average, optimizer._model_variables_moving_average):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)
    assert int(ours_optimizer.iterations.numpy()) == int(optimizer.iterations.numpy()) == 3
    assert float(sums["penalty_images"]) == 32  # measured on the call's first step only
    assert float(sums["l1"]) / 32 == pytest.approx(first_terms["l1"], rel=1e-6)
    assert float(sums["l2"]) / 32 == pytest.approx(first_terms["l2"], rel=1e-6)


def test_predictor_takes_uint8_or_float_and_its_class_count_from_the_model():
    from lenet_cli.model.inference import KerasPredictor
    from lenet_cli.model.network import build_lenet

    model = build_lenet(dense_units=8, seed=0)
    predictor = KerasPredictor(model, batch_size=7)
    images = np.random.default_rng(1).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    probabilities = predictor(images)
    logits = predictor.logits(images.astype(np.float32)[..., None] / 255.0)
    reference = model.predict(images[..., None].astype(np.float32) / 255.0, verbose=0)
    assert probabilities.shape == (20, 10) and np.allclose(probabilities, reference, atol=1e-6)
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), reference, atol=1e-6)
    assert predictor(images[:0]).shape == (0, 10)


def _checkpointed_run(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run as an unfinished one (no model yet): what --resume continues."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "model.keras").unlink()
    (run / "metrics.json").unlink()
    return run


def test_checkpoint_describes_itself(trained_run):
    from lenet_cli.model.checkpoint import load_checkpoint

    state, arrays = load_checkpoint(trained_run)
    config = json.loads((trained_run / "config.json").read_text())
    history = json.loads((trained_run / "history.json").read_text())
    assert state.config == config and state.completed_epochs == config["epochs"] == len(history)
    assert state.best_val_accuracy == max(h["val_accuracy"] for h in history)
    assert state.rng_state["bit_generator"] == "PCG64"
    assert "model/dot_1/kernel" in arrays and "model/dropout_1/seed_generator_state" in arrays
    assert "optimizer/iteration" in arrays and not any(k.split("/")[1].isdigit() for k in arrays)


def test_a_checkpoint_variable_of_another_shape_is_named(trained_run, synthetic_data_dir, tmp_path):
    run = _checkpointed_run(trained_run, tmp_path)
    path = run / "checkpoint.npz"
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["model/dot_2/kernel"] = arrays["model/dot_2/kernel"][:, :5]
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--data-dir", str(synthetic_data_dir), "--quiet"])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "'model/dot_2/kernel'" in result.stderr and "(64, 5)" in result.stderr and "(64, 64)" in result.stderr


def test_a_checkpoint_missing_a_variable_is_named(trained_run, tmp_path):
    from lenet_cli.core.config import TrainConfig
    from lenet_cli.core.errors import LenetError
    from lenet_cli.model.augmentation import build_augmentation
    from lenet_cli.model.checkpoint import load_checkpoint, restore
    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.train_step import make_optimizer

    _, arrays = load_checkpoint(trained_run)
    del arrays["optimizer/dot_1_kernel_velocity"]
    cfg = TrainConfig.load(trained_run / "config.json")
    model = build_lenet(dense_units=cfg.dense_units, seed=0)
    optimizer = make_optimizer(cfg, steps_per_epoch=10)
    optimizer.build(model.trainable_weights)
    augmentation = build_augmentation(cfg.augment, cfg.seed)
    if augmentation is not None:
        augmentation.build((None, 28, 28, 1))
    restore(
        model, optimizer, dict(load_checkpoint(trained_run)[1]), augmentation
    )  # the same network and optimizer: accepted
    with pytest.raises(LenetError, match="'optimizer/dot_1_kernel_velocity'"):
        restore(model, optimizer, arrays, augmentation)


def test_debug_travels_in_the_click_context_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_RUNS_DIR", str(tmp_path / "no-runs"))
    before = dict(os.environ)
    debug = CliRunner().invoke(cli, ["--debug", "evaluate", "--format", "json"])
    assert dict(os.environ) == before
    from lenet_cli.core.errors import LenetError

    assert isinstance(debug.exception, LenetError)  # --debug: the full error with its traceback
    plain = CliRunner().invoke(cli, ["evaluate", "--format", "json"])
    assert plain.exit_code == 1 and plain.stderr.startswith("Error: no trained model found")
    assert dict(os.environ) == before


def _function_lengths():
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = node.body[0]
                has_docstring = (
                    isinstance(first, ast.Expr)
                    and isinstance(getattr(first, "value", None), ast.Constant)
                    and isinstance(first.value.value, str)
                )
                start = first.end_lineno + 1 if has_docstring and len(node.body) > 1 else node.lineno
                yield f"{path.name}:{node.lineno} {node.name}", node.end_lineno - start + 1


def test_no_function_is_longer_than_a_reader_can_hold():
    too_long = {name: lines for name, lines in _function_lengths() if lines > MAX_FUNCTION_LINES}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines of code (docstring excluded): {too_long}"


def test_worker_modules_never_print_exit_or_import_click():
    presentation = {"cli.py", "console.py", "__main__.py"}
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in presentation or path.name.endswith(
            ("_command.py", "_option.py")
        ):  # commands and Click parameter types
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n == "click" or n.startswith("click.") for n in names):
                    offenders.append(f"{path.name}: imports click")
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                if func in ("print", "sys.exit", "os._exit", "exit", "sys.stderr.write", "sys.stdout.write"):
                    offenders.append(f"{path.name}:{node.lineno}: {func}()")
    assert not offenders, offenders
