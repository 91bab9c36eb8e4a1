"""One contract: every verb answers the same through :mod:`lenet_cli.api` and through the command line.

For good inputs the command line's ``--format json`` output is the API result's JSON form; for bad ones both refuse
with the same check: the API raises :class:`BadValue` naming the field (``top_k``), the command line exits 2 naming
its option (``--top-k``). Other refusals (a missing run) raise the same error type, told in the same words, with the
type's exit code. One bad value per option family (range, choice, finite, path, combination) on each verb.

Two tiny trainings (one per front door) make the runs every other case uses; nothing else trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli import api
from lenet_cli.cli import cli
from lenet_cli.cli.options import flag_for, in_flags
from lenet_cli.core.errors import EXIT_USAGE, BadValue, LenetError

TINY = {"epochs": 1, "validation_size": 100, "batch_size": 50, "dense_units": 16, "train_limit": 300}
TINY_FLAGS = ["--epochs", "1", "--validation-size", "100", "--batch-size", "50", "--dense-units", "16"]
TINY_FLAGS += ["--train-limit", "300", "--no-tensorboard", "--quiet"]
TIMINGS = ("seconds", "images_per_second", "train_seconds", "load_seconds")  # measured, so never equal twice


@dataclass(frozen=True)
class Setup:
    """What every case may refer to: the data, the runs folder, the two runs, pictures, a scratch folder."""

    data_dir: Path
    runs_dir: Path
    api_run: Path
    cli_run: Path
    cli_train_json: dict
    pictures: list[Path]
    scratch: Path

    def fill(self, argv: list[str]) -> list[str]:
        return [a.format(data=self.data_dir, runs=self.runs_dir, run=self.api_run, tmp=self.scratch) for a in argv]


def _cli(argv: list[str]):
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def _without(record, keys=TIMINGS):
    """``record`` with the measured fields left out, at any depth."""
    if isinstance(record, dict):
        return {k: _without(v, keys) for k, v in record.items() if k not in keys}
    if isinstance(record, list):
        return [_without(v, keys) for v in record]
    return record


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthetic_data_dir) -> Setup:
    """Train once through the API and once through the command line, with the same tiny options."""
    from PIL import Image

    root = tmp_path_factory.mktemp("parity")
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LENET_VERIFY_CHECKSUMS", "0")
        env.setenv("XDG_CACHE_HOME", str(root / "cache"))
        env.setenv("LENET_RUNS_DIR", str(runs_dir))
        outcome = api.train(
            data_dir=synthetic_data_dir, output=runs_dir / "by-api", runs_dir=runs_dir, tensorboard=False, **TINY
        )
        result = _cli(
            ["train", "--data-dir", str(synthetic_data_dir), "--output", str(runs_dir / "by-cli")]
            + ["--runs-dir", str(runs_dir), "--format", "json", *TINY_FLAGS]
        )
    assert result.exit_code == 0, result.output
    pictures = []
    rng = np.random.default_rng(0)
    for number in range(3):
        picture = np.zeros((28, 28), np.uint8)
        picture[6:22, 12 + number : 16 + number] = 255  # a stroke, a little further right each time
        picture = np.maximum(picture, rng.integers(0, 40, (28, 28), dtype=np.uint8))
        path = root / f"digit-{number}.png"
        Image.fromarray(picture).save(path)
        pictures.append(path)
    scratch = root / "scratch"
    scratch.mkdir()
    return Setup(
        synthetic_data_dir,
        runs_dir,
        outcome.run_dir,
        runs_dir / "by-cli",
        json.loads(result.stdout),
        pictures,
        scratch,
    )


@pytest.fixture(autouse=True)
def quiet_env(monkeypatch, setup):
    monkeypatch.setenv("LENET_RUNS_DIR", str(setup.runs_dir))


# --- Good inputs: the same results ------------------------------------------------------------------------------


def test_train_writes_the_same_recipe_and_reports_the_same_fields(setup):
    api_config = json.loads((setup.api_run / "config.json").read_text())
    cli_config = json.loads((setup.cli_run / "config.json").read_text())
    assert api_config == cli_config
    api_metrics = json.loads((setup.api_run / "metrics.json").read_text())
    assert set(setup.cli_train_json) == set(api_metrics) | {"run_dir"}
    assert setup.cli_train_json["test_count"] == api_metrics["test_count"]


def test_evaluate_prints_the_api_report(setup):
    report = api.evaluate(model=setup.api_run, data_dir=setup.data_dir, top_k=2).report
    assert report["count"] == 200 and report["top_k"] == 2
    result = _cli(
        ["evaluate", str(setup.api_run), "--data-dir", str(setup.data_dir), "--top-k", "2", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert _without(json.loads(result.stdout)) == _without(json.loads(json.dumps(report)))


def test_predict_prints_the_api_answers(setup):
    answers = api.predict(setup.pictures, model=setup.api_run, top_k=2)
    assert len(answers) == 3 and all(answer.error is None for answer in answers)
    result = _cli(
        ["predict", *map(str, setup.pictures), "--model", str(setup.api_run), "--top-k", "2", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    printed = [_without(record, ("model",)) for record in json.loads(result.stdout)]  # the CLI adds the model's name
    assert printed == [json.loads(json.dumps(answer.to_dict())) for answer in answers]


def test_explain_prints_the_api_explanations(setup):
    out = setup.scratch / "sheets"
    picture = str(setup.pictures[0])
    explained = api.explain([picture], model=setup.api_run, steps=8, output_dir=out)
    assert explained.failures == 0 and len(explained.explanations) == 1
    result = _cli(
        ["explain", picture, "--model", str(setup.api_run), "--steps", "8", "-o", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [json.loads(json.dumps(e.to_dict())) for e in explained.explanations]


def test_runs_listing_prints_the_api_list(setup):
    result = _cli(["runs", "--runs-dir", str(setup.runs_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {record["name"] for record in json.loads(result.stdout)} >= {"by-api", "by-cli"}
    assert json.loads(result.stdout) == json.loads(json.dumps(api.list_runs(setup.runs_dir)))


def test_export_prints_the_api_rows(setup):
    exported = api.export(setup.api_run, output=setup.scratch / "by-api.keras", verify=False)
    result = _cli(
        ["export", str(setup.api_run), "-o", str(setup.scratch / "by-cli.keras"), "--no-verify", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [Path(row.pop("path")).name for row in printed] == ["by-cli.keras"]
    rows = [r.to_json_dict() for r in exported]
    assert [Path(row.pop("path")).name for row in rows] == ["by-api.keras"]
    assert _without(printed, ("size_bytes",)) == _without(json.loads(json.dumps(rows)), ("size_bytes",))


# --- Bad inputs: the same refusal -----------------------------------------------------------------------------
# (family, API call, command line, field): the API raises BadValue(field), the command line exits 2 under its option


def test_resume_continues_a_run_as_the_command_line_does(setup, tmp_path):
    """``api.train(resume=NAME)`` and ``lenet train --resume PATH`` continue two copies of one stopped run alike."""
    import shutil

    runs_dir = tmp_path / "runs"
    base = api.train(
        data_dir=setup.data_dir,
        output=tmp_path / "base",
        runs_dir=runs_dir,
        tensorboard=False,
        keep_checkpoint=True,
        **TINY,
    ).run_dir
    (base / "model.keras").unlink()
    (base / "metrics.json").unlink()  # what a run stopped after its first epoch looks like
    by_api, by_cli = runs_dir / "stopped", tmp_path / "stopped"
    shutil.copytree(base, by_api)
    shutil.copytree(base, by_cli)

    outcome = api.train(resume="stopped", epochs=2, data_dir=setup.data_dir, runs_dir=runs_dir, tensorboard=False)
    result = _cli(
        ["train", "--resume", str(by_cli), "--epochs", "2", "--data-dir", str(setup.data_dir)]
        + ["--runs-dir", str(runs_dir), "--no-tensorboard", "--quiet", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert outcome.run_dir == by_api and json.loads(result.stdout)["run_dir"] == str(by_cli)
    api_config = json.loads((by_api / "config.json").read_text())
    assert api_config == json.loads((by_cli / "config.json").read_text())
    assert (api_config["epochs"], api_config["planned_epochs"]) == (2, 1)
    for run in (by_api, by_cli):
        assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2]
        assert (run / "model.keras").is_file() and not (run / "checkpoint.npz").exists()
    assert len(outcome.history) == 2
    assert set(json.loads(result.stdout)) == set(outcome.metrics) | {"run_dir"}


BAD = [
    # train
    ("range", lambda s: api.train(epochs=-2, data_dir=s.data_dir), ["train", "--epochs", "-2"], "epochs"),
    ("choice", lambda s: api.train(optimizer="lbfgs"), ["train", "--optimizer", "lbfgs"], "optimizer"),
    ("finite", lambda s: api.train(learning_rate=math.nan), ["train", "--learning-rate", "nan"], "learning_rate"),
    ("range", lambda s: api.train(dropout=1.5), ["train", "--dropout", "1.5"], "dropout"),
    ("range", lambda s: api.train(ema_momentum=1.0), ["train", "--ema", "1"], "ema_momentum"),
    ("choice", lambda s: api.train(freeze=("flatten",)), ["train", "--freeze", "flatten"], "freeze"),
    (
        "path",
        lambda s: api.train(init_from=s.scratch / "none.keras", data_dir=s.data_dir),
        ["train", "--init-from", "{tmp}/none.keras", "--data-dir", "{data}"],
        "init_from",
    ),
    ("combination", lambda s: api.train(devices=2), ["train", "--devices", "2"], "devices"),
    (
        "combination",
        lambda s: api.train(resume=s.api_run, learning_rate=0.1),
        ["train", "--resume", "{run}", "--learning-rate", "0.1"],
        "learning_rate",
    ),
    (
        "combination",
        lambda s: api.train(resume=s.api_run, output=s.scratch / "elsewhere"),
        ["train", "--resume", "{run}", "--output", "{tmp}/elsewhere"],
        "output",
    ),
    ("path", lambda s: api.train(resume="no-such-run"), ["train", "--resume", "no-such-run"], "resume"),
    (
        "combination",
        lambda s: api.train(distribute="multi-worker", workers="h1:2222"),
        ["train", "--distribute", "multi-worker", "--workers", "h1:2222"],
        "task_index",
    ),
    # evaluate
    ("range", lambda s: api.evaluate(top_k=0), ["evaluate", "--top-k", "0"], "top_k"),
    ("choice", lambda s: api.evaluate(split="holdout"), ["evaluate", "--split", "holdout"], "split"),
    (
        "finite",
        lambda s: api.evaluate(min_confidence=math.nan),
        ["evaluate", "--min-confidence", "nan"],
        "min_confidence",
    ),
    ("path", lambda s: api.evaluate(model=s.scratch / "none.keras"), ["evaluate", "{tmp}/none.keras"], "model"),
    (
        "combination",
        lambda s: api.evaluate(model=s.api_run, top_k=11, data_dir=s.data_dir),
        ["evaluate", "{run}", "--top-k", "11", "--data-dir", "{data}"],
        "top_k",
    ),
    # predict
    ("range", lambda s: api.predict(s.pictures, top_k=0), ["predict", "x.png", "--top-k", "0"], "top_k"),
    (
        "choice",
        lambda s: api.predict(s.pictures, invert="sometimes"),
        ["predict", "x.png", "--invert", "sometimes"],
        "invert",
    ),
    (
        "finite",
        lambda s: api.predict(s.pictures, min_confidence=math.nan),
        ["predict", "x.png", "--min-confidence", "nan"],
        "min_confidence",
    ),
    (
        "path",
        lambda s: api.predict([], files_from=s.scratch / "no-list.txt"),
        ["predict", "--files-from", "{tmp}/no-list.txt"],
        "files_from",
    ),
    (
        "combination",
        lambda s: api.predict(s.pictures, model=s.api_run, top_k=11),
        ["predict", "x.png", "--model", "{run}", "--top-k", "11"],
        "top_k",
    ),
    # explain
    ("range", lambda s: api.explain(s.pictures, steps=0), ["explain", "x.png", "--steps", "0"], "steps"),
    ("choice", lambda s: api.explain(s.pictures, method="lime"), ["explain", "x.png", "--method", "lime"], "method"),
    (
        "path",
        lambda s: api.explain(s.pictures, model=s.scratch / "none.keras"),
        ["explain", "x.png", "--model", "{tmp}/none.keras"],
        "model",
    ),
    (
        "combination",
        lambda s: api.explain(s.pictures, model=s.api_run, top_k=11),
        ["explain", "x.png", "--model", "{run}", "--top-k", "11"],
        "top_k",
    ),
    # export
    ("choice", lambda s: api.export(output="m.keras", to="caffe"), ["export", "--to", "caffe", "-o", "m.keras"], "to"),
    (
        "choice",
        lambda s: api.export(output="m.tflite", quantize="int4"),
        ["export", "--quantize", "int4", "-o", "m.tflite"],
        "quantize",
    ),
    (
        "range",
        lambda s: api.export(output="models", serving_version=0),
        ["export", "--serving-version", "0", "-o", "models"],
        "serving_version",
    ),
    ("path", lambda s: api.export(output="model.bin"), ["export", "-o", "model.bin"], "output"),
    (
        "combination",
        lambda s: api.export(output="k.onnx", to="keras"),
        ["export", "--to", "keras", "-o", "k.onnx"],
        "output",
    ),
    (
        "combination",
        lambda s: api.export(output="m.onnx", to="onnx", quantize="int8"),
        ["export", "--to", "onnx", "--quantize", "int8", "-o", "m.onnx"],
        "quantize",
    ),
    (
        "path",
        lambda s: api.export(s.scratch / "none.keras", output=s.scratch / "m.keras"),
        ["export", "{tmp}/none.keras", "-o", "{tmp}/m.keras"],
        "model",
    ),
    # the runs verbs
    ("range", lambda s: api.prune_runs(-1), ["runs", "prune", "--keep", "-1"], "keep"),
    ("choice", lambda s: api.prune_runs(3, by="loss"), ["runs", "prune", "--keep", "3", "--by", "loss"], "by"),
    (
        "finite",
        lambda s: api.prune_runs(3, older_than=math.nan),
        ["runs", "prune", "--keep", "3", "--older-than", "nan"],
        "older_than",
    ),
    (
        "combination",
        lambda s: api.tag_run(s.api_run, {"a": "1"}, remove=["a"]),
        ["runs", "tag", "{run}", "a=1", "--remove", "a"],
        "remove",
    ),
    ("combination", lambda s: api.compare_runs([s.api_run]), ["runs", "compare", "{run}"], "runs"),
    (
        "path",
        lambda s: api.compare_runs([s.api_run, s.cli_run], plot=s.scratch / "curves.jpg"),
        ["runs", "compare", "{run}", "{run}", "--plot", "{tmp}/curves.jpg"],
        "plot",
    ),
    # benchmark
    ("range", lambda s: api.benchmark(count=0), ["benchmark", "--count", "0"], "count"),
]


@pytest.mark.parametrize(
    "family, call, argv, field", BAD, ids=[f"{argv[0]}-{field}-{family}" for family, _, argv, field in BAD]
)
def test_both_refuse_a_bad_value_under_its_name(setup, family, call, argv, field):
    with pytest.raises(BadValue) as caught:
        call(setup)
    assert caught.value.field == field, caught.value
    assert "--" not in str(caught.value), "a message below the command line names a field, never a flag"
    result = CliRunner().invoke(cli, setup.fill(argv))
    assert result.exit_code == EXIT_USAGE, result.output
    assert flag_for(field) in result.stderr, result.stderr


# Refusals that are not a value's: the same error type on both sides, told in the same words (the fields it mentions
# as their options), with its exit code
OTHER = [
    (lambda s: api.train(resume=s.api_run), ["train", "--resume", "{run}"]),  # a finished run: RunError
    (lambda s: api.tag_run("no-such-run", {"a": "1"}), ["runs", "tag", "no-such-run", "a=1"]),
    (lambda s: api.remove_runs(["no-such-run"]), ["runs", "rm", "no-such-run"]),
    (
        lambda s: api.export(s.api_run, output=s.api_run / "model.keras", verify=False),
        ["export", "{run}", "-o", "{run}/model.keras", "--no-verify"],
    ),
]


@pytest.mark.parametrize("call, argv", OTHER, ids=[" ".join(argv[:2]) for _, argv in OTHER])
def test_both_refuse_the_same_way_when_it_is_not_a_value(setup, call, argv):
    with pytest.raises(LenetError) as caught:
        call(setup)
    assert not isinstance(caught.value, BadValue)
    result = CliRunner().invoke(cli, setup.fill(argv))
    assert result.exit_code == caught.value.exit_code, result.output
    assert in_flags(caught.value).splitlines()[0] in result.stderr  # the fields it mentions as their options
