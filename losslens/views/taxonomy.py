"""The global view: every setting of an experiment placed in Yang et al.'s taxonomy.

Two panels share one click selection keyed on ``setting_id``: a phase plot (sharpness
against mode connectivity, the two axes that split phases I–IV, coloured by phase) and the
hyperparameter grid of the sweep (Yang et al.'s phase diagrams), coloured the same way.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from losslens.store import chart_queries, reads
from losslens.views.labels import LINE_HEIGHT, around, place, text_layers, text_width
from losslens.views.source import Data, Rows, finite
from losslens.views.spec import PHASE_SCALE, chart, present, subset


def experiments(conn: sqlite3.Connection) -> Rows:
    return reads.experiments(conn)


def keys_of(values: Iterable[dict[str, Any]]) -> list[str]:
    """The keys of the settings' ``values``, in first-seen order."""
    return list(dict.fromkeys(key for v in values for key in v))


REAL = ("mc", "cka", "log_top_eigenvalue", "log_trace", "train_loss", "train_error", "test_error")


def taxonomy_rows(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """One row per setting, with its latest taxonomy values, its first two sweep values as ``gx``/``gy``,
    and where each plot writes its label (:func:`point_labels`)."""
    rows = reads.experiment_taxonomy(conn, experiment_id)
    values = [json.loads(row.pop("values_json") or "{}") for row in rows]
    keys = keys_of(values)[:2]
    for row, settings in zip(rows, values, strict=True):
        for key in REAL:
            row[key] = finite(row[key])
        row["gx"] = _grid_value(settings.get(keys[0])) if keys else row["label"]
        row["gy"] = _grid_value(settings.get(keys[1])) if len(keys) > 1 else ""
        row["phase"] = row["phase"] or "unknown"
    if len(rows) <= LABELLED_POINTS:
        point_labels(rows, chart_queries.taxonomy_thresholds(conn, experiment_id))
    else:  # the spec writes only the chosen setting's name (see taxonomy_spec's cell_labels)
        for row in rows:
            row.update(phase_label="", phase_slot="", cka_label="", cka_slot="")
    return rows


# The two scatter plots' sizes and scale paddings in px: the spec draws them, point_labels maps to them.
PHASE_PLOT = (340, 300)
CKA_PLOT = (220, 300)
X_PADDING, Y_PADDING = 20, 14
LABEL_FONT = 10
LABELLED_POINTS = 100  # a sweep with more settings: its plots write no names but the chosen setting's
POINT_RADIUS = 6.0  # px: the points' half-width (size 110)
LABEL_SLOTS = around(12.0, POINT_RADIUS + 3)
ZERO_RULE, SHARP_RULE, CKA_RULE = "mc = 0", "sharp →", "high CKA →"


def _linear_px(values: list[float], size: float, padding: float) -> Callable[[float], float]:
    """Pixel of a value on a linear scale over ``values`` (zero and nice off, ``padding`` px at both ends)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return lambda v: size / 2
    return lambda v: padding + (v - lo) / (hi - lo) * (size - 2 * padding)


def _symlog(constant: float) -> Callable[[float], float]:
    """The symlog transform of Webber (2012) that Vega's symlog scale applies: sign(v)·log1p(|v|/c)."""
    return lambda v: math.copysign(math.log1p(abs(v) / constant), v)


def _drawn(row: dict[str, Any], field: str) -> bool:
    return row.get("mc") is not None and row.get(field) is not None


def scatter_pixels(rows: Rows, thresholds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Where the phase plot and the CKA plot draw each row, in px from their top-left corners, as their own
    scales place it: linear x (the taxonomy's sharpness measure, or CKA) and symlog mc on y with the constant
    of :func:`mc_axis_of`, each over its points and its threshold line, ``nice`` off. Per plot: ``at`` (one
    ``(x, y)`` per row, None for a row not drawn), ``size``, and ``rule`` (the x of the threshold line) and
    ``zero`` (the y of mc = 0), or None."""
    measure = thresholds.get("sharpness", {}).get("measure") or "log_top_eigenvalue"
    symlog = _symlog(mc_axis_of([r.get("mc") for r in rows])["constant"])
    out = {}
    for plot, field, rule, size in (
        ("phase", measure, thresholds.get("sharpness", {}).get("value"), PHASE_PLOT),
        ("cka", "cka", thresholds.get("cka", {}).get("value"), CKA_PLOT),
    ):
        drawn = [r for r in rows if _drawn(r, field)]
        found: dict[str, Any] = {"at": [None] * len(rows), "size": size, "rule": None, "zero": None}
        out[plot] = found
        if not drawn:
            continue
        width, height = size
        x = _linear_px([r[field] for r in drawn] + ([rule] if rule is not None else []), width, X_PADDING)
        y_up = _linear_px([symlog(r["mc"]) for r in drawn] + [0.0], height, Y_PADDING)
        found["at"] = [(x(r[field]), height - y_up(symlog(r["mc"]))) if _drawn(r, field) else None for r in rows]
        found["rule"] = x(rule) if rule is not None else None
        found["zero"] = height - y_up(0.0)
    return out


def point_labels(rows: Rows, thresholds: dict[str, Any]) -> None:
    """Set ``phase_label``/``phase_slot`` and ``cka_label``/``cka_slot`` on each row: the text each scatter
    plot writes beside the setting's point and in which slot (above, below, right, left), so that no two
    labels overlap nor cover the threshold lines' labels (:func:`losslens.views.labels.place`, at the pixels
    of :func:`scatter_pixels`). Settings at one point share one label. (:func:`taxonomy_rows` calls it for
    at most :data:`LABELLED_POINTS` settings; above, the spec writes only the chosen setting's name, see
    ``cell_labels`` of :func:`taxonomy_spec`.)"""
    line = LABEL_FONT * LINE_HEIGHT
    for plot, found in scatter_pixels(rows, thresholds).items():
        for r in rows:
            r[f"{plot}_label"], r[f"{plot}_slot"] = "", ""
        taken = []  # the rule labels' boxes: "mc = 0" at the left end of its line, the threshold's at the top
        if found["zero"] is not None:
            taken.append((3.0, found["zero"] - 4 - line, 3 + text_width(ZERO_RULE, LABEL_FONT), found["zero"] - 4))
        if found["rule"] is not None:
            rule_text = SHARP_RULE if plot == "phase" else CKA_RULE
            taken.append((found["rule"] + 3, 2.0, found["rule"] + 3 + text_width(rule_text, LABEL_FONT), 2 + line))
        placed = place(
            [(at[0], at[1], str(r["label"])) if at else None for r, at in zip(rows, found["at"], strict=True)],
            LABEL_SLOTS,
            LABEL_FONT,
            marker=POINT_RADIUS,
            taken=taken,
        )
        for r, (text, slot) in zip(rows, placed, strict=True):
            r[f"{plot}_label"], r[f"{plot}_slot"] = text, slot


def spec_inputs(found: list[tuple[str | None, float | None]]) -> tuple[list[str], dict[str, Any]]:
    """From each setting's ``(phase, mc)`` (:func:`losslens.store.reads.experiment_phases`): the phases present
    (``unknown`` for None) and the :func:`mc_axis_of` of the mc values: what the spec needs from the rows, read
    without them."""
    return sorted({phase or "unknown" for phase, _ in found}), mc_axis_of([finite(mc) for _, mc in found])


def _grid_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) or value is None else json.dumps(value)


SELECTION = {"name": "setting", "select": {"type": "point", "fields": ["setting_id"], "on": "click"}}
TOOLTIP = [
    {"field": "label", "title": "setting"},
    {"field": "phase"},
    {"field": "mc", "format": ".3g"},
    {"field": "cka", "format": ".3f"},
    {"field": "log_top_eigenvalue", "title": "log λmax", "format": ".3g"},
    {"field": "train_loss", "title": "train loss", "format": ".3g"},
    {"field": "test_error", "title": "test error", "format": ".3g"},
    {"field": "n_modes", "title": "modes"},
]


PHASE_TEXT = {
    "I": "I — sharp and poorly connected (mc < 0): barriers between seeds",
    "II": "II — sharp, well connected",
    "III": "III — flat, poorly connected",
    "IV-A": "IV-A — flat, well connected, low CKA (seeds differ in function)",
    "IV-B": "IV-B — flat, well connected, high CKA: the phase with the best test accuracy (Yang et al.)",
    "unknown": "unknown — an input metric (mc, sharpness or CKA) is missing",
}
MEASURES = {"log_top_eigenvalue": "log top Hessian eigenvalue", "log_trace": "log Hessian trace"}


def _contrast_text(background: str) -> str:
    """Black or white, whichever has the higher WCAG contrast on ``background`` (#rrggbb)."""
    channels = [int(background[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lum = sum(
        w * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        for w, c in zip((0.2126, 0.7152, 0.0722), channels, strict=True)
    )
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


ALL_PHASES = {"domain": PHASE_SCALE["domain"] + ["unknown"], "range": PHASE_SCALE["range"] + ["#bbbbbb"]}
# Phase text in a grid cell: black or white, whichever reads better on the cell's phase colour.
TEXT_COLOUR = {p: _contrast_text(c) for p, c in zip(ALL_PHASES["domain"], ALL_PHASES["range"], strict=True)}


def _colour(phases: list[str]) -> dict[str, Any]:
    return {"field": "phase", "type": "nominal", "scale": subset(ALL_PHASES, phases), "title": "phase"}


def mc_axis_of(mcs: list[float | None]) -> dict[str, Any]:
    """The symlog mc axis: ``constant`` is the smallest nonzero |mc| (floored at 1e-12), so the linear zone
    around 0 holds no setting and every sign stays readable however large the largest |mc| is; ``ticks``
    are 0 and ±1, 2, 5 × 10^k from that constant to the largest |mc|."""
    nonzero = [abs(v) for v in mcs if v is not None and v != 0]
    if not nonzero:
        return {"constant": 1.0, "ticks": None}
    lo, hi = max(min(nonzero), 1e-12), max(nonzero)
    signs = [s for s in (-1, 1) if any(v is not None and v * s > 0 for v in mcs)]
    ticks = [0.0]
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0**k
            if lo / 2 <= t <= hi * 1.5:
                ticks += [s * t for s in signs]
    return {"constant": lo, "ticks": sorted(ticks)}


def explanation(thresholds: dict[str, Any], phases: list[str]) -> list[str]:
    """Lines that explain the phases shown and the thresholds behind them (see ``taxonomy.rules``)."""
    lines = [PHASE_TEXT[p] for p in ALL_PHASES["domain"] if p in phases]
    sharp = thresholds.get("sharpness", {})
    cka = thresholds.get("cka", {})
    mc = thresholds.get("mc", {})
    eps = mc.get("epsilon") or 0.0
    lines.append(
        f"Well connected: mc ≥ {-eps if eps else 0:g} (a fixed threshold). Sharp and high CKA are relative to the settings compared: "
        + (
            f"sharp when {MEASURES.get(sharp.get('measure'), 'sharpness')} > {sharp['value']:.3g} ({sharp.get('source')}), "
            if sharp.get("value") is not None
            else "no sharpness threshold yet, "
        )
        + (
            f"high CKA when ≥ {cka['value']:.3g} ({cka.get('source')})."
            if cka.get("value") is not None
            else "no CKA threshold yet."
        )
    )
    return lines


def taxonomy_spec(
    data: Data,
    keys: list[str] | None = None,
    selected: str | None = None,
    cell_labels: bool = True,
    thresholds: dict[str, Any] | None = None,
    phases: list[str] | None = None,
    mc_axis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Phase plot, CKA plot and hyperparameter grid of one experiment's settings, linked on ``setting_id``.

    The phase plot is sharpness (the taxonomy's measure) against mc on a symlog axis (``mc_axis``:
    constant and ticks, see :func:`mc_axis_of`; from inline rows when omitted), with the mc = 0 line and the sharpness threshold drawn;
    beside it CKA against mc with the CKA threshold: the lines cut the plots into the phases' quadrants.
    Points carry their setting's label (only the selected setting's without ``cell_labels``), and a text below
    explains each phase shown and the relative
    thresholds (``thresholds``: the taxonomy run's, see :func:`losslens.store.chart_queries.taxonomy_thresholds`).
    ``keys`` names the grid's axes (the sweep's first two keys); ``selected`` pre-selects a setting;
    ``cell_labels`` writes the phase in each grid cell and every point's label (too many marks for large sweeps,
    where they would cover each other). ``phases``:
    the phases present (legend entries); read from inline rows when omitted.
    """
    keys = keys or []
    thresholds = thresholds or {}
    rows = data.get("values")
    if rows and "phase_label" not in rows[0]:  # inline rows not read by taxonomy_rows
        rows = [dict(r) for r in rows]
        point_labels(rows, thresholds)
        data = {**data, "values": rows}
    phases = present(data, "phase", ALL_PHASES["domain"], phases)
    if mc_axis is None:
        mc_axis = mc_axis_of([r.get("mc") for r in rows] if rows else [])
    measure = thresholds.get("sharpness", {}).get("measure") or "log_top_eigenvalue"
    param: dict[str, Any] = {**SELECTION, "views": ["phase_points", "cka_points", "grid_cells"]}
    if selected:
        param["value"] = [{"setting_id": selected}]
    selected_stroke = {"condition": {"param": "setting", "empty": False, "value": 3}, "value": 0.5}
    mc_y = {
        "field": "mc",
        "type": "quantitative",
        "title": "mode connectivity mc (symlog; well ↑ / poor ↓)",
        "scale": {"type": "symlog", "constant": mc_axis["constant"], "nice": False, "padding": Y_PADDING},
        "axis": {"format": ".2~g", **({"values": mc_axis["ticks"]} if mc_axis.get("ticks") else {})},
    }

    def rule(channel: str, value: float | None, label: str) -> list[dict[str, Any]]:
        if value is None:
            return []
        return [
            {
                "data": {"values": [{"v": value, "label": label}]},
                "mark": {"type": "rule", "strokeDash": [4, 4], "color": "#555"},
                "encoding": {channel: {"field": "v", "type": "quantitative"}},
            },
            {
                "data": {"values": [{"v": value, "label": label}]},
                "mark": {"type": "text", "align": "left", "dx": 3, "dy": -4, "color": "#555", "fontSize": 10}
                | ({"y": 0, "baseline": "top", "dy": 2} if channel == "x" else {"x": 0, "baseline": "bottom"}),
                "encoding": {channel: {"field": "v", "type": "quantitative"}, "text": {"field": "label"}},
            },
        ]

    def points(name: str, plot: str, x: dict[str, Any]) -> list[dict[str, Any]]:
        valid = {"filter": f"isValid(datum.mc) && isValid(datum.{x['field']})"}
        return [
            {
                "name": name,
                "mark": {"type": "point", "filled": True, "size": 110, "stroke": "black", "cursor": "pointer"},
                "transform": [valid],
                "encoding": {
                    "x": x,
                    "y": mc_y,
                    "color": _colour(phases),
                    "strokeWidth": selected_stroke,
                    "opacity": {"condition": {"param": "setting", "value": 1}, "value": 0.35},
                    "tooltip": TOOLTIP,
                },
            },
        ] + (
            [
                {**layer, "transform": [valid, *layer["transform"]], "encoding": {"x": x, "y": mc_y, **layer["encoding"]}}
                for layer in text_layers(LABEL_SLOTS, f"{plot}_label", f"{plot}_slot", LABEL_FONT, aria=False)
            ]
            if cell_labels
            else [  # a large sweep: a crowd of names reads as nothing; only the chosen setting's is written
                {
                    "mark": {"type": "text", "dy": -12, "fontSize": LABEL_FONT, "aria": False},
                    "transform": [valid, {"filter": {"param": "setting", "empty": False}}],
                    "encoding": {"x": x, "y": mc_y, "text": {"field": "label"}},
                }
            ]
        )

    sharp_value = thresholds.get("sharpness", {}).get("value")
    cka_value = thresholds.get("cka", {}).get("value")
    phase_plot = {
        "name": "phase_plot",
        "title": {"text": "Phase plot", "subtitle": "the dashed lines are the taxonomy's thresholds"},
        "width": PHASE_PLOT[0],
        "height": PHASE_PLOT[1],
        "layer": rule("y", 0.0, ZERO_RULE)
        + rule("x", sharp_value, SHARP_RULE)
        + points(
            "phase_points",
            "phase",
            {
                "field": measure,
                "type": "quantitative",
                "title": f"{MEASURES.get(measure, measure)} (sharper →)",
                "scale": {"zero": False, "nice": False, "padding": X_PADDING},
            },
        ),
    }
    cka_plot = {
        "name": "cka_plot",
        "title": {"text": "CKA splits phase IV", "subtitle": "similarity of the seeds' outputs"},
        "width": CKA_PLOT[0],
        "height": CKA_PLOT[1],
        "layer": rule("y", 0.0, ZERO_RULE)
        + rule("x", cka_value, CKA_RULE)
        + points(
            "cka_points",
            "cka",
            {
                "field": "cka",
                "type": "quantitative",
                "title": "CKA (mean over seed pairs)",
                "scale": {"zero": False, "nice": False, "padding": X_PADDING},
            },
        ),
    }
    grid = {
        "name": "grid",
        "title": "Settings",
        "width": {"step": 40},
        "height": {"step": 34},
        "encoding": {
            "x": {"field": "gx", "type": "ordinal", "title": keys[0] if keys else "setting", "axis": {"grid": False}},
            "y": {
                "field": "gy",
                "type": "ordinal",
                "title": keys[1] if len(keys) > 1 else None,
                "sort": "descending",
                "axis": {"grid": False},
            },
        },
        "layer": [
            {
                "name": "grid_cells",
                "mark": {"type": "rect", "stroke": "black", "cursor": "pointer"},
                "encoding": {
                    "color": _colour(phases),
                    "strokeWidth": selected_stroke,
                    "opacity": {"condition": {"param": "setting", "value": 1}, "value": 0.35},
                    "tooltip": TOOLTIP,
                },
            },
        ]
        + (
            [
                {
                    "mark": {"type": "text", "fontSize": 11, "fontWeight": "bold", "aria": False},
                    "encoding": {
                        "text": {"field": "phase"},
                        "color": {"field": "text_colour", "type": "nominal", "scale": None},
                    },
                    "transform": [{"calculate": f"{json.dumps(TEXT_COLOUR)}[datum.phase]", "as": "text_colour"}],
                }
            ]
            if cell_labels
            else []
        ),
    }
    notes = {
        "data": {"values": [{"line": line, "i": i} for i, line in enumerate(explanation(thresholds, phases))]},
        "width": 600,
        "height": {"step": 16},
        "mark": {"type": "text", "align": "left", "x": 0, "fontSize": 11, "color": "#333"},
        "encoding": {"y": {"field": "i", "type": "ordinal", "axis": None}, "text": {"field": "line"}},
        "view": {"stroke": None},
    }
    return chart(
        {
            "data": data,
            "params": [param],
            "vconcat": [{"hconcat": [phase_plot, cka_plot, grid]}, notes],
        },
        title="Global: settings in the loss-landscape taxonomy",
    )
