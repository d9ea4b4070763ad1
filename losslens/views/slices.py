"""Views of a 3-D or 4-D landscape: 2-D slices through θ chosen in the chart, and its merge tree and
persistence (the topology metric computes both on the full n-D grid).

The whole grid ships once as rows ``point, i, j, k, l, loss`` (grid indices, C order); Vega-Lite
params bound to a select (the plane: two of the axes) and one range input per axis (the index the
other axes are fixed at, default the centre, which is θ) filter it in the browser. So the slice
works in the Datasette pages, the offline viewer and ``export chart`` HTML alike, without a server
round trip. Coordinates are those of :func:`losslens.landscape.grid.grid_coordinates`:
``(index − centre) · 2h/(steps − 1)`` along an axis of half-width h, in units of its direction.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from typing import Any

from losslens.store import chart_queries, reads
from losslens.views.landscape import MINIMUM, provenance
from losslens.views.source import Data, Rows, finite
from losslens.views.spec import chart
from losslens.views.topology import barcode_panel, merge_tree_panel, persistence_panel

INDICES = ("i", "j", "k", "l")  # index columns of landscape_points, one per direction d1…d4


def grid_rows(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """All grid points of an n-D landscape: ``point``, the indices along its dims (``i``, ``j``, ``k``, ``l``)
    and ``loss`` (None where not finite)."""
    rows = reads.landscape_grid_indices(conn, landscape_id)
    for r in rows:
        r["loss"] = finite(r["loss"])
        for name in INDICES:
            if r[name] is None:
                del r[name]
    return rows


def nd_facts(conn: sqlite3.Connection, checkpoint: str) -> dict[str, Any]:
    """What the n-D panels state besides their rows: the landscape record (None without a 3-D/4-D grid),
    its loss range (colour domain shared by every slice), its topology summary and legend categories."""
    record = chart_queries.nd_landscape_record(conn, checkpoint)
    if record is None:
        return {"landscape": None, "loss_domain": None, "topology": None, "dims": [], "kinds": []}
    categories = chart_queries.topology_categories(conn, record["id"])
    return {
        "landscape": record,
        "loss_domain": chart_queries.landscape_loss_range(conn, record["id"]),
        "topology": chart_queries.topology_summary(conn, record["id"]),
        "dims": [f"H{d}" for d in categories["dims"]],
        "kinds": categories["kinds"],
    }


def planes(dims: int) -> list[str]:
    """The planes a slice can lie in, as pairs of index columns: ``ij``, ``ik``, … (d1×d2 first)."""
    return ["".join(p) for p in itertools.combinations(INDICES[:dims], 2)]


def _label(plane: str) -> str:
    return " × ".join(f"d{INDICES.index(c) + 1}" for c in plane)


def _free(axis: str) -> str:
    """Vega test: the axis lies in the chosen plane (so it is not fixed)."""
    return f"indexof(plane, '{axis}') >= 0"


def slice_params(dims: int, steps: int) -> list[dict[str, Any]]:
    """``plane`` (select) and ``at_i`` … (range, the fixed index of each axis not in the plane; centre = θ)."""
    options = planes(dims)
    params: list[dict[str, Any]] = [
        {
            "name": "plane",
            "value": options[0],
            "bind": {"input": "select", "options": options, "labels": [_label(p) for p in options], "name": "slice plane "},
        }
    ]
    for n, axis in enumerate(INDICES[:dims]):
        params.append(
            {
                "name": f"at_{axis}",
                "value": steps // 2,
                "bind": {
                    "input": "range",
                    "min": 0,
                    "max": steps - 1,
                    "step": 1,
                    "name": f"fixed d{n + 1} index ({steps // 2} = θ) ",
                },
            }
        )
    return params


def slice_panel(cells: Data, record: dict[str, Any] | None, loss_domain: tuple[float, float] | None = None) -> dict[str, Any]:
    """A heat map of log loss on the chosen plane of an n-D grid, the other axes at their chosen indices;
    θ is marked when the slice passes through it. ``record``: the landscape (dims, steps, half widths,
    provenance); ``loss_domain``: the colour domain, the whole grid's loss range so slices compare by colour."""
    if record is None:
        return {"title": {"text": "Slice of an n-D landscape", "subtitle": provenance(None)}, "data": cells, "mark": "rect"}
    dims, steps = record["dims"], record["steps"]
    centre = steps // 2
    half = json.loads(record["half_widths_json"])
    step = {axis: 2 * h / (steps - 1) for axis, h in zip(INDICES, half, strict=False)}
    axes = INDICES[:dims]

    def coordinate(which: int) -> str:
        """Vega expression: the coordinate of a row along the plane's first (0) or second (1) axis."""
        name = f"substring(plane, {which}, {which + 1})"
        scale = " : ".join(f"{name} == '{a}' ? {step[a]!r}" for a in axes[:-1]) + f" : {step[axes[-1]]!r}"
        return f"(datum[{name}] - {centre}) * ({scale})"

    def half_step(which: int) -> str:
        name = f"substring(plane, {which}, {which + 1})"
        return "(" + " : ".join(f"{name} == '{a}' ? {step[a] / 2!r}" for a in axes[:-1]) + f" : {step[axes[-1]] / 2!r})"

    in_slice = " && ".join(f"({_free(a)} || datum.{a} == at_{a})" for a in axes)
    through_theta = " && ".join(f"({_free(a)} || at_{a} == {centre})" for a in axes)
    fixed = " + ".join(
        f"({_free(a)} ? '' : ' d{n + 1} = ' + format((at_{a} - {centre}) * {step[a]!r}, '.3g') + ' (index ' + at_{a} + ')')"
        for n, a in enumerate(axes)
    )
    plane_name = " : ".join(f"plane == '{p}' ? '{_label(p)}'" for p in planes(dims)[:-1]) + f" : '{_label(planes(dims)[-1])}'"
    colour: dict[str, Any] = {"type": "log", "scheme": "viridis"}
    if loss_domain:
        colour.update(domain=list(loss_domain), clamp=True)
    uv = {
        "x": {
            "field": "u",
            "type": "quantitative",
            "title": "coefficient along the plane's first direction",
            "scale": {"nice": False, "zero": False},
        },
        "y": {
            "field": "v",
            "type": "quantitative",
            "title": "coefficient along the plane's second direction",
            "scale": {"nice": False, "zero": False},
        },
    }
    lines = provenance(record)
    lines[-1] = lines[-1].replace("θ at (0, 0)", f"θ at the centre index {centre}")
    return {
        "title": {
            "text": f"Slice of the {dims}-D landscape",
            "subtitle": [*lines, "colour scale: the whole grid's loss range"],
        },
        "width": 320,
        "height": 320,
        "layer": [
            {
                "name": "slice_cells",
                "data": cells,
                "transform": [
                    {"filter": in_slice},
                    {"calculate": coordinate(0), "as": "u"},
                    {"calculate": coordinate(1), "as": "v"},
                    {"calculate": f"datum.u - {half_step(0)}", "as": "u0"},
                    {"calculate": f"datum.u + {half_step(0)}", "as": "u1"},
                    {"calculate": f"datum.v - {half_step(1)}", "as": "v0"},
                    {"calculate": f"datum.v + {half_step(1)}", "as": "v1"},
                ],
                "mark": {"type": "rect"},
                "encoding": {
                    "x": {**uv["x"], "field": "u0"},
                    "x2": {"field": "u1"},
                    "y": {**uv["y"], "field": "v0"},
                    "y2": {"field": "v1"},
                    "color": {"field": "loss", "type": "quantitative", "title": "loss (log)", "scale": colour},
                    "tooltip": [
                        {"field": "u", "title": "first", "format": ".3g"},
                        {"field": "v", "title": "second", "format": ".3g"},
                        *({"field": a, "title": f"index d{n + 1}"} for n, a in enumerate(axes)),
                        {"field": "loss", "format": ".6g"},
                    ],
                },
            },
            {
                "data": {"values": [{"u": 0.0, "v": 0.0}]},
                "transform": [{"filter": through_theta}],
                "mark": {"type": "point", "shape": "cross", "size": 120, "filled": True, "color": "#ff1744", "stroke": "white"},
                "encoding": {**uv, "tooltip": {"value": "θ (the checkpoint)"}},
            },
            {
                "data": {"values": [{}]},
                "mark": {
                    "type": "text",
                    "align": "left",
                    "baseline": "top",
                    "x": 0,
                    "y": {"expr": "height + 34"},
                    "fontSize": 11,
                    "color": "#333",
                    "text": {"expr": f"'slice ' + ({plane_name}) + '; fixed:' + {fixed}"},
                },
            },
        ],
    }


