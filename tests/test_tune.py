"""``lenet tune``: the search space, bad input, a small study end to end, resume, Ctrl-C, and a study shared in PostgreSQL."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core import train_recipe, tune_levers, tune_space
from lenet_cli.core.errors import EXIT_MISSING_EXTRA, EXIT_STORAGE_LOST, BadValue

optuna = pytest.importorskip("optuna", reason="lenet tune needs the tune extra: pip install 'lenet-cli[tune]'")

REPO = Path(__file__).resolve().parent.parent
TINY_SPACE = {
    "dense-units": 16,
    "batch-size": [32, 64],
    "augment": "none",
    "ema": 0.0,
    "learning-rate": {"low": 1e-3, "high": 1e-2, "log": True},
}
"""A space whose trials train in a second or two on the synthetic data."""


# --- The space ------------------------------------------------------------------------------


def test_the_default_space_covers_the_recipes_levers():
    fashion, mnist = tune_space.default_space("fashion"), tune_space.default_space("mnist")
    for lever in (
        "learning-rate",
        "batch-size",
        "epochs",
        "schedule",
        "warmup-epochs",
        "dropout",
        "l1",
        "weight-decay",
        "augment",
        "ema",
        "label-smoothing",
    ):
        assert lever in fashion and lever in mnist
    assert fashion["epochs"] == tune_space.Range(8, 24) and mnist["epochs"] == tune_space.Range(
        6, 20
    )  # up to the default budget
    assert (
        "flip" in fashion["augment"].choices and "flip" not in mnist["augment"].choices
    )  # a flipped digit is no digit
    assert fashion["learning-rate"].log


def test_the_levers_are_lenet_trains_options():
    """Each space and recipe name is a `lenet train` option, setting the same field, with the same bounds and choices."""
    from lenet_cli.cli.train import train

    options = {
        opt[2:]: p for p in train.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--")
    }
    for name, lever in tune_levers.LEVERS.items():
        param = options[name]
        assert param.name == lever.field, name
        kind = param.type
        if lever.kind is str:
            assert tuple(kind.choices) == lever.choices, name
            continue
        assert isinstance(kind, click.IntRange if lever.kind is int else click.FloatRange), name
        assert (kind.min, kind.max, kind.min_open, kind.max_open) == (
            lever.low,
            lever.high,
            lever.low_open,
            lever.high_open,
        ), name
    for name in train_recipe.RECIPE_OPTIONS:
        assert name in options, f"the recipe's {name!r} is not a lenet train option"


def test_a_space_file_in_toml_or_json(tmp_path):
    toml = tmp_path / "space.toml"
    toml.write_text(
        'batch-size = [128, 256]\naugment = "flip"\n\n[learning_rate]\nlow = 5e-4\nhigh = 5e-3\nlog = true\n\n'
        "[dense-units]\nchoices = [300, 600]\n\n[dropout]\nlow = 0.2\nhigh = 0.4\nstep = 0.05\n"
    )
    as_json = tmp_path / "space.json"
    as_json.write_text(
        json.dumps(
            {
                "batch-size": [128, 256],
                "augment": {"value": "flip"},
                "learning-rate": {"low": 5e-4, "high": 5e-3, "log": True},
                "dense-units": {"choices": [300, 600]},
                "dropout": {"low": 0.2, "high": 0.4, "step": 0.05},
            }
        )
    )
    expected = {
        "batch-size": tune_space.Choice((128, 256)),
        "augment": tune_space.Fixed("flip"),
        "learning-rate": tune_space.Range(5e-4, 5e-3, log=True),
        "dense-units": tune_space.Choice((300, 600)),
        "dropout": tune_space.Range(0.2, 0.4, step=0.05),
    }
    for path in (toml, as_json):
        assert tune_space.parse_space(tune_space.read_space_file(path)) == expected
    space = tune_space.build_space("fashion", toml, epochs_cap=10)
    assert space["batch-size"] == tune_space.Choice((128, 256)) and space["schedule"] == tune_space.Choice(
        ("cosine", "constant")
    )
    assert space["epochs"] == tune_space.Range(8, 10)  # the default range, capped
    assert tune_space.build_space("fashion", epochs_cap=3)["epochs"] == tune_space.Fixed(3)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"learnin-rate": {"low": 1e-3, "high": 1e-2}}, "unknown option 'learnin-rate': did you mean 'learning-rate'?"),
        ({"output": "x"}, "unknown option 'output'"),
        ({"dropout": {"low": 0.5, "high": 0.2}}, "dropout: the range is empty: low 0.5 is above high 0.2"),
        ({"batch-size": []}, "batch-size: choices must be a non-empty list"),
        ({"dropout": {"low": 0.2, "high": 1.5}}, "dropout must be >= 0 and < 1; received: 1.5"),
        ({"l1": {"low": 0, "high": 1e-4, "log": True}}, "l1: a log range needs low > 0"),
        ({"batch-size": {"low": 32.5, "high": 64}}, "batch-size takes an integer; received: 32.5"),
        ({"augment": {"low": 1, "high": 2}}, "augment takes choices, not a range"),
        ({"augment": ["flip", "mirror"]}, "augment takes one of"),
        ({"dropout": {"lo": 0.1, "high": 0.2}}, "dropout: unknown key 'lo'"),
        ({"dropout": {"low": 0.1}}, "dropout: a range needs both low and high"),
        ({"learning-rate": 0.01, "learning_rate": 0.02}, "learning-rate is given twice"),
    ],
)
def test_space_mistakes_name_what_to_fix(entry, message):
    with pytest.raises(BadValue) as caught:
        tune_space.parse_space(entry)
    assert caught.value.field == "space" and message in str(caught.value)


def test_a_drawn_recipe_is_a_valid_training_config():
    from lenet_cli.core.config import resolve_config

    space = tune_space.build_space("fashion")
    trial = optuna.trial.FixedTrial(
        {
            "learning-rate": 2e-3,
            "batch-size": 256,
            "epochs": 12,
            "schedule": "cosine",
            "warmup-epochs": 0.5,
            "dropout": 0.3,
            "l1": 1e-6,
            "weight-decay": 1e-5,
            "augment": "flip",
            "ema": 0.999,
            "label-smoothing": 0.1,
        }
    )
    values = tune_space.suggest(trial, space)
    cfg = resolve_config("fashion", **tune_space.config_overrides(values))
    assert (cfg.learning_rate, cfg.batch_size, cfg.ema_momentum, cfg.augment, cfg.epochs) == (
        2e-3,
        256,
        0.999,
        "flip",
        12,
    )
    assert train_recipe.recipe_of(cfg)["ema"] == 0.999 and train_recipe.recipe_of(cfg)["dataset"] == "fashion"


@pytest.mark.parametrize(
    "text, seconds", [("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("45s", 45), ("600", 600), ("1.5h", 5400)]
)
def test_timeout_durations(text, seconds):
    from lenet_cli.cli.tune import Duration

    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["soon", "10x", "m5", "0", "-5", "1h30"])
def test_bad_timeouts_are_usage_errors(text):
    result = CliRunner().invoke(cli, ["tune", "--timeout", text])
    assert result.exit_code == 2 and ("is not a duration" in result.stderr or "longer than nothing" in result.stderr), (
        result.output
    )


# --- Bad input: one line, exit 2, nothing created -----------------------------------------------


def _tune_args(data_dir: Path, runs: Path, *extra) -> list[str]:
    return [
        "tune",
        "--dataset",
        "mnist",
        "--data-dir",
        str(data_dir),
        "--runs-dir",
        str(runs),
        "--validation-size",
        "100",
        "--train-limit",
        "200",
        "--epochs",
        "1",
        *map(str, extra),
    ]


def _one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown-option", "unknown option 'dropuot': did you mean 'dropout'?"),
        ("empty-range", "learning-rate: the range is empty"),
        ("not-a-url", "is not a database URL"),
        ("missing-folder", "the folder"),
        ("unreachable", "cannot open the study database"),
        ("no-driver", "its database driver is not installed"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_created(case, message, synthetic_data_dir, tmp_path):
    runs = tmp_path / "runs"
    extra: list[str] = []
    if case in ("unknown-option", "empty-range"):
        space = tmp_path / "space.toml"
        space.write_text(
            "dropuot = 0.3\n" if case == "unknown-option" else "[learning-rate]\nlow = 0.01\nhigh = 0.001\n"
        )
        extra = ["--space", str(space)]
    else:
        url = {
            "not-a-url": "my-database",
            "missing-folder": f"sqlite:///{tmp_path}/no/such/folder/study.db",
            "unreachable": f"postgresql://nobody@127.0.0.1:{_free_port()}/lenet",
            "no-driver": "mysql://nobody@127.0.0.1/lenet",
        }[case]
        extra = ["--storage", url]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, _tune_args(synthetic_data_dir, runs, *extra))
    assert result.exit_code == 2, result.output
    assert message in _one_error_line(result)
    assert not runs.exists() and sorted(p.name for p in tmp_path.iterdir()) == before


def test_trials_zero_is_a_usage_error(synthetic_data_dir, tmp_path):
    result = CliRunner().invoke(cli, _tune_args(synthetic_data_dir, tmp_path / "runs", "--trials", "0"))
    assert result.exit_code == 2 and "'--trials': 0 is not in the range x>=1" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("trials", 0),
        ("trials", 2.5),
        ("timeout", float("nan")),
        ("timeout", -1),
        ("timeout", float("inf")),
        ("pruner", "sometimes"),
        ("heartbeat", 0),
        ("train_limit", 0),
        ("validation_size", 0),
        ("epochs", 0),
        ("seed", "zero"),
        ("keep_models", "no"),
        ("study", "../escape"),
        ("storage", "my-database"),
        ("storage", "sqlite://"),
        ("space_file", "no/such/space.toml"),
        ("mlflow", " "),
    ],
)
def test_the_request_refuses_what_the_command_line_refuses_in_field_names(field, value, tmp_path):
    """The API meets the same checks as the command line, and no message names a flag."""
    from lenet_cli.engine.tune import TuneRequest

    with pytest.raises(BadValue) as caught:
        TuneRequest(runs_dir=tmp_path, **{field: value})
    assert caught.value.field == field and "--" not in str(caught.value)
    assert not (tmp_path / "tune").exists()


def test_a_refused_request_on_the_command_line_names_the_option(tmp_path):
    result = CliRunner().invoke(cli, ["tune", "--runs-dir", str(tmp_path), "--study", "../escape"])
    assert result.exit_code == 2 and _one_error_line(result).startswith("Error: Invalid value for '--study': ")


def test_a_study_of_another_dataset_is_refused(synthetic_data_dir, tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    study = optuna.create_study(study_name="shared", storage=url, direction="maximize")
    study.set_user_attr("lenet", {"dataset": "fashion", "train_limit": 200, "validation_size": 100})
    result = CliRunner().invoke(
        cli, _tune_args(synthetic_data_dir, tmp_path / "runs", "--storage", url, "--study", "shared")
    )
    assert result.exit_code == 2
    assert (
        "Invalid value for '--study': study 'shared' in sqlite:///" in _one_error_line(result)
        and "tunes with dataset fashion, not mnist" in result.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_show_of_a_study_that_does_not_exist_creates_nothing(tmp_path):
    result = CliRunner().invoke(cli, ["tune", "--show", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "no study" in _one_error_line(result)
    assert not (tmp_path / "runs").exists()


def test_without_the_extra_the_command_says_so_in_one_line(monkeypatch):
    import lenet_cli.runtimes.extras as extras

    monkeypatch.setattr(extras, "module_missing", lambda module: module == "optuna")
    result = CliRunner().invoke(cli, ["tune", "--dataset", "fashion"])
    assert (
        result.exit_code == EXIT_MISSING_EXTRA
        and _one_error_line(result) == "Error: lenet tune needs Optuna: pip install 'lenet-cli[tune]'"
    )


@pytest.mark.parametrize(
    "argv, code", [(["tune", "--help"], 0), (["tune", "--trials", "0"], 2), (["tune", "--pruner", "random"], 2)]
)
def test_help_and_usage_errors_never_import_tensorflow(argv, code):
    probe = (
        f"import sys\nfrom lenet_cli.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
        "assert 'tensorflow' not in sys.modules and 'optuna' not in sys.modules\nprint('exit', code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"exit {code}"


# --- Pruning -----------------------------------------------------------------------------------


class _PruneAfterFirstEpoch:
    """What the trial callback needs of an Optuna trial, deciding to prune after epoch 1."""

    def __init__(self):
        self.reported: list[tuple[int, float]] = []

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return True


@pytest.mark.slow
def test_a_pruned_trial_stops_before_its_next_epoch_and_keeps_no_model(synthetic_data_dir, tmp_path):
    from lenet_cli.core.config import resolve_config
    from lenet_cli.engine.train import TrainRequest, train
    from lenet_cli.engine.tune import objective

    trial = _PruneAfterFirstEpoch()
    run_dir = tmp_path / "runs" / "tune" / "s" / "trial-0"
    state = {"number": 0, "started": time.monotonic(), "run_dir": run_dir}
    common = {"durations": [], "target": 3, "finished": 0, "best": None, "best_trial": None, "deadline": None}
    cfg = resolve_config(
        "mnist", epochs=3, batch_size=50, dense_units=16, validation_size=100, train_limit=200, study="s", trial=0
    )
    request = TrainRequest(
        cfg, data_dir=synthetic_data_dir, output=run_dir, runs_dir=run_dir.parent, tensorboard=False, score_test=False
    )
    with pytest.raises(optuna.TrialPruned):
        train(
            request,
            callbacks_for=lambda plan: objective.trial_callbacks(trial, state, None, 4, plan.config.epochs, common),
        )
    assert [step for step, _ in trial.reported] == [1]
    saved = objective.keep_pruned(run_dir, cfg, state)
    assert saved > 0
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "confusion_matrix.json",
        "history.json",
        "metrics.json",
    ]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["pruned"] is True and metrics["epochs_completed"] == 1 and metrics["test_accuracy"] is None
    listed = CliRunner().invoke(cli, ["runs", "--runs-dir", str(tmp_path / "runs"), "--format", "json"])
    record = json.loads(listed.stdout)[0]
    assert (record["name"], record["status"], record["study"], record["trial"]) == ("tune/s/trial-0", "pruned", "s", 0)


# --- A study end to end -------------------------------------------------------------------------


def _env(tmp: Path) -> dict:
    env = {**os.environ, "LENET_VERIFY_CHECKSUMS": "0", "XDG_CACHE_HOME": str(tmp / "cache"), "PYTHONPATH": str(REPO)}
    env.pop("LENET_RUNS_DIR", None)
    return env


def _space_file(tmp: Path) -> Path:
    path = tmp / "space.json"
    path.write_text(json.dumps(TINY_SPACE))
    return path


@pytest.mark.slow
def test_a_three_trial_study_then_show_recipe_and_resume(synthetic_data_dir, tmp_path):
    runs = tmp_path / "runs"
    args = _tune_args(
        synthetic_data_dir,
        runs,
        "--epochs",
        "2",
        "--space",
        _space_file(tmp_path),
        "--pruner",
        "none",
        "--format",
        "json",
    )
    result = CliRunner().invoke(cli, [*args, "--trials", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["trials"]["complete"] == 3 and outcome["ran_here"] == 3 and outcome["stop_reason"] == "trials"
    best = outcome["best"]
    assert best["state"] == "complete" and 0 <= best["test_accuracy"] <= 1 and best["params"]["batch-size"] in (32, 64)
    for line in (
        "study mnist in sqlite:///",
        "trial 0: learning-rate",
        "trial 2 complete: val_accuracy",
        "scoring trial",
        "on the test split (the only time this study reads it)",
    ):
        assert line in result.stderr, line

    trials = sorted((runs / "tune" / "mnist").glob("trial-*"))
    assert [t.name for t in trials] == ["trial-0", "trial-1", "trial-2"]
    for trial in trials:
        metrics = json.loads((trial / "metrics.json").read_text())
        config = json.loads((trial / "config.json").read_text())
        assert metrics["test_accuracy"] is None and metrics["test_count"] is None  # trials never read the test split
        assert (config["study"], config["dense_units"], config["train_limit"]) == ("mnist", 16, 200)
        assert (
            (trial / "history.json").is_file()
            and (trial / "model.tflite").is_file()
            and not (trial / "checkpoint.npz").exists()
        )
        assert (trial / "model.keras").is_file() == (
            trial.name == f"trial-{best['number']}"
        )  # only the best keeps its Keras model
    for name in ("mnist-best.json", "mnist-history.png"):
        assert (runs / "tune" / name).is_file(), name
    assert not (runs / "tune" / "mnist-importances.png").exists()  # three trials are too few to rank the parameters
    assert (runs / "tune" / "mnist-history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    listed = json.loads(CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--format", "json"]).stdout)
    assert sorted((r["name"], r["study"], r["trial"]) for r in listed) == [
        (f"tune/mnist/trial-{n}", "mnist", n) for n in range(3)
    ]

    shown = CliRunner().invoke(cli, ["tune", "--show", "--runs-dir", str(runs), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    records = json.loads(shown.stdout)
    assert [r["val_accuracy"] for r in records] == sorted((r["val_accuracy"] for r in records), reverse=True)
    assert records[0]["number"] == best["number"] and {r["state"] for r in records} == {"complete"}
    csv_text = (
        CliRunner()
        .invoke(cli, ["tune", "--show", "--runs-dir", str(runs), "--study", "mnist", "--format", "csv"])
        .stdout
    )
    assert (
        csv_text.splitlines()[0].startswith("trial,state,val_accuracy,epochs_run,epochs,seconds")
        and len(csv_text.splitlines()) == 4
    )
    table = (
        CliRunner()
        .invoke(cli, ["tune", "--show", "--runs-dir", str(runs), "--dataset", "mnist", "--format", "table"])
        .stdout
    )
    assert "complete" in table and "learning-rate" in table

    # lenet train --recipe reproduces the best trial's config; an explicit option still wins
    best_file = runs / "tune" / "mnist-best.json"
    recipe = json.loads(best_file.read_text())
    assert recipe["trial"] == best["number"] and recipe["test_accuracy"] == best["test_accuracy"]
    again = CliRunner().invoke(
        cli,
        [
            "train",
            "--recipe",
            str(best_file),
            "--data-dir",
            str(synthetic_data_dir),
            "--train-limit",
            "200",
            "--validation-size",
            "100",
            "--output",
            str(tmp_path / "again"),
            "--runs-dir",
            str(runs),
            "--no-tensorboard",
            "--quiet",
            "--format",
            "json",
        ],
        catch_exceptions=False,
    )
    assert again.exit_code == 0, again.output
    theirs = json.loads((Path(best["run_dir"]) / "config.json").read_text())
    ours = json.loads((tmp_path / "again" / "config.json").read_text())
    different = {k for k in theirs if theirs[k] != ours.get(k)}
    assert different == {
        "study",
        "trial",
        "data_fingerprint",
    }  # the trial never read the test files the fingerprint covers
    override = CliRunner().invoke(
        cli,
        [
            "train",
            "--recipe",
            str(best_file),
            "--data-dir",
            str(synthetic_data_dir),
            "--train-limit",
            "50",
            "--validation-size",
            "100",
            "--epochs",
            "1",
            "--dense-units",
            "8",
            "--output",
            str(tmp_path / "o"),
            "--no-tensorboard",
            "--quiet",
            "--format",
            "json",
        ],
    )
    assert override.exit_code == 0, override.output
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert (config["epochs"], config["dense_units"], config["learning_rate"]) == (1, 8, theirs["learning_rate"])

    # the same command continues the study: one more trial for --trials 4, and the test split is not read again
    resumed = CliRunner().invoke(cli, [*args, "--trials", "4", "--keep-models"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    outcome = json.loads(resumed.stdout)
    assert outcome["trials"]["complete"] == 4 and outcome["ran_here"] == 1
    assert (runs / "tune" / "mnist" / "trial-3" / "model.keras").is_file()  # --keep-models: kept, best or not
    assert "3 finished trials" in resumed.stderr and "trial 3:" in resumed.stderr and "trial 4" not in resumed.stderr
    if outcome["best"]["number"] == best["number"]:
        assert "on the test split" not in resumed.stderr and outcome["best"]["test_accuracy"] == best["test_accuracy"]


def test_a_recipe_with_an_unknown_option_is_a_usage_error(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"recipe": {"dropout": 0.3, "colour": "blue"}}))
    result = CliRunner().invoke(cli, ["train", "--recipe", str(recipe)])
    assert result.exit_code == 2 and "sets 'colour', which is not a lenet train option" in result.stderr
    result = CliRunner().invoke(cli, ["train", "--recipe", str(recipe), "--resume", str(tmp_path)])
    assert result.exit_code == 2


def test_a_misspelt_recipe_key_gets_the_closest_option(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("dropout = 0.3\nlearnin-rate = 0.001\n")
    result = CliRunner().invoke(cli, ["train", "--recipe", str(recipe)])
    assert result.exit_code == 2
    assert "sets 'learnin-rate', which is not a lenet train option; did you mean 'learning-rate'?" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("dropout = \n")
    result = CliRunner().invoke(cli, ["train", "--recipe", str(broken)])
    assert result.exit_code == 2 and "is not valid TOML" in result.stderr


@pytest.mark.slow
def test_a_toml_recipe_trains_as_a_json_one(synthetic_data_dir, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        "dropout = 0.35\nepochs = 1\ndense-units = 8\nlearning_rate = 0.004\n"
    )  # option or field names, as in a space
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--recipe",
            str(recipe),
            "--data-dir",
            str(synthetic_data_dir),
            "--train-limit",
            "50",
            "--validation-size",
            "100",
            "--output",
            str(tmp_path / "run"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-tensorboard",
            "--quiet",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["dropout"], config["epochs"], config["dense_units"], config["learning_rate"]) == (0.35, 1, 8, 0.004)


@pytest.mark.slow
def test_ctrl_c_fails_the_running_trial_exits_130_and_the_study_continues(synthetic_data_dir, tmp_path):
    runs = tmp_path / "runs"
    args = [
        sys.executable,
        "-m",
        "lenet_cli",
        *_tune_args(
            synthetic_data_dir,
            runs,
            "--epochs",
            "30",
            "--train-limit",
            "500",
            "--trials",
            "2",
            "--space",
            _space_file(tmp_path),
            "--format",
            "json",
        ),
    ]
    proc = subprocess.Popen(args, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = runs / "tune" / "mnist" / "trial-0" / "history.json"
    deadline = time.monotonic() + 180
    while not history.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert history.exists(), proc.communicate()[1] if proc.poll() is not None else "no epoch finished in time"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (
        err.strip().splitlines()[-1].startswith("SIGINT: the search stopped; trial 0 is marked failed and queued again")
    )
    db = runs / "tune" / "mnist.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    study = optuna.load_study(study_name="mnist", storage=f"sqlite:///{db}")
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "FAIL", 1: "WAITING"}
    assert study.get_trials()[1].system_attrs["failed_trial"] == 0
    assert not (history.parent / "checkpoint.npz").exists() and not (history.parent / "model.keras").exists()

    # the same command continues: the interrupted trial is retried first, with its parameters
    args[args.index("30")] = "1"
    done = subprocess.run(args, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "trial 1 (retrying trial 0)" in done.stderr
    trials = {t.number: t for t in optuna.load_study(study_name="mnist", storage=f"sqlite:///{db}").get_trials()}
    assert trials[1].state.name == "COMPLETE" and trials[1].params == trials[0].params


# --- What a study shows: the warm-up it draws, its pictures, its trials table ---------------------------


def test_a_warmup_range_above_a_fifth_of_the_epochs_is_one_line_and_exit_2(synthetic_data_dir, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"warmup-epochs": {"low": 1, "high": 3}}))
    result = CliRunner().invoke(
        cli, _tune_args(synthetic_data_dir, tmp_path / "runs", "--epochs", "2", "--space", space, "--trials", "1")
    )
    assert result.exit_code == 2, result.output
    assert (
        "warmup-epochs: a trial warms up for at most a fifth of its epochs (0.4 of 2 epochs); the range starts at 1"
        in _one_error_line(result)
    )
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def small_study(synthetic_data_dir, tmp_path_factory):
    """Three 2-epoch trials of the default warm-up range: (runs folder, the search's result, the history plot's x ticks)."""
    from lenet_cli.viz import tune_plots

    tmp = tmp_path_factory.mktemp("small-study")
    runs = tmp / "runs"
    drawn: dict[str, list[float]] = {}
    encode = tune_plots._png

    def keep_ticks(axes):
        low, high = axes.get_xlim()
        drawn[axes.get_title()] = [tick for tick in axes.get_xticks() if low <= tick <= high]
        return encode(axes)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tune_plots, "_png", keep_ticks)
        result = CliRunner().invoke(
            cli,
            [
                *_tune_args(
                    synthetic_data_dir,
                    runs,
                    "--epochs",
                    "2",
                    "--space",
                    _space_file(tmp),
                    "--pruner",
                    "none",
                    "--trials",
                    "3",
                    "--format",
                    "json",
                )
            ],
            env={"LENET_VERIFY_CHECKSUMS": "0", "XDG_CACHE_HOME": str(tmp / "cache")},
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    return runs, result, drawn["Optimization History Plot"]


def _show_json(runs: Path) -> list[dict]:
    shown = CliRunner().invoke(cli, ["tune", "--show", "--runs-dir", str(runs), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


@pytest.mark.slow
def test_a_trials_warmup_is_at_most_a_fifth_of_its_epochs(small_study):
    records = _show_json(small_study[0])
    assert len(records) == 3
    for record in records:
        assert record["epochs"] == 2 and 0 <= record["params"]["warmup-epochs"] <= 2 / 5, record
    assert "warmup-epochs 0..2 (at most a fifth of the trial's epochs)" in small_study[1].stderr


@pytest.mark.slow
def test_the_history_plot_counts_trials_in_whole_numbers(small_study):
    ticks = small_study[2]
    assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


@pytest.mark.slow
def test_importances_are_not_drawn_from_too_few_trials_and_stderr_says_why(small_study):
    from lenet_cli.viz.tune_plots import MIN_TRIALS_FOR_IMPORTANCES

    runs, result, _ = small_study
    why = f"parameter importances need {MIN_TRIALS_FOR_IMPORTANCES} complete trials (the study has 3)"
    assert f"note: the importances plot is not drawn: {why}" in result.stderr
    assert why in json.loads(result.stdout)["plots_skipped"]["importances"]
    assert (runs / "tune" / "mnist-history.png").is_file() and not (runs / "tune" / "mnist-importances.png").exists()


@pytest.mark.slow
def test_tune_show_and_lenet_runs_give_a_trial_the_same_train_time(small_study):
    runs = small_study[0]
    shown = {r["run_dir"]: r["seconds"] for r in _show_json(runs)}
    listed = json.loads(CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--format", "json"]).stdout)
    assert {str(Path(r["path"]).resolve()): r["wall_seconds"] for r in listed} == pytest.approx(shown)
    assert all(seconds > 0 for seconds in shown.values())
    show_table = CliRunner().invoke(cli, ["tune", "--show", "--runs-dir", str(runs), "--format", "table"]).stdout
    runs_table = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--format", "table"]).stdout
    assert "train time" in show_table and "train time" in runs_table


def test_tune_show_keeps_whole_header_words_in_a_160_column_terminal(tmp_path):
    """Every lever of the default space as a column: rich used to cut the headers to "learnin…" and "weight-d…"."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    url = f"sqlite:///{tmp_path}/studies.db"
    study = optuna.create_study(study_name="wide", storage=url, direction="maximize")
    study.set_user_attr("lenet", {"dataset": "fashion", "train_limit": None, "validation_size": None})
    distributions = {
        "learning-rate": FloatDistribution(3e-4, 1e-2, log=True),
        "batch-size": CategoricalDistribution((64, 128, 256, 512)),
        "epochs": IntDistribution(8, 24),
        "schedule": CategoricalDistribution(("cosine", "constant")),
        "warmup-epochs": FloatDistribution(0, 2),
        "dropout": FloatDistribution(0.1, 0.6),
        "l1": FloatDistribution(1e-8, 1e-4, log=True),
        "weight-decay": FloatDistribution(1e-7, 1e-3, log=True),
        "augment": CategoricalDistribution(("none", "flip-shift")),
        "ema": CategoricalDistribution((0.0, 0.999)),
        "label-smoothing": FloatDistribution(0, 0.2),
    }
    params = {
        "learning-rate": 0.000439,
        "batch-size": 128,
        "epochs": 18,
        "schedule": "cosine",
        "warmup-epochs": 1.78,
        "dropout": 0.555,
        "l1": 8.53e-05,
        "weight-decay": 0.000174,
        "augment": "flip-shift",
        "ema": 0.999,
        "label-smoothing": 0.0279,
    }
    for number in range(3):
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=0.9 + number / 100,
                intermediate_values={1: 0.8},
                user_attrs={"train_seconds": 6.0, "epochs": 18},
            )
        )
    result = CliRunner().invoke(
        cli,
        ["tune", "--show", "--storage", url, "--study", "wide", "--format", "table"],
        env={"COLUMNS": "160", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"},
    )
    assert result.exit_code == 0, result.output
    table = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    header = table[: table.index("┡")]
    assert max(len(line) for line in table.splitlines()) <= 160
    assert "…" not in header, header
    for word in ("learning", "rate", "batch", "size", "warmup", "weight", "decay", "label", "smoothing", "train time"):
        assert word in header, word


# --- Many machines: one study in PostgreSQL ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def _postgres_cluster():
    """A throw-away PostgreSQL cluster on 127.0.0.1 and a free port (as the postgres user when run as root): its URL, and how to stop it."""
    bindir = _postgres_bin()
    if bindir is None or not (bindir / "pg_ctl").is_file():
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql to run this test")
    pytest.importorskip("psycopg", reason="the tune extra's PostgreSQL driver (psycopg) is not installed")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="lenet-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            shutil.rmtree(root)
            pytest.skip("running as root, and there is no postgres user (or runuser) to own the cluster")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"

    def run(*command):
        return subprocess.run([*as_user, *map(str, command)], capture_output=True, text=True, timeout=120, check=True)

    def stop():
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )

    try:
        run(bindir / "initdb", "-D", data, "-U", "lenet", "--auth=trust", "-E", "UTF8")
        run(
            bindir / "pg_ctl",
            "-D",
            data,
            "-l",
            root / "log",
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root}",
            "start",
        )
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "lenet", "lenet")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL cluster: {exc.stderr}")
    try:
        yield f"postgresql://lenet@127.0.0.1:{port}/lenet", stop
    finally:
        stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url():
    """The URL of a throw-away PostgreSQL cluster that the module's tests share."""
    with _postgres_cluster() as (url, _):
        yield url


