"""``losslens demo`` and ``losslens report case-studies``: thin shells over :mod:`losslens.demo` and
:mod:`losslens.case_studies`."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from losslens.case_studies import STUDIES as STUDY_PLANS
from losslens.case_studies import write_case_studies
from losslens.cli.app import app, console, err_console, labelled, text_column, user_errors
from losslens.cli.compute_cmd import report_failure
from losslens.cli.executor_options import (
    AddressOpt,
    ArrayParallelismOpt,
    CpusOpt,
    EtaColumn,
    ExecOptionsOpt,
    ExecutorOpt,
    GpusOpt,
    GpusPerNodeOpt,
    PartitionOpt,
    RetriesOpt,
    counts,
    execution,
)
from losslens.demo import STUDIES, StudyResult, default_jobs, run_demo
from losslens.train.outputs import OnEvent

report_app = typer.Typer(help="Reports generated from real runs.", no_args_is_help=True)
app.add_typer(report_app, name="report")

ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch threads for training (default: torch's choice; metrics split the cores between their workers).",
    ),
]


@contextmanager
def study_progress() -> Iterator[OnEvent]:
    """Rich bars for every stage of a study: training runs and iterations, ingestion, each metric's jobs."""
    with Progress(
        text_column(),
        BarColumn(),
        MofNCompleteColumn(),
        text_column("fields[info]", style=""),
        TimeElapsedColumn(),
        EtaColumn(),
        console=err_console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def task(key: str, description: str, total: int | None) -> None:
            tasks[key] = progress.add_task(description, total=total, info="")

        def on_event(event: str, **data: Any) -> None:
            if event == "stage":
                if data["name"] in ("ingest", "export"):
                    task(data["name"], data["name"], None)
            elif event == "stage_done":
                if data["name"] in tasks:
                    progress.update(tasks[data["name"]], total=1, completed=1)
                if data["name"] == "train" and "run" in tasks:
                    progress.remove_task(tasks.pop("run"))
                progress.console.print(labelled("✓", f"{data['name']}: {data['summary']} ({data['seconds']:.1f} s)", "green"))
            elif event == "sweep_start":
                task("runs", "train", data["total"])
            elif event == "run_start":
                if "run" in tasks:
                    progress.remove_task(tasks.pop("run"))
                task("run", f"  {data['label']}", data["total"])
            elif event == "advance" and "run" in tasks:
                progress.update(tasks["run"], advance=data["n"], info=f"loss {data['loss']:.3g}")
            elif event == "run_done":
                progress.advance(tasks["runs"])
            elif event == "ingested":
                progress.advance(tasks["ingest"])
            elif event == "metric_start":
                task(data["metric"], f"{data['metric']}", data["total"])
                progress.update(tasks[data["metric"]], info=f"{data['skipped']} done before")
            elif event == "job_done":
                report_failure(progress, data)
                progress.update(tasks[data["metric"]], advance=1, info=counts(data["report"]))

        yield on_event


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def print_settings(result: StudyResult) -> None:
    """The settings with their metrics and phase."""
    pinn = any(r["rel_l2"] is not None for r in result.settings)
    error = ("rel L2", "rel_l2") if pinn else ("test acc", "test_accuracy")
    columns = [
        ("setting", "setting"),
        ("seeds", "seeds"),
        error,
        ("λmax", "top_eigenvalue"),
        ("tr H", "trace"),
        ("minima", "n_minima"),
        ("mc", "mc"),
        ("CKA", "cka"),
        ("phase", "phase"),
    ]
    table = Table(
        title=result.study,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        caption="medians over seeds; mc and CKA: the taxonomy's means over seed pairs",
        caption_justify="left",
    )
    for header, _ in columns:
        table.add_column(header, no_wrap=True)
    for row in result.settings:
        table.add_row(*[_cell(row[key]) for _, key in columns])
    console.print(table)


def print_browse(result: StudyResult) -> None:
    console.print("Browse it:", highlight=False)
    catalog, viewer = shlex.quote(str(result.catalog)), shlex.quote(str(result.viewer))  # paths with spaces paste as one
    console.print(f"  losslens serve --catalog {catalog}        # Datasette with the LossLens views", highlight=False)
    console.print(f"  open {viewer}        # the static viewer, no server needed", highlight=False)
    console.print(f"  losslens taxonomy --catalog {catalog}     # the phase table", highlight=False)
    console.print(f"  PNG views: {result.viewer.parent.parent / 'views' / result.study}/", highlight=False)


@app.command()
@user_errors
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for runs, catalog (OUT/catalog/losslens.db), views and viewer.")
    ] = Path("demo"),
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A smaller plan: for the PINN β ∈ {1, 30} × 2 seeds, 150 L-BFGS iterations, 21×21 landscapes, under a "
            "minute (what CI runs).",
        ),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes for the metrics, 1 torch thread each on 2 cores (default: 2, or 1 with --quick).",
            show_default=False,
        ),
    ] = None,
    threads: ThreadsOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
    cpus_per_job: CpusOpt = 1.0,
    gpus_per_job: GpusOpt = 0.0,
    max_retries: RetriesOpt = 3,
    partition: PartitionOpt = None,
    gpus_per_node: GpusPerNodeOpt = None,
    array_parallelism: ArrayParallelismOpt = None,
    executor_option: ExecOptionsOpt = None,
    study: Annotated[
        str,
        typer.Option(
            "--study",
            help=f"One of {', '.join(STUDIES)}. convection: the PINN (default); resnet20: ResNet-20 with and without skips "
            "on digits; modular: a 1-layer transformer on (a + b) mod 23 with and without weight decay, checkpoints along "
            "training; lm: a tiny GPT-NeoX (Pythia architecture) trained on a generated text, Hugging Face checkpoints "
            "along training (needs the hf extra).",
        ),
    ] = "convection",
) -> None:
    """A case study end to end: train, ingest, compute every metric, export the views. By default the PINN
    (β ∈ {1, 10, 30} × 3 seeds); ``--study lm`` a tiny causal language model (docs/lm.md).

    Every stage is incremental: a second run trains and computes nothing and finishes in seconds. ``--study resnet20``
    and ``--study modular`` run the other case studies of docs/case-studies.md at demo scale.
    """
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
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
        default_jobs=default_jobs(quick),
    )
    with study_progress() as on_event:
        result = run_demo(out, quick, on_event, jobs=jobs or default_jobs(quick), execution=where, study=study)
    print_settings(result)
    print_browse(result)
    console.print(f"demo finished in {time.perf_counter() - start:.1f} s", highlight=False)
    if result.computed.failed:
        raise typer.Exit(1)