def slice_spec(cells: Data, record: dict[str, Any] | None, loss_domain: tuple[float, float] | None = None) -> dict[str, Any]:
    """The slice on its own (see :func:`slice_panel`), with its plane and index selectors."""
    params = slice_params(record["dims"], record["steps"]) if record else []
    return chart({**({"params": params} if params else {}), **slice_panel(cells, record, loss_domain)})


def _titled(panel: dict[str, Any], dims: int | None) -> dict[str, Any]:
    """A topology panel retitled for the n-D landscape it analyses."""
    if dims:
        panel["title"] = {**panel["title"], "text": f"{panel['title']['text']} of the {dims}-D landscape"}
    return panel


def nd_tree_spec(nodes: Data, segments: Data, facts: dict[str, Any]) -> dict[str, Any]:
    dims = facts["landscape"] and facts["landscape"]["dims"]
    panel = merge_tree_panel(nodes, segments, facts["topology"], facts["kinds"])
    return chart({"params": [{**MINIMUM, "views": ["tree_minima"]}], **_titled(panel, dims)})


def nd_persistence_spec(pairs: Data, facts: dict[str, Any]) -> dict[str, Any]:
    dims = facts["landscape"] and facts["landscape"]["dims"]
    panel = persistence_panel(pairs, facts["topology"], facts["dims"])
    return chart({"params": [{**MINIMUM, "views": ["diagram_minima"]}], **_titled(panel, dims)})


