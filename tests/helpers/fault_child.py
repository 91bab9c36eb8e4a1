"""Run the real ``lenet`` CLI under a real file-size limit that starts at a chosen write.

``RLIMIT_FSIZE`` is an operating-system limit: once it is set, every write
that would make a regular file larger than the limit fails with ``EFBIG``
(CPython ignores ``SIGXFSZ``, so the write raises ``OSError`` instead of
killing the process). Setting it at process start would fail the first file
``lenet`` writes; to fail a *particular* file, an audit hook (PEP 578) watches
the ``open`` events and sets the limit when the N-th file whose name matches a
pattern is opened for writing. Only the moment is chosen by the test; the
failure itself is the kernel's.

Usage: ``LENET_FAULT_FSIZE='<glob>:<n>:<bytes>' python tests/helpers/fault_child.py train ...``
"""

from __future__ import annotations

import fnmatch
import os
import resource
import sys


def _install(spec: str) -> None:
    pattern, nth, limit = spec.rsplit(":", 2)
    nth, limit = int(nth), int(limit)
    seen = 0

    def hook(event, args):
        nonlocal seen
        if event != "open" or seen >= nth:
            return
        path, mode = args[0], args[1]
        if not isinstance(mode, str) or not any(c in mode for c in "wax+"):
            return
        if isinstance(path, (str, bytes, os.PathLike)) and fnmatch.fnmatch(
            os.path.basename(os.fsdecode(path)), pattern
        ):
            seen += 1
            if seen == nth:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    sys.addaudithook(hook)


if __name__ == "__main__":
    if os.environ.get("LENET_FAULT_FSIZE"):
        _install(os.environ["LENET_FAULT_FSIZE"])
    from lenet_cli.cli import main

    sys.argv[0] = "lenet"
    main(sys.argv[1:])
