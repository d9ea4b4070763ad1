"""``losslens compute METRIC... [--option value ...]``; the metric options come from
:mod:`losslens.cli.metric_options`, built only when ``compute`` runs or shows its help."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from losslens.cli.app import (
    DEFAULT_CATALOG,
    CatalogOpt,
    ExperimentOpt,
    app,
    console,
    err_console,
    labelled,
    text_column,
    user_errors,
)
from losslens.cli.metric_options import MetricOptionsCommand, given_options


def report_failure(progress: Progress, data: dict) -> None:
    """Print a failed job above the progress bars, one line: metric, subject, error."""
    outcome = data["outcome"]
    if outcome.status == "failed":
        progress.console.print(labelled("failed:", f"{data['metric']} {data['job'].label}: {outcome.error}"), soft_wrap=True)


@app.command(cls=MetricOptionsCommand)
@user_errors
def compute(
    ctx: typer.Context,
    metrics: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="METRIC", help="Metrics to compute (see the list below); what they require runs first.", show_default=False
        ),
    ] = None,
    catalog: CatalogOpt = DEFAULT_CATALOG,
    experiment: ExperimentOpt = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Worker processes; torch threads are split so jobs × threads ≤ cores.")
    ] = 1,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Recompute the named metrics' jobs that are already done (metrics they require run only where missing; results computed from them are recomputed when next asked for).",
        ),
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda; passed to every metric.")] = "auto",
) -> None:
    """Compute METRIC... for every checkpoint (or pair, setting) of the catalog's experiments.

    Jobs already done with the same parameters are skipped; failures are recorded in metric_runs and the
    others go on. Required metrics run first. Each metric's parameters are options: --METRIC.OPTION sets
    one metric's, a bare --OPTION every named metric's that has it.
    """
    from losslens.jobs.runner import compute as run_compute  # imports torch and the metrics: not at CLI start

    with Progress(
        text_column(),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def on_event(event: str, **data: Any) -> None:
            if event == "metric_start":
                tasks[data["metric"]] = progress.add_task(
                    f"{data['metric']} ({data['skipped']} done before)", total=data["total"]
                )
            elif event == "job_done":
                report_failure(progress, data)
                progress.advance(tasks[data["metric"]])

        report = run_compute(
            metrics or [],
            given_options(ctx),
            catalog_path=catalog,
            experiment=experiment,
            jobs=jobs,
            force=force,
            device=device,
            on_event=on_event,
        )
    table = Table(title="compute", title_justify="left")
    for col in ("metric", "jobs", "skipped (done)", "computed", "failed"):
        table.add_column(col)
    for m in report.metrics:
        table.add_row(
            m.metric, str(m.planned), str(m.skipped), str(m.done), Text(str(m.failed), style="red") if m.failed else "0"
        )
    console.print(table)
    if report.failed:
        raise typer.Exit(1)
