"""``lenet serve --workers N``: N processes on one port, each with its own model; /metrics adds up all of them; one ready
line, one drain on SIGTERM; a worker that cannot start is one error line."""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lenet-cli[serve]'")

from tests.test_serve import SEVEN, Server  # after the skip: importing it needs the serve extra


@pytest.fixture(scope="module")
def template_model(tmp_path_factory):
    from tests.helpers.serve_models import write_template_onnx

    return write_template_onnx(tmp_path_factory.mktemp("workers") / "digits.onnx")


def _metric(text: str, pattern: str) -> float:
    match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow  # two worker processes and 200 requests: several seconds
def test_two_workers_share_200_requests_from_8_clients_and_metrics_count_them_all(template_model):
    import httpx

    server = Server(template_model, "--workers", "2", "--no-access-log")
    try:
        assert re.search(
            r"^Serving digits\.onnx \(onnx, mnist\) at http://127\.0\.0\.1:\d+/ with 2 workers - drawing page",
            server.log(),
            re.M,
        )
        statuses: list[int] = []
        labels: list[str] = []

        def client(n: int) -> None:
            for _ in range(n):  # a new connection each time, as browsers and curl loops make them
                response = httpx.post(
                    server.url + "predict", content=SEVEN, headers={"content-type": "image/png"}, timeout=30
                )
                statuses.append(response.status_code)
                labels.append(response.json()[0]["label"])

        threads = [threading.Thread(target=client, args=(25,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(statuses) == 200 and set(statuses) == {200} and set(labels) == {"7"}

        deadline = time.monotonic() + 10  # a worker counts a request just after its answer leaves
        while True:
            text = httpx.get(server.url + "metrics", timeout=10).text
            total = _metric(text, r'lenet_requests_total\{endpoint="/predict",status="200"\}')
            if total == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert total == 200, text
        assert _metric(text, r"lenet_images_total") == 200
        per_worker = [_metric(text, rf'lenet_worker_requests_total\{{worker="{w}"\}}') for w in (1, 2)]
        assert all(count > 0 for count in per_worker), f"one worker answered everything: {per_worker}"
        assert sum(per_worker) >= 200
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.log()
    assert server.log().count("Stopped on SIGTERM after draining the requests in flight") == 1
    assert "Traceback" not in server.log()


@pytest.mark.slow  # starts three interpreters
def test_a_worker_that_cannot_load_its_model_is_one_error_line(tmp_path):
    """The supervisor only reads the model's sidecar; each worker loads the file, and a broken one stops them all, said once."""
    import json
    import subprocess
    import sys

    model = tmp_path / "broken.tflite"
    model.write_bytes(b"TFL3" + bytes(200))
    (tmp_path / "broken.tflite.lenet.json").write_text(
        json.dumps({"dataset": "mnist", "class_names": [str(d) for d in range(10)]})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lenet_cli", "serve", str(model), "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot load LiteRT model") and "broken.tflite" in lines[0], (
        proc.stderr
    )


def test_workers_is_at_least_1(tmp_path):
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "'--workers'" in result.stderr
