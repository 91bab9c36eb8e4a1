"""``lenet serve --workers 1`` against ``--workers 2``: images/s and p99 latency at 16 and 64 connections, in one run.

    python -m bench.serve_workers --model runs/mnist-20261127-101500      # a run: its model.tflite answers
    python -m bench.serve_workers --model model.onnx --duration 8 --rounds 5

Every request is the drawing page's: ``POST /predict?top_k=3&return_input=true`` with a 280x280 PNG drawing as the raw
body (``image/png``), so decoding and preprocessing the picture count, as they do for the page. Both servers run at once
(an idle one costs nothing) and wrk (``bench/serve_load.lua``) alternates between them, round by round, so load that
drifts on a shared machine touches both alike; each cell is the median of ``--rounds`` runs. wrk, the servers and
anything else running share the machine's cores: the figures are for this machine, the ratio is the point.

Needs ``wrk`` (Debian: ``apt-get install wrk``). Writes ``bench/results/serve_workers.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import REPO

LUA = REPO / "bench" / "serve_load.lua"
DRAWING_PATH = "/predict?top_k=3&return_input=true"


def drawing_png() -> bytes:
    """A white 7 drawn on the page's black 280x280 canvas, as the page posts it."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(image)
    pen.line([(70, 70), (210, 70), (120, 230)], fill=255, width=22, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Server:
    """``lenet serve MODEL --workers N`` on a free port, until stopped."""

    def __init__(self, model: Path, workers: int, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lenet_cli",
                "serve",
                str(model),
                "--port",
                "0",
                "--workers",
                str(workers),
                "--no-access-log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
            cwd=REPO,
        )
        deadline = time.monotonic() + 300
        self.url = None
        while self.url is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lenet serve --workers {workers} did not start:\n{log.read_text()}")
            match = re.search(r"^Serving .* at (http://127\.0\.0\.1:\d+/)", log.read_text(), re.M)
            self.url = match.group(1) if match else None
            time.sleep(0.05)
        assert urllib.request.urlopen(self.url + "readyz", timeout=5).status == 200

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def wrk(url: str, body: Path, connections: int, seconds: float) -> dict:
    env = dict(os.environ, LENET_BODY=str(body), LENET_CONTENT_TYPE="image/png", LENET_PATH=DRAWING_PATH)
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(LUA), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk failed: {proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[-1])
    duration = result["duration_us"] / 1e6
    return {
        "images_per_second": result["requests"] / duration,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": sum(result["errors"].values()),
        "requests": result["requests"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="A run directory or a model file.")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--duration", type=float, default=5.0, help="Seconds per wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating runs per cell; each cell is their median.")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "serve_workers.json")
    args = parser.parse_args(argv)
    from lenet_cli.core.machine import library_versions, machine_facts

    connections = [int(c) for c in args.connections.split(",")]
    runs: dict[tuple[int, int], list[dict]] = {(w, c): [] for w in (1, 2) for c in connections}
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "drawing.png"
        body.write_bytes(drawing_png())
        servers = {w: Server(args.model, w, Path(tmp) / f"workers{w}.log") for w in (1, 2)}
        try:
            for server in servers.values():
                wrk(server.url, body, 8, 2)  # warm-up
            load_before = os.getloadavg()
            for _ in range(args.rounds):
                for c in connections:
                    for w, server in servers.items():
                        runs[(w, c)].append(wrk(server.url, body, c, args.duration))
            load_after = os.getloadavg()
        finally:
            for server in servers.values():
                server.stop()
    rows = []
    for (w, c), results in runs.items():
        rows.append(
            {
                "workers": w,
                "connections": c,
                "rounds": len(results),
                **{
                    key: statistics.median(r[key] for r in results) for key in ("images_per_second", "p50_ms", "p99_ms")
                },
                "images_per_second_range": [
                    min(r["images_per_second"] for r in results),
                    max(r["images_per_second"] for r in results),
                ],
                "errors": sum(r["errors"] for r in results),
            }
        )
    facts = {
        **machine_facts(),
        "libraries": library_versions(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": str(args.model),
        "request": f"POST {DRAWING_PATH}, a 280x280 PNG drawing",
        "duration_s": args.duration,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": facts, "rows": rows}, indent=1) + "\n")
    print(
        f"{facts['cpu']}, {facts['cores']} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("| connections | workers | images/s | p99 (ms) | p50 (ms) | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in sorted(rows, key=lambda r: (r["connections"], r["workers"])):
        print(
            f"| {row['connections']} | {row['workers']} | {row['images_per_second']:,.0f} | {row['p99_ms']:.1f} | {row['p50_ms']:.1f} | {row['errors']} |"
        )
    for c in connections:
        one = next(r for r in rows if r["workers"] == 1 and r["connections"] == c)
        two = next(r for r in rows if r["workers"] == 2 and r["connections"] == c)
        print(
            f"{c} connections: 2 workers answer {two['images_per_second'] / one['images_per_second']:.2f}x the images/s of 1"
        )


if __name__ == "__main__":
    main()