def nd_barcode_spec(pairs: Data, facts: dict[str, Any]) -> dict[str, Any]:
    dims = facts["landscape"] and facts["landscape"]["dims"]
    return chart(_titled(barcode_panel(pairs, facts["topology"], facts["dims"]), dims))


def nd_spec(cells: Data, nodes: Data, segments: Data, pairs: Data, facts: dict[str, Any]) -> dict[str, Any]:
    """The n-D landscape of a mode in one chart: the slice with its selectors, the merge tree, the
    persistence diagram and barcode of the full grid (a click on a minimum selects it in tree and diagram)."""
    record = facts["landscape"]
    dims = record and record["dims"]
    params = slice_params(record["dims"], record["steps"]) if record else []
    return chart(
        {
            "params": [*params, {**MINIMUM, "views": ["tree_minima", "diagram_minima"]}],
            "vconcat": [
                {
                    "hconcat": [
                        slice_panel(cells, record, facts["loss_domain"]),
                        _titled(merge_tree_panel(nodes, segments, facts["topology"], facts["kinds"]), dims),
                        _titled(persistence_panel(pairs, facts["topology"], facts["dims"]), dims),
                    ],
                    "resolve": {"scale": {"color": "independent", "shape": "independent"}},
                },
                _titled(barcode_panel(pairs, facts["topology"], facts["dims"]), dims),
            ],
            "resolve": {"scale": {"color": "independent"}},
        },
        title=f"The mode's {dims}-D landscape: slices through θ, merge tree and persistence" if dims else "n-D landscape",
    )
