"""The ``lenet`` command line: the root group, its error handling, and the process entry point.

Each command lives in its own module beside this one and is attached here.
Nothing here imports TensorFlow at module level: ``lenet --help`` and usage
errors answer without it; each command imports its engine module when it runs.

Exit codes (one meaning each; lenet_cli.core.errors names them): 0 success;
1 a handled error (bad file, bad data, a failed input in ``predict``); 2 a
usage error; 3 a missing extra; 4 a model below ``--min-accuracy``; 5 lenet
tune's database went away; 130 / 143 interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import os
import sys

import click

from lenet_cli import __version__
from lenet_cli.cli.benchmark import benchmark
from lenet_cli.cli.docs import docs, help_epilog
from lenet_cli.cli.evaluate import evaluate
from lenet_cli.cli.explain import explain
from lenet_cli.cli.export import export
from lenet_cli.cli.options import INTERRUPTED_EXIT, Settings, bad_value_error, debug_requested, in_flags
from lenet_cli.cli.predict import predict
from lenet_cli.cli.runs import runs_group
from lenet_cli.cli.serve import serve
from lenet_cli.cli.train import train
from lenet_cli.cli.tune import tune
from lenet_cli.core.env import DEBUG_ENV
from lenet_cli.core.errors import BadValue, LenetError

_ERROR_LINES: dict[int, type[click.ClickException]] = {}


def error_line(message: str, exit_code: int) -> click.ClickException:
    """A :class:`LenetError` told as one ``Error: ...`` line, exiting with its class's code (Click keeps the code per class)."""
    kind = _ERROR_LINES.setdefault(
        exit_code, type(f"ErrorLine{exit_code}", (click.ClickException,), {"exit_code": exit_code})
    )
    return kind(message)


class LenetGroup(click.Group):
    """Turn the project's expected errors into one line on stderr and their exit code, and Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if debug_requested(ctx):
                raise
            _say_interrupted(ctx)
        except ImportError as exc:  # a Ctrl-C inside a native module's init reaches us as "initialization failed"
            if debug_requested(ctx) or not _caused_by_ctrl_c(exc):
                raise
            _say_interrupted(ctx)
        except BadValue as exc:  # a value the engine refused, wherever it was found: a usage error on its option
            if debug_requested(ctx):
                raise
            raise bad_value_error(exc) from None
        except LenetError as exc:
            if debug_requested(ctx):
                raise
            said = in_flags(exc)
            raise error_line(said.splitlines()[0] if said else type(exc).__name__, exc.exit_code) from None


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt lies anywhere in ``exc``'s chain of causes (pybind11 wraps one raised during an import)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _say_interrupted(ctx: click.Context) -> None:
    click.echo("Interrupted by Ctrl-C.", err=True)
    ctx.exit(INTERRUPTED_EXIT)


@click.group(cls=LenetGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="lenet")
@click.option("--debug", is_flag=True, help=f"Show full tracebacks and TensorFlow's logs (or set {DEBUG_ENV}=1).")
@click.pass_context
def cli(ctx, debug: bool):
    """Train, evaluate, explain and ship LeNet networks on MNIST and Fashion-MNIST.

    \b
    Quick start:
      lenet train --dataset fashion --data-dir ~/data
      lenet evaluate
      lenet predict digit.png
    """
    ctx.obj = Settings(debug=debug)
    from lenet_cli.core.tensorflow_env import prepare_tensorflow_env, show_native_logs

    if debug_requested(ctx):
        show_native_logs()
    prepare_tensorflow_env()  # before any command imports TensorFlow, however indirectly


def _debug_here(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--debug`` given after a command's name: the same as before it, for the whole invocation."""
    if value:
        from lenet_cli.core.tensorflow_env import show_native_logs

        ctx.find_root().obj = ctx.obj = Settings(debug=True)
        show_native_logs()


def _accept_debug_everywhere(command: click.Command) -> None:
    """Give ``command`` and every subcommand under it the root's ``--debug``, so ``lenet predict --debug`` works too."""
    command.params.append(
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_debug_here,
            help="Show full tracebacks and TensorFlow's logs (as lenet --debug).",
        )
    )
    for sub in getattr(command, "commands", {}).values():
        _accept_debug_everywhere(sub)


def _point_to_manual(command: click.Command, name: str) -> None:
    """End ``command``'s ``--help`` (and its subcommands') with the manual's page for ``lenet NAME``."""
    command.epilog = command.epilog or help_epilog(name)
    for sub in getattr(command, "commands", {}).values():
        _point_to_manual(sub, name)


cli.epilog = "Manual: docs/index.md in lenet's repository (lenet docs says where it is on this machine; lenet docs COMMAND, a command's page)."
for _command in (train, evaluate, export, predict, runs_group, serve, explain, tune, docs, benchmark):
    cli.add_command(_command)
    _accept_debug_everywhere(_command)
    _point_to_manual(_command, _command.name or "")


FAST_EXIT_COMMANDS = (
    "predict",
    "evaluate",
    "explain",
)  # commands whose work is all on disk and stdout when they return


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    TensorFlow's interpreter shutdown costs 1.3-1.7 s on a 2-core machine (its
    thread pools and module teardown), longer than a whole ``lenet predict``
    with an ``.onnx`` model. ``predict`` and ``evaluate`` have written and
    flushed everything when they return, so once TensorFlow is loaded they leave
    with ``os._exit`` after flushing stdout and stderr. Only here, in the real
    process entry point: in-process callers (tests, ``cli.main``) exit normally.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="lenet")
    except SystemExit as exc:
        command = next((a for a in args if not a.startswith("-")), None)
        if command in FAST_EXIT_COMMANDS and "tensorflow" in sys.modules:
            _exit_now(exc.code)
        raise


def _exit_now(code) -> None:
    """Flush what the user is owed, then end the process without interpreter teardown."""
    status = 0 if code is None else code if isinstance(code, int) else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
