"""``lenet serve``: every endpoint and bad input through FastAPI's TestClient, the micro-batcher,
one real server under uvicorn (access log, graceful drain on SIGTERM), and the drawing page in
headless Chromium driven by Playwright.

Most tests serve ``serve_models.write_template_onnx``: a real ``.onnx`` lenet model (no
TensorFlow, instant to load) whose answers are predictable, so "a drawn 7 is a 7" is a fact to
check, not a hope. One test serves the tiny trained ``.keras`` run, and a realdata test a LeNet
trained briefly on real MNIST.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lenet-cli[serve]'")

from lenet_cli.data.preprocess import PreprocessOptions, load_and_preprocess
from tests.helpers.real_data import REAL_DATA, requires_real_data
from tests.helpers.serve_models import draw_digit, reference_probabilities, write_template_onnx

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using .httpx. with .starlette.testclient."
)  # starlette 1.x prefers httpx2; httpx works

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


SEVEN = png_bytes(draw_digit(7))
ZERO_ON_PAPER = png_bytes(draw_digit(0, size=420, dark_on_light=True, scale=0.8, offset=(50, 30)))
BLANK = png_bytes(Image.new("L", (64, 64), 255))


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (3.6 billion by default)."""
    data = bytearray(png_bytes(Image.new("L", (8, 8), 0)))
    ihdr = 8  # signature, then the IHDR chunk: length, type, width, height, ...
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    body = bytes(data[ihdr + 4 : ihdr + 8 + 13])
    data[ihdr + 8 + 13 : ihdr + 8 + 17] = struct.pack(">I", zlib.crc32(body))
    return bytes(data)


@pytest.fixture(scope="module")
def template_model(tmp_path_factory) -> Path:
    return write_template_onnx(tmp_path_factory.mktemp("serve") / "digits.onnx")


def make_client(model: Path, **settings):
    from fastapi.testclient import TestClient

    from lenet_cli.core.serve_settings import ServeSettings
    from lenet_cli.serve.app import create_app
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store.runs import resolve_model

    return TestClient(create_app(ServedModel(resolve_model(model)), ServeSettings(**settings)))


@pytest.fixture(scope="module")
def client(template_model):
    with make_client(template_model, max_bytes=200_000, max_images=3) as test_client:
        yield test_client


def post_image(client, data: bytes, query: str = "", content_type: str = "image/png"):
    return client.post(f"/predict{query}", content=data, headers={"content-type": content_type})


# --- /predict ---------------------------------------------------------------------------------


def test_predict_answers_a_raw_body_and_multipart_files_in_order(client):
    raw = post_image(client, SEVEN)
    assert raw.status_code == 200, raw.text
    (record,) = raw.json()
    assert set(record) == {"path", "label", "index", "confidence", "top_k", "low_confidence", "error", "model"}
    assert (record["path"], record["label"], record["index"], record["error"], record["model"]) == (
        "<body>",
        "7",
        7,
        None,
        "digits.onnx",
    )
    assert len(record["top_k"]) == 3 and record["top_k"][0] == {
        "label": "7",
        "index": 7,
        "confidence": record["confidence"],
    }

    files = [("file", ("seven.png", SEVEN, "image/png")), ("file", ("zero.jpg", ZERO_ON_PAPER, "image/jpeg"))]
    multi = client.post("/predict", files=files)
    assert multi.status_code == 200, multi.text
    assert [(r["path"], r["label"]) for r in multi.json()] == [("seven.png", "7"), ("zero.jpg", "0")]


