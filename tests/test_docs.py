"""Docs that are generated from the code stay true: docs/cli.md is Typer's own rendering of the app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    """Regenerate with `just docs` when this fails."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "losslens.cli",
            "utils",
            "docs",
            "--name",
            "losslens",
            "--title",
            "LossLens command line",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    assert (ROOT / "docs" / "cli.md").read_text().rstrip() == out.rstrip()


def test_schema_reference_is_current():
    """docs/schema.md is generated from catalog/datasette.yaml, the schema's one documented source (which a
    test in test_datasette_plugin.py checks against a migrated catalog). Regenerate with `just docs`."""
    from losslens.store.schema_docs import schema_markdown

    assert (ROOT / "docs" / "schema.md").read_text() == schema_markdown()


def test_every_documented_table_is_in_a_docs_section_once():
    from losslens.store.schema_docs import documented_tables, source

    listed = [name for section in source()["docs"]["sections"] for name in section["tables"]]
    assert sorted(listed) == sorted(documented_tables())
