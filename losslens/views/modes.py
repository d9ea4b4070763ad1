"""The semi-global view: the modes (seeds) of one setting, placed by MDS on 1 − CKA.

Links between modes show mode connectivity of the fitted curve, "well" or "poor" by the
taxonomy's own rule (mc ≥ −ε, Yang et al.), so the map, the pages and the phases agree. Each mode is a glyph: radial bars of its top-10 Hessian eigenvalues and an outer
ring of performance metrics. A bar chart of the modes' performance beside the map shares the
click selection keyed on ``checkpoint``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from losslens.store import reads
from losslens.taxonomy.rules import well_connected
from losslens.views.source import Data, Row, Rows, finite
from losslens.views.spec import WELL_POOR_SCALE, chart

# Performance shown per mode: (split, name) and a label. Lower is better for all of them.
RING = [
    ("train", "loss", "train loss"),
    ("train", "error", "train error"),
    ("test", "error", "test error"),
    ("eval", "rel_l2", "rel. L2 error"),
    ("eval", "linf", "L∞ error"),
]
TOP_K = 10


def modes_rows(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """One row per mode: MDS position (None before the similarity metric ran), performance, top eigenvalue."""
    found = reads.mode_positions(conn, setting_id)
    perf: dict[str, dict[str, float]] = {}
    for row in reads.setting_performance(conn, setting_id):
        perf.setdefault(row["checkpoint"], {})[f"{row['split']}_{row['name']}"] = finite(row["value"])
    top = {row["checkpoint"]: finite(row["value"]) for row in reads.setting_eigenvalues(conn, setting_id, 1)}
    for mode in found:
        values = perf.get(mode["checkpoint"], {})
        mode["train_loss"] = values.get("train_loss")
        mode["test_error"] = values.get("test_error", values.get("eval_rel_l2"))
        mode["top_eigenvalue"] = top.get(mode["checkpoint"])
    return found


def _epsilon(conn: sqlite3.Connection, setting_id: str) -> float:
    """The ε band of the newest taxonomy run that classified this setting (0 without one)."""
    row = reads.setting_taxonomy(conn, setting_id)
    if row is None or not row["thresholds_json"]:
        return 0.0
    return float(json.loads(row["thresholds_json"]).get("mc", {}).get("epsilon", 0.0))


def connectivity_rows(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """One row per connected pair of the setting: ``mc`` of the fitted curve (the quantity the taxonomy
    averages), named in ``curve``; ``mc_linear`` of the straight line beside it when computed; ``link``
    "well" or "poor" by the taxonomy's own rule (:func:`losslens.taxonomy.rules.well_connected`, with the
    ε of the taxonomy run); ``quantity`` what mc is measured on (error or loss)."""
    epsilon = _epsilon(conn, setting_id)
    pairs: dict[tuple[str, str], Row] = {}
    for r in reads.setting_pair_metrics(conn, setting_id, "mc"):
        fitted = json.loads(r["params_json"]).get("curve")
        row = pairs.setdefault(
            (r["checkpoint_a"], r["checkpoint_b"]), {"checkpoint_a": r["checkpoint_a"], "checkpoint_b": r["checkpoint_b"]}
        )
        if r["curve"] == fitted:
            row.update(curve=r["curve"], quantity=r["quantity"], mc=finite(r["value"]))
        if r["curve"] == "linear":
            row["mc_linear"] = finite(r["value"])
    out = []
    for row in pairs.values():
        if "curve" not in row:
            continue
        row.setdefault("mc_linear", None)
        row["link"] = "well" if well_connected(row["mc"], epsilon) else "poor"
        out.append(row)
    return out


def link_rows(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """mc links between the setting's modes (:func:`connectivity_rows`), with both ends' MDS positions."""
    where = {m["checkpoint"]: m for m in reads.mode_positions(conn, setting_id)}
    rows = []
    for link in connectivity_rows(conn, setting_id):
        pa, pb = where.get(link["checkpoint_a"]), where.get(link["checkpoint_b"])
        if pa is None or pb is None or pa["x"] is None or pb["x"] is None:
            continue
        rows.append(
            {
                **link,
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
    modes = [m for m in reads.mode_positions(conn, setting_id) if m["x"] is not None]
    at = {m["checkpoint"]: m for m in modes}
    rows: Rows = []
    for row in reads.setting_eigenvalues(conn, setting_id, TOP_K):
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
    for row in reads.setting_performance(conn, setting_id):
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
