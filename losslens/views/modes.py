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

from losslens.store import chart_queries, memo, reads
from losslens.taxonomy.rules import well_connected
from losslens.views.labels import around, place, text_layers
from losslens.views.source import Data, Row, Rows, finite, load_array
from losslens.views.spec import WELL_POOR_SCALE, chart, present, subset

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
    name_labels(found, mds_layout(conn, setting_id))
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
    and ``ring`` rows (one labelled segment per performance metric, raw ``value`` plus ``scale``:
    ``error`` for error fractions/relative errors, drawn on the absolute scale 0 … 1, and ``loss``,
    drawn on a log scale over the whole experiment; see :func:`glyph_scales`)."""
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
    shown = [((split, name), label) for split, name, label in RING if (split, name) in perf]
    slot = 2 * math.pi / len(shown) if shown else 0.0
    for i, ((split, name), label) in enumerate(shown):
        for sha, value in perf[(split, name)].items():
            mode = at[sha]
            rows.append(
                {
                    "piece": "ring",
                    "checkpoint": sha,
                    "x": mode["x"],
                    "y": mode["y"],
                    "metric": label,
                    "scale": "loss" if name == "loss" else "error",
                    "value": value,
                    "theta": i * slot + 0.04,
                    "theta2": (i + 1) * slot - 0.04,
                    "mid": (i + 0.5) * slot,
                }
            )
    return rows


SELECTION = {"name": "mode", "select": {"type": "point", "fields": ["checkpoint"], "on": "click"}}

# The second MDS axis is drawn only when it spans at least this fraction of the first (√(λ2/λ1)):
# below it the axis is float noise or invisible at equal aspect, and the modes lie on a line.
NEGLIGIBLE_AXIS = 0.01
MAP_WIDTH = 420
MAP_HEIGHT_2D = 420
MAP_HEIGHT_1D = 130
GLYPH_ROOM = 1.35  # domain half-width per unit of the largest coordinate: room for the glyph (38 px) and label


def mds_layout(conn: sqlite3.Connection, setting_id: str) -> dict[str, Any]:
    """The scale facts the MDS map states (Torgerson MDS of 1 − CKA, see ``similarity.mds``).

    Returns ``dims`` (1 when √(λ2/λ1) < :data:`NEGLIGIBLE_AXIS`), ``axis_ratio`` (√(λ2/λ1)), ``extent``
    (largest |coordinate| of the setting's modes, in 1 − CKA units), ``common_extent`` (the same over every
    setting of the experiment, for the common scale) and ``max_distance`` (largest 1 − CKA between two of
    the setting's modes). Values are None before the similarity metric ran.
    """
    artifacts = chart_queries.setting_run_artifacts(conn, "similarity", setting_id)
    eig = load_array(conn, artifacts["eigenvalues"]) if "eigenvalues" in artifacts else None
    dissimilarity = load_array(conn, artifacts["dissimilarity"]) if "dissimilarity" in artifacts else None
    ratio = None
    if eig is not None and len(eig) >= 2:
        ratio = float(math.sqrt(max(eig[1], 0.0) / eig[0])) if eig[0] > 0 else 0.0
    experiment = chart_queries.experiment_of_setting(conn, setting_id)
    # Experiment-wide: remembered per catalog version when a Datasette page asks (every setting's page needs it).
    extents = (
        memo.remembered(conn, ("mds_extents", experiment), lambda c: chart_queries.mds_extents(c, experiment))
        if experiment
        else {}
    )
    return {
        "dims": 1 if ratio is not None and ratio < NEGLIGIBLE_AXIS else 2,
        "axis_ratio": ratio,
        "extent": extents.get(setting_id),
        "common_extent": max(extents.values()) if extents else None,
        "max_distance": float(dissimilarity.max()) if dissimilarity is not None and dissimilarity.size else None,
    }


def layout_of_rows(rows: Rows) -> dict[str, Any]:
    """:func:`mds_layout` estimated from inline mode rows (no eigenvalues: the axis ratio is the ratio of
    the coordinates' spreads; the largest distance is the largest distance in the plane; no other setting)."""
    pts = [(r["x"], r["y"]) for r in rows if r.get("x") is not None]
    if not pts:
        return {"dims": 2, "axis_ratio": None, "extent": None, "common_extent": None, "max_distance": None}
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    sx, sy = max(xs) - min(xs), max(ys) - min(ys)
    ratio = sy / sx if sx > 0 else 0.0
    dist = max(math.dist(p, q) for p in pts for q in pts)
    extent = max(max(abs(v) for v in xs), max(abs(v) for v in ys))
    return {
        "dims": 1 if ratio < NEGLIGIBLE_AXIS else 2,
        "axis_ratio": ratio,
        "extent": extent,
        "common_extent": None,
        "max_distance": dist,
    }


def glyph_scales(conn: sqlite3.Connection, setting_id: str) -> dict[str, Any]:
    """Domains of the glyph's absolute scales, over the whole experiment so that settings compare:
    ``loss`` (min, max train loss) and ``eigenvalues`` (min, max positive top-10 Hessian eigenvalue)."""
    experiment = chart_queries.experiment_of_setting(conn, setting_id)
    if experiment is None:
        return {}
    ranges = chart_queries.performance_ranges(conn, experiment)
    eig = chart_queries.top_eigenvalue_range(conn, experiment, TOP_K) if reads.has_table(conn, "hessian_eigenvalues") else None
    return {"loss": ranges.get(("train", "loss")), "eigenvalues": eig}


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2g}"


def _map_title(layout: dict[str, Any]) -> dict[str, Any]:
    lines = ["distance 1 − CKA, same scale on both axes"]
    if layout.get("max_distance") is not None:
        lines[0] += f"; largest between two modes: {_fmt(layout['max_distance'])}"
    if _has_common(layout):
        lines.append("scale of this setting; tick “same scale for every setting” to compare settings")
    if layout["dims"] == 1:
        ratio = layout.get("axis_ratio")
        lines.append(f"1-D: the second MDS axis is negligible (√(λ2/λ1) = {_fmt(ratio)})")
    return {"text": "Modes: MDS on 1 − CKA", "subtitle": lines}


def _has_common(layout: dict[str, Any]) -> bool:
    return layout.get("common_extent") is not None and layout.get("extent") is not None


def _half_width(extent: float, layout: dict[str, Any]) -> float:
    floor = (layout.get("max_distance") or 0.0) / 2
    return max(extent, floor) * GLYPH_ROOM or 1e-12


def _domains(layout: dict[str, Any]) -> tuple[Any, Any, int]:
    """Equal-aspect x and y domains (the same units per pixel on both axes) and the map's height. With a
    common extent the domains are expressions of the ``common_scale`` toggle."""
    height = MAP_HEIGHT_1D if layout["dims"] == 1 else MAP_HEIGHT_2D
    extent = layout.get("extent")
    if extent is None:
        return None, None, height
    half = _half_width(extent, layout)
    aspect = height / MAP_WIDTH
    if not _has_common(layout):
        return [-half, half], [-half * aspect, half * aspect], height
    common = _half_width(layout["common_extent"], layout)

    def toggled(h: float) -> dict[str, str]:
        return {"expr": f"common_scale ? [{-common * h!r}, {common * h!r}] : [{-half * h!r}, {half * h!r}]"}

    return toggled(1.0), toggled(aspect), height


NAME_FONT = 11
GLYPH_RADIUS = 38.0  # px: the outer radius of a glyph's performance ring
NAME_SLOTS = around(GLYPH_RADIUS + 8, GLYPH_RADIUS + 4)  # outside the glyph's ring


def name_labels(rows: Rows, layout: dict[str, Any]) -> None:
    """Set ``name_label``/``name_slot`` on each mode row (and ``common_label``/``common_slot``, for the
    experiment's common scale, when the layout has one): the text written above or below the mode's glyph,
    placed so that no two names overlap (:func:`losslens.views.labels.place`; modes at one point share one
    label). The pixels are those of the map's equal-aspect domains (:func:`_domains`)."""
    scales = {"name": layout.get("extent")}
    if _has_common(layout):
        scales["common"] = layout["common_extent"]
    height = MAP_HEIGHT_1D if layout["dims"] == 1 else MAP_HEIGHT_2D
    for key in ("name", "common"):
        for r in rows:
            r[f"{key}_label"], r[f"{key}_slot"] = "", ""
    for key, extent in scales.items():
        if extent is None:
            continue
        half = _half_width(extent, layout)
        half_y = half * height / MAP_WIDTH
        shown = [r for r in rows if r.get("x") is not None and r.get("y") is not None]
        found = place(
            [
                ((r["x"] + half) / (2 * half) * MAP_WIDTH, height - (r["y"] + half_y) / (2 * half_y) * height, str(r["name"]))
                for r in shown
            ],
            NAME_SLOTS,
            NAME_FONT,
            marker=GLYPH_RADIUS,
        )
        for r, (text, slot) in zip(shown, found, strict=True):
            r[f"{key}_label"], r[f"{key}_slot"] = text, slot


COMMON_LABEL = "same scale for every setting of the experiment "
LINK_DASH = {"domain": ["well", "poor"], "range": [[1, 0], [5, 3]]}
ERROR_SCALE = {"scheme": "redyellowgreen", "reverse": True, "domain": [0, 1], "clamp": True}
NEUTRAL = "#bdbdbd"


def modes_spec(
    modes: Data,
    links: Data,
    glyphs: Data,
    selected: str | None = None,
    pair_href: str | None = None,
    layout: dict[str, Any] | None = None,
    scales: dict[str, Any] | None = None,
    link_classes: list[str] | None = None,
) -> dict[str, Any]:
    """MDS map of the modes with mc links and glyphs, a glyph key, and a per-mode performance chart.

    The map has equal aspect: x and y share one domain per pixel, in units of 1 − CKA, and the title
    states the largest 1 − CKA and whether the scale is the setting's or the experiment's
    (``layout``: see :func:`mds_layout`; estimated from inline rows when omitted). When the second MDS
    axis is negligible the map is a 1-D strip. Glyph rings use absolute scales (errors on 0 … 1, train
    loss on a log scale over ``scales['loss']``), neutral grey when that range is negligible.
    ``link_classes`` lists the link classes present (legend entries; from inline rows when omitted).
    With ``pair_href`` (an address prefix), a click on a link opens ``{pair_href}{a}/{b}``, the
    pair view; ``selected`` pre-selects a mode.
    """
    layout = layout or layout_of_rows(modes.get("values", []))
    if modes.get("values") and "name_label" not in modes["values"][0]:  # inline rows not read by modes_rows
        modes = {**modes, "values": [dict(r) for r in modes["values"]]}
        name_labels(modes["values"], layout)
    scales = scales or {}
    x_domain, y_domain, height = _domains(layout)
    param: dict[str, Any] = {**SELECTION, "views": ["mode_centres", "mode_bars"]}
    if selected:
        param["value"] = [{"checkpoint": selected}]
    params = [param]
    if _has_common(layout):
        params.append({"name": "common_scale", "value": False, "bind": {"input": "checkbox", "name": COMMON_LABEL}})
    one_d = layout["dims"] == 1
    x_scale: dict[str, Any] = {"zero": False, "nice": False, **({"domain": x_domain} if x_domain else {"padding": 40})}
    y_scale: dict[str, Any] = {"zero": False, "nice": False, **({"domain": y_domain} if y_domain else {"padding": 40})}
    xy: dict[str, dict[str, Any]] = {
        "x": {"field": "x", "type": "quantitative", "title": "MDS 1 (1 − CKA)", "scale": x_scale, "axis": {"format": ".2~g"}},
        "y": {
            "field": "y",
            "type": "quantitative",
            "title": "MDS 2 (1 − CKA)",
            "scale": y_scale,
            "axis": None if one_d else {"format": ".2~g"},
        },
    }
    classes = present(links, "link", WELL_POOR_SCALE["domain"], link_classes)
    link_layer: dict[str, Any] = {
        "data": links,
        "mark": {"type": "rule", "strokeWidth": 2.5, "cursor": "pointer"},
        "encoding": {
            **xy,
            "x2": {"field": "x2"},
            "y2": {"field": "y2"},
            "color": {
                "field": "link",
                "type": "nominal",
                "scale": subset(WELL_POOR_SCALE, classes),
                "title": "connectivity",
                "legend": {"symbolType": "stroke", "symbolStrokeWidth": 2.5, "orient": "bottom"},
            },
            "strokeDash": {
                "field": "link",
                "type": "nominal",
                "scale": subset(LINK_DASH, classes),
                "title": "connectivity",
                "legend": {"symbolType": "stroke", "symbolStrokeWidth": 2.5, "orient": "bottom"},
            },
            "tooltip": [
                {"field": "name_a", "title": "mode a"},
                {"field": "name_b", "title": "mode b"},
                {"field": "curve", "title": "fitted curve"},
                {"field": "mc", "title": "mc (fitted curve)", "format": ".3g"},
                {"field": "mc_linear", "title": "mc (straight line)", "format": ".3g"},
            ],
            **({"href": {"field": "href"}} if pair_href else {}),
        },
    }
    transform: list[dict[str, Any]] = []
    if pair_href:
        transform.append({"calculate": f"{json.dumps(pair_href)} + datum.checkpoint_a + '/' + datum.checkpoint_b", "as": "href"})
    if one_d:
        # On a line every link would lie on the others: draw each as an arc above it (an arc diagram),
        # its height proportional to its length.
        transform += [
            {"calculate": "sequence(0, 1.0001, 0.05)", "as": "s"},
            {"flatten": ["s"]},
            {"calculate": "datum.checkpoint_a + '/' + datum.checkpoint_b", "as": "pair"},
            {"calculate": "datum.x + (datum.x2 - datum.x) * datum.s", "as": "ax"},
            {"calculate": "0.6 * abs(datum.x2 - datum.x) * datum.s * (1 - datum.s)", "as": "ay"},
        ]
        link_layer["mark"] = {"type": "line", "strokeWidth": 2.5, "cursor": "pointer"}
        enc = link_layer["encoding"]
        del enc["x2"], enc["y2"]
        enc.update(x={**xy["x"], "field": "ax"}, y={**xy["y"], "field": "ay"}, detail={"field": "pair"}, order={"field": "s"})
    if transform:
        link_layer["transform"] = transform
    eig = scales.get("eigenvalues")
    bar_radius: dict[str, Any] = {"type": "log", "range": [9, 30], "clamp": True}
    if eig and eig[1] > eig[0]:
        bar_radius["domain"] = list(eig)
    bars = {
        "data": glyphs,
        "transform": [{"filter": "datum.piece === 'bar' && datum.value > 0"}],
        "mark": {"type": "arc", "stroke": "white", "strokeWidth": 0.3},
        "encoding": {
            **xy,
            "theta": {"field": "theta", "type": "quantitative", "scale": None},
            "theta2": {"field": "theta2"},
            "radius": {"field": "value", "type": "quantitative", "scale": bar_radius, "legend": None},
            "radius2": {"value": 9},
            "color": {"value": "#555"},
            "tooltip": [
                {"field": "rank", "title": "eigenvalue # (0 = largest)"},
                {"field": "value", "title": "λ", "format": ".4g"},
            ],
        },
    }
    ring_base: dict[str, Any] = {
        "data": glyphs,
        "mark": {"type": "arc"},
        "encoding": {
            **xy,
            "theta": {"field": "theta", "type": "quantitative", "scale": None},
            "theta2": {"field": "theta2"},
            "radius": {"value": GLYPH_RADIUS},
            "radius2": {"value": GLYPH_RADIUS - 6},
            "tooltip": [{"field": "metric"}, {"field": "value", "format": ".4g"}],
        },
    }
    ring_error = {
        **ring_base,
        "transform": [{"filter": "datum.piece === 'ring' && datum.scale === 'error'"}],
        "encoding": {
            **ring_base["encoding"],
            "color": {
                "field": "value",
                "type": "quantitative",
                "title": "error (absolute; ≥ 1 fails)",
                "scale": ERROR_SCALE,
                "legend": {"orient": "bottom", "gradientLength": 140, "format": ".1f"},
            },
        },
    }
    loss = scales.get("loss")
    loss_domain = None if loss is None or loss[0] <= 0 or loss[1] <= loss[0] * 1.05 else list(loss)
    ring_loss = {
        **ring_base,
        "transform": [{"filter": "datum.piece === 'ring' && datum.scale === 'loss'"}],
        "encoding": {
            **ring_base["encoding"],
            "color": {"value": NEUTRAL}
            if loss_domain is None
            else {
                "field": "value",
                "type": "quantitative",
                "title": "train loss (log; experiment's range)",
                "scale": {"type": "log", "scheme": "redyellowgreen", "reverse": True, "domain": loss_domain, "clamp": True},
                "legend": {"orient": "bottom", "gradientLength": 140, "format": ".0e"},
            },
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
                {"field": "x", "title": "MDS 1", "format": ".3g"},
                {"field": "y", "title": "MDS 2", "format": ".3g"},
                {"field": "train_loss", "format": ".3g"},
                {"field": "test_error", "format": ".3g"},
                {"field": "top_eigenvalue", "title": "λmax", "format": ".4g"},
            ],
        },
    }
    # Each name above or below its glyph, where no other name is (see name_labels); with the common scale
    # ticked, the placement made for that scale.
    if _has_common(layout):
        chosen = [
            {"calculate": "common_scale ? datum.common_label : datum.name_label", "as": "shown_label"},
            {"calculate": "common_scale ? datum.common_slot : datum.name_slot", "as": "shown_slot"},
        ]
    else:
        chosen = [{"calculate": "datum.name_label", "as": "shown_label"}, {"calculate": "datum.name_slot", "as": "shown_slot"}]
    labels: list[dict[str, Any]] = [
        {
            **layer,
            "data": modes,
            "transform": [{"filter": "isValid(datum.x)"}, *chosen, *layer["transform"]],
            "encoding": {**xy, **layer["encoding"]},
        }
        for layer in text_layers(NAME_SLOTS, "shown_label", "shown_slot", NAME_FONT)
    ]
    mode_map = {
        "title": _map_title(layout),
        "width": MAP_WIDTH,
        "height": height,
        "layer": [link_layer, ring_error, ring_loss, bars, centres, *labels],
        "resolve": {"scale": {"color": "independent", "radius": "independent", "strokeDash": "independent"}},
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
        {
            "params": params,
            "hconcat": [mode_map, {"vconcat": [glyph_key(glyphs, eig), bar_chart]}],
            "resolve": {"scale": {"color": "independent", "strokeDash": "independent"}},
        },
        title="Semi-global: the setting's modes",
    )


