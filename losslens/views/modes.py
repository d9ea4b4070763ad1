"""The semi-global view: the modes (seeds) of one setting, placed by MDS on 1 − CKA.

Links between modes show mode connectivity, "well" when mc > 0 and "poor" otherwise
(LossLens). Each mode is a glyph: radial bars of its top-10 Hessian eigenvalues and an outer
ring of performance metrics. A bar chart of the modes' performance beside the map shares the
click selection keyed on ``checkpoint``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from losslens.views.source import Data, Rows, fetch, finite
from losslens.views.spec import WELL_POOR_SCALE, chart

MODES_SQL = """
SELECT c.sha256 AS checkpoint, c.name, c.seed, d.x, d.y
FROM checkpoints c JOIN models m ON m.id = c.model_id
LEFT JOIN mds_coords d ON d.checkpoint = c.sha256 AND d.run_id = (
    SELECT d2.run_id FROM mds_coords d2 JOIN metric_runs r ON r.id = d2.run_id
    WHERE d2.setting_id = ? AND r.status = 'done' ORDER BY r.finished_at DESC LIMIT 1)
WHERE m.setting_id = ?
ORDER BY c.seed, c.name
"""

# The latest done performance run of each checkpoint of the setting.
PERFORMANCE_SQL = """
SELECT p.checkpoint, p.split, p.name, p.value
FROM performance p
WHERE p.run_id IN (
    SELECT (SELECT r.id FROM metric_runs r WHERE r.metric = 'performance' AND r.status = 'done'
            AND r.checkpoint = c.sha256 ORDER BY r.finished_at DESC LIMIT 1)
    FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ?)
"""

LINKS_SQL = """
SELECT pm.checkpoint_a, pm.checkpoint_b, pm.value AS mc, pm.curve, pm.quantity
FROM pair_metrics pm JOIN metric_runs r ON r.id = pm.run_id
WHERE pm.metric = 'mc' AND r.status = 'done' AND r.setting_id = ?
ORDER BY r.finished_at
"""

EIGEN_SQL = """
SELECT e.checkpoint, e.rank, e.value
FROM hessian_eigenvalues e
WHERE e.which = 'largest' AND e.rank < ? AND e.run_id IN (
    SELECT (SELECT r.id FROM metric_runs r WHERE r.metric = 'hessian' AND r.status = 'done'
            AND r.checkpoint = c.sha256 ORDER BY r.finished_at DESC LIMIT 1)
    FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ?)