def _worker(url: str, study: str, data_dir: Path, tmp: Path, machine: str, *extra) -> subprocess.Popen:
    """One `lenet tune` process, as if on its own machine: its own runs folder, the shared study."""
    args = [
        sys.executable,
        "-m",
        "lenet_cli",
        "tune",
        "--storage",
        url,
        "--study",
        study,
        "--dataset",
        "mnist",
        "--data-dir",
        str(data_dir),
        "--runs-dir",
        str(tmp / machine),
        "--validation-size",
        "100",
        "--space",
        str(_space_file(tmp)),
        "--format",
        "json",
        *map(str, extra),
    ]
    return subprocess.Popen(
        args, env=_env(tmp), stdout=subprocess.PIPE, stderr=open(tmp / f"{machine}.err", "w"), text=True
    )


@pytest.mark.slow
def test_two_workers_share_one_study_in_postgresql(postgres_url, synthetic_data_dir, tmp_path):
    extra = ("--train-limit", "200", "--epochs", "1", "--trials", "5", "--heartbeat", "5", "--pruner", "none")
    workers = {name: _worker(postgres_url, "shared", synthetic_data_dir, tmp_path, name, *extra) for name in ("a", "b")}
    outcomes = {}
    for name, proc in workers.items():
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, (tmp_path / f"{name}.err").read_text()
        outcomes[name] = json.loads(out)
    study = optuna.load_study(
        study_name="shared", storage=postgres_url.replace("postgresql://", "postgresql+psycopg://")
    )
    finished = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers))
    # the workers agree on the count, which is the study's: the asked 5 (one more only if both asked for the last in the same instant)
    assert (
        outcomes["a"]["trials"]
        == outcomes["b"]["trials"]
        == {"complete": len(finished), "pruned": 0, "running": 0, "failed": 0, "waiting": 0}
    )
    assert len(finished) in (5, 6)
    assert outcomes["a"]["ran_here"] + outcomes["b"]["ran_here"] == len(finished)
    ran_on = {
        n: [m for m in "ab" if (tmp_path / m / "tune" / "shared" / f"trial-{n}" / "model.tflite").is_file()]
        for n in numbers
    }
    assert all(len(machines) == 1 for machines in ran_on.values()), ran_on  # every trial ran once, on one machine
    assert {m for machines in ran_on.values() for m in machines} == {"a", "b"}  # and both did some


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_and_retried_within_the_heartbeat_grace(
    postgres_url, synthetic_data_dir, tmp_path
):
    heartbeat = 2
    # worker a's trial must outlast worker b's start-up on a loaded machine (it is killed long before it could end)
    extra = ("--train-limit", "500", "--epochs", "2000", "--trials", "1", "--heartbeat", heartbeat, "--pruner", "none")
    a = _worker(postgres_url, "killed", synthetic_data_dir, tmp_path, "a", *extra)
    history = tmp_path / "a" / "tune" / "killed" / "trial-0" / "history.json"
    deadline = time.monotonic() + 180
    while not history.exists() and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert history.exists(), (tmp_path / "a.err").read_text()
    b = _worker(
        postgres_url,
        "killed",
        synthetic_data_dir,
        tmp_path,
        "b",
        "--train-limit",
        "500",
        "--epochs",
        "1",
        "--trials",
        "1",
        "--heartbeat",
        heartbeat,
        "--pruner",
        "none",
    )
    deadline = time.monotonic() + 120
    while (
        "waiting for 1 trial running elsewhere" not in (tmp_path / "b.err").read_text() and time.monotonic() < deadline
    ):
        assert b.poll() is None, (tmp_path / "b.err").read_text()
        time.sleep(0.2)
    a.send_signal(signal.SIGKILL)
    killed_at = time.time()
    a.wait(timeout=30)
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0, (tmp_path / "b.err").read_text()
    study = optuna.load_study(
        study_name="killed", storage=postgres_url.replace("postgresql://", "postgresql+psycopg://")
    )
    trials = {t.number: t for t in study.get_trials()}
    assert trials[0].state.name == "FAIL" and trials[1].state.name == "COMPLETE"
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params
    started = trials[1].datetime_start.timestamp()
    assert (
        started - killed_at < 2 * heartbeat + heartbeat + 3
    )  # the grace (2 heartbeats), the worker's poll, and a little slack
    assert "trial 1 (retrying trial 0)" in (tmp_path / "b.err").read_text()
    assert json.loads(out)["trials"]["complete"] == 1


