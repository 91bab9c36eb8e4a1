"""``lenet serve --workers N``: N processes answer on one port, each with its own model, behind one supervisor.

One Python process answers one request at a time with its model (and the GIL serialises its decoding), so on a
machine of several cores one process leaves most of them idle. The supervisor binds the port once and starts N
workers (fresh interpreters: forking a process that has loaded TensorFlow or a runtime's thread pools is unsafe)
that inherit the listening socket; each loads its own model and accepts connections from the same queue, so an
idle worker takes the next one. It prints the ready line once every worker answers, forwards SIGINT and SIGTERM,
and exits 0 once they have all drained, as a single ``lenet serve`` does.

Each worker reports on a pipe: one JSON line when it is ready (its own startup line) or when it fails (its error),
and a second pipe, which only the supervisor writes to, ends when the supervisor does: a worker whose supervisor
died (``kill -9``) drains and exits instead of holding the port. ``/metrics`` adds up every worker's counts
through prometheus-client's multiprocess mode (:mod:`lenet_cli.serve.metrics`).

Run as ``python -m lenet_cli.serve.workers`` by the supervisor only; the worker's settings come in
:data:`WORKER_ENV`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from lenet_cli.core.errors import LenetError
from lenet_cli.core.serve_settings import ServeSettings
from lenet_cli.serve.runner import (
    GRACEFUL_SHUTDOWN_S,
    STOP_SIGNALS,
    ServePlan,
    bind,
    require_serve_extra,
    run_serve,
    served_model,
    stop_on_signals,
    url_of,
)
from lenet_cli.serve.worker_link import WorkerLink

WORKER_ENV = "LENET_SERVE_WORKER"
# a worker loading a Keras model on a busy machine takes seconds; this is the bound for a wedged one
START_TIMEOUT_S = 600
# beyond the workers' own graceful-shutdown limit, before the supervisor kills a worker that has not exited
DRAIN_MARGIN_S = 10


def worker_main() -> int:
    """A worker's process: serve as ``lenet serve`` does, on the inherited socket, and report to the supervisor."""
    from lenet_cli.core.tensorflow_env import prepare_tensorflow_env

    prepare_tensorflow_env()
    spec = json.loads(os.environ[WORKER_ENV])
    link = WorkerLink(**spec["link"])

    def say(line: str) -> None:  # the first worker speaks for all (the others would repeat it)
        if link.index == 1:
            print(line, file=sys.stderr, flush=True)

    plan = ServePlan(**{**spec["plan"], "settings": ServeSettings(**spec["plan"]["settings"]), "port": 0})
    try:
        return run_serve(plan, say, worker=link)
    except LenetError as exc:
        link.failed(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)
        return exc.exit_code


