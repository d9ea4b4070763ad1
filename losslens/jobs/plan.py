"""Turn (metric, parameters, experiment) into jobs, skipping those already done.

Planning reads the catalog once per metric (the experiment's checkpoints and the done runs), whatever the
number of jobs; the rest is Python over those rows (``bench/sweep.py`` times 100,000 jobs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from losslens.jobs.pairs import select_pairs
from losslens.metrics.registry import Metric, Trajectory
from losslens.store import jobs as store
from losslens.store.catalog import Catalog
from losslens.store.ids import canonical_json, content_id, params_hash


@dataclass(frozen=True, eq=False)
class Job:
    """Everything a worker needs, as plain data so that it pickles to another process or node: the
    checkpoints' records (paths, model and problem specs), and, attached by the driver just before the
    job is submitted, the results of the metrics it reads (``inputs``) and checkpoint bytes (``blobs``)."""

    run_id: str
    metric: str
    scope: str
    subject: str
    params: dict[str, Any]
    params_hash: str
    checkpoints: tuple[str, ...]
    setting_id: str | None
    experiment_id: str
    label: str
    records: tuple[dict[str, Any], ...] = ()
    trajectory: tuple[dict[str, Any], ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, Any] = field(default_factory=dict)


def _groups(records: list[dict[str, Any]], *keys: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for rec in records:
        out.setdefault(rec[keys[0]] if len(keys) == 1 else tuple(rec[k] for k in keys), []).append(rec)
    return out


def pair_groups(records: list[dict[str, Any]], pairing: str) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """(setting id, members) of each group whose checkpoint pairs a pair metric compares: "same-step"
    (those of a setting at one training step, e.g. the seeds' checkpoints along training), "all" (every
    checkpoint), otherwise a setting's checkpoints (within-setting, adjacent, random:K choose among them)."""
    if pairing == "same-step":
        return [(key[0], recs) for key, recs in _groups(records, "setting_id", "step").items()]
    if pairing == "all":
        return [(None, records)]
    return list(_groups(records, "setting_id").items())


def _key_hash(metric: Metric, raw: dict[str, Any], phash: str) -> str:
    """The params part of a run id: pair runs leave the pairing out (a pair computed under ``--pairs
    adjacent`` is done for ``--pairs within-setting`` too); the others use the whole params hash."""
    return params_hash({k: v for k, v in raw.items() if k != "pairs"}) if metric.scope == "pair" else phash


def _run_id(metric: Metric, subject: str, key_hash: str, shas: tuple[str, ...]) -> str:
    """Checkpoint and pair runs are keyed by subject and params; a setting or experiment run also by
    its members, so adding a seed makes the old result stale. Equal to ``content_id("run", metric,
    subject, key_hash[, members])``, with the JSON written directly (planning hashes 100,000 of them)."""
    if metric.scope in ("setting", "experiment"):
        return content_id("run", metric.name, subject, key_hash, sorted(shas))
    text = f'["run",{json.dumps(metric.name)},{json.dumps(subject)},"{key_hash}"]'
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _trajectories(records: list[dict[str, Any]]) -> dict[tuple[str, Any], list[dict[str, Any]]]:
    """Checkpoints with a step, by (model, seed), ordered by step: each training run's trajectory."""
    out: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for rec in records:
        if rec["step"] is not None:
            out.setdefault((rec["model_id"], rec["seed"]), []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: r["step"])
    return out


def plan(catalog: Catalog, metric: Metric, params: Any, experiment: str | None = None) -> list[Job]:
    """All jobs for a metric over the chosen experiments, in a stable order.

    :raises LossLensError: for an unknown experiment or an invalid ``pairs`` value.
    """
    raw = dataclasses.asdict(params)
    phash = params_hash(raw)
    key_hash = _key_hash(metric, raw, phash)
    wants_trajectory = any(isinstance(r, Trajectory) for r in metric.reads(params))
    jobs: list[Job] = []
    for exp in store.experiments(catalog, experiment):
        records = store.checkpoint_records(catalog, exp["id"])
        trajectories = _trajectories(records) if wants_trajectory else {}
        subjects: list[tuple[tuple[dict[str, Any], ...], str, str | None, str]]  # (records, subject, setting, label)
        if metric.scope == "checkpoint":
            subjects = [((r,), r["sha256"], r["setting_id"], f"{r['setting_label']} · {r['name']}") for r in records]
        elif metric.scope == "pair":
            pairing = str(raw.get("pairs", "within-setting"))
            subjects = [
                ((a, b), f"{a['sha256']}:{b['sha256']}", setting_id, f"{a['setting_label']} · {a['name']} ↔ {b['name']}")
                for setting_id, recs in pair_groups(records, pairing)
                for a, b in select_pairs(recs, pairing)
            ]
        elif metric.scope == "setting":
            subjects = [(tuple(recs), sid, sid, recs[0]["setting_label"]) for sid, recs in _groups(records, "setting_id").items()]
        else:
            subjects = [(tuple(records), exp["id"], None, exp["name"])] if records else []
        for recs, subject, setting_id, label in subjects:
            shas = tuple(r["sha256"] for r in recs)
            trajectory: tuple[dict[str, Any], ...] = ()
            if wants_trajectory and len(recs) == 1:
                key = (recs[0]["model_id"], recs[0]["seed"])
                trajectory = tuple(r for r in trajectories.get(key, []) if r["sha256"] != recs[0]["sha256"])
            jobs.append(
                Job(
                    run_id=_run_id(metric, subject, key_hash, shas),
                    metric=metric.name,
                    scope=metric.scope,
                    subject=subject,
                    params=raw,
                    params_hash=phash,
                    checkpoints=shas,
                    setting_id=setting_id,
                    experiment_id=exp["id"],
                    label=label,
                    records=recs,
                    trajectory=trajectory,
                )
            )
    return jobs


def done_run_ids(catalog: Catalog, metric: Metric) -> set[str]:
    """Runs that need no recomputing: done, and not stale (a requirement was recomputed after them)."""
    return store.done_run_ids(catalog, metric.name, metric.requires)


def params_json(job: Job) -> str:
    return canonical_json(job.params)
