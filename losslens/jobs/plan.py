"""Turn (metric, parameters, experiment) into jobs, skipping those already done."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

from losslens.errors import LossLensError
from losslens.jobs.context import CHECKPOINT_SQL
from losslens.metrics.registry import Metric
from losslens.store.catalog import Catalog
from losslens.store.ids import canonical_json, content_id, params_hash


@dataclass(frozen=True)
class Job:
    """Everything a worker needs; plain data so it pickles to another process."""

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


def experiments(catalog: Catalog, name: str | None) -> list[dict[str, Any]]:
    if name is None:
        rows = catalog.query("SELECT * FROM experiments ORDER BY name")
    else:
        rows = catalog.query("SELECT * FROM experiments WHERE name = ?", (name,))
        if not rows:
            known = [r["name"] for r in catalog.query("SELECT name FROM experiments ORDER BY name")]
            raise LossLensError(
                f"no experiment named {name!r}",
                where=str(catalog.path),
                hint=f"known: {', '.join(known) or 'none (ingest first)'}",
            )
    return rows


def checkpoint_records(catalog: Catalog, experiment_id: str) -> list[dict[str, Any]]:
    return catalog.query(CHECKPOINT_SQL + " WHERE m.experiment_id = ? ORDER BY s.label, c.seed, c.step, c.name", (experiment_id,))


def _groups(records: list[dict[str, Any]], *keys: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for rec in records:
        out.setdefault(rec[keys[0]] if len(keys) == 1 else tuple(rec[k] for k in keys), []).append(rec)
    return out


def pair_groups(records: list[dict[str, Any]], pairing: str) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """(setting id, members) of each group whose checkpoint pairs a pair metric compares: "within-setting"
    (all checkpoints of a setting), "same-step" (those of a setting at one training step, e.g. the seeds'
    checkpoints along training) or "all"."""
    if pairing == "within-setting":
        return list(_groups(records, "setting_id").items())
    if pairing == "same-step":
        return [(key[0], recs) for key, recs in _groups(records, "setting_id", "step").items()]
    return [(None, records)]


def _run_id(metric: Metric, subject: str, phash: str, shas: tuple[str, ...]) -> str:
    """Checkpoint and pair runs are keyed by subject and params; a setting or experiment run also
    by its members, so adding a seed makes the old group result stale and the job runs again."""
    if metric.scope in ("setting", "experiment"):
        return content_id("run", metric.name, subject, phash, sorted(shas))
    return content_id("run", metric.name, subject, phash)


def plan(catalog: Catalog, metric: Metric, params: Any, experiment: str | None = None) -> list[Job]:
    """All jobs for a metric over the chosen experiments, in a stable order."""
    raw = dataclasses.asdict(params)
    phash = params_hash(raw)
    jobs: list[Job] = []
    for exp in experiments(catalog, experiment):
        records = checkpoint_records(catalog, exp["id"])
        if metric.scope == "checkpoint":
            subjects = [((r["sha256"],), r["sha256"], r["setting_id"], f"{r['setting_label']} · {r['name']}") for r in records]
        elif metric.scope == "pair":
            pairing = raw.get("pairs", "within-setting")
            subjects = []
            for setting_id, recs in pair_groups(records, pairing):
                for a, b in itertools.combinations(recs, 2):
                    subjects.append(
                        (
                            (a["sha256"], b["sha256"]),
                            f"{a['sha256']}:{b['sha256']}",
                            setting_id,
                            f"{a['setting_label']} · {a['name']} ↔ {b['name']}",
                        )
                    )
        elif metric.scope == "setting":
            subjects = [
                (tuple(r["sha256"] for r in recs), sid, sid, recs[0]["setting_label"])
                for sid, recs in _groups(records, "setting_id").items()
            ]
        else:
            subjects = [(tuple(r["sha256"] for r in records), exp["id"], None, exp["name"])] if records else []
        for shas, subject, setting_id, label in subjects:
            jobs.append(
                Job(
                    run_id=_run_id(metric, subject, phash, shas),
                    metric=metric.name,
                    scope=metric.scope,
                    subject=subject,
                    params=raw,
                    params_hash=phash,
                    checkpoints=shas,
                    setting_id=setting_id,
                    experiment_id=exp["id"],
                    label=label,
                )
            )
    return jobs


# A done run of a metric with requirements is stale when a done run of a requirement that covers
# the same checkpoints (same checkpoint, either side of a pair, the same setting, or the whole
# experiment) finished after it started: it was computed from inputs that have since changed.
_STALE_SQL = """
SELECT d.id FROM metric_runs d
WHERE d.metric = ? AND d.status = 'done' AND EXISTS (
    SELECT 1 FROM metric_runs r
    WHERE r.metric IN ({marks}) AND r.status = 'done' AND r.experiment_id = d.experiment_id
      AND r.finished_at > d.started_at
      AND (d.scope = 'experiment' OR r.scope = 'experiment'
           OR ((d.scope = 'setting' OR r.scope = 'setting') AND r.setting_id = d.setting_id)
           OR r.checkpoint IN (d.checkpoint, d.checkpoint_b) OR r.checkpoint_b IN (d.checkpoint, d.checkpoint_b)))
"""


def done_run_ids(catalog: Catalog, metric: Metric) -> set[str]:
    """Runs that need no recomputing: done, and not stale (see ``_STALE_SQL``)."""
    done = {r["id"] for r in catalog.query("SELECT id FROM metric_runs WHERE metric = ? AND status = 'done'", (metric.name,))}
    if not metric.requires:
        return done
    stale = catalog.query(_STALE_SQL.format(marks=", ".join("?" * len(metric.requires))), (metric.name, *metric.requires))
    return done - {r["id"] for r in stale}


def params_json(job: Job) -> str:
    return canonical_json(job.params)
