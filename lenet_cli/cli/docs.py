"""``lenet docs [COMMAND]``: where the manual's page for a command is, and the pointer every ``--help`` ends with.

The manual lives in the source repository's ``docs/`` folder (Markdown, read
anywhere) and builds into a static site (``mkdocs build``, readable from the
file system). ``pip install`` does not ship it, so this command names the
page by its path in the repository, and, when lenet runs from a checkout,
the page on this disk: the built site's HTML if ``site/`` exists, else the
Markdown file.
"""

from __future__ import annotations

from pathlib import Path

import click

HOME_PAGE = "index.md"
CLI_REFERENCE = "reference/cli.md"

# each command's guide, relative to docs/; a command not named here points at its entry in the CLI reference
COMMAND_PAGES = {
    "train": "guides/training.md",
    "evaluate": "guides/evaluate.md",
    "predict": "guides/predicting.md",
    "explain": "guides/explain.md",
    "export": "guides/export.md",
    "serve": "guides/serving.md",
    "tune": "guides/tuning.md",
    "runs": "guides/tracking.md",
    "benchmark": "guides/benchmark-and-deploy.md",
    "docs": CLI_REFERENCE,
}


def page_for(command: str | None) -> str:
    """The page, relative to ``docs/``, that documents ``command`` (None: the manual's home page)."""
    if command is None:
        return HOME_PAGE
    return COMMAND_PAGES.get(command, f"{CLI_REFERENCE}#lenet-{command}")


def checkout_root() -> Path | None:
    """The source checkout lenet runs from (the folder holding ``docs/`` and ``mkdocs.yml``), or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "mkdocs.yml").is_file() and (root / "docs").is_dir() else None


def local_location(page: str, root: Path | None) -> str | None:
    """The page on this disk: the built site's HTML as a ``file://`` URL, else the Markdown file's path; None outside a checkout."""
    if root is None:
        return None
    path, _, anchor = page.partition("#")
    html = root / "site" / Path(path).with_suffix(".html")
    if html.is_file():
        return html.as_uri() + (f"#{anchor}" if anchor else "")
    source = root / "docs" / path
    return str(source) if source.is_file() else None


def help_epilog(command: str) -> str:
    """The last lines of ``lenet COMMAND --help``: the manual's page for it."""
    if command == "docs":
        return f"Manual: docs/{page_for(command)} in lenet's repository, every command and option."
    return f"Manual: docs/{page_for(command)} in lenet's repository (lenet docs {command} says where it is on this machine)."


@click.command("docs")
@click.argument("command", required=False)
@click.option(
    "--open",
    "open_page",
    is_flag=True,
    help="Open the page (the built site's, else the Markdown file) with the system's viewer.",
)
def docs(command: str | None, open_page: bool):
    """Say where the manual's page for COMMAND is (without COMMAND: the manual's home page).

    Prints the page on this machine when lenet runs from a source checkout
    (the built site's HTML if `mkdocs build` has made site/, else the
    Markdown file under docs/), otherwise its path in lenet's repository.
    Every command's --help ends with the same pointer.

    \b
    Examples:
      lenet docs train
      lenet docs serve --open
    """
    commands = getattr(
        click.get_current_context().find_root().command, "commands", {}
    )  # the root group's, whatever attached them
    if command is not None and command not in commands:
        raise click.BadParameter(
            f"no command {command!r}; choose from {', '.join(sorted(commands))}", param_hint="'COMMAND'"
        )
    page = page_for(command)
    where = local_location(page, checkout_root())
    click.echo(where or f"docs/{page}")
    if where is None:
        click.echo(
            f"(docs/{page} in lenet's source repository; this installed package does not ship the manual)", err=True
        )
    if open_page:
        if where is None:
            raise click.ClickException(
                "this installed package has no copy of the manual to open; read the page in lenet's repository"
            )
        click.launch(where)
