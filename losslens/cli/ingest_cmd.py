"""``losslens ingest SPEC``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, app, console, err_console, user_errors
from losslens.ingest import IngestOutcome
from losslens.ingest import ingest as ingest_files
from losslens.spec import load_spec


@app.command()
@user_errors
def ingest(
    spec: Annotated[
        Path, typer.Argument(help="Experiment spec (TOML): model and problem factories, checkpoint globs, setting keys.")
    ],
    catalog: CatalogOpt = DEFAULT_CATALOG,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment name (default: the spec's name).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every file and report, but write nothing.")] = False,
) -> None:
    """Load checkpoints safely, check them against the model, hash them and add them to the catalog.

    Bad files are reported one line each and do not stop the others; the exit status is 1 if any failed.
    """
    files, _ = load_spec(spec).checkpoint_files()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("ingesting", total=len(files))

        def on_file(outcome: IngestOutcome) -> None:
            if outcome.status == "failed":
                progress.console.print(f"[bold red]error:[/] {outcome.error}", highlight=False, soft_wrap=True)
            progress.advance(task)

        report = ingest_files(spec, catalog, experiment=experiment, dry_run=dry_run, on_file=on_file)
    for pattern in report.empty_patterns:
        err_console.print(
            f"[bold red]error:[/] {spec}: checkpoints.paths: {pattern!r} matches no file — check the glob", highlight=False
        )
    table = Table(title=f"{report.experiment}{' (dry run)' if dry_run else ''}", title_justify="left")
    for col in ("setting", "seed", "file", "status"):
        table.add_column(col)
    for o in report.outcomes:
        style = {"failed": "red", "added": "green", "would-add": "green"}.get(o.status, "")
        table.add_row(
            o.setting or "", "" if o.seed is None else str(o.seed), o.path.name, f"[{style}]{o.status}[/]" if style else o.status
        )
    console.print(table)
    console.print(
        f"added {report.count('added')}, already present {report.count('present')}, "
        f"{'would add ' + str(report.count('would-add')) + ', ' if dry_run else ''}failed {report.count('failed')}"
    )
    if not report.ok:
        raise typer.Exit(1)
