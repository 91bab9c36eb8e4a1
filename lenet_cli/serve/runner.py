"""``lenet serve``: load the model, bind the socket, run uvicorn until Ctrl-C or SIGTERM.

The web stack (FastAPI, uvicorn, prometheus-client, python-multipart, and
fastapi-offline for the API docs' own Swagger UI and ReDoc files) is the
optional ``serve`` extra; without it the command says which extra to install.
uvicorn drains the requests in flight on SIGINT / SIGTERM; unlike uvicorn's
own runner, lenet then exits 0 instead of re-raising the signal.

The "Serving ... at URL" line is the readiness signal scripts wait for, so it
is printed only once the socket listens and the model is loaded and warmed up,
and the SIGINT / SIGTERM handlers are installed before it: a request sent the
instant it appears is answered, and a signal sent then drains and exits 0
(even when the shell started ``lenet serve &`` with SIGINT ignored).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lenet_cli.core.errors import BadValue, LenetError, MissingExtra
from lenet_cli.core.serve_settings import ServeSettings

if TYPE_CHECKING:
    from lenet_cli.serve.worker_link import WorkerLink

SERVE_EXTRA_HINT = "pip install 'lenet-cli[serve]'"
SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client", "python_multipart", "fastapi_offline")
GRACEFUL_SHUTDOWN_S = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def require_serve_extra() -> None:
    """Raise the one-line hint when the ``serve`` extra is not installed."""
    import importlib.util

    missing = [name for name in SERVE_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(
            f"lenet serve needs the serve extra ({missing[0]} is missing): {SERVE_EXTRA_HINT}", hint=SERVE_EXTRA_HINT
        )


def log_config(access_log: bool) -> dict:
    """uvicorn's logging, with the access log on stderr too (stdout stays free for data)."""
    from uvicorn.config import LOGGING_CONFIG

    config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in LOGGING_CONFIG.items()}
    config["handlers"] = {
        name: dict(handler, stream="ext://sys.stderr") for name, handler in LOGGING_CONFIG["handlers"].items()
    }
    config["loggers"] = dict(
        LOGGING_CONFIG["loggers"], **{"lenet.serve": {"handlers": ["default"], "level": "INFO", "propagate": False}}
    )
    if not access_log:
        config["loggers"]["uvicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}
    return config


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 picks a free one), or a one-line error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BadValue(
            "host", f"cannot listen on {host!r}: {exc.strerror}; give an address such as 127.0.0.1 or 0.0.0.0"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise LenetError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another port (or stop the other server)"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@contextlib.contextmanager
def stop_on_signals(handler):
    """Call ``handler(sig, frame)`` on SIGINT / SIGTERM while the block runs, then restore the previous handlers."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def startup_line(predictor, url: str) -> str:
    """What ``lenet serve`` says once it listens: the run (or model file) it serves, and where."""
    what = f"run {predictor.run} ({predictor.path.name}, " if predictor.run else f"{predictor.name} ("
    return (
        f"Serving {what}{predictor.format}, {predictor.dataset or predictor.preprocess}) at {url} "
        f"- drawing page {url}, API docs {url}docs (Ctrl-C to stop)"
    )


def served_model(model: Path | str | None, runs_dir: Path | None, settings: ServeSettings, engine: str, say):
    """The model to serve, resolved but not loaded (the latest run, else the built-in one, with a line saying so)."""
    from lenet_cli.engine.context import builtin_notice
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store import runs

    ref = runs.resolve_model(model, runs_dir, builtin_when_no_runs=True)
    if model is None and ref.builtin is not None:
        say(builtin_notice(ref, runs_dir))
    return ServedModel(ref, settings.preprocess, engine)


@dataclass(frozen=True)
class ServePlan:
    """What ``lenet serve`` serves, where and how: one object for a single server and for ``--workers``' supervisor.

    Attributes:
        model: A run, a run's name, a model file or a built-in model's name (None: the latest run, else the built-in one).
        runs_dir: The runs folder that names and the latest run are looked up in.
        host: The address to listen on.
        port: The port (0 picks a free one).
        settings: Batching, limits, preprocessing and answers (:class:`~lenet_cli.core.serve_settings.ServeSettings`).
        access_log: Log every request on stderr.
        engine: Which of a run's models answers: ``auto`` (its TensorFlow-free ``model.tflite`` when checked OK) or
            ``keras``.
        workers: Processes answering on the one port (:mod:`lenet_cli.serve.workers` when more than one).
    """

    model: Path | str | None
    runs_dir: Path | None
    host: str = "127.0.0.1"
    port: int = 8000
    settings: ServeSettings = ServeSettings()
    access_log: bool = False
    engine: str = "auto"
    workers: int = 1


def run_serve(plan: ServePlan, say, worker: WorkerLink | None = None) -> int:
    """Serve ``plan.model`` in this process until interrupted; return the exit code (0 after a graceful drain).

    Args:
        plan: The model, the address and the settings.
        say: Prints a line for people (on stderr).
        worker: Set in one of ``lenet serve --workers``'s processes (:mod:`lenet_cli.serve.workers`): its socket and its
            pipes to the supervisor.
    """
    require_serve_extra()
    import uvicorn

    from lenet_cli.serve.app import create_app

    predictor = served_model(plan.model, plan.runs_dir, plan.settings, plan.engine, say)
    predictor.load(log=say)  # here, so a model that cannot load is a one-line error before anything listens
    app = create_app(predictor, plan.settings, worker.index if worker else 1)
    sock = worker.listening_socket() if worker else bind(plan.host, plan.port)
    url = url_of(sock)

    class GracefulServer(uvicorn.Server):
        """uvicorn's server: announced once it listens, draining on SIGINT / SIGTERM without re-raising the signal afterwards."""

        stop_signal: int | None = None

        def handle_exit(self, sig, frame):
            self.stop_signal = self.stop_signal or sig
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            yield  # stop_on_signals installed the handlers before the loop started, and restores them

        async def startup(self, sockets=None):
            await super().startup(sockets)  # the lifespan (model loaded and warmed up), then the socket listens
            if self.started and worker is not None:
                worker.ready(startup_line(predictor, url))
            elif self.started:
                say(startup_line(predictor, url))

    config = uvicorn.Config(
        app,
        log_config=log_config(plan.access_log),
        access_log=plan.access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    server = GracefulServer(config)
    if worker is not None:
        worker.stop_with_supervisor(server.handle_exit)
    try:
        with stop_on_signals(server.handle_exit):
            server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        return 1
    if server.stop_signal is not None and worker is None:  # a worker's supervisor says it once for all
        say(f"Stopped on {signal.Signals(server.stop_signal).name} after draining the requests in flight")
    sys.stderr.flush()
    return 0