def test_records_are_those_of_lenet_predict_json(client, template_model, tmp_path):
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    (tmp_path / "seven.png").write_bytes(SEVEN)
    result = CliRunner().invoke(
        cli, ["predict", "--model", str(template_model), str(tmp_path / "seven.png"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (expected,) = json.loads(result.stdout)
    served = client.post("/predict", files=[("file", ("seven.png", SEVEN, "image/png"))]).json()[0]
    assert served["path"] == "seven.png" and expected["path"].endswith("seven.png")
    assert served["model"] == "digits.onnx" and expected["model"].endswith("digits.onnx")
    assert set(served) == set(expected)
    for key in ("label", "index", "error", "low_confidence"):
        assert served[key] == expected[key]
    assert served["confidence"] == pytest.approx(expected["confidence"], abs=1e-6)
    assert [(t["label"], t["index"]) for t in served["top_k"]] == [(t["label"], t["index"]) for t in expected["top_k"]]
    assert [t["confidence"] for t in served["top_k"]] == pytest.approx(
        [t["confidence"] for t in expected["top_k"]], abs=1e-6
    )


def test_min_confidence_query_flags_unsure_answers(client):
    from PIL import ImageChops

    from lenet_cli.core.config import MIN_CONFIDENCE

    one_or_seven = png_bytes(ImageChops.lighter(draw_digit(1), draw_digit(7)))  # a 1 and a 7 on top of each other
    plain = post_image(client, one_or_seven).json()[0]
    assert 0.5 < plain["confidence"] < 0.99
    assert plain["low_confidence"] is (plain["confidence"] < MIN_CONFIDENCE)
    assert post_image(client, one_or_seven, "?min_confidence=0.99").json()[0]["low_confidence"] is True
    assert post_image(client, one_or_seven, "?min_confidence=0").json()[0]["low_confidence"] is False
    assert post_image(client, SEVEN, "?min_confidence=0.99").json()[0]["low_confidence"] is False  # a clear 7
    assert post_image(client, SEVEN, "?min_confidence=2").status_code == 422


def test_query_parameters_top_k_preprocess_invert_and_return_input(client):
    one = post_image(client, SEVEN, "?top_k=1&return_input=true").json()[0]
    assert len(one["top_k"]) == 1
    assert one["input"].startswith("data:image/png;base64,")
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(one["input"].split(",", 1)[1]))))
    expected = load_and_preprocess(SEVEN, PreprocessOptions("mnist"))
    assert seen.shape == (28, 28) and np.abs(seen / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    # inverting a white-on-black drawing turns the background into the "ink": a different input
    inverted = post_image(client, SEVEN, "?top_k=10&invert=always&preprocess=none").json()[0]
    plain = post_image(client, SEVEN, "?top_k=10").json()[0]
    assert inverted["top_k"] != plain["top_k"]
    bad = post_image(client, SEVEN, "?top_k=11")
    assert bad.status_code == 422 and bad.json() == {"error": "top_k: Input should be less than or equal to 10"}
    assert post_image(client, SEVEN, "?preprocess=cifar").status_code == 422


def test_one_failed_image_of_several_is_an_error_record(client):
    files = [("file", ("blank.png", BLANK, "image/png")), ("file", ("seven.png", SEVEN, "image/png"))]
    response = client.post("/predict", files=files)
    assert response.status_code == 200
    blank, seven = response.json()
    assert blank["label"] is None and blank["error"].startswith("no content found in 'blank.png'")
    assert seven["label"] == "7" and seven["error"] is None


# --- bad input: a 4xx JSON error with one line, and the server keeps serving -----------------


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str = "xyzzy") -> tuple[bytes, str]:
    body = b""
    for field, name, data in parts:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                f"Content-Type: image/png\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _tf(instances) -> bytes:
    return json.dumps({"instances": instances}).encode()


