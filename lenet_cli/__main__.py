"""Allow ``python -m lenet_cli``."""

from lenet_cli.cli import main

if __name__ == "__main__":
    main()
