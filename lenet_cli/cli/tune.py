"""``lenet tune``'s presentation: the options, a live line on stderr, the trials or the best recipe on stdout."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import signal
from pathlib import Path

import click

from lenet_cli.cli.options import (
    DATASET,
    DATASET_HELP,
    data_dir_option,
    flag_for,
    mlflow_options,
    output_format_option,
    resolve_format,
    runs_dir_option,
)
from lenet_cli.core import config as C
from lenet_cli.core.errors import BadValue, MissingExtra
from lenet_cli.core.units import human_duration, plural

TRIAL_FIELDS = ("trial", "state", "val_accuracy", "epochs_run", "epochs", "seconds", "retry_of", "host", "run_dir")


class Duration(click.ParamType):
    """A time span: ``90m``, ``2h``, ``1h30m``, ``45s``, or a number of seconds."""

    name = "DURATION"
    UNITS = {"h": 3600, "m": 60, "min": 60, "s": 1, "": 1}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|min|m|s|)", text)
        if not text or "".join(n + u for n, u in parts) != text or (len(parts) > 1 and any(u == "" for _, u in parts)):
            self.fail(f"{value!r} is not a duration; write e.g. 90m, 2h, 1h30m or 600 (seconds)", param, ctx)
        seconds = sum(float(n) * self.UNITS[u] for n, u in parts)
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than nothing", param, ctx)
        return seconds


class UsageLine(click.ClickException):
    """Bad input told in one line (no usage text): exit 2, with nothing created."""

    exit_code = 2


def _accuracy(value) -> str:
    return "-" if value is None else f"{value:.2%}"


def _param_text(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _param_names(records) -> list[str]:
    names: list[str] = []
    for record in records:
        names += [name for name in record.params if name not in names]
    return names


def print_trials(records, output_format: str, title: str) -> None:
    """``lenet tune --show``: the trials, best first, as a table, JSON or CSV on stdout."""
    if output_format == "json":
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    names = _param_names(records)
    if output_format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*TRIAL_FIELDS, *names])
        for r in records:
            row = [r.number, r.state, r.val_accuracy, r.epochs_run, r.epochs, r.seconds, r.retry_of, r.host, r.run_dir]
            writer.writerow(
                ["" if v is None else v for v in row] + ["" if r.params.get(n) is None else r.params[n] for n in names]
            )
        click.echo(out.getvalue(), nl=False)
        return
    from lenet_cli.cli.console import UNBOUNDED_WIDTH, stdout_console

    console = stdout_console()
    names = [n for n in names if n != "epochs"]  # a searched epochs is the epochs column's total
    table = _trials_table(records, names, title, split_headers=False)
    natural = console.measure(table, options=console.options.update_width(UNBOUNDED_WIDTH)).maximum
    if natural > console.width:  # rich would cut the headers to "learnin…": break them after their hyphens instead
        table = _trials_table(records, names, title, split_headers=True)
    if not records:
        click.echo("the study has no trials yet", err=True)
    console.print(table)


def _trials_table(records, names: list[str], title: str, split_headers: bool):
    """The ``--show`` table; with ``split_headers``, ``learning-rate`` is headed on two lines, ``learning-`` and ``rate``."""
    from rich.table import Table

    table = Table(
        title=title,
        caption="best first: validation accuracy (pruned and failed trials: their last epoch's); "
        "train time: the sum of the trial's epoch times, as lenet runs shows it",
    )
    for column in ("trial", "state", "val acc", "epochs", "train time", *names):
        header = column.replace("-", "-\n") if split_headers else column
        table.add_column(header, justify="right" if column in ("trial", "val acc", "epochs", "train time") else "left")
    for r in records:
        trial = str(r.number) + (f" (retry of {r.retry_of})" if r.retry_of is not None else "")
        epochs = f"{r.epochs_run}/{'?' if r.epochs is None else r.epochs}"
        table.add_row(
            trial,
            r.state,
            _accuracy(r.val_accuracy),
            epochs,
            human_duration(r.seconds),
            *[_param_text(r.params[n]) if n in r.params else "-" for n in names],
        )
    return table


def print_outcome(outcome, output_format: str) -> None:
    """The stopped search: the best recipe and its evidence (a table, or JSON)."""
    if output_format == "json":
        click.echo(json.dumps(outcome.to_dict(), indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    counts = outcome.counts()
    table = Table(show_header=False, box=None)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("study", escape(f"{outcome.study} in {outcome.storage}"))
    table.add_row(
        "trials", ", ".join(f"{n} {state}" for state, n in counts.items() if n) + f" ({outcome.ran} run here)"
    )
    if counts["pruned"]:
        table.add_row(
            "pruning",
            f"{plural(counts['pruned'], 'trial')} stopped early, saving ~{human_duration(outcome.saved_seconds)} of training",
        )
    best = outcome.best
    if best is None:
        table.add_row("best", "none yet: no trial has completed")
    else:
        table.add_row("best trial", escape(f"{best.number} ({best.run_dir})"))
        table.add_row("validation accuracy", _accuracy(best.val_accuracy))
        table.add_row(
            "test accuracy",
            _accuracy(outcome.test_accuracy) if outcome.test_accuracy is not None else escape(outcome.test_note or "-"),
        )
        table.add_row("recipe", escape(", ".join(f"{k} {_param_text(v)}" for k, v in best.params.items())))
        if outcome.recipe_file is not None:
            table.add_row("retrain", escape(f"lenet train --recipe {outcome.recipe_file}"))
    for name, path in outcome.plots.items():
        table.add_row(name, escape(str(path)))
    stdout_console().print(table)


def progress_text(p) -> str:
    """The live line: ``trial 4 · epoch 2/6 · step 40/100 · 3/20 finished · best 91.23 % (trial 1) · ETA 14 min``."""
    parts = [
        f"trial {p.trial}",
        f"epoch {p.epoch}/{p.epochs}",
        f"step {p.step}/{p.steps}",
        f"{p.finished}/{p.target} finished" if p.target is not None else f"{p.finished} finished",
    ]
    if p.best is not None:
        parts.append(f"best {p.best:.2%} (trial {p.best_trial})")
    if p.eta_seconds is not None:
        parts.append(f"ETA {human_duration(p.eta_seconds)}")
    return " · ".join(parts)


class LiveLine:
    """One line on stderr that rewrites itself in a terminal (and says nothing in a pipe, where each trial's line suffices)."""

    def __init__(self, console):
        self.console = console
        self._live = None

    def __call__(self, progress) -> None:
        if not self.console.is_terminal or self.console.quiet:
            return
        from rich.live import Live
        from rich.text import Text

        if self._live is None:
            self._live = Live(Text(""), console=self.console, transient=True, refresh_per_second=4)
            self._live.start()
        self._live.update(Text(progress_text(progress)))

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _bad_value(exc: BadValue) -> UsageLine:
    """A value the engine refused, in one line under the option that sets its field (no usage text: nothing was made)."""
    return UsageLine(
        f"Invalid value for '{flag_for(exc.field)}': {str(exc).splitlines()[0] if str(exc) else 'refused'}"
    )


@click.command()
@click.option("--dataset", type=DATASET, default=None, help=f"What to tune on [default: mnist]. {DATASET_HELP}")
@data_dir_option
@runs_dir_option
@click.option(
    "--study",
    default=None,
    help="The study's name; trials go to <runs-dir>/tune/<study>/trial-<n>/ [default: the dataset's name].",
)
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Where the study is kept: sqlite:///FILE, or postgresql://USER@HOST/DB that every machine of a search points at "
    "[default: sqlite:///<runs-dir>/tune/<dataset>.db].",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="Finished trials the study should hold, counted across runs and machines; running the command again "
    "continues towards it [default: 20, or no limit with --timeout].",
)
@click.option(
    "--timeout",
    type=Duration(),
    default=None,
    help="Start no trial after this long (90m, 2h, 1h30m, or seconds); the running one finishes.",
)
@click.option(
    "--space",
    "space_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML or JSON file that narrows or widens the search space (lenet train option names; README shows the format).",
)
@click.option(
    "--pruner",
    type=click.Choice(C.TUNE_PRUNERS),
    default="median",
    show_default=True,
    help="Stop a trial whose validation accuracy trails the others' at the same epoch: median, hyperband, or none.",
)
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Seconds between a running trial's heartbeats; a trial silent for twice this (its worker died) is failed and retried.",
)
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train every trial on only the first N training images (quick searches).",
)
@click.option(
    "--validation-size",
    type=click.IntRange(min=0),
    default=None,
    help="Training images held out to score the trials [default: 5000; a tenth of your own data].",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="The most epochs a trial trains [default: the dataset's default budget: 20 for mnist, 24 for fashion].",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Every trial's training seed; also seeds the sampler of a local study [default: 0].",
)
@click.option(
    "--keep-models",
    is_flag=True,
    help="Keep every complete trial's model.keras [default: only the best trial keeps it; the others keep their "
    "TensorFlow-free model.tflite, pruned trials no model].",
)
@mlflow_options(register=False)
@click.option("--show", is_flag=True, help="Print the study's trials so far, best first, and train nothing.")
@output_format_option(*C.TUNE_FORMATS)
@click.pass_context
def tune(
    ctx,
    dataset,
    data_dir,
    runs_dir,
    study,
    storage,
    trials,
    timeout,
    space_file,
    pruner,
    heartbeat,
    train_limit,
    validation_size,
    epochs,
    seed,
    keep_models,
    mlflow,
    mlflow_experiment,
    show,
    output_format,
):
    """Search for the best training recipe: Optuna trials, each an ordinary run, scored on validation.

    Each trial trains a recipe drawn from the search space into
    <runs-dir>/tune/<study>/trial-<n>/ and is scored by its validation
    accuracy; bad trials are pruned after a few epochs. When the search
    stops, the best trial is scored once on the test split and its recipe is
    written to <runs-dir>/tune/<study>-best.json, beside PNGs of the
    optimisation history and the parameter importances. Running the same
    line again continues the study; Ctrl-C fails the running trial (it is
    retried when the study continues) and exits 130. Needs the tune extra:
    pip install 'lenet-cli[tune]'.

    \b
    Examples:
      lenet tune --dataset fashion --trials 40
      lenet tune --dataset ./my_symbols --timeout 2h
      lenet tune --study fashion-1 --storage postgresql://user@db-host/lenet   # the same line on every machine
      lenet tune --show --study fashion
      lenet tune --dataset fashion --mlflow http://127.0.0.1:5000   # one MLflow run, each trial nested in it
      lenet train --recipe runs/tune/fashion-best.json
    """
    from lenet_cli.runtimes.extras import module_missing

    if module_missing("optuna"):
        raise MissingExtra(
            "lenet tune needs Optuna: pip install 'lenet-cli[tune]'", hint="pip install 'lenet-cli[tune]'"
        )
    output_format = resolve_format(output_format)
    if show:
        given = [name for name in SEARCH_ONLY if ctx.get_parameter_source(name) not in (None, DEFAULT_SOURCE)]
        if given:
            raise UsageLine(f"--show only reads the study; drop {flag_for(given[0])}")
    from lenet_cli.engine.tune import TuneRequest

    try:
        request = TuneRequest(
            dataset=dataset or "mnist",
            data_dir=data_dir,
            runs_dir=runs_dir,
            study=study,
            storage=storage,
            trials=trials,
            timeout=timeout,
            pruner=pruner,
            heartbeat=heartbeat,
            space_file=space_file,
            train_limit=train_limit,
            validation_size=validation_size,
            epochs=epochs,
            seed=TRAIN_SEED if seed is None else seed,
            keep_models=keep_models,
            mlflow=mlflow,
            mlflow_experiment=mlflow_experiment,
        )
    except BadValue as exc:
        raise _bad_value(exc) from None
    if show:
        ctx.exit(_show(request, dataset is None, output_format))
    ctx.exit(_search(request, output_format))


