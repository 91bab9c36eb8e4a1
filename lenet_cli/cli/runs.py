"""``lenet runs``: the runs folder listed, one run shown, runs compared, tagged, noted, removed or pruned.

Each subcommand parses its arguments, calls the engine (:mod:`lenet_cli.engine.runs`,
:mod:`lenet_cli.engine.runs_compare`, :mod:`lenet_cli.engine.runs_tidy`) and
prints through :mod:`lenet_cli.cli.runs_output`.
"""

from __future__ import annotations

from pathlib import Path

import click

from lenet_cli.cli.options import output_format_option, runs_dir_option

runs_format_option = output_format_option("table", "json", "jsonl", "csv")


def _runs_parent_option(ctx, name, value):
    """A ``lenet runs`` option given before the subcommand (``lenet runs --runs-dir D show X``) counts too."""
    return value if value is not None or ctx.parent is None else ctx.parent.params.get(name)


class TagFilter(click.ParamType):
    """``--tag key=value`` (that value) or ``--tag key`` (any value)."""

    name = "KEY[=VALUE]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, _, wanted = str(value).partition("=")
        return (key, wanted if "=" in str(value) else None)


class TagAssignment(click.ParamType):
    """``key=value``: a tag to set."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE (to remove a tag: --remove KEY)", param, ctx)
        return (key, text)


class Age(click.ParamType):
    """An age: ``30d``, ``2w``, ``12h``, ``90m``, ``45s`` (or a number of seconds), as seconds."""

    name = "AGE"
    UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1, "": 1}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        import re

        found = re.fullmatch(r"(\d+(?:\.\d+)?)(w|d|h|min|m|s|)", str(value).strip().lower())
        if not found:
            self.fail(f"{value!r} is not an age; write e.g. 30d, 2w, 12h or 90m", param, ctx)
        return float(found.group(1)) * self.UNITS[found.group(2)]


@click.group("runs", invoke_without_command=True)
@runs_dir_option
@runs_format_option
@click.option(
    "--tag",
    "tag_filter",
    type=TagFilter(),
    multiple=True,
    help="Only runs with this tag: key=value, or key for any value (repeat: every one must match).",
)
@click.pass_context
def runs_group(ctx, runs_dir, output_format, tag_filter):
    """List the runs folder: status, epochs, accuracy, train time, size; show, compare, tag, remove or prune runs.

    Reads only each run's small JSON files (config.json, metrics.json,
    history.json, RUNNING, tags.json), so hundreds of runs list in well under
    a second. Status is finished, interrupted after k/n epochs (resume it with
    `lenet train --resume RUN`), running, or pruned. RUN arguments are run
    folders or run names (tune/<study>/trial-3 for a trial).

    \b
    Examples:
      lenet runs
      lenet runs --tag baseline=yes --format csv > baselines.csv
      lenet runs show mnist-20261127-101500
      lenet runs compare mnist-a mnist-b fashion-c --plot curves.png
      lenet runs tag mnist-20261127-101500 baseline=yes
      lenet runs rm mnist-20261127-101500 --dry-run
      lenet runs prune --keep 5 --older-than 30d --dry-run
    """
    if ctx.invoked_subcommand is not None:
        return
    from lenet_cli.cli.runs_output import default_format, print_run_list
    from lenet_cli.engine.runs import list_runs
    from lenet_cli.store import runs as run_files

    print_run_list(
        list_runs(runs_dir, dict(tag_filter) or None), default_format(output_format), run_files.runs_root(runs_dir)
    )


@runs_group.command("show")
@click.argument("run")
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_show(ctx, run, runs_dir, output_format):
    """One run in detail: status, tags, config, metrics and every file with its size.

    RUN is a run directory, or a run's name under the runs folder.

    \b
    Example:
      lenet runs show mnist-20261127-101500 --format json
    """
    from lenet_cli.cli.runs_output import default_format, print_run_details
    from lenet_cli.engine.runs import show_run

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    print_run_details(show_run(run, runs_dir), default_format(_runs_parent_option(ctx, "output_format", output_format)))


@runs_group.command("compare")
@click.argument("runs", nargs=-1, required=True)
@runs_dir_option
@runs_format_option
@click.option("--all", "include_same", is_flag=True, help="Also list config values every run shares.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the runs' validation-accuracy curves, overlaid, to this PNG.",
)
@click.pass_context
def runs_compare(ctx, runs, runs_dir, output_format, include_same, plot):
    """Two or more runs side by side: the config values that differ, and every metric.

    RUNS are run directories or names under the runs folder.

    \b
    Examples:
      lenet runs compare mnist-20261127-101500 mnist-20261128-093000
      lenet runs compare tune/fashion/trial-3 tune/fashion/trial-7 tune/fashion/trial-9 --plot trials.png
    """
    from lenet_cli.cli.runs_output import default_format, print_comparison
    from lenet_cli.engine.runs_compare import CompareRequest, compare_runs

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    comparison = compare_runs(CompareRequest(tuple(runs), runs_dir, include_same, plot))
    print_comparison(comparison, default_format(_runs_parent_option(ctx, "output_format", output_format)), include_same)


@runs_group.command("tag")
@click.argument("run")
@click.argument("tags", nargs=-1, type=TagAssignment())
@click.option("--remove", multiple=True, metavar="KEY", help="Remove this tag (repeatable).")
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_tag(ctx, run, tags, remove, runs_dir, output_format):
    """Tag a run: key=value pairs that lenet runs shows and --tag filters on.

    Tags are kept in the run's tags.json; setting a key again replaces its value.

    \b
    Examples:
      lenet runs tag mnist-20261127-101500 baseline=yes paper=fig3
      lenet runs tag mnist-20261127-101500 --remove paper
      lenet runs --tag baseline=yes
    """
    from lenet_cli.cli.runs_output import default_format, print_run_list
    from lenet_cli.engine.runs_tidy import TagRequest, tag_run

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    summary = tag_run(TagRequest(run, dict(tags), tuple(remove), None, runs_dir))
    print_run_list(
        [summary], default_format(_runs_parent_option(ctx, "output_format", output_format)), Path(summary.path).parent
    )


@runs_group.command("note")
@click.argument("run")
@click.argument("text")
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_note(ctx, run, text, runs_dir, output_format):
    """Give a run a note (a line of prose, shown by lenet runs show); "" removes it.

    \b
    Example:
      lenet runs note mnist-20261127-101500 "the baseline for the augmentation study"
    """
    from lenet_cli.cli.runs_output import default_format, print_run_list
    from lenet_cli.engine.runs_tidy import TagRequest, tag_run

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    summary = tag_run(TagRequest(run, {}, (), text, runs_dir))
    print_run_list(
        [summary], default_format(_runs_parent_option(ctx, "output_format", output_format)), Path(summary.path).parent
    )


def dry_run_option(fn):
    return click.option("--dry-run", is_flag=True, help="Only list what would be removed.")(fn)


@runs_group.command("rm")
@click.argument("runs", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Also remove a run that is training now, or the run LATEST names.")
@dry_run_option
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_rm(ctx, runs, force, dry_run, runs_dir, output_format):
    """Remove runs: all of them, or none when one is refused.

    A run that is training now (its RUNNING file names a live process) and
    the run LATEST names are refused unless --force; removing the LATEST run
    lets the newest remaining run take its place.

    \b
    Examples:
      lenet runs rm mnist-20261127-101500 --dry-run
      lenet runs rm mnist-20261127-101500 tune/fashion/trial-3
    """
    from lenet_cli.cli.runs_output import default_format, print_removals
    from lenet_cli.engine.runs_tidy import RemoveRequest, remove_runs

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    removals = remove_runs(RemoveRequest(tuple(runs), runs_dir, force, dry_run))
    print_removals(
        [r.to_dict() for r in removals],
        default_format(_runs_parent_option(ctx, "output_format", output_format)),
        dry_run,
    )


@runs_group.command("prune")
@click.option("--keep", type=click.IntRange(min=0), required=True, help="Runs to keep per dataset: the best by --by.")
@click.option(
    "--by",
    type=click.Choice(["val_accuracy", "test_accuracy", "started"]),
    default="val_accuracy",
    show_default=True,
    help="What ranks the runs: the highest accuracy is kept, or the newest with started.",
)
@click.option(
    "--older-than", type=Age(), default=None, help="Remove only runs started longer ago than this (30d, 2w, 12h)."
)
@click.option(
    "--study", default=None, help="Prune this lenet tune study's trials instead of the runs folder's own runs."
)
@dry_run_option
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_prune(ctx, keep, by, older_than, study, dry_run, runs_dir, output_format):
    """Keep the best runs of each dataset and remove the rest.

    Ranks the runs of each dataset by --by and keeps the first --keep (an
    MNIST accuracy does not rank a Fashion-MNIST run). Never removed: a run
    training now, the run LATEST names, and a study's best trial.

    \b
    Examples:
      lenet runs prune --keep 5 --dry-run
      lenet runs prune --keep 3 --older-than 30d
      lenet runs prune --study fashion --keep 5
    """
    from lenet_cli.cli.runs_output import default_format, print_removals
    from lenet_cli.engine.runs_tidy import PruneRequest, prune_runs

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    result = prune_runs(PruneRequest(keep, by, older_than, study, runs_dir, dry_run))
    kept = f"; kept {len(result.kept)}" + (
        f" ({len(result.protected)} never pruned: "
        + ", ".join(f"{name}, {why}" for name, why in result.protected.items())
        + ")"
        if result.protected
        else ""
    )
    print_removals(
        [r.to_dict() for r in result.removed],
        default_format(_runs_parent_option(ctx, "output_format", output_format)),
        dry_run,
        kept,
    )
