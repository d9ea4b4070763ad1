"""Where ``compute`` and ``demo`` run their jobs: ``--executor`` and its resources, declared once for both
commands, and the progress bars that show each metric's jobs (rate, ETA, done/failed/retried)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.progress import ProgressColumn, Task
from rich.text import Text

from losslens.errors import LossLensError

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
        help="GPUs per job; fractional for Ray (0.5: two jobs share a GPU). Slurm: each array task gets this rounded up, "
        "unless --gpus-per-node says otherwise.",
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
        help="An option of the chosen executor, repeatable: ray window, ship_checkpoints (auto, always or never); slurm "
        "folder, chunk, timeout_min, cluster (slurm or local) (and partition, gpus_per_node, array_parallelism, which have "
        "their own flags); process window.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
PartitionOpt = Annotated[
    str | None,
    typer.Option(
        "--partition",
        help="Slurm: the partition the job array runs in (sbatch --partition). Default: the cluster's default partition.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
GpusPerNodeOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus-per-node",
        min=0,
        help="Slurm: GPUs each array task is given (sbatch --gpus-per-node); its jobs run one after another on the "
        "first GPU, so more than a job needs only reserves them. Default: --gpus-per-job rounded up.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
ArrayParallelismOpt = Annotated[
    int | None,
    typer.Option(
        "--array-parallelism",
        min=1,
        help="Slurm: array tasks running at once (the %N of sbatch --array); the jobs are spread over this many "
        "tasks unless -X chunk=N fixes the jobs per task. Default: 64.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Plan only: show each metric's jobs to run, what each --params glob selects in each model (tensors "
        "and weights), and how the jobs would run (for slurm, the sbatch script).",
        rich_help_panel=PANEL,
    ),
]


#: Flags that belong to one executor: the executor and the field of its ``Config`` each one sets
#: (the same field as ``-X KEY=VALUE``, so both spellings reach one typed config).
ENGINE_FLAGS: dict[str, tuple[str, str]] = {
    "--address": ("ray", "address"),
    "--partition": ("slurm", "partition"),
    "--gpus-per-node": ("slurm", "gpus_per_node"),
    "--array-parallelism": ("slurm", "array_parallelism"),
}


#: What sets how many jobs run at once on each executor that has no local pool.
JOBS_INSTEAD = {
    "serial": "use --executor process for a pool, or leave -j out",
    "ray": "Ray runs as many jobs at once as the cluster has CPUs ÷ --cpus-per-job; leave -j out",
    "slurm": "array tasks run at once: --array-parallelism; leave -j out",
}


def execution(
    executor: str | None,
    cpus_per_job: float,
    gpus_per_job: float,
    max_retries: int,
    executor_option: list[str] | None,
    jobs: int | None,
    flags: dict[str, Any] | None = None,
    default_jobs: int = 1,
) -> dict[str, Any]:
    """Keyword arguments for ``losslens.jobs.compute`` (``executor``, ``resources``, ``executor_options``).

    ``jobs`` is ``--jobs`` as the user gave it (None: not given, then ``default_jobs`` sizes the pool).

    ``flags`` maps the executor-specific flags of :data:`ENGINE_FLAGS` to their values (None: not given);
    each lands in the executor's options under its config field, beside the ``-X`` ones.

    :raises LossLensError: for a ``-X`` value without ``=``; a flag of one executor given with another
        (``--partition`` without ``--executor slurm``); a flag and a ``-X`` option that set the same
        field to different values; ``--jobs`` above 1 with an executor that runs no local pool.
    """
    from losslens.jobs.executors import Resources  # imports no engine

    name = executor or ("process" if (jobs or default_jobs) > 1 else "serial")
    if jobs is not None and jobs > 1 and name != "process":
        raise LossLensError(
            f"-j {jobs} sizes a local pool of processes, which --executor {name} does not use",
            where="--jobs",
            hint=JOBS_INSTEAD.get(name, "leave -j out"),
        )
    options: dict[str, str] = {}
    for item in executor_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LossLensError(f"{item!r} is not KEY=VALUE", where="-X", hint="e.g. -X timeout_min=120")
        options[key.strip().replace("-", "_")] = value.strip()
    for flag, value in (flags or {}).items():
        if value is None:
            continue
        owner, key = ENGINE_FLAGS[flag]
        if name != owner:
            raise LossLensError(
                f"only --executor {owner} takes this option (this command runs on {name})",
                where=flag,
                hint=f"add --executor {owner}, or leave {flag} out",
            )
        if key in options and options[key] != str(value):
            raise LossLensError(f"{flag} {value} and -X {key}={options[key]} disagree", where=flag, hint="give the value once")
        options[key] = str(value)
    resources = Resources(
        cpus_per_job=cpus_per_job,
        gpus_per_job=gpus_per_job,
        max_retries=max_retries,
        workers=(jobs or default_jobs) if name == "process" else 0,
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
