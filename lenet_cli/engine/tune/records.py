"""Reading a study: its trials as people and programs read them, counted, and the best so far.

Nothing here writes to the study or imports Optuna: every function takes an
open study (or one of its frozen trials) and reads it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lenet_cli.core.units import human_duration, plural


@dataclass(frozen=True)
class TrialRecord:
    """One row of ``lenet tune --show``: a trial as people and programs read it.

    ``val_accuracy`` is the score of a complete trial, and the last reported
    epoch's of any other; ``epochs_run`` counts the epochs it reported.
    ``seconds`` is its training time, the sum of its epochs' times: the time
    ``lenet runs`` shows for its run (None before its first epoch ends).
    """

    number: int
    state: str  # complete | pruned | running | failed | waiting
    val_accuracy: float | None
    epochs_run: int
    epochs: int | None
    seconds: float | None
    params: dict[str, Any]
    run_dir: str | None
    host: str | None
    retry_of: int | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "FAIL": "failed", "WAITING": "waiting"}


def trial_record(trial) -> TrialRecord:
    """A frozen Optuna trial as a :class:`TrialRecord`."""
    state = _STATES.get(trial.state.name, trial.state.name.lower())
    steps = trial.intermediate_values
    value = trial.value if state == "complete" else (steps[max(steps)] if steps else None)
    if value is not None and not math.isfinite(value):
        value = None
    attrs = trial.user_attrs if state != "waiting" else {}
    seconds = attrs.get("train_seconds")
    return TrialRecord(
        number=trial.number,
        state=state,
        val_accuracy=value,
        epochs_run=len(steps),
        epochs=attrs.get("epochs", trial.params.get("epochs")),
        seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
        params=dict(trial.params),
        run_dir=attrs.get("run_dir"),
        host=attrs.get("host"),
        retry_of=trial.system_attrs.get("failed_trial"),
    )


def _rank(record: TrialRecord) -> tuple:
    order = {"complete": 0, "pruned": 1, "running": 2, "failed": 3, "waiting": 4}
    return (record.val_accuracy is None, order.get(record.state, 5), -(record.val_accuracy or 0.0), record.number)


def trial_records(study) -> list[TrialRecord]:
    """Every trial of the study, best first: by validation accuracy (complete before pruned at equal values), then state."""
    return sorted((trial_record(t) for t in study.get_trials(deepcopy=False)), key=_rank)


def counts(study) -> tuple[int, int, int]:
    """(finished: complete or pruned, running, waiting) trials of the study."""
    finished = running = waiting = 0
    for trial in study.get_trials(deepcopy=False):
        name = trial.state.name
        finished += name in ("COMPLETE", "PRUNED")
        running += name == "RUNNING"
        waiting += name == "WAITING"
    return finished, running, waiting


def best_of(study) -> tuple[float | None, int | None]:
    """(value, number) of the study's best trial; (None, None) before one completes."""
    try:
        best = study.best_trial
    except ValueError:
        return None, None
    return best.value, best.number


def describe_trial(trial, best: tuple[float | None, int | None]) -> str:
    """A finished trial's log line: how it ended, its score and time, and the best so far."""
    record = trial_record(trial)
    best_text = f"; best {best[0]:.4f} (trial {best[1]})" if best[0] is not None else ""
    took = human_duration(record.seconds)
    if record.state == "complete":
        return f"trial {trial.number} complete: val_accuracy {record.val_accuracy:.4f} after {plural(record.epochs_run, 'epoch')} ({took}){best_text}"
    if record.state == "pruned":
        at = f"val_accuracy {record.val_accuracy:.4f}" if record.val_accuracy is not None else "no score"
        saved = trial.user_attrs.get("saved_seconds") or 0.0
        return (
            f"trial {trial.number} pruned after epoch {record.epochs_run}/{record.epochs}: {at} ({took}, "
            f"saved ~{human_duration(saved)}){best_text}"
        )
    error = trial.user_attrs.get("error") or "stopped"
    return f"trial {trial.number} failed: {error}{best_text}"


def value_text(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
