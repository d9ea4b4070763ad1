"""The local view's curvature: the top Hessian eigenvalues and the eigenvalue spectral density."""

from __future__ import annotations

import sqlite3
from typing import Any

from losslens.store import reads
from losslens.views.source import Data, Rows
from losslens.views.spec import chart


def spectrum_rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
    """Eigenvalues of the newest ``hessian`` run: the largest (and smallest, when computed)."""
    return reads.hessian_eigenvalues(conn, checkpoint)


def esd_rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
    return reads.hessian_esd(conn, checkpoint)


def spectrum_panel(eigenvalues: Data) -> dict[str, Any]:
    return {
        "title": "Top Hessian eigenvalues",
        "data": eigenvalues,
        "width": 260,
        "height": 200,
        "transform": [{"calculate": "datum.which === 'largest' ? datum.rank + 1 : -(datum.rank + 1)", "as": "k"}],
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "k", "type": "ordinal", "title": "rank (negative: smallest)"},
            "y": {"field": "value", "type": "quantitative", "title": "eigenvalue λ", "scale": {"type": "symlog"}},
            "color": {
                "field": "which",
                "type": "nominal",
                "scale": {"domain": ["largest", "smallest"], "range": ["#3f51b5", "#ef6c00"]},
            },
            "tooltip": [
                {"field": "which"},
                {"field": "rank"},
                {"field": "value", "format": ".5g"},
                {"field": "residual", "format": ".2g"},
            ],
        },
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
            "x": {"field": "x", "type": "quantitative", "title": "eigenvalue λ"},
            "y": {"field": "density", "type": "quantitative", "title": "density", "scale": {"type": "log"}},
            "tooltip": [{"field": "x", "format": ".4g"}, {"field": "density", "format": ".3g"}],
        },
    }


def hessian_spec(eigenvalues: Data, density: Data) -> dict[str, Any]:
    """Spectrum and ESD side by side."""
    return chart({"hconcat": [spectrum_panel(eigenvalues), esd_panel(density)]})