def glyph_key(glyphs: Data, eigenvalues: tuple[float, float] | None = None) -> dict[str, Any]:
    """How to read a glyph: the first mode's glyph, enlarged, its ring segments labelled by metric."""
    first = [
        {"window": [{"op": "dense_rank", "as": "nth"}], "sort": [{"field": "checkpoint"}]},
        {"filter": "datum.nth === 1"},
    ]
    centre = {
        "x": {"datum": 0, "type": "quantitative", "scale": {"domain": [-1, 1]}, "axis": None},
        "y": {"datum": 0, "type": "quantitative", "scale": {"domain": [-1, 1]}, "axis": None},
    }
    bar_note = "bars: top-10 Hessian eigenvalues, log radius"
    if eigenvalues:
        bar_note += f" ({_fmt(eigenvalues[0])} … {_fmt(eigenvalues[1])} over the experiment)"
    return {
        "title": {"text": "Reading a glyph", "subtitle": [bar_note, "ring: performance, one segment per metric"]},
        "width": 200,
        "height": 150,
        "data": glyphs,
        "transform": [{"filter": "datum.piece === 'ring'"}, *first],
        "layer": [
            {
                "mark": {"type": "arc", "color": "#cfd8dc", "stroke": "white"},
                "encoding": {
                    **centre,
                    "theta": {"field": "theta", "type": "quantitative", "scale": None},
                    "theta2": {"field": "theta2"},
                    "radius": {"value": 46},
                    "radius2": {"value": 36},
                },
            },
            {
                "mark": {"type": "text", "radius": 60, "fontSize": 10, "color": "#333"},
                "encoding": {
                    **centre,
                    "theta": {"field": "mid", "type": "quantitative", "scale": None},
                    "text": {"field": "metric"},
                },
            },
        ],
    }
