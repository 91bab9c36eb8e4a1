"""Load test for ``lenet serve`` on loopback: wrk against a server pinned to a core of its own.

The server runs on one CPU (``taskset``) and wrk (one thread, a C event loop that costs little)
on the other, so what is measured is the server. Each row is one wrk run of ``--duration``
seconds after a warm-up: requests/s, images/s, p50/p99 latency, errors (non-2xx and socket
errors; must be 0) and the server's CPU use (cores, from /proc). The matrix:

* ``/predict`` with one 28x28 MNIST test digit per request (multipart), at 1, 8 and 64 connections,
  for ``.onnx`` and ``.keras``, micro-batching on and off;
* the TF-Serving endpoint with 64 instances per request (images/s);
* the same server under plain uvicorn (h11 parser, asyncio loop) instead of httptools + uvloop;
* a 280x280 drawing per request (what the page sends: decoding dominates);
* a fault run: while wrk runs, a client sends every bad input of the issue and a client
  disconnects mid-upload; every good request must still succeed, the server's RSS is read
  before and after.

Usage (a model trained briefly on real MNIST, and its ONNX export)::

    lenet train --dataset mnist --data-dir ~/data --epochs 1 --train-limit 20000 --output /tmp/serve-model
    lenet export /tmp/serve-model --output /tmp/serve-model.onnx
    python -m bench.serve_load --keras /tmp/serve-model --onnx /tmp/serve-model.onnx

Needs ``wrk`` (Debian: ``apt-get install wrk``), ``taskset`` and Linux's /proc.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from bench.common import REPO, cpu_model, data_dir

LUA = Path(__file__).with_name("serve_load.lua")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- payloads ---------------------------------------------------------------------------------


def test_digits(count: int) -> np.ndarray:
    from lenet_cli.data.loader import load_dataset

    return load_dataset("mnist", data_dir=data_dir(), splits=("test",)).test.images[:count]


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + data
        + b"\r\n"
        for name, data in files
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def payloads(folder: Path) -> dict[str, tuple[Path, str, str, int]]:
    """name -> (body file, content type, path, images per request)."""
    from PIL import Image

    digits = test_digits(64)
    drawing = np.asarray(Image.fromarray(digits[0]).resize((280, 280), Image.Resampling.BILINEAR))
    made = {
        "digit": (*multipart([("digit.png", png(digits[0]))]), "/predict", 1),
        "drawing": (*multipart([("drawing.png", png(drawing))]), "/predict", 1),
        "tf64": (
            json.dumps({"instances": np.round(digits / 255.0, 4).tolist()}).encode(),
            "application/json",
            "/v1/models/lenet:predict",
            64,
        ),
    }
    out = {}
    for name, (body, content_type, path, images) in made.items():
        file = folder / f"{name}.body"
        file.write_bytes(body)
        out[name] = (file, content_type, path, images)
    return out


# --- the server ---------------------------------------------------------------------------------

PLAIN_UVICORN = """
import sys, uvicorn
from lenet_cli.store.runs import resolve_model
from lenet_cli.serve.app import create_app
from lenet_cli.serve.served_model import ServedModel
from lenet_cli.serve.runner import log_config
predictor = ServedModel(resolve_model(sys.argv[1]))
predictor.load()
sys.stderr.write("Serving at http://127.0.0.1:%s/\\n" % sys.argv[2]); sys.stderr.flush()
uvicorn.run(create_app(predictor), host="127.0.0.1", port=int(sys.argv[2]), http="h11", loop="asyncio",
            log_config=log_config(True))
