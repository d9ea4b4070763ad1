"""``--executor slurm``: one Slurm job array through submitit, each array task running a chunk of jobs.

Every array task is a fresh Python on a compute node, so jobs are grouped (``chunk`` per task, by default
as many as spread the jobs over ``array_parallelism`` tasks) to pay the torch import once per task.
submitit pickles each chunk, with what its jobs read, into ``folder`` (which the nodes must see) and
brings each task's outcomes back through it; the driver stores them as tasks finish. An array task that
fails or is preempted comes back as failed runs of its jobs, so a rerun of the same command computes
exactly what is missing. ``cluster=local`` runs the array tasks as local processes (submitit's local
executor), which is how the tests run it.
"""

from __future__ import annotations

import math
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from losslens.errors import LossLensError
from losslens.jobs.executors import Finished, Resources

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class SlurmConfig:
    """The ``-X`` options of ``--executor slurm``; ``partition``, ``gpus_per_node`` and ``array_parallelism``
    are also the flags ``--partition``, ``--gpus-per-node`` and ``--array-parallelism``.

    :raises LossLensError: for a count out of range (``array_parallelism`` or ``timeout_min`` below 1,
        ``chunk`` or ``gpus_per_node`` below 0, ``poll_s`` not positive).
    """

    folder: str = "slurm-jobs"  # submitit's pickles and logs; must be on a filesystem the nodes share
    partition: str | None = None
    gpus_per_node: int | None = None  # GPUs per array task; None: ⌈gpus_per_job⌉
    array_parallelism: int = 64  # array tasks running at once (%N of --array)
    chunk: int = 0  # jobs per array task; 0: ceil(jobs ÷ array_parallelism)
    timeout_min: int = 60  # per array task
    cluster: Literal["slurm", "local"] = "slurm"
    poll_s: float = 2.0  # how often the driver checks for finished array tasks

    def __post_init__(self) -> None:
        low = {"array_parallelism": 1, "timeout_min": 1, "chunk": 0, "gpus_per_node": 0}
        for name, least in low.items():
            value = getattr(self, name)
            if value is not None and value < least:
                raise LossLensError(f"{name} {value} must be at least {least}", where="--executor slurm")
        if self.poll_s <= 0:
            raise LossLensError(f"poll_s {self.poll_s} must be positive", where="--executor slurm")


def _run_chunk(fn: Callable[[Any], Any], chunk: list[Any], threads: int) -> list[Any]:
    """One array task: torch threads to the task's CPUs, then each job in turn."""
    import torch

    from losslens.allocator import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()
    return [fn(job) for job in chunk]


def _task_error(task: submitit.Job, exc: Exception) -> str:
    """One line for the runs of an array task that brought no results back: a task that raised gives its
    exception's last line; one that died without writing its result (killed, preempted, out of time or
    memory) names Slurm's state for it and its log file."""
    if isinstance(exc, FailedJobError):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return f"Slurm array task {task.job_id} failed: {lines[-1] if lines else type(exc).__name__}"
    if isinstance(exc, UncompletedJobError):
        return (
            f"Slurm array task {task.job_id} ended without a result (state {task.state}): killed, preempted, or out "
            f"of time or memory; its log: {task.paths.stderr}"
        )
    return f"Slurm array task {task.job_id} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


