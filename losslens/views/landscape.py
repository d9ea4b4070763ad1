"""The local view's landscape: a 2-D loss surface as a heat map with isolines.

Vega-Lite has no contour mark, so isolines are traced once by the topology run
(:mod:`losslens.topology.isolines`, marching squares on log10 of the loss), stored as an
artifact and drawn here as lines; minima of the merge tree are marked on the
map and share the ``minimum`` selection (keyed on the grid ``point``) with the topology panels.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from losslens.store import reads
from losslens.views.source import Data, Rows, finite, load_array
from losslens.views.spec import chart


def landscape_of(conn: sqlite3.Connection, checkpoint: str) -> dict[str, Any] | None:
    """The newest 2-D grid landscape of a checkpoint."""
    return reads.landscape(conn, checkpoint)


def grid_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """Heat-map cells: ``a``, ``b``, ``loss`` and the cell's extent (``a0``…``b1``)."""
    rows = reads.landscape_points(conn, landscape_id)
    if not rows:
        return rows
    a = np.unique([r["a"] for r in rows])
    b = np.unique([r["b"] for r in rows])
    da = float(np.diff(a).min()) / 2 if len(a) > 1 else 0.5
    db = float(np.diff(b).min()) / 2 if len(b) > 1 else 0.5
    for r in rows:
        r["loss"] = finite(r["loss"])
        r.update(a0=r["a"] - da, a1=r["a"] + da, b0=r["b"] - db, b1=r["b"] + db)
    return rows


def isoline_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """Isolines of log10(loss) stored by the newest topology run of the landscape
    (:func:`losslens.topology.isolines.isolines`); none before topology ran."""
    run = reads.latest_topology_run(conn, landscape_id)
    sha = reads.run_artifact(conn, run, "isolines") if run else None
    array = load_array(conn, sha) if sha else None
    if array is None:
        return []
    return [
        {"line": f"{int(li)}-{int(pi)}", "level": float(level), "order": int(order), "a": float(a), "b": float(b)}
        for li, pi, order, a, b, level in array
    ]


def minima_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """Merge-tree minima placed on the landscape (from the newest topology run of that landscape)."""
    run = reads.latest_topology_run(conn, landscape_id)
    return reads.merge_tree_minima(conn, run) if run else []


NORMALIZATION = {"filter": "filter-normalised", "layer": "layer-normalised", "unit": "unit-norm"}
DIRECTIONS = {"random": "random directions", "hessian": "top Hessian eigenvectors", "pca": "PCA directions"}


def provenance(record: dict[str, Any] | None) -> list[str]:
    """How a landscape was made, in words (Li et al. 2018): its directions, their normalisation, the span
    and its mode, the grid. ``record`` is a ``landscapes`` row (see
    :func:`losslens.store.chart_queries.landscape_record`)."""
    if not record:
        return ["landscape not computed: losslens compute landscape"]
    kind = DIRECTIONS.get(record["directions"], record["directions"])
    words = [kind]
    if record["directions"] == "random":
        words.append(NORMALIZATION.get(record["normalization"], record["normalization"]))
        words.append(f"seed {record['seed']}")
    if record.get("orthogonalized"):
        words.append("orthogonalised")
    if record["span_mode"] == "relative":
        span = f"span ±{record['span']:g}·‖θ‖ in parameter space per axis (relative)"
    else:
        span = f"span ±{record['span']:g} in units of each direction (absolute)"
    grid = (
        "×".join([str(record["steps"])] * record["dims"]) + " grid"
        if not record.get("samples")
        else f"{record['samples']} samples"
    )
    return [", ".join(words), f"{span}; {grid}; θ at (0, 0)"]


def landscape_panel(
    cells: Data,
    isolines: Data,
    minima: Data,
    title: str = "Loss landscape",
    record: dict[str, Any] | None = None,
    loss_domain: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Heat map of log loss with isolines and merge-tree minima. The subtitle states the landscape's
    provenance (``record``, see :func:`provenance`); axes are the coefficients α, β of θ + α·d1 + β·d2
    in units of each direction. ``loss_domain`` fixes the colour scale (shared by several landscapes
    on one page); otherwise it spans this landscape's losses."""
    ab = {
        "x": {
            "field": "a",
            "type": "quantitative",
            "title": "α along d1 (θ + α·d1 + β·d2)",
            "scale": {"nice": False, "zero": False},
        },
        "y": {"field": "b", "type": "quantitative", "title": "β along d2", "scale": {"nice": False, "zero": False}},
    }
    colour_scale: dict[str, Any] = {"type": "log", "scheme": "viridis"}
    if loss_domain:
        colour_scale.update(domain=list(loss_domain), clamp=True)
    return {
        "title": {
            "text": title,
            "subtitle": provenance(record) + (["colour scale shared by the landscapes on this page"] if loss_domain else []),
        },
        "width": 320,
        "height": 320,
        "layer": [
            {
                "data": cells,
                "mark": {"type": "rect"},
                "encoding": {
                    "x": {**ab["x"], "field": "a0"},
                    "x2": {"field": "a1"},
                    "y": {**ab["y"], "field": "b0"},
                    "y2": {"field": "b1"},
                    "color": {
                        "field": "loss",
                        "type": "quantitative",
                        "title": "loss (log)",
                        "scale": colour_scale,
                    },
                    "tooltip": [
                        {"field": "a", "format": ".3g"},
                        {"field": "b", "format": ".3g"},
                        {"field": "loss", "format": ".4g"},
                    ],
                },
            },
            {
                "data": isolines,
                "mark": {"type": "line", "color": "white", "strokeWidth": 1, "opacity": 0.85},
                "encoding": {
                    **ab,
                    "detail": {"field": "line"},
                    "order": {"field": "order"},
                    "tooltip": [{"field": "level", "title": "isoline loss", "format": ".3g"}],
                },
            },
            {
                "name": "landscape_minima",
                "data": minima,
                "mark": {
                    "type": "point",
                    "shape": "triangle-down",
                    "filled": True,
                    "size": 90,
                    "stroke": "black",
                    "cursor": "pointer",
                },
                "encoding": {
                    **ab,
                    "color": {"condition": {"param": "minimum", "empty": False, "value": "#ff1744"}, "value": "#ffffff"},
                    "tooltip": [
                        {"field": "loss", "format": ".4g"},
                        {"field": "persistence", "format": ".3g"},
                        {"field": "basin_size", "title": "basin size"},
                    ],
                },
            },
        ],
    }


MINIMUM = {"name": "minimum", "select": {"type": "point", "fields": ["point"], "on": "click"}}


def landscape_spec(
    cells: Data,
    isolines: Data,
    minima: Data,
    record: dict[str, Any] | None = None,
    loss_domain: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The heat map with isolines and minima, on its own (see :func:`landscape_panel`)."""
    return chart(
        {
            "params": [{**MINIMUM, "views": ["landscape_minima"]}],
            **landscape_panel(cells, isolines, minima, record=record, loss_domain=loss_domain),
        }
    )