ZEROS = np.zeros((28, 28)).tolist()
BAD_REQUESTS = {
    "body over --max-bytes": (
        "/predict",
        "image/png",
        b"\x89PNG" + bytes(300_000),
        413,
        "more than the limit of 200,000",
    ),
    "more than --max-images files": (
        "/predict",
        *reversed(_multipart([("file", f"{i}.png", SEVEN) for i in range(4)])),
        413,
        "more than 3 images",
    ),
    "more than --max-images instances": (
        "/v1/models/lenet:predict",
        "application/json",
        _tf([ZEROS] * 4),
        413,
        "more than 3",
    ),
    "not an image": ("/predict", "image/png", b"GIF89a? no, just text", 422, "not an image file"),
    "decompression bomb": ("/predict", "image/png", bomb_png(), 413, "too many pixels"),
    "blank picture": ("/predict", "image/png", BLANK, 422, "no content found"),
    "empty body": ("/predict", "image/png", b"", 422, "empty (0 bytes)"),
    "wrong content type for /predict": ("/predict", "text/plain", SEVEN, 415, "unsupported Content-Type 'text/plain'"),
    "wrong content type for TF Serving": ("/v1/models/lenet:predict", "image/png", SEVEN, 415, "send a JSON body"),
    "malformed multipart": (
        "/predict",
        "multipart/form-data; boundary=xyzzy",
        b"--xyzzy\r\nContent-Disp",
        400,
        "malformed multipart",
    ),
    "multipart without boundary": ("/predict", "multipart/form-data", b"abc", 400, "without a boundary"),
    "a form field other than file": (
        "/predict",
        *reversed(_multipart([("image", "a.png", SEVEN)])),
        400,
        "unexpected form field 'image'",
    ),
    "malformed JSON": ("/v1/models/lenet:predict", "application/json", b'{"instances": [[0.1,', 400, "malformed JSON"),
    "JSON nested too deeply": ("/v1/models/lenet:predict", "application/json", b"[" * 100_000, 400, "malformed JSON"),
    "neither instances nor inputs": (
        "/v1/models/lenet:predict",
        "application/json",
        b'{"examples": []}',
        400,
        "exactly one of",
    ),
    "wrong shape": (
        "/v1/models/lenet:predict",
        "application/json",
        _tf([np.zeros((28, 27)).tolist()]),
        400,
        "has shape [1, 28, 27]",
    ),
    "ragged arrays": ("/v1/models/lenet:predict", "application/json", _tf([ZEROS, ZEROS[:5]]), 400, "equal shape"),
    "strings instead of numbers": (
        "/v1/models/lenet:predict",
        "application/json",
        _tf([[["a"] * 28] * 28]),
        400,
        "must hold numbers",
    ),
    "NaN values": (
        "/v1/models/lenet:predict",
        "application/json",
        json.dumps({"instances": [[[float("nan")] * 28] * 28]}).encode(),
        400,
        "NaN",
    ),
    "values outside [0, 1]": (
        "/v1/models/lenet:predict",
        "application/json",
        _tf([[[255.0] * 28] * 28]),
        400,
        "must lie in [0, 1]",
    ),
    "empty instances": ("/v1/models/lenet:predict", "application/json", _tf([]), 400, "has shape [0]"),
}