class WorkerFailed(LenetError):
    """A worker could not start (its model would not load, say); its own message, and its exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def run_workers(plan: ServePlan, say) -> int:
    """Supervise ``plan.workers`` processes serving ``plan.model`` on one port; return the exit code (0 after a graceful drain).

    The supervisor resolves the model once (a missing one is refused before anything starts) and loads none; every
    worker loads that same file, whatever the runs folder's latest run becomes meanwhile.

    Raises:
        LenetError: the model cannot be found, the port cannot be bound, or a worker failed before it was ready (its own message).
    """
    require_serve_extra()
    ref = served_model(plan.model, plan.runs_dir, plan.settings, plan.engine, say).ref
    plan = dataclasses.replace(plan, model=ref.builtin or str(ref.run_dir or ref.model_path))
    sock = bind(plan.host, plan.port)
    url = url_of(sock)
    metrics_dir = tempfile.mkdtemp(prefix="lenet-serve-metrics-")
    ready_r, ready_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    procs: list[subprocess.Popen] = []
    stop_signal: list[int] = []

    def on_signal(sig, frame) -> None:
        if not stop_signal:
            stop_signal.append(sig)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)

    try:
        with stop_on_signals(on_signal):
            for index in range(1, plan.workers + 1):
                link = WorkerLink(index, plan.workers, sock.fileno(), ready_w, lifeline_r)
                procs.append(_start_worker(plan, link, metrics_dir))
            os.close(ready_w)
            os.close(lifeline_r)
            sock.close()  # the workers hold it
            first_line = _wait_until_ready(ready_r, procs, stop_signal)
            if first_line is not None:
                say(first_line.replace(f" at {url} ", f" at {url} with {plan.workers} workers ", 1))
            unexpected = _wait_for_exit(procs, stop_signal)
    finally:
        for fd in (ready_r, lifeline_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        _stop_all(procs)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if unexpected:
        raise LenetError(unexpected)
    if stop_signal and stop_signal[0] in STOP_SIGNALS:
        say(f"Stopped on {signal.Signals(stop_signal[0]).name} after draining the requests in flight")
    sys.stderr.flush()
    return 0


def _start_worker(plan: ServePlan, link: WorkerLink, metrics_dir: str) -> subprocess.Popen:
    """One worker: a fresh interpreter that inherits the socket and the pipes, its plan and link in :data:`WORKER_ENV`."""
    from lenet_cli.serve.metrics import MULTIPROCESS_ENV

    fields = dataclasses.asdict(plan)
    fields["runs_dir"] = None if plan.runs_dir is None else str(plan.runs_dir)
    spec = {"plan": fields, "link": dataclasses.asdict(link)}
    env = {**os.environ, WORKER_ENV: json.dumps(spec), MULTIPROCESS_ENV: metrics_dir}
    return subprocess.Popen(
        [sys.executable, "-m", "lenet_cli.serve.workers"],
        env=env,
        pass_fds=(link.listen_fd, link.ready_fd, link.lifeline_fd),
        stdin=subprocess.DEVNULL,
    )


def _wait_until_ready(ready_r: int, procs: list[subprocess.Popen], stop_signal: list[int]) -> str | None:
    """Every worker's ready line, in order; the first worker's is returned (None: stopped by a signal first).

    Raises:
        WorkerFailed: a worker reported an error, or exited without a word, before every worker was ready.
    """
    ready: dict[int, str] = {}
    buffer = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(ready) < len(procs):
        if stop_signal:
            return None
        if time.monotonic() > deadline:
            raise WorkerFailed(f"the workers were not ready within {START_TIMEOUT_S} s")
        readable, _, _ = select.select([ready_r], [], [], 0.1)
        if readable:
            chunk = os.read(ready_r, 65536)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "error" in message:
                    raise WorkerFailed(message["error"], int(message.get("exit_code", 1)))
                ready[int(message["worker"])] = message["ready"]
            if not chunk and len(ready) < len(procs):
                dead = next((i for i, p in enumerate(procs, 1) if p.poll() is not None), None)
                raise WorkerFailed(f"worker {dead or '?'} of {len(procs)} exited before it was ready")
        for index, proc in enumerate(procs, 1):
            if proc.poll() is not None and index not in ready and not select.select([ready_r], [], [], 0)[0]:
                raise WorkerFailed(
                    f"worker {index} of {len(procs)} exited (code {proc.returncode}) before it was ready"
                )
    return ready[1]


def _wait_for_exit(procs: list[subprocess.Popen], stop_signal: list[int]) -> str | None:
    """Wait until every worker has exited; a worker that exits while no signal asked it to stops the others (its reason returned)."""
    unexpected = None
    while any(p.poll() is None for p in procs):
        if not stop_signal and unexpected is None:
            for index, proc in enumerate(procs, 1):
                if proc.poll() is not None:
                    unexpected = f"worker {index} of {len(procs)} exited (code {proc.returncode}); the other workers were stopped"
                    for other in procs:
                        with contextlib.suppress(OSError):
                            other.send_signal(signal.SIGTERM)
                    break
        time.sleep(0.1)
    if unexpected is None and not stop_signal:
        unexpected = "every worker exited"
    return unexpected


def _stop_all(procs: list[subprocess.Popen]) -> None:
    """Ask the workers still running to drain (SIGTERM), then kill any that outlast the drain limit."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACEFUL_SHUTDOWN_S + DRAIN_MARGIN_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(worker_main())
