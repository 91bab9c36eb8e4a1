"""Where a run stands: finished, interrupted after some epochs, or training now (and by which process).

``lenet runs`` lists it, a command given an unfinished run says how to finish
it, and ``lenet train`` marks its run as running while it trains (``RUNNING``)
and discards a run stopped before its first epoch. All of it is read from the
run directory's files, so any process (or a person) sees the same answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.store.atomic import write_text_atomic
from lenet_cli.store.run_files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FAST_MODEL_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    METRICS_FILE,
    MODEL_FILE,
    RUNNING_FILE,
    read_json_or_none,
)


@dataclass(frozen=True)
class RunStatus:
    """Where a run stands: ``state`` is ``finished``, ``interrupted`` or ``running``.

    ``epochs_completed`` counts the entries of ``history.json``; ``epochs`` is
    the run's planned total from ``config.json`` (None when it has none).
    ``pid``, ``hostname`` and ``started`` come from ``RUNNING`` while it runs.
    """

    state: str
    epochs_completed: int
    epochs: int | None
    pid: int | None = None
    hostname: str | None = None
    started: str | None = None

    def describe(self) -> str:
        """``finished``, ``interrupted after 3/12`` or ``running 3/12`` (epochs completed / planned)."""
        if self.state == "finished":
            return "finished"
        total = "?" if self.epochs is None else self.epochs
        word = "interrupted after" if self.state == "interrupted" else "running"
        return f"{word} {self.epochs_completed}/{total}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def run_status(run_dir: str | os.PathLike, config: dict | None = None, history: list | None = None) -> RunStatus:
    """Read whether a run finished, was interrupted, or is running now.

    Running: a ``RUNNING`` file whose process is alive (or lives on another
    host, which cannot be checked from here); a ``RUNNING`` file left by a dead
    process on this host means interrupted. Finished: ``metrics.json`` and a
    model are there (``model.keras``, or only ``model.tflite`` for a ``lenet tune``
    trial that was not the best). Anything else is interrupted after the
    epochs ``history.json`` records. ``config`` and ``history`` may be passed
    when the caller has read them already.
    """
    run_dir = Path(run_dir)
    if config is None:
        config = read_json_or_none(run_dir / CONFIG_FILE)
    if history is None:
        history = read_json_or_none(run_dir / HISTORY_FILE)
    epochs = config.get("epochs") if isinstance(config, dict) and isinstance(config.get("epochs"), int) else None
    completed = len(history) if isinstance(history, list) else 0
    marker = read_json_or_none(run_dir / RUNNING_FILE) if (run_dir / RUNNING_FILE).exists() else None
    if isinstance(marker, dict) and isinstance(marker.get("pid"), int):
        pid, host = marker["pid"], marker.get("hostname")
        if host not in (None, socket.gethostname()) or pid_alive(pid):
            return RunStatus("running", completed, epochs, pid=pid, hostname=host, started=marker.get("started"))
    if ((run_dir / MODEL_FILE).is_file() or (run_dir / FAST_MODEL_FILE).is_file()) and (
        run_dir / METRICS_FILE
    ).is_file():
        return RunStatus("finished", completed, epochs)
    return RunStatus("interrupted", completed, epochs)


@contextlib.contextmanager
def running_marker(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Mark ``run_dir`` as being trained by this process for the duration of the block.

    Writes ``RUNNING`` atomically (JSON: ``pid``, ``hostname``, ``started``, an
    ISO 8601 UTC time) and removes it on exit, whether the block returns or
    raises. A process killed outright leaves the file behind; :func:`run_status`
    then sees that its pid is gone and reports the run as interrupted.
    """
    path = Path(run_dir) / RUNNING_FILE
    marker = {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(path, json.dumps(marker) + "\n")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == marker["pid"]:
                path.unlink()


def unfinished_run_message(run_dir: Path) -> str:
    """Why a run directory has no model yet, and the commands that give it one."""
    status = run_status(run_dir)
    total = "?" if status.epochs is None else status.epochs
    if status.state == "running":
        return (
            f"run {str(run_dir)!r} is still training ({status.epochs_completed} of {total} epochs done, pid {status.pid}); "
            f"its model.keras appears when it finishes"
        )
    done = status.epochs_completed
    if done == 0:
        return (
            f"run {str(run_dir)!r} was interrupted before its first epoch finished, so it has no model; "
            f"resume it with: lenet train --resume {run_dir}"
        )
    return (
        f"run {str(run_dir)!r} was interrupted after epoch {done} of {total}, so it has no model.keras yet; "
        f"resume it with: lenet train --resume {run_dir}, or keep epoch {done}'s weights as its model with: "
        f"lenet train --resume {run_dir} --epochs {done}"
    )


def discard_unstarted_run(run_dir: str | os.PathLike) -> bool:
    """Remove what a run wrote before its first epoch completed, and the directory when nothing else is left in it.

    A run stopped before any epoch finished has nothing to resume: its
    checkpoint holds the initial weights (and is three times the model's
    size), ``config.json`` and ``logs/`` describe a run that did not happen.
    ``RUNNING`` (the stopping process's own marker) does not count as
    something left; anything else in the folder keeps it.

    Returns:
        Whether the directory itself was removed.
    """
    import shutil

    run_dir = Path(run_dir)
    for name in (CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / LOGS_DIR, ignore_errors=True)
    if any(path.name != RUNNING_FILE for path in run_dir.iterdir()):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()
