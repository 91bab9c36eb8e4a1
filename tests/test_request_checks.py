"""The engine's request objects refuse bad values themselves: the Python API and the command line refuse the same things,
the API naming the field (``top_k``) and the command line its option (``--top-k``)."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from lenet_cli import api
from lenet_cli.cli import cli
from lenet_cli.core.errors import EXIT_USAGE, BadValue
from lenet_cli.engine.evaluate import EvaluateRequest
from lenet_cli.engine.explain import ExplainRequest
from lenet_cli.engine.predict import PredictRequest

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
