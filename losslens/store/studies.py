"""Read-only queries behind ``docs/case-studies.md``: per-checkpoint values, landscapes by their directions and
span, pair metrics (mc, fit convergence, CKA), the bends' fit curves, and the compute time, devices and dates of an
experiment.

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


#: The latest done run of a metric per subject, whatever its parameters: a pair refitted with other options (a longer
#: bend training, another plateau window) reports the refit, not the mean of both.
_LATEST_PER_SUBJECT = """
SELECT r.* FROM metric_runs r JOIN experiments e ON e.id = r.experiment_id
WHERE e.name = ? AND r.metric = ? AND r.status = 'done'
  AND r.finished_at = (SELECT MAX(r2.finished_at) FROM metric_runs r2
                       WHERE r2.metric = r.metric AND r2.subject = r.subject AND r2.status = 'done')
"""


def pair_metrics(cat: Catalog, experiment: str) -> list[dict[str, Any]]:
    """(checkpoint_a, checkpoint_b, metric, curve, quantity, value) of each pair's latest connectivity and CKA run."""
    rows: list[dict[str, Any]] = []
    for metric in ("connectivity", "cka"):
        rows += cat.query(
            "SELECT p.checkpoint_a, p.checkpoint_b, p.metric, p.curve, p.quantity, p.value, p.run_id "
            f"FROM pair_metrics p JOIN ({_LATEST_PER_SUBJECT}) r ON r.id = p.run_id",
            (experiment, metric),
        )
    return rows


def fit_curves(cat: Catalog, experiment: str) -> list[dict[str, Any]]:
    """Each pair's latest connectivity run with a fitted bend: run id, subject, its parameters (a dict) and the path of
    its ``fit_loss`` artifact (the fit loss at each SGD/Adam step, then at each L-BFGS evaluation), relative to the
    catalog folder."""
    rows = cat.query(
        f"SELECT r.id AS run_id, r.subject, r.params_json, a.path FROM ({_LATEST_PER_SUBJECT}) r "
        "JOIN run_artifacts ra ON ra.run_id = r.id AND ra.name = 'fit_loss' JOIN artifacts a ON a.sha256 = ra.artifact "
        "ORDER BY r.subject",
        (experiment, "connectivity"),
    )
    return [{**{k: v for k, v in r.items() if k != "params_json"}, "params": json.loads(r["params_json"])} for r in rows]


def run_record(cat: Catalog, experiment: str) -> dict[str, Any]:
    """Where and when ``experiment``'s metrics ran: ``devices`` (device -> done runs), ``first`` (earliest start) and
    ``last`` (latest finish), as ISO timestamps; empty values when nothing ran."""
    devices = cat.query(
        "SELECT COALESCE(r.device, '?') AS device, COUNT(*) AS runs FROM metric_runs r "
        "JOIN experiments e ON e.id = r.experiment_id WHERE e.name = ? AND r.status = 'done' GROUP BY r.device",
        (experiment,),
    )
    span = cat.one(
        "SELECT MIN(r.started_at) AS first, MAX(r.finished_at) AS last FROM metric_runs r "
        "JOIN experiments e ON e.id = r.experiment_id WHERE e.name = ? AND r.status = 'done'",
        (experiment,),
    ) or {"first": None, "last": None}
    return {"devices": {d["device"]: d["runs"] for d in devices}, "first": span["first"], "last": span["last"]}


def compute_seconds(cat: Catalog, experiment: str) -> dict[str, float]:
    """metric -> summed wall seconds of its done runs in ``experiment``."""
    rows = cat.query(
        "SELECT r.metric, SUM(r.wall_seconds) AS seconds FROM metric_runs r JOIN experiments e ON e.id = r.experiment_id "
        "WHERE e.name = ? AND r.status = 'done' GROUP BY r.metric ORDER BY r.metric",
        (experiment,),
    )
    return {r["metric"]: float(r["seconds"] or 0.0) for r in rows}
