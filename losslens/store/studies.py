"""Read-only queries behind ``docs/case-studies.md``: per-checkpoint values, landscapes by their directions and
span, pair metrics (mc, fit convergence, CKA) and the compute time of an experiment.

Each query reads the latest done run of a metric per subject and parameter set, so a study that computed two
landscapes of one checkpoint (random and Hessian directions, two spans) reports both.
"""

from __future__ import annotations

import json
from typing import Any

from losslens.store.catalog import Catalog

_CHECKPOINTS = """
SELECT c.sha256, c.name, c.seed, c.step, c.meta_json, s.label AS setting, s.values_json
FROM checkpoints c JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id
JOIN experiments e ON e.id = m.experiment_id WHERE e.name = ? ORDER BY s.label, c.seed, c.step
"""

_LATEST = """
SELECT r.* FROM metric_runs r JOIN experiments e ON e.id = r.experiment_id
WHERE e.name = ? AND r.metric = ? AND r.status = 'done'
  AND r.finished_at = (SELECT MAX(r2.finished_at) FROM metric_runs r2
                       WHERE r2.metric = r.metric AND r2.subject = r.subject AND r2.params_hash = r.params_hash
                         AND r2.status = 'done')
"""


def experiment_id(cat: Catalog, experiment: str) -> str | None:
    row = cat.one("SELECT id FROM experiments WHERE name = ?", (experiment,))
    return row["id"] if row else None


def checkpoints(cat: Catalog, experiment: str) -> list[dict[str, Any]]:
    """Checkpoints of ``experiment`` with seed, step, setting label, setting values (a dict) and the training wall
    seconds its sidecar recorded (``train_seconds``, None when unknown)."""
    rows = cat.query(_CHECKPOINTS, (experiment,))
    out = []
    for r in rows:
        meta = json.loads(r.pop("meta_json") or "{}")
        seconds = meta.get("wall_time_s") if isinstance(meta, dict) else None
        out.append({**r, "values": json.loads(r["values_json"]), "train_seconds": seconds})
    return out


def performance(cat: Catalog, experiment: str) -> dict[tuple[str, str, str], float | None]:
    """(checkpoint, split, name) -> value from the latest performance run of each checkpoint."""
    rows = cat.query(
        f"SELECT p.checkpoint, p.split, p.name, p.value FROM performance p JOIN ({_LATEST}) r ON r.id = p.run_id",
        (experiment, "performance"),
    )
    return {(r["checkpoint"], r["split"], r["name"]): r["value"] for r in rows}


def hessian(cat: Catalog, experiment: str) -> dict[str, dict[str, float | None]]:
    """checkpoint -> {"top": largest eigenvalue, "trace": Hutchinson estimate} from its latest Hessian run."""
    out: dict[str, dict[str, float | None]] = {}
    for r in cat.query(
        f"SELECT h.checkpoint, h.value FROM hessian_eigenvalues h JOIN ({_LATEST}) r ON r.id = h.run_id "
        "WHERE h.which = 'largest' AND h.rank = 0",
        (experiment, "hessian"),
    ):
        out.setdefault(r["checkpoint"], {})["top"] = r["value"]
    for r in cat.query(
        f"SELECT t.checkpoint, t.estimate FROM hessian_trace t JOIN ({_LATEST}) r ON r.id = t.run_id", (experiment, "hessian")
    ):
        out.setdefault(r["checkpoint"], {})["trace"] = r["estimate"]
    return out


def landscapes(cat: Catalog, experiment: str) -> list[dict[str, Any]]:
    """Every done 2-D landscape with its topology summary: checkpoint, landscape id, directions, normalisation,
    span, span mode, grid range and centre loss, minima (all and above the threshold), max persistence."""
    return cat.query(
        "SELECT l.id, l.checkpoint, l.directions, l.normalization, l.span, l.span_mode, l.steps, l.centre_loss, l.theta_norm, "
        "l.direction_source, s.threshold, s.n_minima, s.n_minima_above, s.max_persistence, s.total_persistence, "
        "s.grid_min, s.grid_max FROM landscapes l JOIN metric_runs lr ON lr.id = l.run_id "
        "JOIN experiments e ON e.id = lr.experiment_id "
        "LEFT JOIN landscape_summaries s ON s.landscape_id = l.id "
        "WHERE e.name = ? AND lr.status = 'done' AND l.dims = 2 AND l.samples = 0 ORDER BY l.checkpoint, l.directions",
        (experiment,),
    )


def pair_metrics(cat: Catalog, experiment: str) -> list[dict[str, Any]]:
    """(checkpoint_a, checkpoint_b, metric, curve, quantity, value) of the latest connectivity and CKA runs."""
    rows: list[dict[str, Any]] = []
    for metric in ("connectivity", "cka"):
        rows += cat.query(
            "SELECT p.checkpoint_a, p.checkpoint_b, p.metric, p.curve, p.quantity, p.value, p.run_id "
            f"FROM pair_metrics p JOIN ({_LATEST}) r ON r.id = p.run_id",
            (experiment, metric),
        )
    return rows


def compute_seconds(cat: Catalog, experiment: str) -> dict[str, float]:
    """metric -> summed wall seconds of its done runs in ``experiment``."""
    rows = cat.query(
        "SELECT r.metric, SUM(r.wall_seconds) AS seconds FROM metric_runs r JOIN experiments e ON e.id = r.experiment_id "
        "WHERE e.name = ? AND r.status = 'done' GROUP BY r.metric ORDER BY r.metric",
        (experiment,),
    )
    return {r["metric"]: float(r["seconds"] or 0.0) for r in rows}
