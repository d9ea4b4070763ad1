"""Where ``compute`` and ``demo`` run their jobs: ``--executor`` and its resources, declared once for both
commands, and the progress bars that show each metric's jobs (rate, ETA, done/failed/retried)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.progress import ProgressColumn, Task
from rich.text import Text

PANEL = "Execution (docs/distributed.md)"

ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="serial, process (a pool of --jobs processes), ray (a Ray cluster, see --address) or slurm (a job array "
        "through submitit), or an executor installed under the losslens.executors entry points. "
        "Default: process when --jobs > 1, else serial.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray: local (a private cluster for this command), auto (the cluster `ray start` runs on this machine) "
        "or HOST:PORT of a head node. Default: local.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
CpusOpt = Annotated[
    float,
    typer.Option(
        "--cpus-per-job",
        min=0.01,
        help="CPUs per job (Ray num_cpus, Slurm cpus-per-task); torch uses as many threads.",
        rich_help_panel=PANEL,
    ),
]
GpusOpt = Annotated[
    float,
    typer.Option(
        "--gpus-per-job",
        min=0.0,
        help="GPUs per job; fractional for Ray (0.5: two jobs share a GPU), rounded up to whole GPUs per Slurm array task.",
        rich_help_panel=PANEL,
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--max-retries",
        min=0,
        help="Resubmissions of a job whose worker or node was lost (a metric that raised is recorded as failed, never retried).",
        rich_help_panel=PANEL,
    ),
]
ExecOptionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--executor-option",
        "-X",
        metavar="KEY=VALUE",
        help="An option of the chosen executor, repeatable: ray window, ship_checkpoints=auto|always|never; slurm "
        "folder, partition, array_parallelism, chunk, timeout_min, cluster=slurm|local; process window.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Plan only: show each metric's jobs to run and how (for slurm, the sbatch script).",
        rich_help_panel=PANEL,
    ),
]


def execution(
    executor: str | None,
    address: str | None,
    cpus_per_job: float,
    gpus_per_job: float,
    max_retries: int,
    executor_option: list[str] | None,
    jobs: int | None,
) -> dict[str, Any]:
    """Keyword arguments for ``losslens.jobs.compute`` (``executor``, ``resources``, ``executor_options``).

    :raises typer.BadParameter: for a ``-X`` value without ``=``, or ``--address`` with another executor than ray.
    """
    from losslens.jobs.executors import Resources  # imports no engine

    options: dict[str, str] = {}
    for item in executor_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-X")
        options[key.strip()] = value.strip()
    if address is not None:
        if executor != "ray":
            raise typer.BadParameter("only the ray executor takes an address", param_hint="--address")
        options["address"] = address
    name = executor or ("process" if (jobs or 1) > 1 else "serial")
    resources = Resources(
        cpus_per_job=cpus_per_job,
        gpus_per_job=gpus_per_job,
        max_retries=max_retries,
        workers=(jobs or 0) if name == "process" else 0,
    )
    return {"executor": name, "resources": resources, "executor_options": options}


def mean_speed(task: Task) -> float | None:
    """Jobs finished per second since the metric's bar started, or None before the first.

    Rich's own ``task.speed`` divides by the time between recent updates, which overstates the rate
    many times over when jobs arrive in bursts (a Slurm array task's chunk, a Ray window) and then
    makes the ETA far too short; the mean over the elapsed time is what the run really achieves."""
    elapsed = task.finished_time if task.finished else task.elapsed  # a finished bar's clock stops
    if not task.completed or not elapsed:
        return None
    return task.completed / elapsed


class RateColumn(ProgressColumn):
    """Jobs per second, or seconds per job when slower than one a second (the mean since the start)."""

    def render(self, task: Task) -> Text:
        speed = mean_speed(task)
        if not speed:
            return Text("", style="progress.data.speed")
        text = f"{speed:.1f} jobs/s" if speed >= 1 else f"{1 / speed:.1f} s/job"
        return Text(text, style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """Time left at the mean rate so far (``-:--:--`` before the first job finishes)."""

    def render(self, task: Task) -> Text:
        speed = mean_speed(task)
        if task.finished:
            left: str = "0:00:00"
        elif not speed or task.total is None:
            left = "-:--:--"
        else:
            left = str(timedelta(seconds=math.ceil((task.total - task.completed) / speed)))
        return Text(left, style="progress.remaining")


def counts(report: Any) -> str:
    """``done 3 · failed 1 · retried 2`` for a metric's progress line."""
    parts = [f"done {report.done}"]
    if report.failed:
        parts.append(f"failed {report.failed}")
    if report.retried:
        parts.append(f"retried {report.retried}")
    return " · ".join(parts)
