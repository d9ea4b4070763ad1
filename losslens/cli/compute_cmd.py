"""``losslens compute METRIC... [--option value ...]``; the metric options come from
:mod:`losslens.cli.metric_options`, built only when ``compute`` runs or shows its help."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
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
    visible,
)
from losslens.cli.executor_options import (
    AddressOpt,
    ArrayParallelismOpt,
    CpusOpt,
    DryRunOpt,
    EtaColumn,
    ExecOptionsOpt,
    ExecutorOpt,
    GpusOpt,
    GpusPerNodeOpt,
    PartitionOpt,
    RateColumn,
    RetriesOpt,
    counts,
    execution,
)
from losslens.cli.metric_options import MetricOptionsCommand, given_options


def report_failure(progress: Progress, data: dict) -> None:
    """Print a failed job above the progress bars, one line: metric, subject, error."""
    outcome = data["outcome"]
    if outcome.status == "failed":
        progress.console.print(labelled("failed:", f"{data['metric']} {data['job'].label}: {outcome.error}"), soft_wrap=True)


@contextmanager
def job_progress() -> Iterator[tuple[Progress, Callable[..., None]]]:
    """One bar per metric: jobs done of those to run, rate, elapsed, ETA, and done/failed/retried counts;
    failed jobs are printed above the bars as they arrive. The display starts with the first metric, so an
    error found before any job (an unknown metric, a bad option) prints alone, with no empty live area above it."""
    progress = Progress(
        text_column(),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        EtaColumn(),
        text_column("fields[info]", style="progress.data.speed"),
        console=err_console,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def on_event(event: str, **data: Any) -> None:
        if event == "metric_start":
            if not tasks:
                progress.start()
            tasks[data["metric"]] = progress.add_task(
                f"{data['metric']} ({data['skipped']} done before)", total=data["total"], info=""
            )
            progress.update(tasks[data["metric"]], advance=0)  # nothing to run: the bar is finished now
        elif event == "job_done":
            report_failure(progress, data)
            progress.update(tasks[data["metric"]], advance=1, info=counts(data["report"]))

    try:
        yield progress, on_event
    finally:
        if tasks:
            progress.stop()


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
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu or cuda; passed to every metric (auto: each worker's GPU if it has one).")
    ] = "auto",
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    cpus_per_job: CpusOpt = 1.0,
    gpus_per_job: GpusOpt = 0.0,
    max_retries: RetriesOpt = 3,
    partition: PartitionOpt = None,
    gpus_per_node: GpusPerNodeOpt = None,
    array_parallelism: ArrayParallelismOpt = None,
    executor_option: ExecOptionsOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Compute METRIC... for every checkpoint (or pair, setting) of the catalog's experiments.

    Jobs already done with the same parameters are skipped; failures are recorded in metric_runs and the
    others go on. Required metrics run first. Each metric's parameters are options: --METRIC.OPTION sets
    one metric's, a bare --OPTION every named metric's that has it. --executor runs the jobs elsewhere
    (a Ray cluster, a Slurm job array); this process alone writes the catalog, storing each result as it
    arrives. Ctrl-C stops submitting and keeps what finished: run the same command again for the rest.
    """
    from losslens.jobs.blocks import describe_blocks
    from losslens.jobs.runner import compute as run_compute  # imports torch and the metrics: not at CLI start

    where = execution(
        executor,
        cpus_per_job,
        gpus_per_job,
        max_retries,
        executor_option,
        jobs,
        {
            "--address": address,
            "--partition": partition,
            "--gpus-per-node": gpus_per_node,
            "--array-parallelism": array_parallelism,
        },
    )
    with job_progress() as (progress, on_event):

        def on_dry_run(event: str, **data: Any) -> None:
            if event == "dry_run":
                m = data["report"]
                progress.console.print(f"{m.metric}: {m.planned} jobs, {m.skipped} done before, {len(data['jobs'])} to run")
                for line in describe_blocks(data["blocks"]):  # model names and globs are the user's: no markup
                    progress.console.print(Text(visible(line)), soft_wrap=True)
                if data["text"]:
                    progress.console.print(data["text"])
            on_event(event, **data)

        report = run_compute(
            metrics or [],
            given_options(ctx),
            catalog_path=catalog,
            experiment=experiment,
            jobs=jobs,
            force=force,
            device=device,
            dry_run=dry_run,
            on_event=on_dry_run,
            **where,
        )
    if dry_run:
        return
    table = Table(title="compute", title_justify="left")
    for col in ("metric", "jobs", "skipped (done)", "computed", "failed"):
        table.add_column(col)
    for m in report.metrics:
        table.add_row(
            m.metric, str(m.planned), str(m.skipped), str(m.done), Text(str(m.failed), style="red") if m.failed else "0"
        )
    console.print(table)
    if report.interrupted:
        err_console.print(labelled("interrupted:", "stored what finished; run the same command again to compute the rest"))
        raise typer.Exit(130)
    if report.failed:
        raise typer.Exit(1)
