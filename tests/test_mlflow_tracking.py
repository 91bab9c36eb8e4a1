"""MLflow tracking of ``lenet train`` and ``lenet tune``, against a real ``mlflow server`` (SQLite backend, local artifacts).

The server is started once for this module on 127.0.0.1 and a free port; the
last test kills it mid-run, as a crashed host would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from tests.helpers.mlflow_server import free_port, mlflow_executable, start_server

mlflow = pytest.importorskip("mlflow", reason="tracking needs the mlflow extra: pip install 'lenet-cli[mlflow]'")

TINY = [
    "--validation-size",
    "100",
    "--batch-size",
    "50",
    "--dense-units",
    "16",
    "--no-tensorboard",
    "--quiet",
    "--format",
    "json",
]
TINY_SPACE = 'dense-units = 16\nbatch-size = [32, 64]\naugment = "none"\nema = 0.0\nlearning-rate = { low = 1e-3, high = 1e-2, log = true }\n'
REPO = Path(__file__).resolve().parent.parent


def _lenet(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if (
        mlflow_executable() is None
        or pytest.importorskip("flask", reason="the tests' server needs the full mlflow package") is None
    ):
        pytest.skip("no mlflow server here")
    started = start_server(tmp_path_factory.mktemp("mlflow-server"))
    yield started
    started.stop()


def _client(url: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(url)


def _param(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- Fast: what is refused, and what costs nothing when tracking is off -------------------------------------


def test_tracking_off_imports_no_mlflow_and_refusals_stay_instant():
    probe = (
        "import sys\n"
        "from lenet_cli.engine import tracking, train, tune\n"
        "assert tracking.resolve(None, None, None, 'mnist') is None\n"
        "from lenet_cli.cli import main\n"
        "for argv, code in ((['train', '--help'], 0), (['tune', '--help'], 0), (['runs', 'prune', '--help'], 0),\n"
        "                   (['train', '--mlflow', 'http://', '--epochs', '1'], 2), (['train', '--mlflow-register', 'm'], 2)):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == code, (argv, exc.code)\n"
        "assert 'mlflow' not in sys.modules and 'tensorflow' not in sys.modules, 'imported when tracking is off'\n"
        "print('light')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("light"), proc.stdout + proc.stderr
    assert "Invalid value for '--mlflow': 'http://' names no host" in proc.stderr
    assert (
        "Invalid value for '--mlflow-register': needs a tracking server: give mlflow (a tracking URI) or set MLFLOW_TRACKING_URI"
        in proc.stderr
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--mlflow", ""], "must be a tracking URI"),
        (["--mlflow", "http://x:1", "--mlflow-experiment", " "], "must be a non-empty name"),
        (["--mlflow", "http://x:1", "--mlflow-register", "a\nb"], "must be one line"),
    ],
)
def test_bad_tracking_values_are_usage_errors(args, fragment):
    result = _lenet("train", *args)
    assert result.exit_code == 2 and fragment in result.stderr and "Traceback" not in result.output, result.output


def test_without_mlflow_installed(monkeypatch, tmp_path):
    """--mlflow without the extra is exit 3 naming the pip command; MLFLOW_TRACKING_URI alone is one warning and no tracking."""
    from lenet_cli.engine import tracking

    monkeypatch.setattr(tracking, "mlflow_installed", lambda: False)
    result = _lenet(
        "train", "--mlflow", "http://127.0.0.1:5000", "--data-dir", tmp_path / "none", "--runs-dir", tmp_path / "runs"
    )
    assert result.exit_code == 3 and "pip install 'lenet-cli[mlflow]'" in result.stderr, result.output
    lines: list[str] = []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve(None, None, None, "mnist", lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("warning: MLFLOW_TRACKING_URI is set, but MLflow is not installed")


def test_a_tune_request_checks_its_tracking_fields():
    from lenet_cli.core.errors import BadValue
    from lenet_cli.engine.tune import TuneRequest

    with pytest.raises(BadValue) as caught:
        TuneRequest(mlflow="http://")
    assert caught.value.field == "mlflow"


# --- A real server ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_logs_params_curves_files_and_a_registered_model(server, tmp_path, synthetic_data_dir):
    out = tmp_path / "run"
    result = _lenet(
        "train",
        "--data-dir",
        synthetic_data_dir,
        "--runs-dir",
        tmp_path,
        "--output",
        out,
        "--epochs",
        "2",
        *TINY,
        "--mlflow",
        server.url,
        "--mlflow-experiment",
        "lenet-tests",
        "--mlflow-register",
        "lenet-tiny",
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == "", result.stderr  # nothing of MLflow's own chatter
    printed = json.loads(result.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["mlflow"]
    assert record == printed["mlflow"] and record["complete"] is True and record["experiment"] == "lenet-tests"
    assert record["registered_model"] == {"name": "lenet-tiny", "version": 1}

    client = _client(server.url)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    config = json.loads((out / "config.json").read_text())
    from lenet_cli import __version__

    assert run.data.params == {**{key: _param(value) for key, value in config.items()}, "lenet_version": __version__}
    assert {"dataset", "data_source", "seed"} <= set(run.data.params)
    history = json.loads((out / "history.json").read_text())
    for name in (
        "val_accuracy",
        "accuracy",
        "cross_entropy",
        "objective",
        "l1",
        "l2",
        "learning_rate",
        "images_per_second",
    ):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        assert logged == [(h["epoch"], h[name]) for h in history], name
    assert run.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    assert run.data.metrics["train_seconds"] == metrics["train_seconds"]
    assert run.data.metrics["calibration.temperature"] == metrics["calibration"]["temperature"]
    assert run.data.tags["lenet.run_dir"] == str(out.resolve())
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "config.json",
        "metrics.json",
        "history.json",
        "model.tflite",
        "confusion_matrix.png",
        "reliability.png",
    } <= files

    versions = client.search_model_versions("name='lenet-tiny'")
    assert [(v.version, v.run_id) for v in versions] == [("1", run.info.run_id)]
    import mlflow.keras

    import lenet_cli.model.layers  # noqa: F401  registers the LRN layer, so Keras loads the model with safe_mode on

    mlflow.set_tracking_uri(server.url)
    model = mlflow.keras.load_model("models:/lenet-tiny/1")
    assert model.output_shape == (None, 10)

    shown = _lenet("runs", "show", out, "--format", "json")
    assert json.loads(shown.stdout)["metrics"]["mlflow"]["run_id"] == run.info.run_id


@pytest.mark.slow
def test_tune_is_one_parent_run_with_a_nested_run_per_trial(server, tmp_path, synthetic_data_dir):
    pytest.importorskip("optuna", reason="lenet tune needs the tune extra")
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    result = _lenet(
        "tune",
        "--dataset",
        "mnist",
        "--data-dir",
        synthetic_data_dir,
        "--runs-dir",
        tmp_path,
        "--validation-size",
        "100",
        "--train-limit",
        "200",
        "--epochs",
        "1",
        "--trials",
        "2",
        "--space",
        space,
        "--pruner",
        "none",
        "--mlflow",
        server.url,
        "--mlflow-experiment",
        "lenet-tune-tests",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    client = _client(server.url)
    experiment = client.get_experiment_by_name("lenet-tune-tests")
    found = client.search_runs([experiment.experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    trials = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["lenet.trial"] for r in trials) == ["0", "1"]
    assert all(r.data.tags["lenet.state"] == "complete" and r.info.status == "FINISHED" for r in trials)
    assert all(len(client.get_metric_history(r.info.run_id, "val_accuracy")) == 1 for r in trials)
    assert all(r.data.params["study"] == "mnist" and r.data.params["dense_units"] == "16" for r in trials)
    outcome = json.loads(result.stdout)
    assert parent.data.tags["lenet.best_trial"] == str(outcome["best"]["number"])
    assert parent.data.metrics["best_val_accuracy"] == outcome["best"]["val_accuracy"]
    assert parent.data.params["space.dense-units"] == "= 16"
    assert "mnist-best.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    # only the best trial keeps its Keras model; every trial keeps its TensorFlow-free one and lists as finished
    study = tmp_path / "tune" / "mnist"
    best = outcome["best"]["number"]
    assert {p.parent.name for p in study.glob("trial-*/model.keras")} == {f"trial-{best}"}
    assert len(list(study.glob("trial-*/model.tflite"))) == 2
    listed = json.loads(_lenet("runs", "--runs-dir", tmp_path, "--format", "json").stdout)
    assert [r["status"] for r in listed] == ["finished", "finished"]
    other = 1 - best
    evaluated = _lenet(
        "evaluate",
        f"tune/mnist/trial-{other}",
        "--runs-dir",
        tmp_path,
        "--data-dir",
        synthetic_data_dir,
        "--format",
        "json",
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["model"].endswith("model.tflite")


@pytest.mark.slow
def test_an_unreachable_server_is_one_warning_and_nothing_is_lost(tmp_path, synthetic_data_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    out = tmp_path / "run"
    started = time.monotonic()
    result = _lenet(
        "train", "--data-dir", synthetic_data_dir, "--runs-dir", tmp_path, "--output", out, "--epochs", "1", *TINY
    )
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 90
    lines = result.stderr.splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("warning: MLflow tracking at http://127.0.0.1:")
        and "unavailable" in lines[0]
    ), lines
    assert "run folder keeps everything" in lines[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "mlflow" not in metrics and (out / "model.keras").is_file() and (out / "model.tflite").is_file()


@pytest.mark.slow
def test_a_folder_store_works(tmp_path, synthetic_data_dir, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store))
    out = tmp_path / "run"
    result = _lenet(
        "train", "--data-dir", synthetic_data_dir, "--runs-dir", tmp_path, "--output", out, "--epochs", "1", *TINY
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "metrics.json").read_text())["mlflow"]
    assert record["complete"] is True and record["tracking_uri"] == str(store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = _client(str(store)).get_run(record["run_id"])
    assert (
        run.data.params["dataset"] == "mnist"
        and run.data.metrics["val_accuracy"] == json.loads((out / "history.json").read_text())[0]["val_accuracy"]
    )


@pytest.mark.slow
def test_a_server_killed_mid_run_is_one_warning_and_the_run_finishes(server, tmp_path, synthetic_data_dir):
    """Runs last in this module: it kills the module's server."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "lenet_cli",
        "train",
        "--data-dir",
        str(synthetic_data_dir),
        "--runs-dir",
        str(tmp_path),
        "--output",
        str(out),
        "--epochs",
        "20",
        *TINY,
        "--mlflow",
        server.url,
    ]
    env = {**os.environ, "LENET_VERIFY_CHECKSUMS": "0"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while not (out / "mlflow.json").is_file():  # the MLflow run exists: params logged, the first epoch under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    server.kill()
    killed = time.monotonic()
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - killed < 60  # later epochs are not retried
    warnings = [line for line in stderr.splitlines() if "MLflow" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: MLflow tracking at {server.url} failed while"), (
        stderr
    )
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        len(history) == 20
        and (out / "model.keras").is_file()
        and json.loads(stdout)["test_accuracy"] == metrics["test_accuracy"]
    )
    assert metrics["mlflow"]["complete"] is False and metrics["mlflow"]["run_id"]
