"""A study's pictures: Optuna's own matplotlib plots of the optimisation history and the parameter importances, as PNG bytes.

Optuna draws through pyplot; each figure is closed as soon as it is encoded,
so a long search leaves no figures behind. Needs Optuna (``lenet-cli[tune]``).
"""

from __future__ import annotations

import io
import warnings
from typing import Any


def _png(axes: Any) -> bytes:
    from matplotlib import pyplot

    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    try:
        figure.set_size_inches(8, 5)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        pyplot.close(figure)


def study_plots(study: Any) -> tuple[dict[str, bytes], dict[str, str]]:
    """The optimisation history and the parameter importances of ``study`` (an ``optuna.Study``).

    Returns:
        ``(pngs, skipped)``: ``{"history": bytes, "importances": bytes}`` for each plot drawn, and
        ``{name: why}`` for each that could not be (importances need two finished trials that differ).
    """
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    pngs: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        if not complete:
            skipped["history"] = "no trial has finished"
        else:
            pngs["history"] = _png(optuna_plots.plot_optimization_history(study, target_name="validation accuracy"))
        searched = {name for trial in complete for name in trial.params}
        if len(complete) < 2 or not searched:
            skipped["importances"] = "parameter importances need at least two finished trials"
        else:
            try:
                pngs["importances"] = _png(optuna_plots.plot_param_importances(study, target_name="validation accuracy"))
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. every finished trial drew the same values
                skipped["importances"] = f"parameter importances could not be computed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return pngs, skipped
