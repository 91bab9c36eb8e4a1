"""``lenet runs``: the runs folder as a table or records, one run shown, two runs compared; run status."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.store import runs

MODEL_BYTES = 1000  # a fake model.keras: its size is all lenet runs reads


def make_run(
    root: Path,
    name: str,
    *,
    epochs: int = 4,
    completed: int = 4,
    finished: bool = True,
    dataset: str = "mnist",
    learning_rate: float = 1e-3,
    mtime: float | None = None,
) -> Path:
    """A fake run directory with the files ``lenet train`` writes (the model is just bytes)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"dataset": dataset, "epochs": epochs, "learning_rate": learning_rate, "freeze": []})
    )
    history = [{"epoch": k + 1, "val_accuracy": 0.9 + k / 100, "epoch_seconds": 10.0} for k in range(completed)]
    (run / "history.json").write_text(json.dumps(history))
    if finished:
        (run / "model.keras").write_bytes(b"k" * MODEL_BYTES)
        (run / "metrics.json").write_text(
            json.dumps({"dataset": dataset, "test_accuracy": 0.9931, "val_accuracy": 0.993, "train_seconds": 352.5})
        )
    else:
        (run / "checkpoint.npz").write_bytes(b"c" * 10)
    if mtime is not None:
        os.utime(run / "config.json", (mtime, mtime))
    return run


def invoke(*args):
    return CliRunner().invoke(cli, ["runs", *map(str, args)])


@pytest.fixture()
def three_runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    now = time.time()
    make_run(root, "mnist-a", mtime=now - 300)
    make_run(root, "mnist-b", completed=1, epochs=12, finished=False, learning_rate=2e-3, mtime=now - 200)
    make_run(root, "fashion-c", dataset="fashion", mtime=now - 100)
    (root / "LATEST").write_text("mnist-a\n")
    (root / "not-a-run").mkdir()
    return root


def test_status_finished_interrupted_running(tmp_path):
    done = make_run(tmp_path, "done")
    stopped = make_run(tmp_path, "stopped", completed=3, epochs=12, finished=False)
    assert runs.run_status(done) == runs.RunStatus("finished", 4, 4)
    assert runs.run_status(stopped).describe() == "interrupted after 3/12"
    with runs.running_marker(stopped) as marker:
        record = json.loads(marker.read_text())
        assert record["pid"] == os.getpid() and record["hostname"] and record["started"].endswith("Z")
        status = runs.run_status(stopped)
        assert (status.state, status.pid, status.describe()) == ("running", os.getpid(), "running 3/12")
    assert not marker.exists() and runs.run_status(stopped).state == "interrupted"


def test_running_marker_removed_on_error_and_stale_marker_is_interrupted(tmp_path):
    run = make_run(tmp_path, "r", completed=2, finished=False)
    with pytest.raises(RuntimeError):
        with runs.running_marker(run):
            raise RuntimeError("boom")
    assert not (run / runs.RUNNING_FILE).exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    import socket

    (run / runs.RUNNING_FILE).write_text(json.dumps({"pid": int(dead), "hostname": socket.gethostname()}))
    assert runs.run_status(run).describe() == "interrupted after 2/4"
    (run / runs.RUNNING_FILE).write_text(json.dumps({"pid": int(dead), "hostname": "another-host.example"}))
    assert runs.run_status(run).state == "running"  # another host's process cannot be checked from here


