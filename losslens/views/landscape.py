"""The local view's landscape: a 2-D loss surface as a heat map with isolines.

Vega-Lite has no contour mark, so isolines are traced once by the topology run
(:mod:`losslens.topology.isolines`, marching squares on log10 of the loss), stored as an
artifact and drawn here as lines; minima of the merge tree are marked on the
map and share the ``minimum`` selection (keyed on the grid ``point``) with the topology panels.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np

from losslens.store import chart_queries, reads
from losslens.views.hints import compute_command
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
        return [f"landscape not computed: {compute_command(['landscape'])}"]
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
    pairs: Data | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Heat map of log loss with isolines and merge-tree minima. The subtitle states the landscape's
    provenance (``record``, see :func:`provenance`); axes are the coefficients α, β of θ + α·d1 + β·d2
    in units of each direction. ``loss_domain`` fixes the colour scale (shared by several landscapes
    on one page); otherwise it spans this landscape's losses. With ``pairs`` (the ``persistence``
    dataset) and the simplification ``threshold`` τ, the minima the merge tree prunes (H0 pairs with
    persistence ≤ τ) are drawn too, small and faded, and turn red when selected, so a click on a pruned
    point of the diagram still shows where it lies (one layer per panel can hold the click selection, so
    they are not clickable themselves)."""
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
    pruned: list[dict[str, Any]] = []
    notes = ["colour scale shared by the landscapes on this page"] if loss_domain else []
    if pairs is not None and threshold is not None:
        notes.append(f"▼ minima kept; faded ▼ minima pruned (persistence ≤ τ = {threshold:.3g})")
        pruned.append(
            {
                "name": "landscape_pruned",
                "data": pairs,
                "transform": [
                    {"filter": f"datum.dim === 0 && !datum.essential && datum.persistence <= {threshold!r}"},
                    {"lookup": "point", "from": {"data": cells, "key": "point", "fields": ["a", "b"]}},
                ],
                "mark": {
                    "type": "point",
                    "shape": "triangle-down",
                    "filled": True,
                    "size": 45,
                    "opacity": 0.6,
                    "stroke": "#263238",
                    "strokeWidth": 0.5,
                },
                "encoding": {
                    **ab,
                    "color": {"condition": {"param": "minimum", "empty": False, "value": "#ff1744"}, "value": "#cfd8dc"},
                    "tooltip": [
                        {"value": "pruned minimum (persistence ≤ τ)"},
                        {"field": "birth", "title": "loss", "format": ".4g"},
                        {"field": "persistence", "format": ".3g"},
                    ],
                },
            }
        )
    return {
        "title": {"text": title, "subtitle": provenance(record) + notes},
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
            *pruned,
        ],
    }


MINIMUM = {"name": "minimum", "select": {"type": "point", "fields": ["point"], "on": "click"}}


