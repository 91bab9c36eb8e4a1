"""The manual cannot rot: its command lines name options their commands have, its defaults are the code's, and help points at it.

Every ``lenet …`` line in a code block of README.md or ``docs/**/*.md`` (and
every inline code span that starts with ``lenet``) is parsed against the
Click command objects: the command and sub-command must exist, each option
must be one of that command's, and a value given to a choice option must be
one of its choices.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.cli.docs import COMMAND_PAGES, page_for
from lenet_cli.core.config import DATASET_DEFAULTS, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "(", ")", "$("}


def _code_lines(text: str):
    """(line number, text) of every line inside a fenced code block, continuation lines joined, and of inline code spans."""
    inside, pending, start = None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence and (inside is None or fence.group(2).startswith(inside)):
            inside = None if inside else fence.group(2)
            continue
        if inside:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, pending + line
            pending = ""
        else:
            for span in re.findall(r"`(lenet [^`]+)`", line):
                yield number, span


def _lenet_invocations(line: str):
    """The argument lists of every ``lenet`` command in one shell line (pipes, ``;``, ``&&`` and ``$( )`` split it)."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in prose-like text: not a command line
        return
    command: list[str] | None = None
    at_start = True  # a command starts a line or follows an operator; `VAR=value` and `time` may come first
    for token in [*tokens, ";"]:
        if token in SHELL_OPERATORS or set(token) <= set(";&|<>()"):
            if command is not None:
                yield command
            command, at_start = None, True
        elif command is not None:
            command.append(token)
        elif at_start and token == "lenet":
            command = []
        elif at_start and not (re.match(r"^[A-Za-z_]\w*=", token) or token in ("time", "nice", "exec")):
            at_start = False


def _options(command: click.Command) -> dict[str, click.Parameter]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


def _problems(args: list[str]) -> list[str]:
    """What is wrong with ``lenet ARGS`` by the command objects (empty: nothing)."""
    command: click.Command = cli
    path = ["lenet"]
    problems = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            name, _, value = token.partition("=")
            options = _options(command)
            if name not in options and not name.startswith("--") and all(f"-{c}" in options for c in name[1:]):
                continue  # bundled short flags: -rq
            if name not in options:
                problems.append(f"{' '.join(path)} has no option {name}")
                continue
            param = options[name]
            if getattr(param, "is_flag", False) or getattr(param, "count", False) or name in param.secondary_opts:
                continue
            if not value:
                value = next(tokens, "")
            if (
                isinstance(param.type, click.Choice)
                and value
                and not re.search(r"[$A-Z]|\.\.\.|…", value)
                and value not in param.type.choices
            ):
                problems.append(f"{' '.join(path)} {name} {value}: not one of {list(param.type.choices)}")
            continue
        if isinstance(command, click.Group):
            if token.isupper() or token in ("…", "..."):  # a placeholder: `lenet COMMAND --help`, `lenet …`
                return []
            if token not in command.commands:
                problems.append(f"{' '.join(path)} has no command {token!r}")
                return problems
            command = command.commands[token]
            path.append(token)
    return problems


def _documented_lines():
    for page in PAGES:
        for number, line in _code_lines(page.read_text(encoding="utf-8")):
            for args in _lenet_invocations(line):
                yield f"{page.relative_to(ROOT)}:{number}", args


def test_the_collector_reads_the_shapes_the_pages_use():
    text = (
        "Run `lenet runs show RUN` or\n```bash\n$ lenet train --dataset fashion \\\n    --epochs 3   # a comment\n"
        "cat x.png | lenet predict - --format json && echo done\nsudo createdb --owner lenet lenet\n"
        "TF_CONFIG='{\"task\": 1}' lenet train --distribute multi-worker\n```\n"
    )
    found = [args for _, line in _code_lines(text) for args in _lenet_invocations(line)]
    assert found == [
        ["runs", "show", "RUN"],
        ["train", "--dataset", "fashion", "--epochs", "3"],
        ["predict", "-", "--format", "json"],
        ["train", "--distribute", "multi-worker"],
    ]
    assert _problems(["train", "--epoch", "3"]) == ["lenet train has no option --epoch"]
    assert _problems(["export", "--to", "tflite"]) == [
        "lenet export --to tflite: not one of ['keras', 'savedmodel', 'litert', 'onnx', 'all']"
    ]
    assert _problems(["runs", "shw"]) == ["lenet runs has no command 'shw'"]
    assert _problems(["predict", "-r", "--format=jsonl", "scans/"]) == []


