"""The ``lenet`` console script and ``python -m lenet_cli``.

Importing the command line (Click, rich, the command modules) takes a few
hundred milliseconds; a Ctrl-C in that time would otherwise end in a Python
traceback. Here, before anything else is imported, it ends as every other
Ctrl-C does: one line and exit 130.
"""

import sys

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


def main() -> None:
    try:
        from lenet_cli.cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted by Ctrl-C.\n")
        sys.exit(INTERRUPTED_EXIT)
    run()


if __name__ == "__main__":
    main()
