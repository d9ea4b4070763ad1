"""What a static export covers: the study tree (experiments → settings → modes → pairs), the
metric table and provenance of every subject, and, for the viewer, each view's spec and rows.

Spec and rows come from the same functions as the Datasette plugin's routes
(:func:`losslens.export.chart.spec_for` and the plugin's ``DATASETS``). For the viewer each
spec is built with placeholder sources ``{"url": "ll:<dataset>"}``; identical specs are kept
once as templates, and each view names its template and the table behind each placeholder.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from losslens import __version__
from losslens.export.chart import dataset_rows, spec_for
from losslens.export.codec import Blobs, encode_rows
from losslens.views.latest import latest_run
from losslens.views.source import Rows, fetch, finite

# Viewer views: the plugin's page specs (the local view is one linked chart there and here).
VIEWER_VIEWS = {
    "taxonomy": ("experiment",),
    "modes": ("setting",),
    "local": ("checkpoint",),
    "curve": ("a", "b"),
    "layer_cka": ("a", "b"),
    "predictions": ("a", "b"),
}
PLACEHOLDER = "ll:"


def experiments_of(conn: sqlite3.Connection, experiment_id: str | None = None) -> Rows:
    rows = fetch(conn, "SELECT id, name FROM experiments ORDER BY created_at, name")
    return [r for r in rows if experiment_id in (None, r["id"])]


def settings_of(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    rows = fetch(conn, "SELECT id, label, values_json FROM settings WHERE experiment_id = ? ORDER BY label", (experiment_id,))
    for r in rows:
        r["values"] = json.loads(r.pop("values_json") or "{}")
    return rows


def modes_of(conn: sqlite3.Connection, setting_id: str) -> Rows:
    return fetch(
        conn,
        """
        SELECT c.sha256, c.name, c.seed, c.step, c.n_params, m.name AS model
        FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ? ORDER BY c.seed, c.name""",
        (setting_id,),
    )


def pairs_of(modes: Rows) -> list[tuple[str, str]]:
    """Every two modes of a setting, in seed order: the pairs the pair views compare."""
    return list(itertools.combinations([m["sha256"] for m in modes], 2))


# ---------------------------------------------------------------------------------------------
# Metric tables: [metric, quantity, value, run id] per subject, newest done runs only.


def checkpoint_metrics(conn: sqlite3.Connection, sha: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    run = latest_run(conn, "performance", sha)
    if run:
        for r in fetch(conn, "SELECT split, name, value FROM performance WHERE run_id = ? ORDER BY split, name", (run,)):
            rows.append(["performance", f"{r['split']} {r['name']}", finite(r["value"]), run])
    run = latest_run(conn, "hessian", sha)
    if run:
        for r in fetch(conn, "SELECT which, value FROM hessian_eigenvalues WHERE run_id = ? AND rank = 0", (run,)):
            rows.append(["hessian", "λmax" if r["which"] == "largest" else "λmin", finite(r["value"]), run])
        for r in fetch(conn, "SELECT estimate FROM hessian_trace WHERE run_id = ?", (run,)):
            rows.append(["hessian", "trace", finite(r["estimate"]), run])
    for r in fetch(
        conn,
        """
            SELECT s.run_id, s.n_minima, s.n_minima_above, s.total_persistence, s.max_persistence, s.centre_loss, s.grid_min,
                   s.grid_max, s.smad FROM landscape_summaries s JOIN metric_runs r ON r.id = s.run_id
            WHERE s.checkpoint = ? AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1""",
        (sha,),
    ):
        run = r.pop("run_id")
        rows += [["topology", key.replace("_", " "), finite(value), run] for key, value in r.items()]
    return rows


def setting_metrics(conn: sqlite3.Connection, setting_id: str) -> list[list[Any]]:
    found = fetch(
        conn,
        """
        SELECT t.run_id, t.phase, t.mc, t.cka, t.log_top_eigenvalue, t.log_trace, t.train_loss, t.train_error, t.test_error,
               t.n_checkpoints, t.n_pairs
        FROM taxonomy t JOIN metric_runs r ON r.id = t.run_id
        WHERE t.setting_id = ? AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1""",
        (setting_id,),
    )
    if not found:
        return []
    row = found[0]
    run = row.pop("run_id")
    return [["taxonomy", key.replace("_", " "), finite(value), run] for key, value in row.items() if value is not None]


def pair_metrics(conn: sqlite3.Connection, a: str, b: str) -> list[list[Any]]:
    """mc per curve and CKA, from the newest run of each (metric, curve, quantity)."""
    latest: dict[tuple[str, str | None, str], list[Any]] = {}
    for r in fetch(
        conn,
        """
            SELECT r.metric AS run_metric, pm.metric, pm.curve, pm.quantity, pm.value, pm.run_id
            FROM pair_metrics pm JOIN metric_runs r ON r.id = pm.run_id
            WHERE r.status = 'done' AND ((pm.checkpoint_a = ? AND pm.checkpoint_b = ?) OR (pm.checkpoint_a = ? AND pm.checkpoint_b = ?))
            ORDER BY r.finished_at""",
        (a, b, b, a),
    ):
        what = f"{r['metric']} ({r['curve']}, {r['quantity']})" if r["curve"] else f"{r['metric']} ({r['quantity']})"
        latest[(r["metric"], r["curve"], r["quantity"])] = [r["run_metric"], what, finite(r["value"]), r["run_id"]]
    return list(latest.values())


def runs_of(conn: sqlite3.Connection, where: str, params: tuple) -> dict[str, dict[str, Any]]:
    """Provenance of the newest done run of each metric matching ``where``."""
    rows = fetch(
        conn,
        f"""SELECT id, metric, params_json, code_version, device, wall_seconds, finished_at FROM metric_runs
                           WHERE status = 'done' AND {where} ORDER BY finished_at""",
        params,
    )
    newest = {r["metric"]: r for r in rows}
    return {r.pop("id"): {**r, "params": json.loads(r.pop("params_json"))} for r in newest.values()}


def hint(metrics: list[list[Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """The first of ``names`` found in a metric table: the explorer's one-number hint."""
    found = {q: v for _, q, v, _ in metrics if v is not None}
    for name in names:
        if name in found:
            return {"name": name, "value": found[name]}
    return {}