@pytest.mark.parametrize("path, content_type, body, status, message", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_4xx_json_error_with_one_line(client, path, content_type, body, status, message):
    response = client.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error
    assert post_image(client, SEVEN).json()[0]["label"] == "7"  # still serving


def test_nothing_a_request_sends_is_read_as_a_path(client, template_model):
    """A file name, or a body that is a path, is only ever shown: the model file is never read as an image."""
    files = [("file", (str(template_model), str(template_model).encode(), "image/png"))]
    response = client.post("/predict", files=files)
    assert response.status_code == 422 and "not an image file" in response.json()["error"]
    assert post_image(client, str(template_model).encode(), content_type="application/octet-stream").status_code == 422


def test_a_failing_model_is_a_500_json_error_not_a_traceback(template_model):
    from fastapi.testclient import TestClient

    from lenet_cli.serve.app import create_app
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store.runs import resolve_model

    class Broken(ServedModel):
        def predict(self, images):
            if len(images) == 3:
                raise RuntimeError("the model broke\nsecond line")
            return super().predict(images)

    with TestClient(create_app(Broken(resolve_model(template_model))), raise_server_exceptions=False) as broken:
        response = broken.post("/v1/models/lenet:predict", json={"instances": [ZEROS] * 3})
        assert response.status_code == 500
        assert response.json() == {"error": "internal error: RuntimeError: the model broke"}
        assert broken.post("/v1/models/lenet:predict", json={"instances": [ZEROS]}).status_code == 200  # still serving


# --- TensorFlow Serving's REST API -------------------------------------------------------------


def test_tf_serving_row_and_columnar_formats_against_a_hand_made_request(client):
    seven = load_and_preprocess(SEVEN, PreprocessOptions("mnist"))
    zero = load_and_preprocess(ZERO_ON_PAPER, PreprocessOptions("mnist"))
    expected = reference_probabilities(np.stack([seven, zero]))
    # a request as a TF Serving client writes it by hand: rounded numbers, 28x28x1 nesting
    rows_text = [json.dumps(np.round(x, 6)[..., None].tolist()) for x in (seven, zero)]
    hand_made = '{"signature_name": "serving_default", "instances": [' + ", ".join(rows_text) + "]}"
    rows = client.post("/v1/models/lenet:predict", content=hand_made, headers={"content-type": "application/json"})
    assert rows.status_code == 200, rows.text
    assert list(rows.json()) == [
        "predictions"
    ]  # as TF Serving answers for lenet's SavedModel: each output by name, per instance
    np.testing.assert_allclose([p["probabilities"] for p in rows.json()["predictions"]], expected, atol=1e-5)
    assert [p["class"] for p in rows.json()["predictions"]] == [7, 0]
    # curl -d sends application/x-www-form-urlencoded; TF Serving's own examples rely on it being accepted
    columns = client.post(
        "/v1/models/lenet:predict",
        content=json.dumps({"inputs": {"image": [seven.tolist()]}}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert list(columns.json()) == ["outputs"]
    np.testing.assert_allclose(columns.json()["outputs"]["probabilities"], expected[:1], atol=1e-5)
    assert columns.json()["outputs"]["class"] == [7]
    named = client.post("/v1/models/lenet:predict", json={"instances": [{"image": zero.tolist()}]})
    np.testing.assert_allclose(named.json()["predictions"][0]["probabilities"], expected[1], atol=1e-5)
    # the same numbers as /predict gives for the picture
    served = post_image(client, SEVEN, "?top_k=10").json()[0]["top_k"]
    np.testing.assert_allclose(
        [t["confidence"] for t in sorted(served, key=lambda t: t["index"])], expected[0], atol=1e-5
    )
    status = client.get("/v1/models/lenet").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


# --- health, metadata, metrics, docs, the page --------------------------------------------------


def test_health_metadata_metrics_docs_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    meta = client.get("/metadata").json()
    assert meta["model"] == "digits.onnx" and meta["format"] == "onnx" and meta["dataset"] == "mnist"
    assert meta["run"] is None  # a model file of its own, not a run's
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["preprocessing"] == {
        "mode": "mnist",
        "invert": "auto",
    }
    assert meta["limits"] == {"max_bytes": 200_000, "max_images": 3} and meta["lenet_version"]
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert client.get("/favicon.ico").status_code == 204  # browsers ask for it; a 404 is a console error

    post_image(client, SEVEN)
    post_image(client, BLANK)
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert re.search(r'lenet_requests_total\{endpoint="/predict",status="200"\} [1-9]', text)
    assert re.search(r'lenet_request_errors_total\{endpoint="/predict",status="422"\} [1-9]', text)
    assert 'lenet_request_duration_seconds_bucket{endpoint="/predict",le="0.1"}' in text
    assert re.search(r"lenet_batch_size_count [1-9]", text) and re.search(r"lenet_images_total [1-9]", text)
    assert 'endpoint="/nowhere"' not in text  # unknown paths are one label, "other"

    schema = client.get("/openapi.json").json()
    assert {"/predict", "/v1/models/lenet:predict", "/healthz", "/readyz", "/metadata", "/metrics"} <= set(
        schema["paths"]
    )
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    docs = client.get("/docs").text
    assert "swagger" in docs.lower()
    for page in ("/docs", "/redoc"):  # served with their scripts and styles: nothing from a CDN
        html = client.get(page).text
        assert not re.search(r"https?://", html), f"{page} loads something from elsewhere"
        for asset in re.findall(r"""(?:src|href)=["']([^"']+)""", html):
            assert client.get(asset).status_code == 200, asset

    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<canvas id="pad"' in html and 'id="clear"' in html and 'type="file"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything from elsewhere"


# --- the micro-batcher ------------------------------------------------------------------------


def test_batcher_merges_concurrent_requests_and_never_waits_alone():
    from lenet_cli.serve.batching import MicroBatcher

    calls: list[int] = []

    def model(images):
        calls.append(len(images))
        time.sleep(0.02)
        return images.reshape(len(images), -1)[:, :2] * 1.0

    async def scenario():
        batcher = MicroBatcher(model, max_batch=8, timeout=1.0)
        await batcher.start()
        started = time.perf_counter()
        alone = await batcher.predict(np.full((1, 2, 2), 7.0))
        alone_s = time.perf_counter() - started  # nothing announced: no wait for the 1 s timeout
        inputs = [np.full((1, 2, 2), float(i)) for i in range(10)]
        answers = await asyncio.gather(*(batcher.predict(x) for x in inputs))
        # an announced request is waited for (within the timeout) and joins the batch
        slot = batcher.reserve()
        first = asyncio.ensure_future(batcher.predict(np.full((1, 2, 2), 1.0)))
        await asyncio.sleep(0.05)
        second = await slot.predict(np.full((1, 2, 2), 2.0))
        await first
        await batcher.stop()
        return alone, alone_s, answers, second

    alone, alone_s, answers, second = asyncio.run(scenario())
    assert alone.tolist() == [[7.0, 7.0]] and alone_s < 0.5
    assert [a.tolist() for a in answers] == [[[float(i)] * 2] for i in range(10)]
    assert calls[0] == 1 and calls[1:3] == [8, 2]  # ten concurrent requests in two calls, capped at max_batch
    assert calls[3] == 2 and second.tolist() == [[2.0, 2.0]]


def test_keras_model_served_with_batching_off(trained_run):
    """A .keras run directory works too, and the TF-Serving endpoint gives the model's own numbers."""
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    expected = open_model(resolve_model(trained_run)).predict(images)
    with make_client(trained_run, batching=False) as keras_client:
        got = keras_client.post("/v1/models/lenet:predict", json={"instances": images.tolist()}).json()["predictions"]
        meta = keras_client.get("/metadata").json()
        answer = keras_client.post("/predict", content=SEVEN, headers={"content-type": "image/png"}).json()[0]
    np.testing.assert_allclose([g["probabilities"] for g in got], expected, atol=1e-5)
    assert (
        meta["format"] == "keras"
        and meta["run"] == trained_run.name
        and meta["model"] == f"{trained_run.name}/model.keras"
    )
    assert answer["model"] == f"{trained_run.name}/model.keras"


def test_startup_line_names_the_run_or_the_file(trained_run, template_model):
    from lenet_cli.serve.runner import startup_line
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store.runs import resolve_model

    url = "http://127.0.0.1:8000/"
    for model in (trained_run, trained_run / "model.keras"):  # a run directory, or its model.keras named directly
        line = startup_line(ServedModel(resolve_model(model)), url)
        assert line.startswith(
            f"Serving run {trained_run.name} (model.keras, keras, mnist) at {url} - drawing page {url}, API docs {url}docs"
        )
    assert startup_line(ServedModel(resolve_model(template_model)), url).startswith(
        f"Serving digits.onnx (onnx, mnist) at {url} "
    )


# --- the command line ---------------------------------------------------------------------------


def test_help_imports_neither_tensorflow_nor_the_web_stack():
    probe = (
        "import sys\n"
        "from lenet_cli.cli import main\n"
        "for argv in (['serve', '--help'], ['serve', '--port', 'x'], ['serve', '--max-bytes', 'lots']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        print(argv[1], exc.code)\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'fastapi', 'uvicorn', 'starlette', 'onnxruntime') if m in sys.modules]\n"
        "print('loaded', loaded)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-4:] == ["--help 0", "--port 2", "--max-bytes 2", "loaded []"]
    assert "--batch-timeout" in proc.stdout and "Examples" in proc.stdout


def test_without_the_serve_extra_it_names_the_extra(template_model, monkeypatch):
    import importlib.util

    from click.testing import CliRunner

    from lenet_cli.cli import cli
    from lenet_cli.core.errors import EXIT_MISSING_EXTRA

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real_find_spec(name, *a)
    )
    result = CliRunner().invoke(cli, ["serve", str(template_model)])
    assert result.exit_code == EXIT_MISSING_EXTRA  # the same code as every command's missing extra
    assert (
        result.stderr
        == "Error: lenet serve needs the serve extra (uvicorn is missing): pip install 'lenet-cli[serve]'\n"
    )


def test_a_busy_port_is_a_one_line_error(template_model):
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", str(template_model), "--port", str(port)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}:") and result.stderr.count("\n") == 1


class Server:
    """``lenet serve`` in a subprocess on a free port; its stderr collected line by line."""

    def __init__(self, model: Path | None, *args: str, timeout: float = 120):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        chosen = (
            [] if model is None else [str(model)]
        )  # None: the command's own default (the latest run, or a built-in)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lenet_cli", "serve", *chosen, "--port", "0", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.url = None
        # every line is read by one thread from the start: uvicorn's start-up lines and the ready line may arrive in
        # one chunk, which a select() on the pipe followed by readline() would leave unread in the buffer
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + timeout
        while self.url is None:
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self.reader.is_alive()):
                self.stop()
                raise AssertionError("lenet serve did not start:\n" + "".join(self.lines))
            match = next(
                (
                    m
                    for m in (
                        re.search(r"^Serving .* at (http://127\.0\.0\.1:\d+/)", line) for line in list(self.lines)
                    )
                    if m
                ),
                None,
            )
            self.url = match.group(1) if match else None
            time.sleep(0.02)
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))
        import httpx

        # the ready line comes once the socket listens with the model warm: the first request is answered at once
        assert httpx.get(self.url + "readyz", timeout=5).status_code == 200

    def _collect(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:  # pragma: no cover - only when draining hangs
                self.proc.kill()


@pytest.fixture(scope="module")
def server(template_model):
    running = Server(template_model)
    yield running
    running.stop()


@pytest.mark.slow
def test_real_socket_predict_and_access_log(server):
    import httpx

    response = httpx.post(server.url + "predict", files=[("file", ("seven.png", SEVEN, "image/png"))], timeout=30)
    assert response.status_code == 200 and response.json()[0]["label"] == "7"
    assert (
        "cannot"
        in httpx.post(server.url + "predict", content=b"nope", headers={"content-type": "image/png"}).json()["error"]
    )
    time.sleep(0.2)
    log = server.log()
    assert '"POST /predict HTTP/1.1" 200' in log and '"POST /predict HTTP/1.1" 422' in log
    assert f"Serving digits.onnx (onnx, mnist) at {server.url} - drawing page" in log
    assert server.proc.stdout is not None  # nothing but data may go to stdout: the log is all on stderr


@pytest.mark.slow
def test_sigterm_drains_the_request_in_flight_then_exits_0(template_model):
    running = Server(template_model, "--no-access-log")
    body, content_type = _multipart([("file", "seven.png", SEVEN)])
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as conn:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        conn.sendall(head + body[:100])  # half an upload: a request in flight
        time.sleep(0.5)
        running.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert running.proc.poll() is None, "the server quit with a request in flight"
        conn.sendall(body[100:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])[0]["label"] == "7"
    assert running.stop() == 0
    assert "Stopped on SIGTERM after draining the requests in flight" in running.log()


# --- the drawing page in a real browser -----------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


SEVEN_STROKES = [[(0.22, 0.2), (0.78, 0.2), (0.42, 0.88)]]  # canvas fractions: the bar, then the diagonal


def draw(page, strokes):
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x, y, steps=12)
        page.mouse.up()