def landscape_spec(
    cells: Data,
    isolines: Data,
    minima: Data,
    record: dict[str, Any] | None = None,
    loss_domain: tuple[float, float] | None = None,
    pairs: Data | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The heat map with isolines and minima, on its own (see :func:`landscape_panel`)."""
    return chart(
        {
            "params": [{**MINIMUM, "views": ["landscape_minima"]}],
            **landscape_panel(cells, isolines, minima, record=record, loss_domain=loss_domain, pairs=pairs, threshold=threshold),
        }
    )


def multiple_facts(conn: sqlite3.Connection, checkpoint: str) -> dict[str, Any]:
    """A checkpoint's entry for :func:`landscape_multiples` (all but ``cells`` and ``name``): its newest 2-D
    grid landscape's loss range (the one whose rows are drawn) and provenance record."""
    found = reads.landscape(conn, checkpoint)
    return {
        "checkpoint": checkpoint,
        "range": chart_queries.landscape_loss_range(conn, found["id"]) if found else None,
        "record": chart_queries.landscape_record(conn, checkpoint, 2, grid_only=True) if found else None,
    }


SHARED_LABEL = "one colour scale for every landscape "
MULTIPLE_SIDE = 200  # px per landscape in a small-multiple view
MULTIPLE_COLUMNS = 3


def landscape_multiples(
    panels: list[dict[str, Any]], title: str, checkpoint_href: str | None = None, note: str | None = None
) -> dict[str, Any]:
    """Several landscapes side by side (small multiples, :data:`MULTIPLE_COLUMNS` a row), with a check box
    ``shared_scale`` (on by default) that puts them all on one log colour scale, the union of their loss
    ranges, so a colour means the same loss in each; unticked, each spans its own range.

    ``panels``: one dict per landscape with ``cells`` (the ``landscape`` dataset), ``name`` (its title),
    ``checkpoint`` (sha256), ``range`` ((min, max) positive loss, or None without one) and ``record`` (the
    landscape row, for :func:`provenance`). The provenance goes once under the title when every panel
    shares it, else under each panel. With ``checkpoint_href`` (an address prefix) a click on a landscape
    opens ``{checkpoint_href}{sha}``, the mode's page. ``note`` adds a line under the title.
    """
    if not panels:  # nothing computed yet: one empty panel that says so
        panels = [{"cells": {"values": []}, "name": "no 2-D landscape", "checkpoint": "", "range": None, "record": None}]
    ranges = [p["range"] for p in panels if p.get("range")]
    common = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None
    provenances = [provenance(p.get("record")) for p in panels]
    same = len({tuple(x) for x in provenances}) <= 1
    subtitle = list(provenances[0]) if same and provenances else []
    if common:
        subtitle.append(
            f"colour: log loss, one scale {common[0]:.3g} … {common[1]:.3g} for all while the box below is ticked, else each its own range"
        )
    if note:
        subtitle.append(note)
    axes = {
        "x": {"field": "a0", "type": "quantitative", "title": "α along d1", "scale": {"nice": False, "zero": False}},
        "y": {"field": "b0", "type": "quantitative", "title": "β along d2", "scale": {"nice": False, "zero": False}},
    }

    def panel(p: dict[str, Any], prov: list[str]) -> dict[str, Any]:
        scale: dict[str, Any] = {"type": "log", "scheme": "viridis", "clamp": True}
        own = p.get("range")
        if common and own:
            lo, hi = own if own[1] > own[0] else (own[0], own[0] * 1.0001)
            scale["domain"] = {"expr": f"shared_scale ? [{common[0]!r}, {common[1]!r}] : [{lo!r}, {hi!r}]"}
        transform: list[dict[str, Any]] = [{"calculate": json.dumps(p["checkpoint"]), "as": "checkpoint"}]
        encoding: dict[str, Any] = {
            **axes,
            "x2": {"field": "a1"},
            "y2": {"field": "b1"},
            "color": {
                "field": "loss",
                "type": "quantitative",
                "title": "loss (log)",
                "scale": scale,
                "legend": {"format": ".2~g", "gradientLength": MULTIPLE_SIDE - 40},
            },
            "tooltip": [
                {"field": "a", "title": "α", "format": ".3g"},
                {"field": "b", "title": "β", "format": ".3g"},
                {"field": "loss", "format": ".4g"},
            ],
        }
        if checkpoint_href:
            transform.append({"calculate": f"{json.dumps(checkpoint_href)} + datum.checkpoint", "as": "href"})
            encoding["href"] = {"field": "href"}
        heading: dict[str, Any] = {"text": p["name"]}
        if not same:
            heading["subtitle"] = prov
        if not own:
            heading["subtitle"] = [f"no 2-D landscape computed: {compute_command(['landscape'])}"]
        return {
            "title": heading,
            "data": p["cells"],
            "transform": transform,
            "width": MULTIPLE_SIDE,
            "height": MULTIPLE_SIDE,
            "mark": {"type": "rect", "cursor": "pointer" if checkpoint_href else "default"},
            "encoding": encoding,
        }

    return chart(
        {
            "params": [{"name": "shared_scale", "value": True, "bind": {"input": "checkbox", "name": SHARED_LABEL}}],
            "concat": [panel(p, prov) for p, prov in zip(panels, provenances, strict=True)],
            "columns": MULTIPLE_COLUMNS,
            "resolve": {"scale": {"color": "independent", "x": "independent", "y": "independent"}},
        },
        title={"text": title, "subtitle": subtitle},
    )
