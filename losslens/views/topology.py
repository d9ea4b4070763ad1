"""The local view's topology: the landscape's merge tree and its persistence diagram.

The merge tree is drawn as stored by the topology metric: y = loss, x from the branch
decomposition, each edge an elbow (up its branch, then across to the node it joins). By the
elder rule, the finite H0 pairs of the diagram are the tree's (minimum, saddle) pairs, so both
panels share the ``minimum`` selection keyed on the minimum's grid ``point``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from losslens.store import reads
from losslens.views.landscape import MINIMUM
from losslens.views.source import Data, Rows, finite
from losslens.views.spec import chart


def tree_rows(conn: sqlite3.Connection, landscape_id: str) -> tuple[Rows, Rows]:
    """(nodes, segments) of the newest merge tree of a landscape; two elbow segments per edge."""
    run = reads.latest_topology_run(conn, landscape_id)
    if run is None:
        return [], []
    nodes, edges = reads.merge_tree(conn, run)
    at = {n["node"]: n for n in nodes}
    segments: Rows = []
    for e in edges:
        lo, up = at.get(e["lower"]), at.get(e["upper"])
        if lo is None or up is None:
            continue
        segments.append({"x": lo["x"], "y": lo["y"], "x2": lo["x"], "y2": up["y"], "branch": e["branch"]})
        segments.append({"x": lo["x"], "y": up["y"], "x2": up["x"], "y2": up["y"], "branch": e["branch"]})
    for n in nodes:
        n["value"] = finite(n["value"])
    return nodes, segments


def persistence_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """Pairs of the newest topology run; essential classes (death NULL) get ``essential`` = true and
    are drawn on a line above the finite deaths."""
    run = reads.latest_topology_run(conn, landscape_id)
    rows = reads.persistence_pairs(conn, run) if run else []
    deaths = [r["death"] for r in rows if r["death"] is not None] + [r["birth"] for r in rows]
    top = max(deaths) + 0.05 * (max(deaths) - min(deaths) or 1.0) if deaths else 1.0
    for r in rows:
        r["essential"] = r["death"] is None
        r["death_drawn"] = top if r["essential"] else r["death"]
        r["dimension"] = f"H{r['dim']}"
    return rows


def merge_tree_panel(nodes: Data, segments: Data) -> dict[str, Any]:
    xy = {
        "x": {"field": "x", "type": "quantitative", "axis": None, "scale": {"padding": 12}},
        "y": {"field": "y", "type": "quantitative", "title": "loss", "scale": {"zero": False}},
    }
    return {
        "title": "Merge tree",
        "width": 260,
        "height": 320,
        "layer": [
            {
                "data": segments,
                "mark": {"type": "rule", "color": "#555", "strokeWidth": 1.5},
                "encoding": {**xy, "x2": {"field": "x2"}, "y2": {"field": "y2"}},
            },
            {
                "name": "tree_minima",
                "data": nodes,
                "mark": {"type": "point", "filled": True, "size": 70, "stroke": "black", "cursor": "pointer"},
                "encoding": {
                    **xy,
                    "shape": {
                        "field": "kind",
                        "type": "nominal",
                        "title": "node",
                        "scale": {"domain": ["minimum", "saddle", "root"], "range": ["triangle-down", "circle", "square"]},
                    },
                    "color": {"condition": {"param": "minimum", "empty": False, "value": "#ff1744"}, "value": "#90a4ae"},
                    "tooltip": [
                        {"field": "kind"},
                        {"field": "value", "title": "loss", "format": ".4g"},
                        {"field": "persistence", "format": ".3g"},
                        {"field": "basin_size", "title": "basin size"},
                    ],
                },
            },
        ],
    }


def persistence_panel(pairs: Data) -> dict[str, Any]:
    axis = {"type": "quantitative", "scale": {"zero": False}}
    return {
        "title": "Persistence diagram",
        "width": 260,
        "height": 260,
        "layer": [
            {
                "data": pairs,
                "mark": {"type": "line", "color": "#999", "strokeDash": [4, 3]},
                "transform": [
                    {
                        "aggregate": [
                            {"op": "min", "field": "birth", "as": "lo"},
                            {"op": "max", "field": "death_drawn", "as": "hi"},
                        ]
                    },
                    {"fold": ["lo", "hi"], "as": ["end", "v"]},
                ],
                "encoding": {"x": {"field": "v", **axis, "title": "birth"}, "y": {"field": "v", **axis, "title": "death"}},
            },
            {
                "name": "diagram_minima",
                "data": pairs,
                "mark": {"type": "point", "filled": True, "size": 60, "stroke": "black", "cursor": "pointer"},
                "encoding": {
                    "x": {"field": "birth", **axis, "title": "birth"},
                    "y": {"field": "death_drawn", **axis, "title": "death (top row: never dies)"},
                    "shape": {
                        "field": "essential",
                        "type": "nominal",
                        "title": "essential",
                        "scale": {"domain": [False, True], "range": ["circle", "diamond"]},
                    },
                    "color": {
                        "condition": {"param": "minimum", "empty": False, "value": "#ff1744"},
                        "field": "dimension",
                        "type": "nominal",
                        "title": "dimension",
                        "scale": {"domain": ["H0", "H1"], "range": ["#1f77b4", "#ff7f0e"]},
                    },
                    "tooltip": [
                        {"field": "dimension"},
                        {"field": "birth", "format": ".4g"},
                        {"field": "death", "format": ".4g"},
                        {"field": "persistence", "format": ".3g"},
                    ],
                },
            },
        ],
    }


def merge_tree_spec(nodes: Data, segments: Data) -> dict[str, Any]:
    return chart({"params": [{**MINIMUM, "views": ["tree_minima"]}], **merge_tree_panel(nodes, segments)})


def persistence_spec(pairs: Data) -> dict[str, Any]:
    return chart({"params": [{**MINIMUM, "views": ["diagram_minima"]}], **persistence_panel(pairs)})
