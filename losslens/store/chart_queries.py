"""Named reads for the scales, thresholds and provenance that charts state.

A chart that reads true needs more than its rows: the MDS eigenvalues (is the second axis
noise?), the experiment-wide ranges behind a common scale, the taxonomy's thresholds, the
topology's simplification threshold, the Hessian trace and how a landscape was made. Each
function is one parameterised query on a (read-only) connection, newest done run first.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def _rows(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def setting_run_artifacts(conn: sqlite3.Connection, metric: str, setting_id: str) -> dict[str, str]:
    """Artifact sha256 by role name, of the newest done run of a setting-scoped ``metric``; {} when none."""
    rows = _rows(
        conn,
        """SELECT ra.name, ra.artifact FROM run_artifacts ra WHERE ra.run_id = (
               SELECT id FROM metric_runs WHERE metric = ? AND setting_id = ? AND status = 'done'
               ORDER BY finished_at DESC LIMIT 1)""",
        (metric, setting_id),
    )
    return {r["name"]: r["artifact"] for r in rows}


def experiment_of_setting(conn: sqlite3.Connection, setting_id: str) -> str | None:
    row = conn.execute("SELECT experiment_id FROM settings WHERE id = ?", (setting_id,)).fetchone()
    return row[0] if row else None


def mds_extents(conn: sqlite3.Connection, experiment_id: str) -> dict[str, float]:
    """Largest |MDS coordinate| of each setting of an experiment (newest similarity run per setting)."""
    rows = _rows(
        conn,
        """SELECT s.id AS setting_id, max(max(abs(d.x), abs(d.y))) AS extent
           FROM settings s JOIN mds_coords d ON d.setting_id = s.id AND d.run_id = (
               SELECT d2.run_id FROM mds_coords d2 JOIN metric_runs r ON r.id = d2.run_id
               WHERE d2.setting_id = s.id AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1)
           WHERE s.experiment_id = ? GROUP BY s.id""",
        (experiment_id,),
    )
    return {r["setting_id"]: float(r["extent"]) for r in rows if r["extent"] is not None}


def performance_ranges(conn: sqlite3.Connection, experiment_id: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(min, max) of each (split, name) performance value over an experiment's checkpoints
    (newest performance run of each checkpoint), finite values only."""
    rows = _rows(
        conn,
        """SELECT p.split, p.name, min(p.value) AS lo, max(p.value) AS hi
           FROM performance p JOIN metric_runs r ON r.id = p.run_id
           WHERE r.experiment_id = ? AND r.metric = 'performance' AND r.status = 'done' AND p.value IS NOT NULL
             AND r.id = (SELECT r2.id FROM metric_runs r2 WHERE r2.metric = 'performance' AND r2.status = 'done'
                         AND r2.checkpoint = r.checkpoint ORDER BY r2.finished_at DESC LIMIT 1)
           GROUP BY p.split, p.name""",
        (experiment_id,),
    )
    return {(r["split"], r["name"]): (float(r["lo"]), float(r["hi"])) for r in rows}


def top_eigenvalue_range(conn: sqlite3.Connection, experiment_id: str, top_k: int) -> tuple[float, float] | None:
    """(min, max) of the positive top-``top_k`` Hessian eigenvalues over an experiment's checkpoints
    (newest hessian run of each), or None when none is positive."""
    row = conn.execute(
        """SELECT min(e.value), max(e.value) FROM hessian_eigenvalues e JOIN metric_runs r ON r.id = e.run_id
           WHERE r.experiment_id = ? AND e.which = 'largest' AND e.rank < ? AND e.value > 0
             AND r.id = (SELECT r2.id FROM metric_runs r2 WHERE r2.metric = 'hessian' AND r2.status = 'done'
                         AND r2.checkpoint = r.checkpoint ORDER BY r2.finished_at DESC LIMIT 1)""",
        (experiment_id, top_k),
    ).fetchone()
    return (float(row[0]), float(row[1])) if row and row[0] is not None else None


def taxonomy_thresholds(conn: sqlite3.Connection, experiment_id: str) -> dict[str, Any]:
    """The thresholds of the newest done taxonomy run of an experiment (see ``taxonomy.rules``); {} when none."""
    row = conn.execute(
        """SELECT t.thresholds_json FROM taxonomy t JOIN metric_runs r ON r.id = t.run_id
           WHERE r.experiment_id = ? AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1""",
        (experiment_id,),
    ).fetchone()
    return json.loads(row[0]) if row else {}