# Single strokes (the page answers when the pen lifts): 7, 1, a ring for 0, and a 4 drawn in one go.
ONE_STROKE_DIGITS = {
    "7": [(0.25, 0.18), (0.75, 0.18), (0.43, 0.86)],
    "1": [(0.54, 0.14), (0.54, 0.86)],
    "0": [(0.5 + 0.23 * np.sin(a), 0.5 - 0.375 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 25)],
    "4": [(0.61, 0.86), (0.61, 0.14), (0.25, 0.61), (0.77, 0.61)],
}

# Installed before the page's own script: the time from the pen lifting on the canvas (pointerup) to
# #answer showing the answer to the request sent after it (requests go one at a time, so an answer to a
# request sent mid-stroke does not count).
LATENCY_PROBE = """
window.__latency = {up: null, waiting: false, times: []};
const realFetch = window.fetch;
window.fetch = function (url, options) {
  if (String(url).startsWith("predict") && window.__latency.up !== null) window.__latency.waiting = true;
  return realFetch.apply(this, arguments);
};
document.addEventListener("DOMContentLoaded", () => {
  const answer = document.getElementById("answer");
  document.getElementById("pad").addEventListener("pointerup", () => {
    window.__latency.up = performance.now();
    window.__latency.waiting = false;
  }, true);
  new MutationObserver(() => {
    const l = window.__latency;
    if (l.waiting && answer.dataset.label !== undefined) {
      l.times.push(performance.now() - l.up);
      l.up = null;
      l.waiting = false;
    }
  }).observe(answer, {childList: true, subtree: true, attributes: true});
});
"""