# ---------------------------------------------------------------------------------------------
# The viewer's data.


class ViewStore:
    """Specs as shared templates plus encoded tables, for the viewer."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.blobs = Blobs()
        self.templates: list[dict[str, Any]] = []
        self._template_index: dict[str, int] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}

    def add(self, view: str, args: dict[str, str]) -> bool:
        """Store ``view`` for ``args`` when it has rows to draw; returns whether it did."""
        used: dict[str, str] = {}
        n_rows = 0

        def url(name: str, **a: str) -> dict[str, str]:
            nonlocal n_rows
            key = "|".join([name, *a.values()])
            if key not in self.tables:
                self.tables[key] = encode_rows(dataset_rows(self.conn, name, a), self.blobs)
            n_rows += self.tables[key]["n"]
            used[PLACEHOLDER + name] = key
            return {"url": PLACEHOLDER + name}

        spec = spec_for(self.conn, view, args, url)
        if n_rows == 0:
            return False
        text = json.dumps(spec, sort_keys=True, allow_nan=False)
        if text not in self._template_index:
            self._template_index[text] = len(self.templates)
            self.templates.append(spec)
        self.views[":".join([view, *args.values()])] = {"t": self._template_index[text], "data": used}
        return True


def viewer_data(conn: sqlite3.Connection, catalog_path: Path, experiment_id: str | None = None) -> dict[str, Any]:
    """Everything the static viewer shows, as one JSON-able dict."""
    store = ViewStore(conn)
    experiments, settings, checkpoints, pairs, runs = [], {}, {}, {}, {}
    for e in experiments_of(conn, experiment_id):
        store.add("taxonomy", {"experiment": e["id"]})
        runs.update(exp_runs := runs_of(conn, "experiment_id = ? AND scope = 'experiment'", (e["id"],)))
        e_settings = settings_of(conn, e["id"])
        experiments.append({**e, "settings": [s["id"] for s in e_settings], "runs": list(exp_runs)})
        for s in e_settings:
            modes = modes_of(conn, s["id"])
            metrics = setting_metrics(conn, s["id"])
            store.add("modes", {"setting": s["id"]})
            runs.update(s_runs := runs_of(conn, "setting_id = ? AND scope = 'setting'", (s["id"],)))
            s_pairs = pairs_of(modes)
            settings[s["id"]] = {
                **s,
                "experiment": e["id"],
                "modes": [m["sha256"] for m in modes],
                "metrics": metrics,
                "phase": hint(metrics, ("phase",)).get("value"),
                "hint": hint(metrics, ("mc", "log top eigenvalue")),
                "pairs": ["~".join(p) for p in s_pairs],
                "runs": list(s_runs),
            }
            for m in modes:
                sha = m.pop("sha256")
                metrics = checkpoint_metrics(conn, sha)
                store.add("local", {"checkpoint": sha})
                runs.update(c_runs := runs_of(conn, "checkpoint = ? AND checkpoint_b IS NULL", (sha,)))
                checkpoints[sha] = {
                    **m,
                    "setting": s["id"],
                    "metrics": metrics,
                    "runs": list(c_runs),
                    "hint": hint(metrics, ("eval rel_l2", "test error", "train loss")),
                }
            for a, b in s_pairs:
                views = [v for v in ("curve", "layer_cka", "predictions") if store.add(v, {"a": a, "b": b})]
                p_runs = runs_of(
                    conn, "((checkpoint = ? AND checkpoint_b = ?) OR (checkpoint = ? AND checkpoint_b = ?))", (a, b, b, a)
                )
                runs.update(p_runs)
                metrics = pair_metrics(conn, a, b)
                pairs[f"{a}~{b}"] = {
                    "a": a,
                    "b": b,
                    "setting": s["id"],
                    "views": views,
                    "metrics": metrics,
                    "runs": list(p_runs),
                    "hint": hint(metrics, ("mc (bezier, loss)", "mc (bezier, error)")),
                }
    return {
        "catalog": Path(catalog_path).name,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "counts": {
            "experiments": len(experiments),
            "settings": len(settings),
            "checkpoints": len(checkpoints),
            "pairs": len(pairs),
            "runs": len(runs),
        },
        "experiments": experiments,
        "settings": settings,
        "checkpoints": checkpoints,
        "pairs": pairs,
        "runs": runs,
        "templates": store.templates,
        "views": store.views,
        "tables": store.tables,
        "blobs": store.blobs.items,
    }
