"""A study's pictures: Optuna's own matplotlib plots of the optimisation history and the parameter importances, as PNG bytes.

Optuna draws through pyplot; each figure is closed as soon as it is encoded,
so a long search leaves no figures behind. Needs Optuna (``lenet-cli[tune]``).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

MIN_TRIALS_FOR_IMPORTANCES = 10
"""Complete trials below which the importances are not drawn: Optuna's fANOVA fits a random forest to the trials,
and on a handful of points it ranks noise, making whichever parameter happened to vary with luck look decisive."""


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
        ``{name: why}`` for each not drawn (importances need :data:`MIN_TRIALS_FOR_IMPORTANCES` complete trials
        that differ).
    """
    from matplotlib.ticker import MaxNLocator
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
            history = optuna_plots.plot_optimization_history(study, target_name="validation accuracy")
            history.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are counted: no tick at trial 0.25
            pngs["history"] = _png(history)
        searched = {name for trial in complete for name in trial.params}
        if len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
            skipped["importances"] = (
                f"parameter importances need {MIN_TRIALS_FOR_IMPORTANCES} complete trials (the study has "
                f"{len(complete)}); on fewer they rank noise"
            )
        elif not searched:
            skipped["importances"] = "the space searches no parameter: every one is fixed"
        else:
            try:
                pngs["importances"] = _png(
                    optuna_plots.plot_param_importances(study, target_name="validation accuracy")
                )
            except (
                ValueError,
                RuntimeError,
                ZeroDivisionError,
            ) as exc:  # e.g. every finished trial drew the same values
                skipped["importances"] = (
                    f"parameter importances could not be computed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                )
    return pngs, skipped
