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