def topology_summary(conn: sqlite3.Connection, landscape_id: str) -> dict[str, Any] | None:
    """The newest done topology summary of a landscape: ``threshold`` (loss units), ``n_minima``,
    ``n_minima_above`` and the rest of ``landscape_summaries``; None when not computed."""
    rows = _rows(
        conn,
        """SELECT s.* FROM landscape_summaries s JOIN metric_runs r ON r.id = s.run_id
           WHERE s.landscape_id = ? AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1""",
        (landscape_id,),
    )
    return rows[0] if rows else None


def hessian_summary(conn: sqlite3.Connection, checkpoint: str) -> dict[str, Any] | None:
    """λmax, λmin (when computed) and the Hutchinson trace ± its standard error of the newest done
    ``hessian`` run of a checkpoint; None when not computed. Keys: ``top_eigenvalue``,
    ``smallest_eigenvalue``, ``trace``, ``trace_std_error``, ``trace_probes``, ``n_largest``, ``n_smallest``."""
    run = conn.execute(
        "SELECT id FROM metric_runs WHERE metric = 'hessian' AND status = 'done' AND checkpoint = ? AND checkpoint_b IS NULL "
        "ORDER BY finished_at DESC LIMIT 1",
        (checkpoint,),
    ).fetchone()
    if run is None:
        return None
    eig = _rows(
        conn,
        "SELECT which, count(*) AS n, max(value) AS hi, min(value) AS lo FROM hessian_eigenvalues WHERE run_id = ? GROUP BY which",
        (run[0],),
    )
    by = {r["which"]: r for r in eig}
    trace = _rows(conn, "SELECT estimate, std_error, probes FROM hessian_trace WHERE run_id = ?", (run[0],))
    return {
        "top_eigenvalue": by["largest"]["hi"] if "largest" in by else None,
        "smallest_eigenvalue": by["smallest"]["lo"] if "smallest" in by else None,
        "n_largest": by["largest"]["n"] if "largest" in by else 0,
        "n_smallest": by["smallest"]["n"] if "smallest" in by else 0,
        "trace": trace[0]["estimate"] if trace else None,
        "trace_std_error": trace[0]["std_error"] if trace else None,
        "trace_probes": trace[0]["probes"] if trace else None,
    }


def landscape_record(conn: sqlite3.Connection, checkpoint: str, dims: int = 2, grid_only: bool = False) -> dict[str, Any] | None:
    """The newest done ``dims``-D landscape of a checkpoint (a full grid before a sampled one; only grids
    with ``grid_only``), with its provenance (directions, normalization, orthogonalized, span, span_mode,
    theta_norm, steps, samples, seed)."""
    rows = _rows(
        conn,
        """SELECT l.id, l.checkpoint, l.directions, l.direction_source, l.normalization, l.orthogonalized, l.seed,
                  l.dims, l.steps, l.samples, l.span, l.span_mode, l.theta_norm, l.half_widths_json,
                  l.direction_norms_json, l.centre_loss, l.grid_artifact, l.coordinates_artifact
           FROM landscapes l JOIN metric_runs r ON r.id = l.run_id
           WHERE l.checkpoint = ? AND l.dims = ? AND r.status = 'done' AND (? = 0 OR l.samples = 0)
           ORDER BY l.samples = 0 DESC, r.finished_at DESC LIMIT 1""",
        (checkpoint, dims, int(grid_only)),
    )
    return rows[0] if rows else None


def nd_landscape_record(conn: sqlite3.Connection, checkpoint: str) -> dict[str, Any] | None:
    """The newest done 3-D or 4-D full-grid landscape of a checkpoint (the columns of :func:`landscape_record`),
    or None: the landscape the n-D views (slices through θ, its merge tree and persistence) draw."""
    rows = _rows(
        conn,
        """SELECT l.id, l.checkpoint, l.directions, l.direction_source, l.normalization, l.orthogonalized, l.seed,
                  l.dims, l.steps, l.samples, l.span, l.span_mode, l.theta_norm, l.half_widths_json,
                  l.direction_norms_json, l.centre_loss, l.grid_artifact, l.coordinates_artifact
           FROM landscapes l JOIN metric_runs r ON r.id = l.run_id
           WHERE l.checkpoint = ? AND l.dims IN (3, 4) AND l.samples = 0 AND r.status = 'done'
           ORDER BY r.finished_at DESC, r.id DESC LIMIT 1""",
        (checkpoint,),
    )
    return rows[0] if rows else None