TRAIN_SEED = C.TrainConfig().seed
DEFAULT_SOURCE = click.core.ParameterSource.DEFAULT
SEARCH_ONLY = (
    "trials",
    "timeout",
    "space_file",
    "train_limit",
    "validation_size",
    "epochs",
    "seed",
    "keep_models",
    "mlflow",
    "mlflow_experiment",
)  # the options --show refuses: it only reads the study


def _show(request, find: bool, output_format: str) -> int:
    from lenet_cli.engine.tune import show

    try:
        opened, records = show(request, find=find)
    except BadValue as exc:
        raise _bad_value(exc) from None
    print_trials(records, output_format, f"study {opened.name} in {opened.shown}")
    return 0


def _search(request, output_format: str) -> int:
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.cli.signals import StopOnSignal
    from lenet_cli.engine.tune import TuneEvents, TuneInterrupted, run_tune

    console = stderr_console()

    def log(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    live = LiveLine(console)
    stop = StopOnSignal()

    @contextlib.contextmanager
    def searching():
        """Signals stop the trials (the running one is failed and queued again); the live line goes when they end."""
        try:
            with stop:
                yield
        finally:
            live.stop()

    events = TuneEvents(log=log, progress=live, should_stop=stop, searching=searching)
    try:
        outcome = run_tune(request, events)
    except BadValue as exc:
        raise _bad_value(exc) from None
    except TuneInterrupted as exc:
        name = signal.Signals(exc.signum).name
        stopped = (
            f"trial {exc.trial} is marked failed and queued again" if exc.trial is not None else "no trial was running"
        )
        click.echo(
            f"{name}: the search stopped; {stopped}. Continue the study with the same command "
            f"(lenet tune --show --study {exc.study} lists its trials)",
            err=True,
        )
        return 128 + exc.signum
    for name, why in outcome.plots_skipped.items():
        log(f"note: the {name} plot is not drawn: {why}")
    print_outcome(outcome, output_format)
    return 0
