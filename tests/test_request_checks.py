"""The engine's request objects refuse bad values themselves: the Python API and the command line refuse the same things,
the API naming the field (``top_k``) and the command line its option (``--top-k``)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from click.testing import CliRunner

from lenet_cli import api
from lenet_cli.cli import cli
from lenet_cli.core.config import TrainConfig
from lenet_cli.core.errors import EXIT_USAGE, BadValue
from lenet_cli.engine.evaluate import EvaluateRequest
from lenet_cli.engine.explain import ExplainRequest
from lenet_cli.engine.predict import PredictRequest
from lenet_cli.engine.train import TrainRequest

# (request, field, bad value): a range, a finiteness, a choice, on each verb that answers for pictures or scores
CASES = [
    (PredictRequest, "top_k", 0),
    (PredictRequest, "min_confidence", math.nan),
    (PredictRequest, "min_confidence", 1.5),
    (PredictRequest, "batch_size", 0),
    (PredictRequest, "invert", "sometimes"),
    (PredictRequest, "preprocess", "cifar"),
    (PredictRequest, "engine", "torch"),
    (EvaluateRequest, "top_k", 0),
    (EvaluateRequest, "split", "holdout"),
    (EvaluateRequest, "min_confidence", -0.1),
    (ExplainRequest, "steps", 0),
    (ExplainRequest, "method", "lime"),
]


@pytest.mark.parametrize("request_type, field, value", CASES)
def test_each_request_refuses_a_bad_value_by_its_field(request_type, field, value):
    with pytest.raises(BadValue) as caught:
        request_type(**{field: value})
    assert caught.value.field == field
    assert "--" not in str(caught.value), "a message below the command line never names a flag"


def test_the_defaults_are_accepted():
    PredictRequest(), EvaluateRequest(), ExplainRequest()


@pytest.mark.parametrize(
    "call",
    [
        lambda: api.predict(["x.png"], top_k=0),
        lambda: api.predict(["x.png"], min_confidence=math.nan),
        lambda: api.evaluate(split="holdout"),
        lambda: api.explain(["x.png"], steps=0),
    ],
)
def test_the_api_refuses_before_any_work(call):
    with pytest.raises(BadValue):
        call()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["predict", "x.png", "--top-k", "0"], "--top-k"),
        (["predict", "x.png", "--min-confidence", "nan"], "--min-confidence"),
        (["evaluate", "--split", "holdout"], "--split"),
        (["explain", "x.png", "--steps", "0"], "--steps"),
    ],
)
def test_the_command_line_refuses_the_same_values_under_its_options(argv, flag):
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == EXIT_USAGE and flag in result.stderr, result.output


def test_a_value_the_engine_refuses_is_told_under_the_option():
    """Past Click's own checks (they stay for help and completion), the engine's check answers in the option's name."""
    from lenet_cli.cli.options import bad_value_error

    error = bad_value_error(BadValue("min_confidence", "must be between 0 and 1, not 1.5"))
    assert error.format_message() == "Invalid value for '--min-confidence': must be between 0 and 1, not 1.5"
    assert bad_value_error(BadValue("ema_momentum", "x")).format_message().startswith("Invalid value for '--ema'")


# TrainConfig and TrainRequest: one bad value per kind (range, fraction, finite, choice, names, flag, combination)
TRAIN_CASES = [
    (TrainConfig, "epochs", -2),
    (TrainConfig, "batch_size", 0),
    (TrainConfig, "learning_rate", 0.0),
    (TrainConfig, "learning_rate", math.inf),
    (TrainConfig, "warmup_epochs", math.nan),
    (TrainConfig, "l1", -1e-6),
    (TrainConfig, "weight_decay", math.nan),
    (TrainConfig, "dropout", 1.5),
    (TrainConfig, "ema_momentum", 1.0),
    (TrainConfig, "label_smoothing", -0.1),
    (TrainConfig, "dense_units", 0),
    (TrainConfig, "validation_size", -1),
    (TrainConfig, "train_limit", 0),
    (TrainConfig, "seed", 1.5),
    (TrainConfig, "optimizer", "lbfgs"),
    (TrainConfig, "schedule", "step"),
    (TrainConfig, "augment", "mixup"),
    (TrainConfig, "precision", "float16"),
    (TrainConfig, "preprocess", "cifar"),
    (TrainConfig, "freeze", ("flatten",)),
    (TrainConfig, "calibrate", "false"),
]


@pytest.mark.parametrize("request_type, field, value", TRAIN_CASES)
def test_the_recipe_refuses_a_bad_value_by_its_field(request_type, field, value):
    test_each_request_refuses_a_bad_value_by_its_field(request_type, field, value)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"distribute": "ring"}, "distribute"),
        ({"devices": 0, "distribute": "mirrored"}, "devices"),
        ({"devices": 2}, "devices"),
        ({"workers": "h:1", "task_index": 0}, "workers"),
        ({"distribute": "multi-worker", "workers": "h:1"}, "task_index"),
        ({"distribute": "multi-worker", "workers": "h", "task_index": 0}, "workers"),
        ({"worker_timeout": math.nan}, "worker_timeout"),
        ({"tensorboard": "yes"}, "tensorboard"),
    ],
)
def test_the_train_request_refuses_a_bad_value_by_its_field(fields, field):
    with pytest.raises(BadValue) as caught:
        TrainRequest(TrainConfig(), **fields)
    assert caught.value.field == field and "--" not in str(caught.value)


def test_every_recipe_field_is_told_under_its_option():
    """The command line names each field's own option: a field without one would be told under a flag that does not exist."""
    from lenet_cli.cli.options import flag_for
    from lenet_cli.cli.train import train

    options = {opt for param in train.params for opt in param.opts}
    computed = {"data_source", "class_names", "data_fingerprint", "study", "trial"}  # filled in by lenet, never given
    for field in dataclasses.fields(TrainConfig):
        if field.name not in computed:
            assert flag_for(field.name) in options, field.name
    for field in dataclasses.fields(TrainRequest):
        if field.name not in ("config", "score_test"):
            assert flag_for(field.name) in options, field.name


def test_the_api_refuses_a_bad_recipe_before_any_data(tmp_path):
    with pytest.raises(BadValue) as caught:
        api.train(epochs=-2, data_dir=tmp_path / "nothing-here")
    assert caught.value.field == "epochs"
    with pytest.raises(BadValue) as caught:
        api.train(dropout=1.5, data_dir=tmp_path / "nothing-here")
    assert caught.value.field == "dropout"
    assert list(tmp_path.iterdir()) == []


def test_a_saved_recipe_out_of_range_is_a_run_error(tmp_path):
    from lenet_cli.core.errors import RunError

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TrainConfig().to_json_dict(), "dropout": 1.5}))
    with pytest.raises(RunError, match="dropout"):
        TrainConfig.load(path)


def test_a_recipe_saved_by_an_earlier_version_still_loads():
    """Fields added since (label_smoothing, test_time_flip, precision, ...) take their defaults; old choices still parse."""
    old = {"dataset": "fashion", "epochs": 24, "augment": "flip", "freeze": ["conv_1"], "retired_field": 1}
    config = TrainConfig.from_json_dict(old)
    assert config.augment == "flip" and config.freeze == ("conv_1",) and config.label_smoothing == 0.0