ORDER BY e.checkpoint, e.rank
"""

# Performance shown per mode: (split, name) and a label. Lower is better for all of them.
RING = [
    ("train", "loss", "train loss"),
    ("train", "error", "train error"),
    ("test", "error", "test error"),
    ("eval", "rel_l2", "rel. L2 error"),
    ("eval", "linf", "L∞ error"),
]
TOP_K = 10


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _links(conn: sqlite3.Connection, setting_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in fetch(conn, LINKS_SQL, (setting_id,)):
        latest[(row["checkpoint_a"], row["checkpoint_b"])] = row  # ordered by time: the latest wins
    return latest


def modes_rows(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """One row per mode: MDS position (None before the similarity metric ran), performance, top eigenvalue."""
    modes = fetch(conn, MODES_SQL, (setting_id, setting_id))
    perf: dict[str, dict[str, float]] = {}
    for row in fetch(conn, PERFORMANCE_SQL, (setting_id,)):
        perf.setdefault(row["checkpoint"], {})[f"{row['split']}_{row['name']}"] = finite(row["value"])
    top: dict[str, float] = {}
    if has_table(conn, "hessian_eigenvalues"):
        for row in fetch(conn, EIGEN_SQL, (1, setting_id)):
            top[row["checkpoint"]] = finite(row["value"])
    for mode in modes:
        values = perf.get(mode["checkpoint"], {})
        mode["train_loss"] = values.get("train_loss")
        mode["test_error"] = values.get("test_error", values.get("eval_rel_l2"))
        mode["top_eigenvalue"] = top.get(mode["checkpoint"])
    return modes


def link_rows(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """mc links between the setting's modes, with both ends' MDS positions."""
    where = {m["checkpoint"]: m for m in fetch(conn, MODES_SQL, (setting_id, setting_id))}
    rows = []
    for (a, b), link in _links(conn, setting_id).items():
        pa, pb = where.get(a), where.get(b)
        if pa is None or pb is None or pa["x"] is None or pb["x"] is None:
            continue
        mc = finite(link["mc"])
        rows.append(
            {
                "checkpoint_a": a,
                "checkpoint_b": b,
                "mc": mc,
                "link": "well" if mc is not None and mc > 0 else "poor",
                "x": pa["x"],
                "y": pa["y"],
                "x2": pb["x"],
                "y2": pb["y"],
                "name_a": pa["name"],
                "name_b": pb["name"],
            }
        )
    return rows


def glyph_rows(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """Glyph pieces at each mode's position: ``bar`` rows (top-10 eigenvalues, one angular slot each)
    and ``ring`` rows (performance, scaled 0 = best to 1 = worst among the setting's modes)."""
    modes = [m for m in fetch(conn, MODES_SQL, (setting_id, setting_id)) if m["x"] is not None]
    at = {m["checkpoint"]: m for m in modes}
    rows: Rows = []
    if has_table(conn, "hessian_eigenvalues"):
        for row in fetch(conn, EIGEN_SQL, (TOP_K, setting_id)):
            mode = at.get(row["checkpoint"])
            if mode is None or finite(row["value"]) is None:
                continue
            slot = 2 * math.pi / TOP_K
            rows.append(
                {
                    "piece": "bar",
                    "checkpoint": row["checkpoint"],
                    "x": mode["x"],
                    "y": mode["y"],
                    "rank": row["rank"],
                    "value": row["value"],
                    "theta": row["rank"] * slot,
                    "theta2": (row["rank"] + 0.8) * slot,
                }
            )
    perf: dict[tuple[str, str], dict[str, float]] = {}
    for row in fetch(conn, PERFORMANCE_SQL, (setting_id,)):
        if row["checkpoint"] in at and finite(row["value"]) is not None:
            perf.setdefault((row["split"], row["name"]), {})[row["checkpoint"]] = row["value"]
    shown = [(key, label) for *key, label in RING if tuple(key) in perf]
    for i, ((split, name), label) in enumerate(shown):
        values = perf[(split, name)]
        lo, hi = min(values.values()), max(values.values())
        slot = 2 * math.pi / len(shown)
        for sha, value in values.items():
            mode = at[sha]
            rows.append(
                {
                    "piece": "ring",
                    "checkpoint": sha,
                    "x": mode["x"],
                    "y": mode["y"],
                    "metric": label,
                    "value": value,
                    "badness": 0.5 if hi == lo else (value - lo) / (hi - lo),
                    "theta": i * slot + 0.04,
                    "theta2": (i + 1) * slot - 0.04,
                }
            )
    return rows


SELECTION = {"name": "mode", "select": {"type": "point", "fields": ["checkpoint"], "on": "click"}}


def modes_spec(
    modes: Data, links: Data, glyphs: Data, selected: str | None = None, pair_href: str | None = None
) -> dict[str, Any]:
    """MDS map of the modes with mc links and glyphs, beside a per-mode performance chart.

    With ``pair_href`` (an address prefix), a click on a link opens ``{pair_href}{a}/{b}``, the
    pair view; ``selected`` pre-selects a mode.
    """
    param: dict[str, Any] = {**SELECTION, "views": ["mode_centres", "mode_bars"]}
    if selected:
        param["value"] = [{"checkpoint": selected}]
    xy = {
        "x": {"field": "x", "type": "quantitative", "title": "MDS 1", "scale": {"zero": False, "padding": 40}},
        "y": {"field": "y", "type": "quantitative", "title": "MDS 2", "scale": {"zero": False, "padding": 40}},
    }
    link_layer = {
        "data": links,
        "mark": {"type": "rule", "strokeWidth": 2.5, "cursor": "pointer"},
        "encoding": {
            **xy,
            "x2": {"field": "x2"},
            "y2": {"field": "y2"},
            "color": {"field": "link", "type": "nominal", "scale": WELL_POOR_SCALE, "title": "connectivity"},
            "strokeDash": {"condition": {"test": "datum.link === 'poor'", "value": [5, 3]}, "value": [1, 0]},
            "tooltip": [
                {"field": "name_a", "title": "mode a"},
                {"field": "name_b", "title": "mode b"},
                {"field": "mc", "format": ".3g"},
            ],
            **({"href": {"field": "href"}} if pair_href else {}),
        },
    }
    if pair_href:
        link_layer["transform"] = [
            {"calculate": f"{json.dumps(pair_href)} + datum.checkpoint_a + '/' + datum.checkpoint_b", "as": "href"}
        ]
    bars = {
        "data": glyphs,
        "transform": [{"filter": "datum.piece === 'bar'"}],
        "mark": {"type": "arc", "stroke": "white", "strokeWidth": 0.3},
        "encoding": {
            **xy,
            "theta": {"field": "theta", "type": "quantitative", "scale": None},
            "theta2": {"field": "theta2"},
            "radius": {
                "field": "value",
                "type": "quantitative",
                "title": "Hessian eigenvalue",
                "scale": {"type": "symlog", "range": [9, 30], "zero": True},
            },
            "radius2": {"value": 9},
            "color": {"value": "#555"},
            "tooltip": [{"field": "rank", "title": "eigenvalue #"}, {"field": "value", "title": "λ", "format": ".4g"}],
        },
    }
    ring = {
        "data": glyphs,
        "transform": [{"filter": "datum.piece === 'ring'"}],
        "mark": {"type": "arc"},
        "encoding": {
            **xy,
            "theta": {"field": "theta", "type": "quantitative", "scale": None},
            "theta2": {"field": "theta2"},
            "radius": {"value": 38},
            "radius2": {"value": 33},
            "color": {
                "field": "badness",
                "type": "quantitative",
                "title": "performance (0 best, 1 worst)",
                "scale": {"scheme": "redyellowgreen", "reverse": True, "domain": [0, 1]},
            },
            "tooltip": [{"field": "metric"}, {"field": "value", "format": ".4g"}],
        },
    }
    centres = {
        "name": "mode_centres",
        "data": modes,
        "transform": [{"filter": "isValid(datum.x)"}],
        "mark": {"type": "circle", "size": 160, "stroke": "black", "cursor": "pointer"},
        "encoding": {
            **xy,
            "fill": {"condition": {"param": "mode", "empty": False, "value": "#fdd835"}, "value": "white"},
            "strokeWidth": {"condition": {"param": "mode", "empty": False, "value": 3}, "value": 1},
            "tooltip": [
                {"field": "name", "title": "mode"},
                {"field": "seed"},
                {"field": "train_loss", "format": ".3g"},
                {"field": "test_error", "format": ".3g"},
                {"field": "top_eigenvalue", "title": "λmax", "format": ".4g"},
            ],
        },
    }
    labels = {
        "data": modes,
        "transform": [{"filter": "isValid(datum.x)"}],
        "mark": {"type": "text", "dy": -44, "fontSize": 11},
        "encoding": {**xy, "text": {"field": "name"}},
    }
    mode_map = {
        "title": "Modes: MDS on 1 − CKA",
        "width": 420,
        "height": 380,
        "layer": [link_layer, ring, bars, centres, labels],
        "resolve": {"scale": {"color": "independent", "radius": "independent"}},
    }
    bar_chart = {
        "name": "mode_bars",
        "data": modes,
        "title": "Performance per mode",
        "width": 200,
        "height": {"step": 22},
        "mark": {"type": "bar", "cursor": "pointer"},
        "encoding": {
            "y": {"field": "name", "type": "nominal", "title": None, "sort": {"field": "seed"}},
            "x": {"field": "test_error", "type": "quantitative", "title": "test error (rel. L2 for PINNs)"},
            "color": {"condition": {"param": "mode", "empty": False, "value": "#f9a825"}, "value": "#78909c"},
            "tooltip": [{"field": "name"}, {"field": "test_error", "format": ".4g"}, {"field": "train_loss", "format": ".4g"}],
        },
    }
    return chart(
        {"params": [param], "hconcat": [mode_map, bar_chart], "resolve": {"scale": {"color": "independent"}}},
        title="Semi-global: the setting's modes",
    )
