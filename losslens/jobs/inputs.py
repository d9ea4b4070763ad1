"""The driver's side of "jobs carry what they read": find, for every job, the runs of the metrics it reads,
and attach their rows and arrays just before the job is submitted.

Finding is one query per read metric (all its done runs in the experiments), indexed here by checkpoint
and setting; attaching reads only the chosen runs' rows and artifacts, so only the jobs in flight hold
them in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from losslens.jobs.context import RunResult
from losslens.jobs.plan import Job
from losslens.metrics.registry import Metric, Read
from losslens.store import jobs as store
from losslens.store import queries
from losslens.store.artifacts import load_artifact
from losslens.store.catalog import Catalog
from losslens.store.ids import params_hash


class RunIndex:
    """Done runs of one metric, findable by the checkpoints and settings they cover."""

    def __init__(self, runs: list[dict[str, Any]], read: Read):
        if read.params is not None:
            wanted = params_hash(dataclasses.asdict(read.params))
            runs = [r for r in runs if r["params_hash"] == wanted]
        self.by_checkpoint: dict[str, list[dict[str, Any]]] = {}
        self.by_setting: dict[str, list[dict[str, Any]]] = {}
        self.by_experiment: dict[str, list[dict[str, Any]]] = {}
        for run in runs:  # oldest first
            if run["scope"] in ("checkpoint", "pair"):
                self.by_checkpoint.setdefault(run["checkpoint"], []).append(run)
            elif run["scope"] == "setting":
                self.by_setting.setdefault(run["setting_id"], []).append(run)
            else:
                self.by_experiment.setdefault(run["experiment_id"], []).append(run)

    def covering(self, job: Job) -> list[dict[str, Any]]:
        """The latest run per subject among runs whose checkpoints all belong to the job, oldest first."""
        members = set(job.checkpoints)
        found: list[dict[str, Any]] = []
        for sha in job.checkpoints:
            found += [r for r in self.by_checkpoint.get(sha, []) if r["checkpoint_b"] is None or r["checkpoint_b"] in members]
        if job.scope in ("setting", "experiment"):
            for setting in {r["setting_id"] for r in job.records}:
                found += self.by_setting.get(setting, [])
        if job.scope == "experiment":
            found += self.by_experiment.get(job.experiment_id, [])
        latest: dict[str, dict[str, Any]] = {}
        for run in sorted(found, key=lambda r: (r["finished_at"], r["id"])):
            latest.pop(run["subject"], None)
            latest[run["subject"]] = run
        return list(latest.values())


def _load(catalog: Catalog, runs: list[dict[str, Any]], read: Read) -> list[RunResult]:
    ids = [r["id"] for r in runs]
    results = {r["id"]: RunResult(run=r, rows={t: [] for t in read.tables}) for r in runs}
    for table in read.tables:
        for row in queries.run_rows(catalog.conn, table, ids):
            results[row["run_id"]].rows[table].append(row)
    if read.artifacts:
        for art in store.run_artifact_paths(catalog, ids):
            if art["name"] in read.artifacts:
                results[art["run_id"]].artifacts[art["name"]] = load_artifact(catalog.dir, art["path"])
    return [results[i] for i in ids]


def attach_inputs(
    catalog: Catalog,
    metric: Metric,
    params: Any,
    jobs: Iterable[Job],
    blob: Callable[[dict[str, Any]], Any] | None = None,
) -> Iterator[Job]:
    """Yield each job with the runs of the metrics it reads (``metric.reads(params)``) and, where the
    executor ships files (``blob``), the bytes of its checkpoints; lazily, one job at a time."""
    jobs = list(jobs)
    reads = [r for r in metric.reads(params) if isinstance(r, Read)]
    experiment_ids = sorted({j.experiment_id for j in jobs})
    indexes = [(read, RunIndex(store.done_runs(catalog, read.metric, experiment_ids), read)) for read in reads]
    for job in jobs:
        inputs = {read.metric: _load(catalog, index.covering(job), read) for read, index in indexes}
        blobs = {}
        if blob is not None:
            for rec in (*job.records, *job.trajectory):
                handle = blob(rec)
                if handle is not None:
                    blobs[rec["sha256"]] = handle
        yield dataclasses.replace(job, inputs=inputs, blobs=blobs)
