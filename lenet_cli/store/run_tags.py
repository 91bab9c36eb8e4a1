"""A run's tags and note: ``tags.json`` in its folder, beside the files training wrote.

Tags are what a person adds after the fact (``baseline=yes``, ``paper=fig3``)
and a note is a line of prose; neither is part of the recipe, so they live in
their own small file that ``config.json`` never sees, written atomically, and
readable while the run still trains.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lenet_cli.store.atomic import write_json_atomic
from lenet_cli.store.run_files import read_json_or_none

TAGS_FILE = "tags.json"
TAG_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,63}$")
MAX_VALUE = 500  # characters of a tag's value (one line)
MAX_NOTE = 5000  # characters of a note


@dataclass(frozen=True)
class RunTags:
    """A run's tags (key -> value, both strings) and its note (None: no note)."""

    tags: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict:
        return {"tags": dict(self.tags), "note": self.note}


def read_tags(run_dir: str | os.PathLike) -> RunTags:
    """The run's ``tags.json``; a run without one (or with a damaged one) has no tags and no note."""
    data = read_json_or_none(Path(run_dir) / TAGS_FILE)
    if not isinstance(data, dict):
        return RunTags()
    tags = data.get("tags")
    tags = (
        {str(k): str(v) for k, v in tags.items() if isinstance(v, (str, int, float))} if isinstance(tags, dict) else {}
    )
    note = data.get("note") if isinstance(data.get("note"), str) and data.get("note") else None
    return RunTags(tags, note)


def write_tags(run_dir: str | os.PathLike, tags: RunTags) -> Path:
    """Replace the run's ``tags.json`` (atomically); an empty set of tags and no note removes the file."""
    path = Path(run_dir) / TAGS_FILE
    if not tags.tags and tags.note is None:
        path.unlink(missing_ok=True)
        return path
    return write_json_atomic(path, {"tags": dict(sorted(tags.tags.items())), "note": tags.note})
