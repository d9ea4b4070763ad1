"""The pair view: two modes compared along their connecting curve, layer by layer, and by prediction.

- the connectivity curve profile: training loss and error along t ∈ [0, 1] for each fitted path;
- the layer-CKA heat map between the two networks' layers;
- predictions: for the PINN both u(x, t) fields, their errors against the exact solution and
  their difference; for classifiers both confusion matrices and the disagreement rate.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import numpy as np

from losslens.store import reads
from losslens.views.source import Data, Rows, finite, load_array
from losslens.views.spec import chart

MAX_CELLS = (64, 50)  # displayed PINN field: at most this many (x, t) cells, by striding the 256 × 100 grid


def curve_rows(conn: sqlite3.Connection, a: str, b: str) -> Rows:
    """Points of the newest connectivity run of the pair, with t measured from ``a``."""
    run = reads.latest_run(conn, "connectivity", a, b)
    if run is None:
        return []
    rows = reads.curve_points(conn, run)
    for r in rows:
        if r.pop("checkpoint_a") != a:
            r["t"] = 1.0 - r["t"]
        r["loss"], r["error"] = finite(r["loss"]), finite(r["error"])
    return rows


def layer_cka_rows(conn: sqlite3.Connection, a: str, b: str) -> Rows:
    """CKA between every layer of ``a`` (rows) and of ``b`` (columns), newest similarity run."""
    rows = reads.layer_cka(conn, a, b)
    out = []
    for r in rows:
        swap = r["checkpoint_a"] != a
        la, lb = (r["layer_b"], r["layer_a"]) if swap else (r["layer_a"], r["layer_b"])
        ia, ib = (r["index_b"], r["index_a"]) if swap else (r["index_a"], r["index_b"])
        out.append(
            {"layer_a": f"{ia}: {la}", "layer_b": f"{ib}: {lb}", "index_a": ia, "index_b": ib, "value": finite(r["value"])}
        )
    return out


def field_rows(conn: sqlite3.Connection, a: str, b: str) -> Rows:
    """PINN fields on a strided evaluation grid: u_a, u_b, u_a − u_exact, u_b − u_exact, u_a − u_b."""
    fa, fb = reads.prediction_fields(conn, a), reads.prediction_fields(conn, b)
    if "u" not in fa or "u" not in fb:
        return []
    loaded = {
        name: load_array(conn, f[key]["artifact"])
        for name, f, key in (("a", fa, "u"), ("b", fb, "u"), ("exact_a", fa, "u_exact"), ("exact_b", fb, "u_exact"))
    }
    arrays = {name: array for name, array in loaded.items() if array is not None}
    if len(arrays) < len(loaded):
        return []
    meta = fa["u"]
    n_x, n_t = meta["n_x"], meta["n_t"]
    sx, st = math.ceil(n_x / MAX_CELLS[0]), math.ceil(n_t / MAX_CELLS[1])
    xs = np.linspace(meta["x_min"], meta["x_max"], n_x)[::sx]
    ts = np.linspace(meta["t_min"], meta["t_max"], n_t)[::st]
    dx = (xs[1] - xs[0]) / 2 if len(xs) > 1 else 0.5
    dt = (ts[1] - ts[0]) / 2 if len(ts) > 1 else 0.5
    panels = {
        "u (a)": arrays["a"],
        "u (b)": arrays["b"],
        "error (a)": arrays["a"] - arrays["exact_a"],
        "error (b)": arrays["b"] - arrays["exact_b"],
        "u (a) − u (b)": arrays["a"] - arrays["b"],
    }
    rows: Rows = []
    for panel, array in panels.items():
        sub = array[::sx, ::st]
        for i, x in enumerate(xs):
            for j, t in enumerate(ts):
                rows.append(
                    {
                        "panel": panel,
                        "x0": float(x - dx),
                        "x1": float(x + dx),
                        "t0": float(t - dt),
                        "t1": float(t + dt),
                        "value": float(sub[i, j]),
                    }
                )
    return rows


def confusion_rows(conn: sqlite3.Connection, a: str, b: str, split: str = "test") -> Rows:
    rows: Rows = []
    for label, sha in (("a", a), ("b", b)):
        found = reads.confusion(conn, sha, split)
        if found is None:
            return []
        for r in found:
            rows.append({"model": label, **r})
    return rows


def disagreement(conn: sqlite3.Connection, a: str, b: str) -> float | None:
    """The stored ``disagreement`` pair metric (fraction of test examples on which the two classifiers
    predict different labels), or None before ``losslens compute disagreement`` ran."""
    for row in reads.pair_metric_rows(conn, a, b):
        if row["metric"] == "disagreement" and row["quantity"] == "test labels":
            return finite(row["value"])
    return None


def curve_spec(points: Data) -> dict[str, Any]:
    """Training loss and error along each fitted path between the two modes."""
    base = {
        "x": {"field": "t", "type": "quantitative", "title": "t (0 = mode a, 1 = mode b)"},
        "color": {"field": "curve", "type": "nominal", "title": "path"},
    }
    panel = lambda field, title: {  # noqa: E731
        "width": 260,
        "height": 200,
        "title": title,
        "mark": {"type": "line", "point": True},
        "encoding": {
            **base,
            "y": {"field": field, "type": "quantitative", "title": title},
            "tooltip": [{"field": "curve"}, {"field": "t", "format": ".2f"}, {"field": field, "format": ".4g"}],
        },
    }
    return chart(
        {"data": points, "hconcat": [panel("loss", "training loss"), panel("error", "error")]},
        title="Mode connectivity: curve profile",
    )


def layer_cka_spec(cells: Data) -> dict[str, Any]:
    return chart(
        {
            "data": cells,
            "width": {"step": 18},
            "height": {"step": 18},
            "mark": {"type": "rect"},
            "encoding": {
                "x": {"field": "layer_b", "type": "ordinal", "title": "layer of mode b", "sort": {"field": "index_b"}},
                "y": {"field": "layer_a", "type": "ordinal", "title": "layer of mode a", "sort": {"field": "index_a"}},
                "color": {
                    "field": "value",
                    "type": "quantitative",
                    "title": "CKA",
                    "scale": {"domain": [0, 1], "scheme": "blues"},
                },
                "tooltip": [{"field": "layer_a"}, {"field": "layer_b"}, {"field": "value", "title": "CKA", "format": ".3f"}],
            },
        },
        title="Layer CKA",
    )


def symmetric_limits(cells: Rows) -> dict[str, float]:
    """Half-widths of the two shared symmetric colour domains of :func:`fields_spec`: ``error`` (the
    largest |error| of either mode) and ``difference`` (the largest |u_a − u_b|)."""
    err = [abs(r["value"]) for r in cells if r["panel"].startswith("error")]
    diff = [abs(r["value"]) for r in cells if r["panel"] == DIFFERENCE]
    return {"error": max(err, default=0.0), "difference": max(diff, default=0.0)}


DIFFERENCE = "u (a) − u (b)"


def fields_spec(cells: Data, limits: dict[str, float] | None = None) -> dict[str, Any]:
    """Five heat maps over (x, t): both predictions, both errors, and their difference.

    Colour scales are shared so that panels compare: both predictions use the exact solution's range
    [−1, 1]; both errors one symmetric domain [−m, m], m the largest |error| of either mode; the
    difference its own symmetric domain. ``limits`` gives the half-widths (see
    :func:`symmetric_limits`; computed from inline rows when omitted).
    """
    if limits is None and "values" in cells:
        limits = symmetric_limits(cells["values"])

    def domain(kind: str) -> dict[str, Any]:
        m = (limits or {}).get(kind)
        return {"domain": [-m, m]} if m else {"domainMid": 0}

    def panel(name: str, scale: dict[str, Any]) -> dict[str, Any]:
        return {
            "title": name,
            "width": 170,
            "height": 130,
            "transform": [{"filter": {"field": "panel", "equal": name}}],
            "mark": {"type": "rect"},
            "encoding": {
                "x": {"field": "x0", "type": "quantitative", "title": "x", "scale": {"nice": False}},
                "x2": {"field": "x1"},
                "y": {"field": "t0", "type": "quantitative", "title": "t", "scale": {"nice": False}},
                "y2": {"field": "t1"},
                "color": {
                    "field": "value",
                    "type": "quantitative",
                    "title": {"u": "u (both)", "error": "u − u exact (both)", "difference": "u (a) − u (b)"}[scale["kind"]],
                    "scale": {k: v for k, v in scale.items() if k != "kind"},
                    "legend": {"orient": "bottom", "gradientLength": 150, "format": ".2~g"},
                },
                "tooltip": [{"field": "value", "format": ".3g"}],
            },
        }

    u = {"kind": "u", "scheme": "redblue", "domain": [-1, 1], "clamp": True}
    err = {"kind": "error", "scheme": "purpleorange", **domain("error")}
    diff = {"kind": "difference", "scheme": "purplegreen", **domain("difference")}
    shared = {"resolve": {"scale": {"color": "shared", "x": "shared", "y": "shared"}}}
    return chart(
        {
            "data": cells,
            "hconcat": [
                {"hconcat": [panel("u (a)", u), panel("u (b)", u)], **shared},
                {"hconcat": [panel("error (a)", err), panel("error (b)", err)], **shared},
                panel(DIFFERENCE, diff),
            ],
            "resolve": {"scale": {"color": "independent"}},
        },
        title={
            "text": "Predictions u(x, t), errors against the exact solution, and their difference",
            "subtitle": "the two predictions share one colour scale, the two errors one symmetric scale, the difference its own",
        },
    )


def confusion_spec(cells: Data, disagreement_rate: float | None = None) -> dict[str, Any]:
    """Both confusion matrices; the title carries the disagreement rate."""
    title = "Confusion matrices (test)"
    if disagreement_rate is not None:
        title += f" — the two modes disagree on {100 * disagreement_rate:.1f}% of test examples"
    return chart(
        {
            "data": cells,
            "facet": {"column": {"field": "model", "type": "nominal", "title": "mode"}},
            "spec": {
                # a cell holds its count at 9 px: up to 5 digits (about 28 px) side by side without overlap
                "width": {"step": 32},
                "height": {"step": 20},
                "layer": [
                    {
                        "mark": "rect",
                        "encoding": {
                            "color": {"field": "count", "type": "quantitative", "scale": {"type": "symlog", "scheme": "greys"}}
                        },
                    },
                    {
                        "mark": {"type": "text", "fontSize": 9},
                        "encoding": {
                            "text": {"field": "count"},
                            "color": {"condition": {"test": "datum.count > 0", "value": "#c62828"}, "value": "#bbb"},
                        },
                    },
                ],
                "encoding": {
                    "x": {"field": "predicted_label", "type": "ordinal", "title": "predicted"},
                    "y": {"field": "true_label", "type": "ordinal", "title": "true"},
                    "tooltip": [{"field": "true_label"}, {"field": "predicted_label"}, {"field": "count"}],
                },
            },
        },
        title=title,
    )