def test_every_documented_command_line_names_options_its_command_has():
    lines = list(_documented_lines())
    assert len(lines) > 100, "the collector found too few command lines: has the manual moved?"
    problems = [f"{where}: lenet {' '.join(args)}: {problem}" for where, args in lines for problem in _problems(args)]
    assert not problems, "\n".join(problems)


def test_every_command_is_documented_and_its_help_ends_with_its_page():
    runner = CliRunner()
    for name in cli.commands:
        page = page_for(name).partition("#")[0]
        assert (DOCS / page).is_file(), f"lenet {name}: its page docs/{page} does not exist"
        if name in COMMAND_PAGES:
            assert f"`lenet {name}" in (DOCS / page).read_text(encoding="utf-8"), (
                f"docs/{page} never shows `lenet {name}`"
            )
        result = runner.invoke(cli, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        last = result.output.strip().splitlines()[-1]
        assert f"docs/{page_for(name)}" in last, f"lenet {name} --help ends with {last!r}"
    assert "docs/index.md" in runner.invoke(cli, ["--help"], terminal_width=200).output.strip().splitlines()[-1]


def test_lenet_docs_names_the_page_on_this_machine():
    runner = CliRunner()
    result = runner.invoke(cli, ["docs", "train"])
    assert result.exit_code == 0, result.output
    where = result.stdout.strip()
    assert where.endswith(("guides/training.md", "guides/training.html")), where
    assert where.startswith(("file://", "/")) and (Path(where).exists() or where.startswith("file://")), (
        where
    )  # from this checkout
    home = runner.invoke(cli, ["docs"])
    assert home.exit_code == 0 and home.stdout.strip().endswith(("index.md", "index.html"))
    wrong = runner.invoke(cli, ["docs", "trian"])
    assert wrong.exit_code == 2 and "no command 'trian'" in wrong.stderr


def test_lenet_docs_starts_without_tensorflow():
    probe = (
        "import sys\nfrom lenet_cli.cli import main\ntry:\n    main(['docs', 'serve'])\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "assert 'tensorflow' not in sys.modules and 'numpy' not in sys.modules, 'a heavy import'\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(("guides/serving.md", "guides/serving.html"))


def test_the_default_recipes_table_is_the_code():
    """docs/guides/training.md's table of per-dataset defaults holds exactly what config.py resolves."""
    text = (DOCS / "guides" / "training.md").read_text(encoding="utf-8")
    section = text.split("\n## The default recipes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `--([a-z-]+)` \| `?([^|`]+?)`? \| `?([^|`]+?)`? \|$", section, flags=re.MULTILINE)
    fields = {"ema": "ema_momentum"}
    documented = {fields.get(option, option.replace("-", "_")): (mnist, fashion) for option, mnist, fashion in rows}
    assert set(documented) == set(DATASET_DEFAULTS["mnist"]) | set(DATASET_DEFAULTS["fashion"]), documented
    for field, (mnist, fashion) in documented.items():
        for dataset, shown in (("mnist", mnist), ("fashion", fashion)):
            value = DATASET_DEFAULTS[dataset].get(field, getattr(TrainConfig, field))
            if isinstance(value, bool):
                value = "on" if value else "off"
            assert str(value) == shown or (isinstance(value, float) and float(shown) == value), (
                f"{dataset} {field}: {shown} in the docs, {value} in config.py"
            )


@pytest.mark.parametrize("schema", sorted((DOCS / "reference" / "schemas").glob("*.schema.json")), ids=lambda p: p.name)
def test_each_schema_is_shown_on_the_run_folder_page(schema):
    page = (DOCS / "reference" / "run-folder.md").read_text(encoding="utf-8")
    assert f'--8<-- "docs/reference/schemas/{schema.name}"' in page


def test_every_verb_of_the_python_api_is_in_its_reference():
    from lenet_cli import api

    page = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in api.__all__ if f"::: lenet_cli.api.{name}\n" not in page]
    assert not missing, f"docs/reference/api.md does not render lenet_cli.api.{missing}"
