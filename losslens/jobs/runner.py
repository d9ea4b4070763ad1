"""``losslens compute``: plan jobs, run them on an executor, store each outcome as it arrives."""

from __future__ import annotations

import dataclasses
import functools
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from losslens import __version__
from losslens.errors import LossLensError
from losslens.jobs.blocks import resolve_blocks
from losslens.jobs.context import JobContext
from losslens.jobs.executors import Resources, make_executor
from losslens.jobs.inputs import attach_inputs
from losslens.jobs.options import build_params
from losslens.jobs.plan import Job, done_run_ids, params_json, plan
from losslens.metrics.registry import Metric, Result, get_metric
from losslens.numerics import refuse_diverged
from losslens.store import jobs as store
from losslens.store.catalog import Catalog, open_catalog, utcnow

Event = Callable[..., None]


@dataclass
class Outcome:
    status: str  # done | failed
    started_at: str
    finished_at: str
    wall_seconds: float
    device: str
    result: Result | None = None
    error: str | None = None
    worker: str | None = None  # the host (or Ray node) that ran it


@dataclass
class MetricReport:
    metric: str
    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ComputeReport:
    metrics: list[MetricReport] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(m.failed for m in self.metrics)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LossLensError("--device cuda: no CUDA device is available", where="compute", hint="use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise LossLensError(f"--device {device!r} is not one of auto, cpu, cuda", where="compute")
    return torch.device(device)


def with_requirements(names: list[str]) -> list[Metric]:
    """The requested metrics plus what they require, dependencies first, each once."""
    ordered: list[Metric] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise LossLensError(f"metric dependency cycle: {' → '.join((*stack, name))}", where="compute")
        metric = get_metric(name)
        for dep in metric.requires:
            visit(dep, (*stack, name))
        if metric not in ordered:
            ordered.append(metric)

    for name in names:
        visit(name, ())
    return ordered


def execute_job(device: str, job: Job) -> Outcome:
    """Run one job from what it carries (no catalog); never raises. Runs in a worker or in the driver.

    ``device`` is resolved here, on the worker: ``auto`` is this worker's GPU when it has one."""
    started, t0 = utcnow(), time.perf_counter()
    dev = device
    try:
        from losslens.metrics.registry import load_metrics

        load_metrics()
        dev = str(resolve_device(device))
        ctx = JobContext(
            device=torch.device(dev),
            checkpoints=list(job.records),
            setting_id=job.setting_id,
            experiment_id=job.experiment_id,
            inputs=dict(job.inputs),
            trajectory_records=list(job.trajectory),
            blobs=dict(job.blobs),
        )
        metric = get_metric(job.metric)
        params = metric.params(**job.params)
        if metric.scope != "experiment":  # the experiment's taxonomy names diverged seeds instead
            refuse_diverged(ctx.checkpoints)
        result = metric.fn(ctx, params)
        status, error = "done", None
    except LossLensError as exc:
        result, status, error = None, "failed", exc.line()
    except Exception as exc:  # a bug in a metric: keep the cause, move on
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        result, status = None, "failed"
        error = f"{type(exc).__name__}: {exc} (at {Path(frame.filename).name}:{frame.lineno})"
    return Outcome(
        status,
        started,
        utcnow(),
        time.perf_counter() - t0,
        dev,
        result,
        " ".join(str(error).split()) if error else None,
        worker=socket.gethostname(),
    )


def lost_outcome(error: str, device: str) -> Outcome:
    """A failed outcome for a job the executor could not bring back (worker lost, array task died)."""
    now = utcnow()
    return Outcome("failed", now, now, 0.0, device, error=error)


def store_outcome(catalog: Catalog, metric: Metric, job: Job, outcome: Outcome) -> Outcome:
    """Write a run and its rows in one transaction; a storage failure is recorded as a failed run."""
    run = {
        "id": job.run_id,
        "metric": job.metric,
        "scope": job.scope,
        "subject": job.subject,
        "checkpoint": job.checkpoints[0] if job.scope in ("checkpoint", "pair") else None,
        "checkpoint_b": job.checkpoints[1] if job.scope == "pair" else None,
        "setting_id": job.setting_id,
        "experiment_id": job.experiment_id,
        "params_json": params_json(job),
        "params_hash": job.params_hash,
        "status": outcome.status,
        "error": outcome.error,
        "code_version": __version__,
        "device": outcome.device,
        "wall_seconds": outcome.wall_seconds,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
    }
    try:
        with catalog.write() as db:
            store.replace_run(db, run)
            if outcome.result is not None:
                catalog.save_artifacts(db, list(outcome.result.artifacts.values()))
                store.link_artifacts(db, job.run_id, {name: art.sha256 for name, art in outcome.result.artifacts.items()})
                store.insert_result(db, job.run_id, metric.tables, outcome.result.rows)
        return outcome
    except Exception as exc:
        if outcome.status == "failed":
            raise
        failed = dataclasses.replace(
            outcome, status="failed", result=None, error=f"storing results failed: {type(exc).__name__}: {exc}"
        )
        return store_outcome(catalog, metric, job, failed)


def check_device(device: str, here: bool) -> None:
    """Validate ``--device`` in the driver; ``here`` (serial, process) also checks that CUDA exists on this
    machine, while remote workers resolve it themselves.

    :raises LossLensError: for a name other than auto, cpu, cuda[:N], or cuda asked for here without CUDA.
    """
    if here:
        resolve_device(device)
    elif device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise LossLensError(f"--device {device!r} is not one of auto, cpu, cuda", where="compute")


def compute(
    metric_names: list[str],
    options: list[tuple[str, Any]] | None = None,
    *,
    catalog_path: Path | None = None,
    experiment: str | None = None,
    jobs: int = 1,
    force: bool = False,
    device: str = "auto",
    executor: str | None = None,
    resources: Resources | None = None,
    executor_options: dict[str, str] | None = None,
    dry_run: bool = False,
    on_event: Event | None = None,
) -> ComputeReport:
    """Compute metrics (and what they require) for every checkpoint of the chosen experiments.

    Done jobs are skipped, except stale ones (a requirement was recomputed after them) and, with
    ``force``, those of the named metrics; requirements that are not named run only where missing.
    Jobs run on ``executor`` (default: ``process`` when ``jobs`` > 1, else ``serial``) with what they
    read attached; only this process writes the catalog, storing each result as it arrives. Ctrl-C
    stops submitting and returns with ``interrupted`` set; what finished is stored, a rerun does the rest.
    With ``dry_run`` nothing runs: each metric's plan is reported (event ``dry_run`` with the executor's
    description, e.g. the sbatch script, and ``blocks``: what its ``--params`` globs select in each model,
    see :mod:`losslens.jobs.blocks`).

    :raises LossLensError: for no or unknown metrics, bad options, an unknown experiment or executor, or a
        ``--params`` glob that matches no parameter of some planned model (before any job runs).
    """
    if not metric_names:
        raise LossLensError("no metric named", where="compute", hint="e.g. losslens compute performance")
    emit = on_event or (lambda *a, **k: None)
    name = executor or ("process" if jobs > 1 else "serial")
    check_device(device, here=name in ("serial", "process"))
    metrics = with_requirements(metric_names)
    params = build_params(metrics, options or [])
    resources = resources or Resources(workers=jobs if name == "process" else 0)
    report = ComputeReport()
    with open_catalog(catalog_path) as catalog:
        engine = make_executor(name, resources, executor_options)
        run = functools.partial(execute_job, device)
        try:
            # every metric is planned (and its --params globs resolved) before any job runs: a glob that
            # selects nothing in some model is one line now, not a failed job per checkpoint later
            plans = {m.name: plan(catalog, m, params[m.name], experiment) for m in metrics}
            blocks = {m.name: resolve_blocks(m.name, params[m.name], plans[m.name]) for m in metrics}
            for metric in metrics:
                planned = plans[metric.name]
                done = set() if force and metric.name in metric_names else done_run_ids(catalog, metric)
                todo = [j for j in planned if j.run_id not in done]
                mr = MetricReport(metric.name, planned=len(planned), skipped=len(planned) - len(todo))
                report.metrics.append(mr)
                if dry_run:
                    describe = getattr(engine, "describe", None)
                    emit(
                        "dry_run",
                        metric=metric.name,
                        report=mr,
                        jobs=todo,
                        text=describe(len(todo)) if describe else None,
                        blocks=blocks[metric.name],
                    )
                    continue
                emit("metric_start", metric=metric.name, total=len(todo), skipped=mr.skipped)
                if todo:
                    feed = attach_inputs(catalog, metric, params[metric.name], todo, blob=engine.ship)
                    finished = engine.run(run, feed)
                    try:
                        for fin in finished:
                            if fin.error is None and fin.value is not None:
                                outcome = fin.value
                            else:  # a third-party engine may yield neither a value nor a reason
                                outcome = lost_outcome(fin.error or "the executor returned no result", device)
                            if fin.where:
                                outcome = dataclasses.replace(outcome, worker=fin.where)
                            outcome = store_outcome(catalog, metric, fin.job, outcome)
                            mr.retried += fin.retries
                            if outcome.status == "done":
                                mr.done += 1
                            else:
                                mr.failed += 1
                                mr.failures.append((fin.job.label, outcome.error or "unknown error"))
                            emit("job_done", metric=metric.name, job=fin.job, outcome=outcome, report=mr)
                    except KeyboardInterrupt:
                        close = getattr(finished, "close", None)  # generators stop their engine; any iterator is allowed
                        if close is not None:
                            close()
                        report.interrupted = True
                        emit("interrupted", metric=metric.name, report=mr)
                        break
                emit("metric_end", metric=metric.name, report=mr)
        finally:
            engine.close()
    return report