# A main thread that is never idle: one 4 ms task after another. Chromium then starts a toBlob's
# encoding only after its 1 s timeout (the page used to answer ~1,050 ms after the pen lifted).
KEEP_MAIN_THREAD_BUSY = """() => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    const start = performance.now();
    while (performance.now() - start < 4);
    channel.port2.postMessage(0);
  };
  channel.port2.postMessage(0);
}"""


def console_errors(page) -> list[str]:
    """Collect the page's console errors and uncaught exceptions as they happen."""
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.text} ({message.location.get('url')})") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


def wait_for_label(page, label: str):
    page.wait_for_function(f"document.getElementById('answer').dataset.label === {json.dumps(label)}", timeout=20_000)


def assert_not_blank(screenshot: bytes):
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"), dtype=np.float32)
    assert pixels.std() > 20 and (pixels > 240).mean() > 0.05 and (pixels < 30).mean() > 0.05, (
        "the screenshot looks blank"
    )


def check_page(page, url: str, digit_file: Path, digit: str, shot: Path | None = None):
    page.goto(url)
    page.wait_for_function("document.getElementById('model-info').textContent.includes('dataset')")
    assert "mnist" in page.locator("#model-info").inner_text()
    draw(page, SEVEN_STROKES)
    wait_for_label(page, "7")
    assert page.locator("#answer").inner_text().startswith("7")
    assert page.locator("#bars li").count() == 5
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    screenshot = page.screenshot(path=str(shot) if shot else None)
    assert_not_blank(screenshot)
    page.get_by_role("button", name="Clear").click()
    assert page.locator("#answer").inner_text() == "" and page.locator("#bars li").count() == 0
    page.set_input_files("#file", str(digit_file))
    wait_for_label(page, digit)
    # keyboard: the Clear button is reachable and works without a mouse
    page.locator("#clear").focus()
    page.keyboard.press("Enter")
    assert page.locator("#answer").inner_text() == ""


