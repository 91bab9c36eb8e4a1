"""Small things a user notices: counts agree with their nouns, and help and README show paths users have."""

from __future__ import annotations

from pathlib import Path

import click

from lenet_cli.cli import cli
from lenet_cli.core.units import plural

README = Path(__file__).resolve().parent.parent / "README.md"


def test_plural():
    assert plural(1, "epoch") == "1 epoch"
    assert plural(0, "epoch") == "0 epochs"
    assert plural(12, "epoch") == "12 epochs"
    assert plural(1200, "input") == "1,200 inputs"
    assert plural(2, "replica", "replicas") == "2 replicas"


def _commands(group: click.Group, prefix=("lenet",)):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_and_readme_show_no_private_data_path():
    texts = {"lenet": cli.help}
    texts.update(
        {
            " ".join(path): (command.help or "")
            + " ".join(str(p.help) for p in command.params if getattr(p, "help", None))
            for path, command in _commands(cli)
        }
    )
    for where, text in texts.items():
        assert "../shared" not in text and "(s)" not in text, where
    assert "../shared" not in README.read_text()
