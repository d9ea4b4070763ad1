"""``losslens compute``: plan jobs, run them on an executor, store each outcome as it arrives."""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from losslens import __version__
from losslens.errors import LossLensError
from losslens.jobs.context import CHECKPOINT_SQL, JobContext
from losslens.jobs.executors import make_executor
from losslens.jobs.options import build_params
from losslens.jobs.plan import Job, done_run_ids, params_json, plan
from losslens.metrics.registry import Metric, Result, get_metric
from losslens.numerics import refuse_diverged
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


@dataclass
class MetricReport:
    metric: str
    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ComputeReport:
    metrics: list[MetricReport] = field(default_factory=list)

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


_CATALOGS: dict[str, Catalog] = {}


def _worker_catalog(path: str) -> Catalog:
    if path not in _CATALOGS:
        _CATALOGS[path] = open_catalog(Path(path), readonly=True)
    return _CATALOGS[path]


def execute_job(catalog_path: str, device: str, job: Job) -> Outcome:
    """Run one job; never raises. Runs in a worker process or in the driver."""
    started, t0 = utcnow(), time.perf_counter()
    try:
        from losslens.metrics.registry import load_metrics

        load_metrics()
        catalog = _worker_catalog(catalog_path)
        marks = ",".join("?" * len(job.checkpoints))
        records = catalog.query(CHECKPOINT_SQL + f" WHERE c.sha256 IN ({marks})", job.checkpoints)
        by_sha = {r["sha256"]: r for r in records}
        ctx = JobContext(
            catalog=catalog,
            device=torch.device(device),
            checkpoints=[by_sha[s] for s in job.checkpoints],
            setting_id=job.setting_id,
            experiment_id=job.experiment_id,
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
        status, started, utcnow(), time.perf_counter() - t0, device, result, " ".join(str(error).split()) if error else None
    )


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
            # Replace this run and any stale one of the same subject and parameters (e.g. a setting
            # run from before a seed was added); result rows go with them (ON DELETE CASCADE).
            db.execute(
                "DELETE FROM metric_runs WHERE id = ? OR (metric = ? AND subject = ? AND params_hash = ?)",
                [job.run_id, job.metric, job.subject, job.params_hash],
            )
            db["metric_runs"].insert(run)
            if outcome.result is not None:
                _store_result(catalog, db, metric, job.run_id, outcome.result)
        return outcome
    except Exception as exc:
        if outcome.status == "failed":
            raise
        failed = Outcome(
            "failed",
            outcome.started_at,
            outcome.finished_at,
            outcome.wall_seconds,
            outcome.device,
            error=f"storing results failed: {type(exc).__name__}: {exc}",
        )
        return store_outcome(catalog, metric, job, failed)


def _store_result(catalog: Catalog, db: Any, metric: Metric, run_id: str, result: Result) -> None:
    catalog.save_artifacts(db, list(result.artifacts.values()))
    for name, art in result.artifacts.items():
        db["run_artifacts"].insert({"run_id": run_id, "name": name, "artifact": art.sha256})
    for table, rows in result.rows.items():
        if table not in metric.tables or not db[table].exists():
            raise RuntimeError(f"metric {metric.name} wrote table {table!r}, which it does not declare or no migration creates")
        if rows:
            db[table].insert_all([{**row, "run_id": run_id} for row in rows])


def compute(
    metric_names: list[str],
    options: list[tuple[str, Any]] | None = None,
    *,
    catalog_path: Path | None = None,
    experiment: str | None = None,
    jobs: int = 1,
    force: bool = False,
    device: str = "auto",
    on_event: Event | None = None,
) -> ComputeReport:
    """Compute metrics (and what they require) for every checkpoint of the chosen experiments.

    Done jobs are skipped, except stale ones (a requirement was recomputed after them) and, with
    ``force``, those of the named metrics; requirements that are not named run only where missing."""
    if not metric_names:
        raise LossLensError("no metric named", where="compute", hint="e.g. losslens compute performance")
    emit = on_event or (lambda *a, **k: None)
    dev = resolve_device(device)
    metrics = with_requirements(metric_names)
    params = build_params(metrics, options or [])
    report = ComputeReport()
    with open_catalog(catalog_path) as catalog:
        executor = make_executor(jobs)
        run = functools.partial(execute_job, str(catalog.path.resolve()), str(dev))
        for metric in metrics:
            planned = plan(catalog, metric, params[metric.name], experiment)
            done = set() if force and metric.name in metric_names else done_run_ids(catalog, metric)
            todo = [j for j in planned if j.run_id not in done]
            mr = MetricReport(metric.name, planned=len(planned), skipped=len(planned) - len(todo))
            report.metrics.append(mr)
            emit("metric_start", metric=metric.name, total=len(todo), skipped=mr.skipped)
            for job, outcome in executor.run(run, todo):
                outcome = store_outcome(catalog, metric, job, outcome)
                if outcome.status == "done":
                    mr.done += 1
                else:
                    mr.failed += 1
                    mr.failures.append((job.label, outcome.error or "unknown error"))
                emit("job_done", metric=metric.name, job=job, outcome=outcome)
            emit("metric_end", metric=metric.name, report=mr)
    return report
