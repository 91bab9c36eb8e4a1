"""``--dataset NAME|PATH``: a dataset name, or the path of one's own data (checked by Click, without loading anything)."""

from __future__ import annotations

from pathlib import Path

import click

from lenet_cli.core import config as C

DATASET_HELP = ("A name ({names}) or a path: a folder of the four MNIST-layout IDX files (+ classes.txt), a folder of "
                "pictures with one sub-folder per class (train/ and test/ optional), or a CSV of pixels "
                "(label,pixel0..pixel783).").format(names=", ".join(C.NAMED_DATASETS))


class DatasetParam(click.ParamType):
    """A name from :data:`lenet_cli.core.config.NAMED_DATASETS`, or an existing file or folder (made absolute)."""

    name = "NAME|PATH"

    def convert(self, value, param, ctx):
        if value in C.NAMED_DATASETS:
            return value
        path = Path(value).expanduser()
        if path.exists():
            return str(path.resolve())
        self.fail(f"{value!r} is neither a dataset name ({', '.join(C.NAMED_DATASETS)}) nor an existing file or folder", param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        names = [CompletionItem(name) for name in C.NAMED_DATASETS if name.startswith(incomplete)]
        return names + [CompletionItem(incomplete, type="file")]


DATASET = DatasetParam()
