"""Executors: named plugins that run a batch of jobs and hand back one result per job as each finishes.

The precedent is Hydra's launcher plugins: one small protocol, one plugin per engine, a typed config
per plugin (a dataclass whose fields are the ``-X key=value`` options), generic resources mapped onto
each engine's own names, and lazy imports so that listing executors imports no engine. Built in:
``serial`` and ``process`` (this machine), ``ray`` (a Ray cluster) and ``slurm`` (a Slurm job array
through submitit). Others register in the ``losslens.executors`` entry-point group, e.g.
``[project.entry-points."losslens.executors"] dask = "my_pkg.executor:DaskExecutor"``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from losslens.errors import LossLensError, unknown

J = TypeVar("J")
R = TypeVar("R")

GROUP = "losslens.executors"

#: Built-in executors as ``module:Class``, imported only when chosen.
BUILTIN: dict[str, str] = {
    "serial": "losslens.jobs.executors.local:SerialExecutor",
    "process": "losslens.jobs.executors.local:ProcessExecutor",
    "ray": "losslens.jobs.executors.ray_cluster:RayExecutor",
    "slurm": "losslens.jobs.executors.slurm:SlurmExecutor",
}


@dataclass(frozen=True)
class Resources:
    """What one job needs, in the engines' common terms; each plugin maps them onto its own names
    (Ray ``num_cpus``/``num_gpus``/``max_retries``; Slurm ``cpus_per_task``/``gpus_per_node``).

    ``cpus_per_job`` also sets torch's threads in the job; ``gpus_per_job`` may be fractional for Ray
    (0.5: two jobs share a GPU). ``max_retries`` counts resubmissions of a job whose worker or node was
    lost; a job whose metric raised is recorded as failed and never retried. ``workers`` caps how many
    jobs run at once (0: as many as the resources allow).
    """

    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    max_retries: int = 3
    workers: int = 0


class Finished(NamedTuple, Generic[J, R]):
    """One job's result (or ``error``, a line saying why it has none), how many times it was resubmitted
    after its worker was lost, and where it ran (e.g. the Ray node id) when the engine says."""

    job: J
    value: R | None
    retries: int = 0
    error: str | None = None
    where: str | None = None


class Executor(Protocol):
    """Runs ``fn`` on each job (a batch in, one result per job out, in completion order).

    ``jobs`` is consumed lazily: an executor keeps only a bounded window of jobs in flight, so the
    driver attaches each job's inputs just before it is submitted and stores each result as it
    arrives. Closing the iterator early (Ctrl-C) stops submitting and cancels what is in flight.
    """

    def run(self, fn: Callable[[J], R], jobs: Iterable[J]) -> Iterator[Finished[J, R]]: ...

    def ship(self, record: dict[str, Any]) -> Any:
        """A handle to the checkpoint's bytes for workers that cannot see its path, or None."""
        ...

    def close(self) -> None: ...


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available() -> dict[str, str]:
    """Executor names → ``module:Class``: the built-ins, then the ``losslens.executors`` entry points."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def executor_class(name: str) -> type:
    """Import the named executor's class.

    :raises LossLensError: when no executor has that name, or its engine is not installed.
    """
    known = available()
    if name not in known:
        raise unknown("executor", name, known, where="compute --executor")
    module, _, attr = known[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        extra = {"ray": "losslens[ray]", "slurm": "losslens[slurm]"}.get(name, exc.name)
        raise LossLensError(
            f"--executor {name} needs {exc.name}, which is not installed", where="compute", hint=f"pip install '{extra}'"
        ) from None


def make_config(cls: type, options: dict[str, str] | None) -> Any:
    """The plugin's ``Config`` dataclass from ``-X key=value`` strings, each converted to its field's type.

    :raises LossLensError: for a key the plugin does not have, or a value of the wrong type.
    """
    from losslens.jobs.options import convert

    config_cls = getattr(cls, "Config", None)
    options = dict(options or {})
    if config_cls is None:
        if options:
            raise LossLensError(f"-X {next(iter(options))}: this executor takes no options", where="compute")
        return None
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values = {}
    for key, raw in options.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise unknown("option", key, [f.replace("_", "-") for f in fields], where="compute -X")
        values[name] = convert(raw, hints[name], f"-X {key}")
    return config_cls(**values)


def make_executor(name: str, resources: Resources | None = None, options: dict[str, str] | None = None) -> Executor:
    """Build the named executor with its resources and its ``Config`` from ``options``.

    :raises LossLensError: see :func:`executor_class` and :func:`make_config`.
    """
    cls = executor_class(name)
    return cls(resources or Resources(), make_config(cls, options))


__all__ = ["BUILTIN", "GROUP", "Executor", "Finished", "Resources", "available", "cores", "executor_class", "make_executor"]
