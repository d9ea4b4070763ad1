"""The ``losslens`` command line. Each command is a thin shell over one library function."""

from losslens.cli import catalog_cmds, compute_cmd, demo_cmd, export_cmd, ingest_cmd, serve_cmd, taxonomy_cmd, train_cmd  # noqa: F401  (register commands)
from losslens.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
