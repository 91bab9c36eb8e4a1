"""Running ``lenet train`` workers as subprocesses on loopback, for the distributed and worker-fault tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def worker_env(tmp: Path, **extra) -> dict:
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "LENET_VERIFY_CHECKSUMS": "0",
        "LENET_RUNS_DIR": str(tmp / "runs"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "TMPDIR": str(tmp / "tmp"),
        **extra,
    }
    env.pop("TF_CONFIG", None)
    env.pop("LENET_CPU_DEVICES", None)
    return env


def start_training(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "lenet_cli", "train", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_loopback_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
