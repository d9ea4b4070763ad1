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
from losslens.views.hints import compute_command
from losslens.views.landscape import MINIMUM
from losslens.views.source import Data, Rows, finite
from losslens.views.spec import chart, present, subset


def tree_node_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """The nodes of the newest merge tree of a landscape (non-finite values as None)."""
    run = reads.latest_topology_run(conn, landscape_id)
    nodes = reads.merge_tree_nodes(conn, run) if run else []
    for n in nodes:
        n["value"] = finite(n["value"])
    return nodes


def tree_segment_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """The segments of the newest merge tree of a landscape: two elbow segments per edge (up from the
    lower node, then across to the upper one). The edges come with their ends placed, in one read, so
    drawing the segments does not read the nodes again."""
    run = reads.latest_topology_run(conn, landscape_id)
    segments: Rows = []
    for e in reads.merge_tree_edges(conn, run) if run else []:
        lx, ly, ux, uy, branch = e["lower_x"], e["lower_y"], e["upper_x"], e["upper_y"], e["branch"]
        segments.append({"x": lx, "y": ly, "x2": lx, "y2": uy, "branch": branch})
        segments.append({"x": lx, "y": uy, "x2": ux, "y2": uy, "branch": branch})
    return segments


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


def pruned_note(summary: dict[str, Any] | None) -> str:
    """``3 minima kept; 19 with persistence ≤ 0.058 pruned`` from a topology summary."""
    if not summary:
        return f"topology not computed: {compute_command(['topology'])}"
    hidden = summary["n_minima"] - summary["n_minima_above"]
    note = f"{summary['n_minima_above']} minim{'um' if summary['n_minima_above'] == 1 else 'a'} kept"
    if hidden:
        note += f"; {hidden} with persistence ≤ {summary['threshold']:.3g} pruned (simplification threshold)"
    return note


def merge_tree_panel(
    nodes: Data, segments: Data, summary: dict[str, Any] | None = None, kinds: list[str] | None = None
) -> dict[str, Any]:
    """The simplified merge tree (branches with persistence ≤ the threshold are pruned, and the subtitle
    counts them, from ``summary``: see :func:`losslens.store.chart_queries.topology_summary`).
    ``kinds``: node kinds present (legend entries; from inline rows when omitted)."""
    xy = {
        "x": {"field": "x", "type": "quantitative", "axis": None, "scale": {"padding": 12}},
        "y": {"field": "y", "type": "quantitative", "title": "loss", "scale": {"zero": False}},
    }
    kinds = present(nodes, "kind", NODE_SHAPES["domain"], kinds)
    return {
        "title": {"text": "Merge tree", "subtitle": pruned_note(summary)},
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
                        "scale": subset(NODE_SHAPES, kinds),
                        "legend": {"orient": "bottom"},
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


NODE_SHAPES = {"domain": ["minimum", "saddle", "root"], "range": ["triangle-down", "circle", "square"]}
DIMENSIONS = {"domain": ["H0", "H1", "H2", "H3"], "range": ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]}
PRUNED_OPACITY = 0.3


def _pruned(threshold: float | None) -> str:
    """Vega test: a finite pair at or below the simplification threshold (pruned from the merge tree)."""
    return "false" if threshold is None else f"!datum.essential && datum.persistence <= {threshold!r}"


