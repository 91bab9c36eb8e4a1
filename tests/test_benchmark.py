"""``lenet benchmark``: a row per format with every figure, accuracies that ``lenet evaluate`` confirms on the same files,
a missing extra as a row with ``error``, the plot, and the measuring rules on their own."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli

ROW_KEYS = {
    "format",
    "file",
    "size_bytes",
    "accuracy",
    "latency_ms_p50",
    "latency_ms_p95",
    "images_per_second",
    "cold_start_s",
    "error",
}
NUMBERS = ("size_bytes", "accuracy", "latency_ms_p50", "latency_ms_p95", "images_per_second", "cold_start_s")


def _benchmark(*args):
    return CliRunner().invoke(cli, ["benchmark", *map(str, args)])


@pytest.mark.slow  # five exports, a cold-start process each, five evaluations: about a minute on 2 cores
def test_every_format_measured_and_evaluate_agrees_on_the_kept_files(trained_run, synthetic_data_dir, tmp_path):
    kept, plot = tmp_path / "kept", tmp_path / "formats.png"
    result = _benchmark(
        trained_run,
        "--data-dir",
        synthetic_data_dir,
        "--format",
        "json",
        "--output",
        kept,
        "--plot",
        plot,
        "--cold-starts",
        "1",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = report["rows"]
    assert [r["format"] for r in rows] == ["keras", "savedmodel", "litert", "litert-int8", "onnx"]
    for row in rows:
        assert ROW_KEYS <= set(row) and row["error"] is None, row
        assert all(row[key] > 0 for key in NUMBERS if key != "accuracy"), row
        assert 0 <= row["accuracy"] <= 1 and row["latency_ms_p50"] <= row["latency_ms_p95"]
    assert report["images"] == 200 and report["batch_size"] == 256 and report["split"] == "test"
    assert report["machine"]["cpu"] and report["machine"]["cores"] >= 1
    assert {"lenet-cli", "keras", "numpy"} <= set(report["libraries"])
    assert rows[3]["quantize"] == "dynamic" and rows[3]["size_bytes"] < rows[2]["size_bytes"] / 2  # int8 weights
    for row in rows:  # the same files, scored by lenet evaluate: the same accuracy, to the last digit
        evaluated = CliRunner().invoke(
            cli, ["evaluate", row["file"], "--data-dir", str(synthetic_data_dir), "--format", "json"]
        )
        assert evaluated.exit_code == 0, evaluated.output
        assert json.loads(evaluated.stdout)["accuracy"] == row["accuracy"], row["format"]
    progress = [line for line in result.stderr.splitlines() if line.split(":")[0] in {r["format"] for r in rows}]
    assert len(progress) == 5  # one line per format on stderr
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == (900, 600)
        assert np.asarray(image.convert("L")).std() > 10  # something is drawn


def test_a_missing_extra_is_a_row_with_error_and_the_others_are_measured(trained_run, synthetic_data_dir, monkeypatch):
    from lenet_cli import api

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if the onnx extra were not installed
    result = api.benchmark(
        trained_run, formats=["onnx", "litert"], data_dir=synthetic_data_dir, count=50, cold_starts=0
    )
    litert, onnx = (row.to_json_dict() for row in result.rows)  # the table's order, whatever order was asked
    assert onnx["format"] == "onnx" and onnx["error"] == "needs the onnx extra: pip install 'lenet-cli[onnx]'"
    assert all(onnx[key] is None for key in NUMBERS)
    assert litert["error"] is None and litert["accuracy"] is not None and litert["cold_start_s"] is None
    assert result.images == 50


@pytest.mark.slow  # two benchmark runs (a LiteRT export each)
def test_table_and_csv(trained_run, synthetic_data_dir):
    table = _benchmark(
        trained_run,
        "--data-dir",
        synthetic_data_dir,
        "--formats",
        "litert",
        "--count",
        "20",
        "--cold-starts",
        "0",
        "--format",
        "table",
    )
    assert table.exit_code == 0, table.output
    assert (
        "litert" in table.stdout
        and "p50 ms" in table.stdout
        and "measured on" in table.stdout
        and "cores" in table.stdout
    )
    csv_out = _benchmark(
        trained_run,
        "--data-dir",
        synthetic_data_dir,
        "--formats",
        "litert",
        "--count",
        "20",
        "--cold-starts",
        "0",
        "--format",
        "csv",
    )
    header, line = csv_out.stdout.splitlines()
    assert (
        header.split(",")[:2] == ["format", "file"]
        and ROW_KEYS <= set(header.split(","))
        and line.startswith("litert,model.tflite,")
    )


@pytest.mark.parametrize(
    "args, option, message",
    [
        (["--formats", "tflite"], "--formats", "'tflite' is not a format"),
        (["--plot", "out.jpg"], "--plot", "name a .png file"),
        (["--count", "0"], "--count", "0 is not in the range"),
    ],
)
def test_bad_values_are_usage_errors_before_anything_loads(args, option, message, tmp_path):
    probe = (
        "import sys\nfrom lenet_cli.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "assert 'tensorflow' not in sys.modules\nprint('exit', code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "benchmark", "--runs-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "exit 2", proc.stderr
    assert f"'{option}'" in proc.stderr and message in proc.stderr and "Traceback" not in proc.stderr


def test_the_request_checks_its_fields():
    from lenet_cli.cli.benchmark import FORMAT_NAMES
    from lenet_cli.core.errors import BadValue
    from lenet_cli.engine.benchmark import BENCHMARK_FORMATS, BenchmarkRequest

    assert FORMAT_NAMES == tuple(BENCHMARK_FORMATS)
    assert BenchmarkRequest(formats=["onnx", "keras", "onnx"]).formats == ("keras", "onnx")
    for fields, field in (
        ({"formats": []}, "formats"),
        ({"formats": ["tflite"]}, "formats"),
        ({"batch_size": 0}, "batch_size"),
        ({"cold_starts": -1}, "cold_starts"),
        ({"count": 1.5}, "count"),
        ({"plot": "a.svg"}, "plot"),
    ):
        with pytest.raises(BadValue) as caught:
            BenchmarkRequest(**fields)
        assert caught.value.field == field and "--" not in str(caught.value)


def test_latency_waits_for_warm_up_and_stops_at_its_budget():
    from lenet_cli.engine import benchmark_measure as measure

    calls = []

    def predict(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            time.sleep(0.05)  # a first call's one-off cost: it must not count
        return np.zeros((len(batch), 10), np.float32)

    images = np.zeros((7, 28, 28, 1), np.float32)
    latency = measure.batch1_latency(predict, images, warmup=3, runs=50, budget_s=5)
    assert latency.runs == 50 and set(calls) == {1} and len(calls) == 53
    assert latency.p50_ms < 50 and latency.p50_ms <= latency.p95_ms
    short = measure.batch1_latency(lambda b: time.sleep(0.002), images, warmup=0, runs=10_000, budget_s=0.05)
    assert measure.LATENCY_MIN_RUNS <= short.runs < 200  # the budget ends it, after the minimum


def test_throughput_is_measured_on_full_batches():
    from lenet_cli.engine import benchmark_measure as measure

    sizes = []
    images = np.arange(5 * 784, dtype=np.float32).reshape(5, 28, 28, 1)
    assert measure.full_batch(images, 12).shape[0] == 12 and (measure.full_batch(images, 12)[5] == images[0]).all()
    rate = measure.images_per_second(lambda b: sizes.append(len(b)), images, 12, warmup=1, budget_s=0.01, min_calls=3)
    assert rate > 0 and set(sizes) == {12} and len(sizes) >= 4


def test_cold_start_is_a_fresh_process(tmp_path):
    from lenet_cli.engine import benchmark_measure as measure
    from tests.helpers.serve_models import write_template_onnx

    model = write_template_onnx(tmp_path / "digits.onnx")
    times = measure.cold_start_seconds(model, 2)
    assert len(times) == 2 and all(0 < t < 60 for t in times)
    with pytest.raises(RuntimeError, match="the cold-start process failed"):
        measure.cold_start_seconds(tmp_path / "missing.onnx", 1)


def test_machine_facts_and_versions_import_nothing():
    code = (
        "import sys\nfrom lenet_cli.core.machine import machine_facts, library_versions\n"
        "facts, versions = machine_facts(), library_versions()\n"
        "assert facts['cpu'] and facts['cores'] >= 1 and 'numpy' in versions, (facts, versions)\n"
        "assert not {'tensorflow', 'keras', 'onnxruntime', 'numpy'} & set(sys.modules), 'imported a library'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_help_imports_no_tensorflow():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom lenet_cli.cli import main\ntry:\n    main(['benchmark', '--help'])\n"
            "except SystemExit:\n    pass\nassert 'tensorflow' not in sys.modules and 'numpy' not in sys.modules\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Example" in proc.stdout and "--formats" in proc.stdout and "--cold-starts" in proc.stdout


def test_a_model_that_is_not_keras_is_refused(tmp_path, synthetic_data_dir):
    from tests.helpers.serve_models import write_template_onnx

    model = write_template_onnx(tmp_path / "digits.onnx")
    result = _benchmark(model, "--data-dir", synthetic_data_dir)
    assert result.exit_code == 1 and "exports a Keras model" in result.stderr and result.stderr.count("\n") == 1


def test_plot_renders_failed_rows_as_a_note(tmp_path):
    from lenet_cli.viz.benchmark_plot import BENCHMARK_PNG_SIZE, label_offsets, render_benchmark_png

    rows = [
        {"format": "onnx", "size_bytes": 1000, "accuracy": 0.99, "latency_ms_p50": 0.25, "error": None},
        {"format": "litert", "size_bytes": 1000, "accuracy": 0.99, "latency_ms_p50": 0.26, "error": None},
        {"format": "keras", "size_bytes": 5000, "accuracy": 0.99, "latency_ms_p50": 1.3, "error": None},
        {"format": "savedmodel", "error": "needs the x extra"},
    ]
    offsets = {row["format"]: offset for _, row, offset in label_offsets(rows[:3])}
    assert offsets["onnx"][1] * offsets["litert"][1] < 0  # two close points: one label above, one below
    png = render_benchmark_png(rows, "test")
    (tmp_path / "p.png").write_bytes(png)
    with Image.open(tmp_path / "p.png") as image:
        assert image.size == BENCHMARK_PNG_SIZE