@pytest.mark.slow
def test_drawing_page_in_headless_chromium(server, browser, tmp_path):
    (tmp_path / "zero.png").write_bytes(ZERO_ON_PAPER)
    page = browser.new_page(viewport={"width": 900, "height": 560})
    errors = console_errors(page)
    try:
        check_page(page, server.url, tmp_path / "zero.png", "0", tmp_path / "page.png")
        page.wait_for_load_state("networkidle")  # the favicon request included
    finally:
        page.close()
    assert '"POST /predict?top_k=5&return_input=true HTTP/1.1" 200' in server.log()
    assert errors == [], "the page logged errors"


@pytest.mark.slow
@pytest.mark.parametrize("main_thread", ["idle", "busy"])
def test_drawing_page_answers_soon_after_the_pen_lifts(server, browser, main_thread):
    """Real mouse strokes; the time from pointerup to the answer shown is measured in the page itself,
    also while the page's main thread is never idle (where an idle-time encoder waits 1 s)."""
    page = browser.new_page(viewport={"width": 900, "height": 560})
    page.add_init_script(LATENCY_PROBE)
    try:
        page.goto(server.url)
        page.wait_for_function("document.getElementById('model-info').textContent.includes('dataset')")
        if main_thread == "busy":
            page.evaluate(KEEP_MAIN_THREAD_BUSY)
        drawn = ["7", "1", "0", "4", "7", "1"]
        for i, digit in enumerate(drawn):
            page.locator("#clear").click()
            draw(page, [ONE_STROKE_DIGITS[digit]])
            page.wait_for_function(f"window.__latency.times.length === {i + 1}", timeout=10_000)
            assert page.locator("#answer").get_attribute("data-label") == digit
        times = page.evaluate("window.__latency.times")
    finally:
        page.close()
    median = float(np.median(times))
    print(f"pointerup to answer, {main_thread} main thread: median {median:.0f} ms, all {[round(t) for t in times]}")
    assert median < 300, f"the answer shows {median:.0f} ms (median) after the pen lifts: {[round(t) for t in times]}"