@pytest.mark.slow
def test_a_database_that_goes_away_mid_study_is_one_line_and_exit_5(synthetic_data_dir, tmp_path):
    """PostgreSQL stopped as a crash would (pg_ctl -m immediate) while a trial trains: one line, no trace of Optuna's or psycopg's."""
    with _postgres_cluster() as (url, stop):
        url = url.replace("lenet@", "lenet:hunter2@")  # the cluster trusts any password; the message must hide this one
        worker = _worker(
            url,
            "lost",
            synthetic_data_dir,
            tmp_path,
            "a",
            "--train-limit",
            "500",
            "--epochs",
            "2000",
            "--trials",
            "1",
            "--heartbeat",
            "1",
            "--pruner",
            "none",
        )  # heartbeats every second meet the stopped database too
        history = tmp_path / "a" / "tune" / "lost" / "trial-0" / "history.json"
        deadline = time.monotonic() + 180
        while not history.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert history.exists(), (tmp_path / "a.err").read_text()
        stop()
        worker.communicate(timeout=120)
    err = (tmp_path / "a.err").read_text()
    assert worker.returncode == EXIT_STORAGE_LOST, err
    assert "Traceback" not in err and "hunter2" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) <= 5, err  # the study, the space, the trial, the error
    assert lines[-1].startswith("Error: the study's database postgresql://lenet:***@127.0.0.1:"), err
    assert "went away" in lines[-1] and lines[-1].count("run the same command again once it is back") == 1, err
