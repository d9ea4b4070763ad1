"""``losslens ingest SPEC``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, app, console, err_console, labelled, text_column, user_errors
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and check every file, report the layout recognised in each, write nothing.")
    ] = False,
    allow_global: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-global",
            help="Trust this extra global when loading torch files (repeatable), e.g. argparse.Namespace, or 'numpy' for "
            "numpy scalars/dtypes; needed by Lightning hyper_parameters or timm args. Never loads with weights_only=False.",
        ),
    ] = None,
) -> None:
    """Load checkpoints safely, check them against the model, hash them and add them to the catalog.

    Reads plain state dicts, training-loop bundles, Lightning .ckpt, timm .pth.tar, safetensors, Hugging Face
    and MLflow folders (docs/checkpoints.md). Bad files are reported one line each and do not stop the others;
    the exit status is 1 if any failed.
    """
    files, _ = load_spec(spec).checkpoint_files()
    with Progress(
        text_column(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        task = progress.add_task("ingesting", total=len(files))

        def on_file(outcome: IngestOutcome) -> None:
            if outcome.status == "failed" and outcome.error:
                progress.console.print(labelled("error:", outcome.error), soft_wrap=True)
            progress.advance(task)

        report = ingest_files(
            spec, catalog, experiment=experiment, dry_run=dry_run, allow_globals=tuple(allow_global or ()), on_file=on_file
        )
    for pattern in report.empty_patterns:
        err_console.print(labelled("error:", f"{spec}: checkpoints.paths: {pattern!r} matches no file — check the glob"))
    table = Table(title=f"{report.experiment}{' (dry run)' if dry_run else ''}", title_justify="left")
    for col in ("setting", "seed", "file", "layout", "status", "notes"):
        table.add_column(col)
    for o in report.outcomes:
        style = {"failed": "red", "added": "green", "would-add": "green"}.get(o.status, "")
        table.add_row(
            o.setting or "",
            "" if o.seed is None else str(o.seed),
            o.path.name,
            o.layout or "",
            Text(o.status, style=style),
            "; ".join(o.notes),
        )
    console.print(table)
    console.print(
        f"added {report.count('added')}, already present {report.count('present')}, "
        f"{'would add ' + str(report.count('would-add')) + ', ' if dry_run else ''}failed {report.count('failed')}"
    )
    if not report.ok:
        raise typer.Exit(1)
