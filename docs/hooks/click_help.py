"""MkDocs hooks for the reference pages: the CLI reference shows each command's help as ``--help`` does.

mkdocs-click writes a command's help text into the page as Markdown, where
Click's ``\\b`` blocks (the example command lines) would run together into one
paragraph and ``<runs-dir>`` would be read as an HTML tag. This hook gives
mkdocs-click a description writer that keeps each ``\\b`` block's indented
lines as a code block and escapes in prose what Markdown would read as HTML, links or emphasis; the rest of the page
(usage, options, sub-commands) is mkdocs-click's own. On the Python API
page, the Sphinx roles some docstrings use (``:class:`X```) are dropped.
"""

from __future__ import annotations

import html
import inspect
import re
import textwrap

import mkdocs_click._docs as click_docs

_MARKDOWN = str.maketrans({"[": "\\[", "]": "\\]", "*": "\\*", "_": "\\_"})


def _prose(text: str) -> str:
    """Escape what Markdown would take for HTML, links or emphasis (``<runs-dir>``, ``lenet[/versions/N]``), outside `code spans`."""
    parts = text.split("`")
    return "`".join(
        part if i % 2 else html.escape(part, quote=False).translate(_MARKDOWN) for i, part in enumerate(parts)
    )


def _description(ctx, remove_ascii_art: bool = False):
    """Markdown lines for a command's help: paragraphs as prose, each ``\\b`` block's indented lines as a bash block."""
    text = ctx.command.help or ctx.command.short_help
    if not text:
        return
    for block in inspect.cleandoc(text).split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip() != "\b"]
        prose = [line for line in lines if not line.startswith(" ")]
        code = [line for line in lines if line.startswith(" ")]
        if prose:
            yield _prose(" ".join(line.strip() for line in prose))
            yield ""
        if code:
            yield "```bash"
            yield from textwrap.dedent("\n".join(code)).splitlines()
            yield "```"
            yield ""


def on_startup(command, dirty):  # MkDocs passes both; neither matters here
    click_docs._make_description = _description


_SPHINX_ROLE = re.compile(r"(?<![\w:]):?(?:class|func|meth|mod|data|attr|exc):<code>(~?)([\w.]+)</code>")


def _name(match: re.Match) -> str:
    short, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if short else name}</code>"  # Sphinx's ~ shows the last part


def on_page_content(output, page, config, files):  # MkDocs passes all four
    """Drop the Sphinx roles (``:class:`~a.B```) some docstrings use: the Python API page shows the name as Sphinx would."""
    return _SPHINX_ROLE.sub(_name, output)
