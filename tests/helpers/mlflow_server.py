"""A real, throw-away MLflow tracking server for the tests: SQLite backend, local artifact root, 127.0.0.1 and a free port.

``mlflow server`` starts uvicorn (and, unless told not to, a job runner with its
own workers) as children, so it runs in a process group of its own and is
stopped as a group: SIGTERM, then SIGKILL for whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen
    folder: Path
    log: Path

    def kill(self) -> None:
        """End the server at once (SIGKILL to its whole process group), as a crashed host would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server and its children: SIGTERM, and SIGKILL after 15 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)


def mlflow_executable() -> str | None:
    """The ``mlflow`` command beside this Python (the test extra's full mlflow), or None."""
    candidate = Path(sys.executable).parent / "mlflow"
    return str(candidate) if candidate.is_file() else shutil.which("mlflow")


def start_server(folder: Path, timeout: float = 120.0) -> MlflowServer:
    """Start ``mlflow server`` on 127.0.0.1 with ``folder/mlflow.db`` and ``folder/artifacts``; wait until /health answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "server.log"
    command = [
        mlflow_executable() or "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{(folder / 'mlflow.db').as_posix()}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }  # no job runner: only the tracking API is tested
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = MlflowServer(f"http://127.0.0.1:{port}", process, folder, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"mlflow server did not answer within {timeout:g} s: {log.read_text(errors='replace')[-2000:]}")
