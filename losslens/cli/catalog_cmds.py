"""``losslens init``, ``ls`` and ``status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, ExperimentOpt, JsonOpt, app, console, print_json, user_errors
from losslens.overview import coverage, listing
from losslens.store.catalog import init_catalog


@app.command()
@user_errors
def init(catalog: CatalogOpt = DEFAULT_CATALOG) -> None:
    """Create the catalog, or migrate an existing one forward (after a backup copy)."""
    cat, applied, backup = init_catalog(catalog)
    cat.close()
    if backup:
        console.print(f"backed up {catalog} to {backup}")
    if applied:
        console.print(f"{catalog}: applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console.print(f"{catalog}: up to date")


def empty_catalog(catalog: Path) -> str:
    """The line ``ls`` and ``status`` print for a catalog without experiments, instead of empty tables."""
    return f"{catalog} holds no experiments yet — add one with: losslens ingest SPEC.toml --catalog {catalog}"


def _table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
    return table


@app.command("ls")
@user_errors
def ls_(
    catalog: CatalogOpt = DEFAULT_CATALOG,
    experiment: ExperimentOpt = None,
    checkpoints: Annotated[bool, typer.Option("--checkpoints", help="Also list every checkpoint.")] = False,
    json: JsonOpt = False,
) -> None:
    """List experiments and settings (and checkpoints with --checkpoints)."""
    data = listing(catalog, experiment)
    if json:
        print_json(data)
        return
    if not data["experiments"]:
        console.print(empty_catalog(catalog))
        return
    console.print(_table("Experiments", data["experiments"], ["name", "settings", "checkpoints", "spec_path"]))
    console.print(_table("Settings", data["settings"], ["experiment", "label", "checkpoints", "seeds", "id"]))
    if checkpoints:
        rows = [{**r, "sha256": r["sha256"][:12]} for r in data["checkpoints"]]
        console.print(_table("Checkpoints", rows, ["experiment", "setting", "name", "seed", "step", "n_params", "sha256"]))


@app.command()
@user_errors
def status(catalog: CatalogOpt = DEFAULT_CATALOG, experiment: ExperimentOpt = None, json: JsonOpt = False) -> None:
    """Metric coverage per experiment: subjects done, failed and missing."""
    rows = coverage(catalog, experiment)
    if json:
        print_json(rows)
        return
    if not rows:
        console.print(empty_catalog(catalog))
        return
    table = _table("Metric coverage", rows, ["experiment", "metric", "scope", "expected", "done", "failed", "missing"])
    console.print(table)