@report_app.command("case-studies")
@user_errors
def case_studies(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Markdown file to write; pictures go to the folder beside it named after it (docs/case-studies/)."
        ),
    ] = Path("docs/case-studies.md"),
    work: Annotated[Path, typer.Option("--work", help="Folder for the studies' runs, catalog and views.")] = Path(
        "runs/case-studies"
    ),
    study: Annotated[
        list[str] | None,
        typer.Option(
            "--study",
            help="Only these studies (repeat the flag): convection-paper, modular, resnet20-fashion (default: all three).",
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        bool,
        typer.Option(
            "--run/--no-run", help="Train and compute what is missing first, or write the report from the catalog as is."
        ),
    ] = True,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes for the metrics, cores ÷ jobs torch threads each (default: 2).",
            show_default=False,
        ),
    ] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Run the PINN (β sweep), grokking transformer and ResNet-20 (skips or not, Fashion-MNIST) studies and write the report.

    Incremental like the demo: a rerun only rewrites the report and its pictures. The full plan takes hours on a
    2-core CPU; --no-run reports what the catalog holds.
    """
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    names = tuple(study) if study else tuple(s.name for s in STUDY_PLANS)
    with study_progress() as on_event:
        path = write_case_studies(work, out, on_event, jobs=jobs or default_jobs(quick=False), run=run, studies=names)
    console.print(f"wrote {path} in {time.perf_counter() - start:.1f} s", highlight=False)