class SlurmExecutor:
    """Runs jobs as one Slurm job array (see the module docstring)."""

    Config = SlurmConfig

    def __init__(self, resources: Resources | None = None, config: SlurmConfig | None = None):
        """:raises LossLensError: when ``--gpus-per-node`` is fewer GPUs than one job asks for."""
        self.resources = resources or Resources()
        self.config = config or SlurmConfig()
        per_job = math.ceil(self.resources.gpus_per_job)
        if self.config.gpus_per_node is not None and per_job > self.config.gpus_per_node:
            raise LossLensError(
                f"{self.config.gpus_per_node} GPUs per array task cannot hold a job of --gpus-per-job "
                f"{self.resources.gpus_per_job:g}",
                where="--gpus-per-node",
                hint=f"give --gpus-per-node {per_job} or more",
            )

    def gpus_per_task(self) -> int:
        """GPUs each array task asks Slurm for: ``gpus_per_node``, else ⌈``gpus_per_job``⌉."""
        if self.config.gpus_per_node is not None:
            return self.config.gpus_per_node
        return math.ceil(self.resources.gpus_per_job)

    def _chunk_size(self, n: int) -> int:
        return self.config.chunk or max(1, math.ceil(n / max(1, self.config.array_parallelism)))

    def _parameters(self, n_tasks: int) -> dict[str, Any]:
        """sbatch parameters in submitit's Slurm names (``_make_sbatch_string``'s keywords)."""
        res, cfg = self.resources, self.config
        params: dict[str, Any] = {
            "job_name": "losslens",
            "time": cfg.timeout_min,
            "cpus_per_task": max(1, math.ceil(res.cpus_per_job)),
            "array_parallelism": cfg.array_parallelism,
        }
        if self.gpus_per_task() > 0:
            params["gpus_per_node"] = self.gpus_per_task()
        if cfg.partition:
            params["partition"] = cfg.partition
        return params

    def describe(self, n_jobs: int) -> str:
        """The sbatch script the array of ``n_jobs`` jobs would be submitted with (``--dry-run``)."""
        from submitit.slurm.slurm import _make_sbatch_string  # submitit's own script writer (private, pinned <1.6)

        n_tasks = math.ceil(n_jobs / self._chunk_size(n_jobs)) if n_jobs else 0
        folder = Path(self.config.folder).resolve() / "%j"
        command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
        head = f"# {n_jobs} jobs in {n_tasks} array tasks of up to {self._chunk_size(n_jobs)} jobs\n"
        if not n_tasks:
            return head
        script = _make_sbatch_string(command=command, folder=folder, map_count=n_tasks, **self._parameters(n_tasks))
        shebang, _, rest = script.partition("\n")  # sbatch wants #! on the first line: the summary goes under it
        return f"{shebang}\n{head}{rest}"

    def _executor(self, n_tasks: int) -> submitit.AutoExecutor:
        ex = submitit.AutoExecutor(folder=Path(self.config.folder) / "%j", cluster=self.config.cluster)
        params = self._parameters(n_tasks)
        ex.update_parameters(
            name=params.pop("job_name"),
            timeout_min=params.pop("time"),
            cpus_per_task=params.pop("cpus_per_task"),
            **({"gpus_per_node": params.pop("gpus_per_node")} if "gpus_per_node" in params else {}),
            **{f"slurm_{k}": v for k, v in params.items()},
        )
        return ex

    def run(self, fn: Callable[[J], R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]:
        """Submit the jobs as one array and yield each chunk's outcomes as its array task ends.

        :raises LossLensError: when Slurm is asked for and ``sbatch`` is not on PATH (``--dry-run``, which
            only shows the script, works anywhere).
        """
        if self.config.cluster == "slurm" and shutil.which("sbatch") is None:
            raise LossLensError(
                "--executor slurm: sbatch is not on PATH",
                where="compute",
                hint="run on a Slurm login node, or -X cluster=local to run the array tasks as local processes",
            )
        jobs = list(jobs)
        if not jobs:
            return
        size = self._chunk_size(len(jobs))
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        ex = self._executor(len(chunks))
        threads = max(1, math.floor(self.resources.cpus_per_job))
        array = ex.map_array(_run_chunk, [fn] * len(chunks), chunks, [threads] * len(chunks))
        index = {id(task): i for i, task in enumerate(array)}
        pending = set(index)
        try:
            for task in submitit.helpers.as_completed(array, poll_frequency=self.config.poll_s):
                pending.discard(id(task))
                chunk = chunks[index[id(task)]]
                try:
                    values = task.result()
                except Exception as exc:
                    error = _task_error(task, exc)
                    for job in chunk:
                        yield Finished(job, None, error=error, where=str(task.job_id))
                else:
                    for job, value in zip(chunk, values, strict=True):
                        yield Finished(job, value, where=str(task.job_id))
        finally:
            for task in array:
                if id(task) in pending:
                    task.cancel(check=False)

    def ship(self, record: dict[str, Any]) -> None:
        return None  # array tasks read checkpoints from the shared filesystem, like the submitit folder

    def close(self) -> None:
        return None