def setting_landscape_kinds(conn: sqlite3.Connection, setting_id: str) -> dict[str, dict[str, Any]]:
    """For each mode of a setting, in one query: ``has_2d`` (it has a landscape :func:`losslens.store.reads.landscape`
    finds: a done 2-D grid among the newest runs per parameter set) and ``nd_dims`` (the dims of its
    :func:`nd_landscape_record`, None without one). Keyed by checkpoint sha256."""
    rows = conn.execute(
        """SELECT c.sha256,
                  EXISTS (SELECT 1 FROM landscapes l JOIN latest_runs_by_params r ON r.id = l.run_id
                          WHERE l.checkpoint = c.sha256 AND l.dims = 2 AND l.samples = 0) AS has_2d,
                  (SELECT l.dims FROM landscapes l JOIN metric_runs r ON r.id = l.run_id
                   WHERE l.checkpoint = c.sha256 AND l.dims IN (3, 4) AND l.samples = 0 AND r.status = 'done'
                   ORDER BY r.finished_at DESC, r.id DESC LIMIT 1) AS nd_dims
           FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ?""",
        (setting_id,),
    ).fetchall()
    return {sha: {"has_2d": bool(has_2d), "nd_dims": nd_dims} for sha, has_2d, nd_dims in rows}


def landscape_loss_range(conn: sqlite3.Connection, landscape_id: str) -> tuple[float, float] | None:
    """(min, max) of a landscape's finite positive losses (the domain of its log colour scale), or None."""
    row = conn.execute(
        "SELECT min(loss), max(loss) FROM landscape_points WHERE run_id = ? AND loss > 0", (landscape_id,)
    ).fetchone()
    return (float(row[0]), float(row[1])) if row and row[0] is not None else None


def landscape_dims(conn: sqlite3.Connection, checkpoint: str) -> list[int]:
    """The dimensions (1–4) of the done landscapes a checkpoint has."""
    rows = conn.execute(
        """SELECT DISTINCT l.dims FROM landscapes l JOIN metric_runs r ON r.id = l.run_id
           WHERE l.checkpoint = ? AND r.status = 'done' ORDER BY l.dims""",
        (checkpoint,),
    ).fetchall()
    return [r[0] for r in rows]


def loss_range_of_landscapes(conn: sqlite3.Connection, checkpoints: list[str]) -> tuple[float, float] | None:
    """(min, max) of the finite positive losses over the newest 2-D grid landscape of each checkpoint:
    the domain of a colour scale shared by several landscapes on one page."""
    lo: float | None = None
    hi: float | None = None
    for sha in checkpoints:
        record = landscape_record(conn, sha, 2, grid_only=True)
        if record is None:
            continue
        found = landscape_loss_range(conn, record["id"])
        if found is not None:
            lo = found[0] if lo is None else min(lo, found[0])
            hi = found[1] if hi is None else max(hi, found[1])
    return (float(lo), float(hi)) if lo is not None and hi is not None else None


def topology_categories(conn: sqlite3.Connection, landscape_id: str) -> dict[str, list[Any]]:
    """What the newest topology run of a landscape holds, for legends that list only present categories:
    ``dims`` (homology dimensions of its persistence pairs) and ``kinds`` (merge-tree node kinds)."""
    run = conn.execute(
        """SELECT s.run_id FROM landscape_summaries s JOIN metric_runs r ON r.id = s.run_id
           WHERE s.landscape_id = ? AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1""",
        (landscape_id,),
    ).fetchone()
    if run is None:
        return {"dims": [], "kinds": []}
    dims = [r[0] for r in conn.execute("SELECT DISTINCT dim FROM persistence_pairs WHERE run_id = ? ORDER BY dim", run)]
    kinds = [r[0] for r in conn.execute("SELECT DISTINCT kind FROM merge_tree_nodes WHERE run_id = ?", run)]
    return {"dims": dims, "kinds": kinds}
