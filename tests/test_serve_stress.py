"""``lenet serve``'s first moments, many times over: the "Serving ... at URL" line means ready.

A script waits for that line, then sends a request or stops the server. Both
must work the instant the line appears: the socket listens, the model is warm,
and SIGINT drains and exits 0, also when a shell started ``lenet serve &`` with
SIGINT ignored. Each round starts a fresh server on a free port (about half a
second with the ``.onnx`` template model) and uses no readiness polling and no
retries, so a race between the line and the server shows up as a failure.
"""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lenet-cli[serve]'")

from tests.helpers.serve_models import draw_digit, write_template_onnx

POST_ROUNDS = 30
SIGINT_ROUNDS = 20
READY_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 5  # a server with nothing in flight drains in well under a second
ROUNDS_BUDGET_S = 180  # all the rounds of one test; each round is bounded on its own too
READY_LINE = re.compile(r"^Serving .* at (http://127\.0\.0\.1:\d+/) .*\n", re.MULTILINE)
# A shell runs `lenet serve &` with SIGINT ignored (no job control); exec keeps that disposition.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'lenet_cli', *sys.argv[1:]])"
)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


SEVEN = _png(draw_digit(7))


@pytest.fixture(scope="module")
def template_model(tmp_path_factory) -> Path:
    return write_template_onnx(tmp_path_factory.mktemp("serve-stress") / "digits.onnx")


class Launch:
    """``lenet serve MODEL --port 0`` in a subprocess, returned the instant its stderr says where it serves."""

    def __init__(self, model: Path, sigint_ignored: bool = False):
        command = ["-c", IGNORING_SIGINT] if sigint_ignored else ["-m", "lenet_cli"]
        self.proc = subprocess.Popen(
            [sys.executable, *command, "serve", str(model), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert self.proc.stderr is not None
        self.pipe = self.proc.stderr
        self.stderr = b""
        self.url = self._wait_for_ready_line()

    def _wait_for_ready_line(self) -> str:
        """Read stderr unbuffered (os.read), so the line is seen the moment it is written, whatever came with it."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        fd = self.pipe.fileno()
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:  # the process ended without saying it serves
                break
            self.stderr += chunk
            if match := READY_LINE.search(self.log()):
                return match.group(1)
        self.kill()
        raise AssertionError("lenet serve did not say it serves:\n" + self.log())

    def interrupt(self) -> str:
        """SIGINT, then how it ended: ``exit 0`` (having said it stopped on SIGINT), ``exit N``, or ``still running``."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return f"still running {EXIT_TIMEOUT_S} s later"
        self.stderr += self.pipe.read()
        if self.proc.returncode == 0 and "Stopped on SIGINT after draining the requests in flight" not in self.log():
            return "exit 0 without saying it stopped on SIGINT"
        return f"exit {self.proc.returncode}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_TIMEOUT_S)
        self.pipe.close()

    def log(self) -> str:
        return self.stderr.decode(errors="replace")


def run_rounds(rounds: int, one_round) -> Counter:
    """Call ``one_round()`` ``rounds`` times within ``ROUNDS_BUDGET_S``; the tally of the outcomes it returns."""
    outcomes: Counter = Counter()
    deadline = time.monotonic() + ROUNDS_BUDGET_S
    for done in range(rounds):
        assert time.monotonic() < deadline, f"only {done} of {rounds} rounds in {ROUNDS_BUDGET_S} s: {dict(outcomes)}"
        outcomes[one_round()] += 1
    return outcomes


def _post_at_once(client, url: str, multipart: bool) -> str:
    """One request as the drawing page (a raw PNG body) or curl -F (multipart) sends it: its status, or the error.

    ``client`` is made beforehand: a new httpx client costs tens of milliseconds (its SSL context), enough to hide the race.
    """
    import httpx

    try:
        if multipart:
            response = client.post(url + "predict", files=[("file", ("seven.png", SEVEN, "image/png"))])
        else:
            response = client.post(
                url + "predict?top_k=3&return_input=true", content=SEVEN, headers={"content-type": "image/png"}
            )
    except httpx.TransportError as exc:
        return type(exc).__name__
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    return "200" if response.json()[0]["label"] == "7" else "200, not a 7"


@pytest.mark.slow
def test_a_request_sent_the_instant_it_says_it_serves_is_answered(template_model):
    """Fresh servers: POST the instant the line appears (no polling, no retry), then SIGINT: 200, then exit 0."""
    import httpx

    launches: list[Launch] = []
    logs: list[str] = []
    client = httpx.Client(timeout=10)

    def one_round() -> tuple[str, str]:
        launch = Launch(template_model)
        launches.append(launch)
        outcome = _post_at_once(client, launch.url, multipart=len(launches) % 2 == 0), launch.interrupt()
        if outcome != ("200", "exit 0"):
            logs.append(launch.log())
        return outcome

    try:
        outcomes = run_rounds(POST_ROUNDS, one_round)
    finally:
        client.close()
        for launch in launches:
            launch.kill()
    assert outcomes == {("200", "exit 0"): POST_ROUNDS}, (
        f"{dict(outcomes)}; the first failing log:\n{logs[0] if logs else ''}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["ctrl-c", "started-with-sigint-ignored"])
def test_sigint_the_instant_it_says_it_serves_drains_and_exits_0(template_model, sigint_ignored):
    """Fresh servers: SIGINT the instant the line appears; each exits 0 within seconds, saying it stopped on SIGINT."""
    launches: list[Launch] = []
    logs: list[str] = []

    def one_round() -> str:
        launch = Launch(template_model, sigint_ignored)
        launches.append(launch)
        outcome = launch.interrupt()
        if outcome != "exit 0":
            logs.append(launch.log())
        return outcome

    try:
        outcomes = run_rounds(SIGINT_ROUNDS, one_round)
    finally:
        for launch in launches:
            launch.kill()
    assert outcomes == {"exit 0": SIGINT_ROUNDS}, f"{dict(outcomes)}; the first failing log:\n{logs[0] if logs else ''}"
