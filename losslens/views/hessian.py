"""The local view's curvature: the top Hessian eigenvalues and the eigenvalue spectral density."""

from __future__ import annotations

import sqlite3
from typing import Any

from losslens.store import reads
from losslens.views.hints import compute_command
from losslens.views.source import Data, Rows
from losslens.views.spec import chart, present, subset


def spectrum_rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
    """Eigenvalues of the newest ``hessian`` run: the largest (and smallest, when computed)."""
    return reads.hessian_eigenvalues(conn, checkpoint)


def esd_rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
    return reads.hessian_esd(conn, checkpoint)


WHICH = {"domain": ["largest", "smallest"], "range": ["#3f51b5", "#ef6c00"]}
# Each bar's value label: 3 significant digits, exponent when needed ("−9.88e+3", "0.814"): at most 8
# characters, about 44 px at 9 px, so one band of BAR_STEP px holds it and neighbours never overlap. Not SI
# prefixes: "814m" for an eigenvalue of 0.814 reads as 814 million.
BAR_FORMAT = ".3~g"
BAR_STEP = 50


def summary_line(summary: dict[str, Any] | None) -> str:
    """``λmax = … · trace = … ± … (Hutchinson, N probes)`` from :func:`losslens.store.chart_queries.hessian_summary`."""
    if not summary or summary.get("top_eigenvalue") is None:
        return f"not computed: {compute_command(['hessian'])}"
    parts = [f"λmax = {summary['top_eigenvalue']:.4g}"]
    if summary.get("smallest_eigenvalue") is not None:
        parts.append(f"λmin = {summary['smallest_eigenvalue']:.4g}")
    if summary.get("trace") is not None:
        parts.append(
            f"trace = {summary['trace']:.4g} ± {summary['trace_std_error']:.2g} (Hutchinson, {summary['trace_probes']} probes)"
        )
    return " · ".join(parts)


def spectrum_panel(eigenvalues: Data, summary: dict[str, Any] | None = None, which: list[str] | None = None) -> dict[str, Any]:
    """Bars of the computed eigenvalues on a linear axis from 0, so bar lengths are proportional to λ;
    each bar is labelled with its value so small ones stay readable. Legend entries only for the
    kinds computed (``which``; from inline rows when omitted); the subtitle prints λmax and the trace."""
    if which is None and summary:
        which = [w for w in WHICH["domain"] if summary.get(f"n_{w}")]
    kinds = present(eigenvalues, "which", WHICH["domain"], which)
    return {
        "title": {"text": "Top Hessian eigenvalues", "subtitle": summary_line(summary)},
        "data": eigenvalues,
        "width": {"step": BAR_STEP},
        "height": 200,
        "transform": [
            {"calculate": "datum.which === 'largest' ? 'λ' + (datum.rank + 1) : 'λ−' + (datum.rank + 1)", "as": "k"},
            {"calculate": "datum.which === 'largest' ? datum.rank : -(datum.rank + 1)", "as": "order"},
        ],
        "encoding": {
            "x": {
                "field": "k",
                "type": "ordinal",
                "title": "eigenvalue (λ1 largest; λ−1 most negative)" if "smallest" in kinds else "eigenvalue (λ1 largest)",
                "sort": {"field": "order", "op": "min"},
            },
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": "eigenvalue λ (linear axis)",
                "scale": {"zero": True, "nice": True},
                "axis": {"format": BAR_FORMAT},
            },
        },
        "layer": [
            {
                "mark": {"type": "bar"},
                "encoding": {
                    "color": {
                        "field": "which",
                        "type": "nominal",
                        "title": "computed",
                        "scale": subset(WHICH, kinds),
                        "legend": {"orient": "bottom"} if len(kinds) > 1 else None,
                    },
                    "tooltip": [
                        {"field": "which"},
                        {"field": "k", "title": "eigenvalue"},
                        {"field": "value", "format": ".5g"},
                        {"field": "residual", "format": ".2g"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "dy": -5, "fontSize": 9, "color": "#333", "baseline": "bottom"},
                "encoding": {"text": {"field": "value", "format": BAR_FORMAT}},
            },
        ],
    }


def esd_panel(density: Data) -> dict[str, Any]:
    return {
        "title": "Eigenvalue spectral density (SLQ)",
        "data": density,
        "width": 260,
        "height": 200,
        "transform": [{"filter": "datum.density > 1e-12"}],
        "mark": {"type": "line", "color": "#00695c", "interpolate": "monotone"},
        "encoding": {
            "x": {"field": "x", "type": "quantitative", "title": "eigenvalue λ", "axis": {"format": "~g", "labelOverlap": True}},
            "y": {"field": "density", "type": "quantitative", "title": "density", "scale": {"type": "log"}},
            "tooltip": [{"field": "x", "format": ".4g"}, {"field": "density", "format": ".3g"}],
        },
    }


def hessian_spec(
    eigenvalues: Data, density: Data, summary: dict[str, Any] | None = None, which: list[str] | None = None
) -> dict[str, Any]:
    """Spectrum (with λmax and trace, see :func:`spectrum_panel`) and ESD side by side."""
    return chart({"hconcat": [spectrum_panel(eigenvalues, summary, which), esd_panel(density)]})