"""


class Server:
    def __init__(self, model: Path, args: list[str], cpu: str, log: Path, plain: bool = False):
        self.log = log
        handle = open(log, "w")
        if plain:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            command = [sys.executable, "-c", PLAIN_UVICORN, str(model), str(port)]
        else:
            command = [sys.executable, "-m", "lenet_cli", "serve", str(model), "--port", "0", *args]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *command], stderr=handle, stdout=subprocess.DEVNULL, cwd=REPO
        )
        self.url = None
        deadline = time.monotonic() + 180
        while self.url is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + log.read_text())
            match = re.search(r"at (http://127\.0\.0\.1:\d+/)", log.read_text())
            self.url = match.group(1) if match else None
            time.sleep(0.02)
        while not self.ready():
            time.sleep(0.02)
        self.ready_s = time.perf_counter() - self.started

    def ready(self) -> bool:
        import urllib.request

        try:
            return urllib.request.urlopen(self.url + "readyz", timeout=2).status == 200
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mib(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def wrk(server: Server, payload, connections: int, duration: float, cpu: str) -> dict:
    body, content_type, path, images = payload
    env = dict(os.environ, LENET_BODY=str(body), LENET_CONTENT_TYPE=content_type, LENET_PATH=path)
    cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
    proc = subprocess.run(
        [
            "taskset",
            "-c",
            cpu,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            server.url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=duration + 60,
    )
    cpu_used = (server.cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
    line = [text for text in proc.stdout.splitlines() if text.startswith("{")]
    if not line:
        raise RuntimeError(f"wrk failed: {proc.stdout}\n{proc.stderr}")
    result = json.loads(line[-1])
    seconds = result["duration_us"] / 1e6
    errors = sum(result["errors"].values())
    return {
        "connections": connections,
        "req_s": round(result["requests"] / seconds, 1),
        "img_s": round(result["requests"] * images / seconds, 1),
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "errors": errors,
        "server_cpu": round(cpu_used, 2),
    }


# --- the fault run ----------------------------------------------------------------------------


def bad_requests() -> list[tuple[str, str, str, bytes, int]]:
    """(what, path, content type, body, expected status): item 4 of the issue."""

    zeros = np.zeros((28, 28)).tolist()
    blank = png(np.full((64, 64), 255, np.uint8))
    bomb = bytearray(png(np.zeros((8, 8), np.uint8)))
    import struct
    import zlib

    bomb[16:24] = struct.pack(">II", 60_000, 60_000)
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])))
    digits = test_digits(1)
    many, many_type = multipart([(f"{i}.png", png(digits[0])) for i in range(300)])
    return [
        ("not an image", "/predict", "image/png", b"this is not a picture", 422),
        ("decompression bomb", "/predict", "image/png", bytes(bomb), 413),
        ("blank picture", "/predict", "image/png", blank, 422),
        ("wrong content type", "/predict", "text/plain", b"hello", 415),
        ("too many images", "/predict", many_type, many, 413),
        ("malformed JSON", "/v1/models/lenet:predict", "application/json", b'{"instances": [[', 400),
        (
            "wrong shape",
            "/v1/models/lenet:predict",
            "application/json",
            json.dumps({"instances": [[[0.5] * 27] * 28]}).encode(),
            400,
        ),
        (
            "NaN values",
            "/v1/models/lenet:predict",
            "application/json",
            json.dumps({"instances": [[[float("nan")] * 28] * 28]}).encode(),
            400,
        ),
        (
            "ragged arrays",
            "/v1/models/lenet:predict",
            "application/json",
            json.dumps({"instances": [zeros, zeros[:3]]}).encode(),
            400,
        ),
    ]


def raw_exchange(port: int, head: bytes, body: bytes = b"", close_after: bool = False) -> int | None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head + body)
        if close_after:
            return None
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split()[1]) if answer else None


def fault_client(server: Server, stop: threading.Event, tally: dict) -> None:
    import http.client

    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    cases = bad_requests()
    while not stop.is_set():
        for what, path, content_type, body, expected in cases:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            payload = json.loads(response.read())
            conn.close()
            ok = response.status == expected and set(payload) == {"error"} and "\n" not in payload["error"]
            tally[what] = tally.get(what, 0) + (1 if ok else 0)
            tally["unexpected"] = tally.get("unexpected", 0) + (0 if ok else 1)
        # a body over --max-bytes, announced by its Content-Length: refused before it is read
        status = raw_exchange(
            port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 20000000\r\n\r\n"
        )
        tally["body over --max-bytes"] = tally.get("body over --max-bytes", 0) + (status == 413)
        # a client that disconnects mid-upload
        raw_exchange(
            port,
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 500000\r\n\r\n",
            b"\x89PNG" + bytes(100_000),
            close_after=True,
        )
        tally["disconnected mid-upload"] = tally.get("disconnected mid-upload", 0) + 1


def fault_run(model: Path, payload, duration: float, server_cpu: str, client_cpu: str, log: Path) -> dict:
    server = Server(model, [], server_cpu, log)
    try:
        wrk(server, payload, 8, 2, client_cpu)  # warm-up
        rss_before = server.rss_mib()
        stop, tally = threading.Event(), {}
        thread = threading.Thread(target=fault_client, args=(server, stop, tally))
        os.sched_setaffinity(0, {int(client_cpu)})
        thread.start()
        result = wrk(server, payload, 8, duration, client_cpu)
        stop.set()
        thread.join()
        rss_after = server.rss_mib()
        result.update(
            rss_before_mib=round(rss_before, 1),
            rss_after_mib=round(rss_after, 1),
            rss_peak_mib=round(server.rss_mib("VmHWM"), 1),
            bad_requests=tally,
            still_ready=server.ready(),
        )
    finally:
        server.stop()
    return result


# --- interleaved A/B comparisons (robust to other work on the cores) ---------------------------


def ab_runs(pairs, payload, connections, rounds, seconds, args, log_dir: Path, report) -> None:
    """Both servers of a pair run at once (an idle one costs nothing); wrk alternates between them, and
    each cell is the median of ``rounds`` short runs, so drifting background load hits both sides alike."""
    for label, (name_a, start_a), (name_b, start_b) in pairs:
        a, b = start_a(log_dir / "a.log"), start_b(log_dir / "b.log")
        try:
            for server in (a, b):
                wrk(server, payload, 8, 2, args.client_cpu)
            for c in connections:
                runs = {name_a: [], name_b: []}
                for _ in range(rounds):
                    for name, server in ((name_a, a), (name_b, b)):
                        runs[name].append(wrk(server, payload, c, seconds, args.client_cpu))
                for name, results in runs.items():
                    median = {
                        key: float(np.median([r[key] for r in results]))
                        for key in ("req_s", "img_s", "p50_ms", "p99_ms", "server_cpu")
                    }
                    report(
                        {
                            "comparison": label,
                            "variant": name,
                            "connections": c,
                            "rounds": rounds,
                            **median,
                            "req_s_range": [min(r["req_s"] for r in results), max(r["req_s"] for r in results)],
                            "errors": sum(r["errors"] for r in results),
                        }
                    )
        finally:
            a.stop()
            b.stop()


# --- the matrix -------------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keras", type=Path, required=True, help="Run directory (or .keras file) trained on real MNIST."
    )
    parser.add_argument("--onnx", type=Path, required=True, help="Its ONNX export.")
    parser.add_argument("--duration", type=float, default=8.0, help="Seconds per wrk run.")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--server-cpu", default="1")
    parser.add_argument("--client-cpu", default="0")
    parser.add_argument("--only", default=None, help="Comma-separated: main,tf64,plain,drawing,fault,ab.")
    parser.add_argument("--rounds", type=int, default=3, help="A/B comparisons: alternating runs per cell.")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "serve_load.json")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else {"main", "tf64", "plain", "drawing", "fault", "ab"}
    connections = [int(c) for c in args.connections.split(",")]
    models = {"onnx": args.onnx, "keras": args.keras}
    rows = []

    def report(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bodies = payloads(folder)
        log = folder / "server.log"
        for fmt, model in models.items():
            for batching in (True, False):
                if "main" not in only and not ("tf64" in only and batching):
                    continue
                server = Server(model, ["--batching" if batching else "--no-batching"], args.server_cpu, log)
                try:
                    base = {
                        "model": fmt,
                        "batching": batching,
                        "server": "uvicorn+httptools+uvloop",
                        "ready_s": round(server.ready_s, 2),
                    }
                    wrk(server, bodies["digit"], 8, 2, args.client_cpu)  # warm-up
                    if "main" in only:
                        for c in connections:
                            report(
                                {
                                    **base,
                                    "payload": "1 digit (28x28 PNG)",
                                    **wrk(server, bodies["digit"], c, args.duration, args.client_cpu),
                                }
                            )
                    if "tf64" in only and batching:
                        for c in (1, 8):
                            report(
                                {
                                    **base,
                                    "payload": "TF Serving, 64 instances",
                                    **wrk(server, bodies["tf64"], c, args.duration, args.client_cpu),
                                }
                            )
                    if "drawing" in only and batching and fmt == "onnx":
                        report(
                            {
                                **base,
                                "payload": "1 drawing (280x280 PNG)",
                                **wrk(server, bodies["drawing"], 8, args.duration, args.client_cpu),
                            }
                        )
                finally:
                    server.stop()
        if "plain" in only:
            server = Server(args.onnx, [], args.server_cpu, log, plain=True)
            try:
                wrk(server, bodies["digit"], 8, 2, args.client_cpu)
                for c in connections:
                    report(
                        {
                            "model": "onnx",
                            "batching": True,
                            "server": "uvicorn+h11+asyncio",
                            "payload": "1 digit (28x28 PNG)",
                            **wrk(server, bodies["digit"], c, args.duration, args.client_cpu),
                        }
                    )
            finally:
                server.stop()
        if "ab" in only:

            def lenet(model, *flags):
                return lambda log_file: Server(model, list(flags), args.server_cpu, log_file)

            pairs = [
                (
                    "micro-batching, .onnx",
                    ("on", lenet(args.onnx, "--batching")),
                    ("off", lenet(args.onnx, "--no-batching")),
                ),
                (
                    "micro-batching, .keras",
                    ("on", lenet(args.keras, "--batching")),
                    ("off", lenet(args.keras, "--no-batching")),
                ),
                (
                    "uvicorn stack, .onnx",
                    ("httptools+uvloop", lenet(args.onnx)),
                    ("h11+asyncio", lambda log_file: Server(args.onnx, [], args.server_cpu, log_file, plain=True)),
                ),
            ]
            ab_runs(pairs, bodies["digit"], connections, args.rounds, max(2.0, args.duration / 2), args, folder, report)
        if "fault" in only:
            report(
                {
                    "model": "onnx",
                    "batching": True,
                    "server": "fault run",
                    "payload": "1 digit + bad inputs",
                    **fault_run(
                        args.onnx, bodies["digit"], max(args.duration, 10), args.server_cpu, args.client_cpu, log
                    ),
                }
            )
    facts = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": facts, "rows": rows}, indent=1) + "\n")
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