def test_list_json_records(three_runs):
    result = invoke("--runs-dir", three_runs, "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["name"] for r in records] == ["fashion-c", "mnist-b", "mnist-a"]  # newest first
    a = records[2]
    assert a == {
        **a,
        "dataset": "mnist",
        "status": "finished",
        "epochs_completed": 4,
        "epochs": 4,
        "val_accuracy": 0.993,
        "test_accuracy": 0.9931,
        "wall_seconds": 352.5,
        "latest": True,
    }
    assert a["size_bytes"] == sum(p.stat().st_size for p in (three_runs / "mnist-a").iterdir())
    b = records[1]
    assert (b["status"], b["epochs_completed"], b["epochs"], b["test_accuracy"], b["wall_seconds"], b["latest"]) == (
        "interrupted",
        1,
        12,
        None,
        10.0,
        False,
    )
    assert b["val_accuracy"] == 0.9  # from history.json when metrics.json is absent


def test_piped_default_is_json_and_jsonl_csv(three_runs, monkeypatch):
    monkeypatch.setenv("LENET_RUNS_DIR", str(three_runs))
    assert len(json.loads(invoke().stdout)) == 3
    lines = invoke("--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["fashion-c", "mnist-b", "mnist-a"]
    rows = list(csv.DictReader(io.StringIO(invoke("--format", "csv").stdout)))
    assert [r["status"] for r in rows] == ["finished", "interrupted", "finished"]
    assert rows[1]["test_accuracy"] == "" and rows[2]["latest"] == "true"


def test_table_for_people(three_runs):
    result = invoke("--runs-dir", three_runs, "--format", "table")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    row_b = next(line for line in lines if "mnist-b" in line)
    assert "interrupted after 1/12" in row_b and "1/12" in row_b and "10 s" in row_b
    row_a = next(line for line in lines if "mnist-a" in line)
    size = sum(p.stat().st_size for p in (three_runs / "mnist-a").iterdir())
    assert (
        "mnist-a *" in row_a
        and "finished" in row_a
        and "99.31%" in row_a
        and "5.9 min" in row_a
        and f"{size / 1e3:.1f} kB" in row_a
    )


def test_empty_or_missing_runs_folder(tmp_path):
    result = invoke("--runs-dir", tmp_path / "none", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    result = invoke("--runs-dir", tmp_path / "none", "--format", "table")
    assert result.exit_code == 0 and "no runs under" in result.stderr
    assert result.stdout.startswith("built-in models")  # only the models lenet ships, in a table of their own


def test_show(three_runs):
    result = invoke("show", "mnist-b", "--runs-dir", three_runs, "--format", "json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["status"] == "interrupted" and shown["config"]["epochs"] == 12 and shown["metrics"] == {}
    assert [f["path"] for f in shown["files"]] == ["checkpoint.npz", "config.json", "history.json"]
    assert shown["files"][0]["size_bytes"] == 10
    by_path = invoke(
        "--runs-dir", three_runs, "show", three_runs / "mnist-a", "--format", "table"
    )  # group option, path argument
    assert by_path.exit_code == 0, by_path.output
    assert "model.keras" in by_path.stdout and "learning_rate" in by_path.stdout and "test_accuracy" in by_path.stdout
    rows = list(
        csv.DictReader(io.StringIO(invoke("show", "mnist-a", "--runs-dir", three_runs, "--format", "csv").stdout))
    )
    assert {"section": "files", "key": "model.keras", "value": "1000"} in rows


def test_show_unknown_run_is_one_line_error(three_runs):
    result = invoke("show", "nope", "--runs-dir", three_runs)
    assert (
        result.exit_code == 1
        and result.stderr.startswith("Error: no run 'nope'")
        and len(result.stderr.splitlines()) == 1
    )
    result = invoke("show", "not-a-run", "--runs-dir", three_runs)
    assert result.exit_code == 1 and "is not a run directory" in result.stderr


def test_compare(three_runs):
    result = invoke("compare", "mnist-a", "mnist-b", "--runs-dir", three_runs, "--format", "json")
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    assert comparison["runs"] == ["mnist-a", "mnist-b"]
    config = {r["key"]: tuple(r["values"]) for r in comparison["rows"] if r["section"] == "config"}
    assert config == {"epochs": (4, 12), "learning_rate": (0.001, 0.002)}  # dataset and freeze are the same
    metrics = {r["key"]: tuple(r["values"]) for r in comparison["rows"] if r["section"] == "metrics"}
    assert metrics["test_accuracy"] == (0.9931, None)
    everything = json.loads(
        invoke("compare", "mnist-a", "mnist-b", "--runs-dir", three_runs, "--format", "json", "--all").stdout
    )
    assert {"section": "config", "key": "dataset", "values": ["mnist", "mnist"], "same": True} in everything["rows"]
    table = invoke("compare", "mnist-a", "mnist-b", "--runs-dir", three_runs, "--format", "table").stdout
    line = next(line for line in table.splitlines() if "learning_rate" in line)
    assert "0.001" in line and "0.002" in line


def test_300_runs_list_fast(tmp_path):
    root = tmp_path / "runs"
    for i in range(300):
        make_run(root, f"run-{i:03d}", finished=i % 3 != 0, completed=2 + i % 3)
    start = time.perf_counter()
    result = invoke("--runs-dir", root, "--format", "json")
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 300
    assert elapsed < 1.0, f"listing 300 runs took {elapsed:.2f} s"


def test_runs_never_imports_tensorflow(three_runs):
    probe = (
        "import sys\n"
        "from lenet_cli.cli import main\n"
        "for argv in (['runs', '--format', 'json'], ['runs', 'show', 'mnist-a'], ['runs', 'compare', 'mnist-a', 'fashion-c'], ['runs', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (argv, exc.code)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print('no tensorflow')\n"
    )
    env = {**os.environ, "LENET_RUNS_DIR": str(three_runs)}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("no tensorflow")


def test_show_and_compare_tables_use_human_units_and_the_same_values_as_json(three_runs):
    run = three_runs / "mnist-a"
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["calibration"] = {
        "temperature": 1.2345678901234567,
        "val_ece_before": 0.012134567890123,
        "val_ece_after": 0.0063,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "model.keras").write_bytes(b"k" * 12_187_320)

    shown = invoke("show", run, "--format", "table")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "12.2 MB" in text and "12187320" not in text
    assert "5.9 min" in text  # train_seconds 352.5
    assert "calibration.temperature" in text and "1.23457" in text and "1.2345678901" not in text
    assert "calibration.val_ece_after" in text and "0.63%" in text
    assert '{"temperature"' not in text

    raw = json.loads(invoke("show", run, "--format", "json").stdout)
    assert raw["metrics"]["calibration"]["temperature"] == 1.2345678901234567 and raw["size_bytes"] >= 12_187_320

    compared = invoke("compare", "mnist-a", "mnist-b", "--runs-dir", three_runs, "--format", "table")
    assert compared.exit_code == 0, compared.output
    row = next(line for line in compared.stdout.splitlines() if "val_accuracy" in line and "99.30%" in line)
    assert "90.00%" in row  # the interrupted run's last validation accuracy, as `lenet runs` shows it, not "-"
    listed = {r["name"]: r for r in json.loads(invoke("--runs-dir", three_runs, "--format", "json").stdout)}
    pair = json.loads(invoke("compare", "mnist-a", "mnist-b", "--runs-dir", three_runs, "--format", "json").stdout)
    metric_rows = {r["key"]: r for r in pair["rows"] if r["section"] == "metrics"}
    assert metric_rows["val_accuracy"]["values"][1] == listed["mnist-b"]["val_accuracy"] == 0.9
