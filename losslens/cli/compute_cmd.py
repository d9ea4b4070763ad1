"""``losslens compute METRIC... [--option value ...]``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, ExperimentOpt, app, console, err_console, user_errors
from losslens.jobs.options import describe_options, parse_tokens
from losslens.jobs.runner import compute as run_compute
from losslens.metrics.registry import all_metrics


def report_failure(progress: Progress, data: dict) -> None:
    """Print a failed job above the progress bars, one line: metric, subject, error."""
    outcome = data["outcome"]
    if outcome.status == "failed":
        progress.console.print(
            f"[bold red]failed:[/] {data['metric']} {data['job'].label}: {outcome.error}", highlight=False, soft_wrap=True
        )


def _epilog() -> str:
    lines = ["Metrics and their options (an option applies to every named metric that has it; --METRIC.OPTION targets one):", ""]
    for name, metric in sorted(all_metrics().items()):
        req = f" (runs {', '.join(metric.requires)} first)" if metric.requires else ""
        lines.append(f"{name} — {metric.scope} scope{req}: {metric.summary}")
        lines.append("")
        for flag, default, helptext in describe_options(metric):
            lines.append(f"    {flag} (default {default}): {helptext}")
            lines.append("")
    return "\n".join(lines)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=_epilog(),
    options_metavar="METRIC... [METRIC OPTIONS] [OPTIONS]",
)
@user_errors
def compute(
    ctx: typer.Context,
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
    others go on. Required metrics run first.
    """
    names, options = parse_tokens(list(ctx.args))
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        tasks: dict[str, int] = {}

        def on_event(event: str, **data) -> None:
            if event == "metric_start":
                tasks[data["metric"]] = progress.add_task(
                    f"{data['metric']} ({data['skipped']} done before)", total=data["total"]
                )
            elif event == "job_done":
                report_failure(progress, data)
                progress.advance(tasks[data["metric"]])

        report = run_compute(
            names, options, catalog_path=catalog, experiment=experiment, jobs=jobs, force=force, device=device, on_event=on_event
        )
    table = Table(title="compute", title_justify="left")
    for col in ("metric", "jobs", "skipped (done)", "computed", "failed"):
        table.add_column(col)
    for m in report.metrics:
        table.add_row(m.metric, str(m.planned), str(m.skipped), str(m.done), f"[red]{m.failed}[/]" if m.failed else "0")
    console.print(table)
    if report.failed:
        raise typer.Exit(1)
