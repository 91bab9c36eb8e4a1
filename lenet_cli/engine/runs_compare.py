"""``lenet runs compare``: any number of runs side by side, and their validation curves on one chart.

Reads only each run's small JSON files, as ``lenet runs`` does; the chart is
the one thing drawn (matplotlib, imported then). Never prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core.errors import BadValue
from lenet_cli.engine.runs import show_run
from lenet_cli.store import runs

SUMMARY_KEYS = ("status", "epochs_completed", "wall_seconds", "size_bytes", "started")


@dataclass(frozen=True)
class CompareRequest:
    """What ``lenet runs compare`` (and :func:`lenet_cli.api.compare_runs`) is asked to do.

    Attributes:
        runs: Two or more runs: folders, or names under the runs folder.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        include_same: Also list the config values every run shares.
        plot: Write the runs' validation-accuracy curves, overlaid, to this PNG file.
    """

    runs: tuple[str | os.PathLike, ...]
    runs_dir: str | os.PathLike | None = None
    include_same: bool = False
    plot: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if isinstance(self.runs, (str, os.PathLike)) or len(self.runs) < 2:
            raise BadValue("runs", f"compare needs at least two runs, not {self.runs!r}")
        if self.plot is not None and Path(self.plot).suffix.lower() != ".png":
            raise BadValue("plot", f"the chart is a PNG: name a .png file, not {str(self.plot)!r}")


def _label(shown: dict, names: list[str]) -> str:
    """How a run heads its column: its name, or its path when another run of the comparison has the same name."""
    return shown["name"] if names.count(shown["name"]) == 1 else shown["path"]


def compare_runs(request: CompareRequest) -> dict[str, Any]:
    """The runs side by side: ``{"runs": [names], "paths": [...], "rows": [{section, key, values, same}], "plot": file or None}``.

    Sections: ``config`` (the recipe), ``metrics`` (``metrics.json``) and ``run``
    (status, epochs, wall time, size, start); an interrupted run's metrics are
    what ``lenet runs`` shows for it (its last validation accuracy). Config and
    run rows whose values are all equal are left out unless ``include_same``;
    metrics rows are always kept. ``values`` holds one value per run, in order.

    Raises:
        LenetError: a run that does not exist or cannot be read.
    """
    shown = [show_run(run, request.runs_dir) for run in request.runs]
    rows = []
    metrics = [
        {**{k: s[k] for k in ("val_accuracy", "test_accuracy") if s[k] is not None}, **s["metrics"]} for s in shown
    ]
    for section, records in (
        ("config", [s["config"] for s in shown]),
        ("metrics", metrics),
        ("run", [{k: s[k] for k in SUMMARY_KEYS} for s in shown]),
    ):
        keys: list[str] = []
        for record in records:
            keys += [k for k in record if k not in keys]
        for key in keys:
            values = [record.get(key) for record in records]
            same = all(v == values[0] for v in values[1:])
            if same and not request.include_same and section != "metrics":
                continue
            rows.append({"section": section, "key": key, "values": values, "same": same})
    names = [s["name"] for s in shown]
    plot = _write_plot(shown, names, Path(request.plot)) if request.plot is not None else None
    return {
        "runs": [_label(s, names) for s in shown],
        "paths": [s["path"] for s in shown],
        "rows": rows,
        "plot": None if plot is None else str(plot),
    }


def _write_plot(shown: list[dict], names: list[str], path: Path) -> Path:
    """The runs' ``val_accuracy`` per epoch, from their ``history.json``, overlaid in one PNG (written atomically)."""
    from lenet_cli.store.atomic import write_bytes_atomic
    from lenet_cli.viz.curves import render_curves_png

    series = []
    for s in shown:
        history = runs.read_json_or_none(Path(s["path"]) / runs.HISTORY_FILE)
        entries = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
        epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(entries)]
        values = [h.get("val_accuracy") if isinstance(h.get("val_accuracy"), (int, float)) else None for h in entries]
        series.append((_label(s, names), epochs, values))
    title = "validation accuracy per epoch: " + ", ".join(label for label, _, _ in series)
    return write_bytes_atomic(
        path, render_curves_png(series, title if len(title) < 110 else "validation accuracy per epoch")
    )
