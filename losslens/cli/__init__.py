"""The ``losslens`` command line. Each command is a thin shell over one library function.

Command modules are imported when their command runs (:mod:`losslens.cli.commands`), so the CLI starts at once.
"""

from losslens.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