@pytest.mark.slow
def test_api_docs_render_offline(server, browser):
    """/docs in headless Chromium with every request beyond loopback refused: Swagger UI still renders."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = console_errors(page)
    refused: list[str] = []

    def loopback_only(route):
        if route.request.url.startswith(("http://127.0.0.1:", "data:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)
    try:
        page.goto(server.url + "docs")
        page.locator('.opblock-summary-path[data-path="/predict"]').wait_for(timeout=20_000)
        assert page.locator(".opblock").count() >= 6  # every endpoint, from /openapi.json
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert refused == [], "the docs asked for something beyond this server"
    assert errors == [], "the docs page logged errors"


@pytest.mark.slow
@pytest.mark.realdata
@requires_real_data
def test_drawing_page_with_a_lenet_trained_on_real_mnist(browser, tmp_path):
    """The real network: a LeNet trained briefly on MNIST recognises a 7 drawn with the mouse and an uploaded test digit."""
    from click.testing import CliRunner

    from lenet_cli.cli import cli
    from lenet_cli.data.loader import load_dataset

    run = tmp_path / "mnist-run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(REAL_DATA),
            "--epochs",
            "1",
            "--train-limit",
            "12000",
            "--dense-units",
            "256",
            "--output",
            str(run),
            "--no-tensorboard",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    test_split = load_dataset("mnist", data_dir=REAL_DATA, splits=("test",)).test
    first_zero = int(np.flatnonzero(test_split.labels == 0)[0])  # not a 7, so the upload must change the answer
    image, label = test_split.images[first_zero], 0
    Image.fromarray(255 - np.asarray(image).reshape(28, 28)).resize((140, 140)).save(
        tmp_path / "digit.png"
    )  # dark on light
    running = Server(run)
    page = browser.new_page(viewport={"width": 900, "height": 560})
    try:
        check_page(page, running.url, tmp_path / "digit.png", str(label))
    finally:
        page.close()
        assert running.stop() == 0


@pytest.mark.slow
def test_drawing_page_for_a_fashion_model_asks_for_a_photo(browser, tmp_path):
    running = Server(write_template_onnx(tmp_path / "articles.onnx", dataset="fashion"), "--no-access-log")
    page = browser.new_page()
    try:
        page.goto(running.url)
        page.wait_for_function("document.getElementById('model-info').textContent.includes('dataset')")
        assert page.locator("h1").inner_text() == "Draw or upload a piece of clothing"
        assert "dataset fashion" in page.locator("#model-info").inner_text()
        assert "Ankle boot" in page.locator("#hint").inner_text()
        assert page.get_by_label("Upload an image…").count() == 1  # the file picker is a labelled control
    finally:
        page.close()
        assert running.stop() == 0
