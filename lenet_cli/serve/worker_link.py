"""A ``lenet serve --workers`` worker's end of its supervisor: the inherited socket and the two pipes.

The runner (:mod:`lenet_cli.serve.runner`) serves through it when it runs in
a worker, and the supervisor (:mod:`lenet_cli.serve.workers`) hands one to each
worker it starts. It lives apart from both so that neither needs the other to
name it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerLink:
    """What a worker knows of its supervisor: its number, the inherited socket, and the two pipes."""

    index: int
    count: int
    listen_fd: int
    ready_fd: int
    lifeline_fd: int

    def listening_socket(self) -> socket.socket:
        return socket.socket(fileno=self.listen_fd)

    def _tell(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()[
            : select.PIPE_BUF - 1
        ]  # one write under PIPE_BUF: never interleaved with another worker's
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, data if data.endswith(b"\n") else data + b"\n")

    def ready(self, line: str) -> None:
        """Tell the supervisor this worker listens with its model warm; ``line`` is what a single server would print."""
        self._tell({"worker": self.index, "ready": line})

    def failed(self, message: str, exit_code: int) -> None:
        self._tell({"worker": self.index, "error": message, "exit_code": exit_code})

    def stop_with_supervisor(self, stop) -> None:
        """Call ``stop(SIGTERM, None)`` once the supervisor's end of the lifeline closes (it exited, however it died)."""

        def watch() -> None:
            with contextlib.suppress(OSError):
                while os.read(self.lifeline_fd, 1):
                    pass
            stop(signal.SIGTERM, None)

        threading.Thread(target=watch, name="lenet-supervisor-watch", daemon=True).start()
