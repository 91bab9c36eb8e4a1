"""Shared checks for the fault tests: one clean error line, no leftovers, same final weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "fault_child.py"
WEIGHT_LAYERS = ("conv_1", "conv_2", "dot_1", "dot_2", "logits_layer")


def lenet_env(tmp: Path, **extra) -> dict:
    env = {
        **os.environ,
        "LENET_VERIFY_CHECKSUMS": "0",
        "LENET_RUNS_DIR": str(tmp / "runs"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        **extra,
    }
    for name in ("TF_CONFIG", "LENET_CPU_DEVICES", "LENET_DEBUG", "LENET_FAULT_FSIZE"):
        if name not in extra:
            env.pop(name, None)
    return env


def run_lenet(args, env, timeout=240, fault: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``lenet ARGS`` in a real process; ``fault='<glob>:<n>:<bytes>'`` sets a file-size limit at that write."""
    if fault is not None:
        env = {**env, "LENET_FAULT_FSIZE": fault}
    return subprocess.run(
        [sys.executable, str(CHILD), *args], env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def error_line(stderr: str) -> str:
    """The single ``Error: ...`` line of a failed command; fails on a traceback or on several error lines."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files (``.<name>.<random>.tmp<suffix>``) anywhere under ``folder``."""
    return [p for p in Path(folder).rglob(".*") if ".tmp" in p.name or ".old-" in p.name]


def final_weights(model_path: Path) -> list[np.ndarray]:
    from lenet_cli.model.network import load_model_file

    model = load_model_file(model_path)
    return [w for name in WEIGHT_LAYERS for w in model.get_layer(name).get_weights()]


def assert_same_weights(a: Path, b: Path) -> None:
    for ours, theirs in zip(final_weights(a), final_weights(b), strict=True):
        np.testing.assert_array_equal(ours, theirs)
