"""A self-describing training checkpoint: ``checkpoint.npz`` in the run directory.

It holds every model and optimizer variable keyed by its path, and a JSON
``state`` entry with the run's config, the number of completed epochs, the best
validation accuracy so far, the numpy RNG state and the history. Restoring
checks every name and shape and names the first variable that differs, so a
checkpoint from another network or optimizer is refused with a reason.

Keys are ``model/<layer>/<variable>`` and ``optimizer/<variable>``. Keras's own
``variable.path`` is used under the owning layer's name: the dropout layers'
seed-generator states are otherwise named by a process-wide counter
(``seed_generator_3/...``) that differs between the run that wrote the
checkpoint and the one that resumes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.errors import RunError
from lenet_cli.store.atomic import atomic_path
from lenet_cli.store.runs import CHECKPOINT_FILE

FORMAT_VERSION = 2  # 1: arrays by position (lenet before the checkpoint module)
STATE_KEY = "state"


@dataclass
class TrainingState:
    """Where a run stands after a completed epoch."""

    config: dict[str, Any]
    completed_epochs: int = 0
    best_val_accuracy: float | None = None
    rng_state: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "completed_epochs": self.completed_epochs,
            "best_val_accuracy": self.best_val_accuracy,
            "rng_state": self.rng_state,
            "history": self.history,
        }


def variables_by_key(model, optimizer, augmentation=None) -> dict[str, Any]:
    """Every variable a checkpoint holds, by its stable key (see the module docstring).

    ``augmentation`` (a ``keras.Sequential`` of random layers) contributes its seed states, so a
    resumed run draws the same augmentations an uninterrupted one would.
    """
    keyed: dict[str, Any] = {}
    for scope, layers in (
        ("model", model.layers),
        ("augmentation", augmentation.layers if augmentation is not None else ()),
    ):
        for layer in layers:
            for variable in layer.variables:
                keyed[f"{scope}/{layer.name}/{variable.name}"] = variable
    for variable in optimizer.variables:
        keyed["optimizer/" + variable.path.split("/", 1)[-1]] = variable
    return keyed


def save_checkpoint(run_dir: Path, model, optimizer, state: TrainingState, augmentation=None) -> Path:
    """Write ``checkpoint.npz`` atomically: a crash leaves the previous checkpoint whole."""
    import keras

    arrays = {key: keras.ops.convert_to_numpy(v) for key, v in variables_by_key(model, optimizer, augmentation).items()}
    arrays[STATE_KEY] = np.frombuffer(json.dumps(state.to_json_dict()).encode("utf-8"), dtype=np.uint8)
    path = Path(run_dir) / CHECKPOINT_FILE
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def load_checkpoint(run_dir: Path) -> tuple[TrainingState, dict[str, np.ndarray]]:
    """Read ``checkpoint.npz``: the state and the arrays by key.

    Raises:
        RunError: the run has no checkpoint, it is unreadable, or an older lenet wrote it.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise RunError(f"{str(run_dir)!r} holds no {CHECKPOINT_FILE}; it is not a resumable run")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        raw = json.loads(arrays.pop(STATE_KEY).tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise RunError(
            f"checkpoint {str(path)!r} is unreadable ({type(exc).__name__}); the run cannot be resumed"
        ) from None
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise RunError(
            f"checkpoint {str(path)!r} was written by an older lenet; it cannot be resumed: start a new run "
            f"(or start one with init_from a finished model)"
        )
    state = TrainingState(
        raw["config"], int(raw["completed_epochs"]), raw.get("best_val_accuracy"), raw["rng_state"], raw["history"]
    )
    return state, arrays


def restore(model, optimizer, arrays: dict[str, np.ndarray], augmentation=None) -> None:
    """Assign the checkpoint's arrays to ``model`` and ``optimizer``, after checking all of them.

    Raises:
        RunError: a variable is missing on either side or has another shape; the message names the first.
    """
    keyed = variables_by_key(model, optimizer, augmentation)
    for key, variable in keyed.items():
        if key not in arrays:
            raise RunError(
                f"the checkpoint has no variable {key!r}; it was written for another network or optimizer "
                f"and cannot be resumed"
            )
        if tuple(arrays[key].shape) != tuple(variable.shape):
            raise RunError(
                f"checkpoint variable {key!r} has shape {tuple(arrays[key].shape)}, this run needs "
                f"{tuple(variable.shape)}; it was written for another network and cannot be resumed"
            )
    extra = sorted(set(arrays) - set(keyed))
    if extra:
        raise RunError(
            f"the checkpoint holds {extra[0]!r}, which this run does not have; it was written for another "
            f"network or optimizer and cannot be resumed"
        )
    for key, variable in keyed.items():
        variable.assign(arrays[key])


def completed_epochs(run_dir: Path) -> int:
    """The epochs the checkpoint holds, reading only its small ``state`` entry.

    Raises:
        RunError: the checkpoint is unreadable or from an older lenet.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    try:
        with np.load(path, allow_pickle=False) as archive:
            raw = json.loads(archive[STATE_KEY].tobytes().decode("utf-8"))
        return int(raw["completed_epochs"])
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        raise RunError(
            f"checkpoint {str(path)!r} is unreadable or was written by an older lenet; the run cannot be resumed"
        ) from None