def persistence_panel(pairs: Data, summary: dict[str, Any] | None = None, dims: list[str] | None = None) -> dict[str, Any]:
    """The persistence diagram: one point per pair (birth, death); essential classes on the ∞ line at the
    top. The simplification threshold τ (``summary['threshold']``) is a grey band above the diagonal:
    pairs inside it (persistence ≤ τ) are the minima pruned from the merge tree, drawn faded.
    ``dims``: homology dimensions present ("H0", …; legend entries; from inline rows when omitted)."""
    axis = {"type": "quantitative", "scale": {"zero": False}}
    threshold = summary["threshold"] if summary else None
    dims = present(pairs, "dimension", DIMENSIONS["domain"], dims)
    extent = [
        {"aggregate": [{"op": "min", "field": "birth", "as": "lo"}, {"op": "max", "field": "death_drawn", "as": "hi"}]},
        {"fold": ["lo", "hi"], "as": ["end", "v"]},
    ]
    layers: list[dict[str, Any]] = []
    if threshold is not None:
        layers.append(
            {
                "data": pairs,
                "mark": {"type": "area", "color": "#9e9e9e", "opacity": 0.25},
                "transform": [*extent, {"calculate": f"datum.v + {threshold!r}", "as": "band"}],
                "encoding": {
                    "x": {"field": "v", **axis, "title": "birth (loss)"},
                    "y": {"field": "v", **axis},
                    "y2": {"field": "band"},
                    "tooltip": [{"value": f"simplification threshold τ = {threshold:.3g}: pairs in the band are pruned"}],
                },
            }
        )
    layers += [
        {
            "data": pairs,
            "mark": {"type": "line", "color": "#999", "strokeDash": [4, 3]},
            "transform": extent,
            "encoding": {
                "x": {"field": "v", **axis, "title": "birth (loss)"},
                "y": {"field": "v", **axis, "title": "death (loss)"},
            },
        },
        {
            "data": pairs,
            "transform": [{"filter": "datum.essential"}, {"aggregate": [{"op": "max", "field": "death_drawn", "as": "top"}]}],
            "mark": {"type": "rule", "color": "#bbb", "strokeDash": [2, 2]},
            "encoding": {"y": {"field": "top", **axis}},
        },
        {
            "data": pairs,
            "transform": [{"filter": "datum.essential"}, {"aggregate": [{"op": "max", "field": "death_drawn", "as": "top"}]}],
            "mark": {
                "type": "text",
                "text": "∞ never dies",
                "align": "right",
                "x": "width",
                "dy": -7,
                "fontSize": 10,
                "color": "#555",
            },
            "encoding": {"y": {"field": "top", **axis}},
        },
        {
            "name": "diagram_minima",
            "data": pairs,
            "mark": {"type": "point", "filled": True, "size": 60, "stroke": "black", "cursor": "pointer"},
            "encoding": {
                "x": {"field": "birth", **axis, "title": "birth (loss)"},
                "y": {"field": "death_drawn", **axis, "title": "death (loss)"},
                "shape": {"condition": {"test": "datum.essential", "value": "diamond"}, "value": "circle"},
                "opacity": {"condition": {"test": _pruned(threshold), "value": PRUNED_OPACITY}, "value": 1},
                "color": {
                    "condition": {"param": "minimum", "empty": False, "value": "#ff1744"},
                    "field": "dimension",
                    "type": "nominal",
                    "title": "dimension",
                    "scale": subset(DIMENSIONS, dims),
                    "legend": {"orient": "bottom"} if len(dims) > 1 else None,
                },
                "tooltip": [
                    {"field": "dimension"},
                    {"field": "birth", "format": ".4g"},
                    {"field": "death", "format": ".4g", "title": "death (empty: never)"},
                    {"field": "persistence", "format": ".3g"},
                ],
            },
        },
    ]
    subtitle = pruned_note(summary)
    if threshold is not None:
        subtitle = f"grey band: persistence ≤ τ = {threshold:.3g}, faded points pruned"
    return {"title": {"text": "Persistence diagram", "subtitle": subtitle}, "width": 260, "height": 260, "layer": layers}


def barcode_panel(pairs: Data, summary: dict[str, Any] | None = None, dims: list[str] | None = None) -> dict[str, Any]:
    """The persistence barcode: one bar per pair from birth to death (loss), longest first; essential
    classes run to the right edge (∞). Bars not longer than the simplification threshold τ are faded:
    their minima are pruned from the merge tree."""
    threshold = summary["threshold"] if summary else None
    dims = present(pairs, "dimension", DIMENSIONS["domain"], dims)
    return {
        "title": {
            "text": "Persistence barcode",
            "subtitle": pruned_note(summary),
        },
        "data": pairs,
        "width": 260,
        "height": {"step": 7},
        "transform": [
            {"calculate": "datum.essential ? 1e308 : datum.persistence", "as": "length"},
            {"window": [{"op": "row_number", "as": "bar"}], "sort": [{"field": "length", "order": "descending"}]},
        ],
        "encoding": {
            "y": {"field": "bar", "type": "ordinal", "axis": None, "sort": "ascending"},
            "x": {"field": "birth", "type": "quantitative", "scale": {"zero": False}, "title": "loss (birth → death)"},
            "x2": {"field": "death_drawn"},
            "opacity": {"condition": {"test": _pruned(threshold), "value": PRUNED_OPACITY}, "value": 1},
            "tooltip": [
                {"field": "dimension"},
                {"field": "birth", "format": ".4g"},
                {"field": "death", "format": ".4g", "title": "death (empty: never)"},
                {"field": "persistence", "format": ".3g"},
            ],
        },
        "layer": [
            {
                "mark": {"type": "bar", "height": 5},
                "encoding": {
                    "color": {
                        "field": "dimension",
                        "type": "nominal",
                        "title": "dimension",
                        "scale": subset(DIMENSIONS, dims),
                        "legend": {"orient": "bottom"} if len(dims) > 1 else None,
                    }
                },
            },
            {
                "transform": [{"filter": "datum.essential"}],
                "mark": {"type": "text", "text": "→ ∞", "align": "left", "dx": 2, "fontSize": 9},
                "encoding": {"x": {"field": "death_drawn", "type": "quantitative"}},
            },
        ],
    }


def merge_tree_spec(
    nodes: Data, segments: Data, summary: dict[str, Any] | None = None, kinds: list[str] | None = None
) -> dict[str, Any]:
    return chart({"params": [{**MINIMUM, "views": ["tree_minima"]}], **merge_tree_panel(nodes, segments, summary, kinds)})


def persistence_spec(pairs: Data, summary: dict[str, Any] | None = None, dims: list[str] | None = None) -> dict[str, Any]:
    return chart({"params": [{**MINIMUM, "views": ["diagram_minima"]}], **persistence_panel(pairs, summary, dims)})


def barcode_spec(pairs: Data, summary: dict[str, Any] | None = None, dims: list[str] | None = None) -> dict[str, Any]:
    return chart(barcode_panel(pairs, summary, dims))
