"""A rotatable 3-D surface of a 2-D loss landscape: the picture most loss-landscape users know from
Li et al. (2018), drawn with plotly (its plotly.js ships inside the Python package, so pages and
files work offline; never a CDN).

Vega-Lite has no 3-D marks, so this one view is a plotly figure: the same grid rows and provenance as
the heat map (:mod:`losslens.views.landscape`), height = loss, colour = log10 loss (the heat map's
scale), θ marked at the centre.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from losslens.views.landscape import provenance
from losslens.views.source import Rows


def surface_grid(cells: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(α axis, β axis, loss[β, α]) from heat-map rows (``i``, ``j``, ``a``, ``b``, ``loss``); NaN where
    the loss was not finite."""
    ni = max(r["i"] for r in cells) + 1
    nj = max(r["j"] for r in cells) + 1
    a, b = np.zeros(ni), np.zeros(nj)
    z = np.full((nj, ni), np.nan)
    for r in cells:
        a[r["i"]], b[r["j"]] = r["a"], r["b"]
        if r["loss"] is not None:
            z[r["j"], r["i"]] = r["loss"]
    return a, b, z


def surface_figure(cells: Rows, record: dict[str, Any] | None = None, title: str = "Loss landscape (3-D)") -> dict[str, Any]:
    """The plotly figure (as a JSON-able dict) of a 2-D landscape: a surface of the loss over (α, β),
    coloured by log10 loss, with θ marked; the title carries the provenance (see
    :func:`losslens.views.landscape.provenance`).

    :raises ValueError: when ``cells`` is empty (no landscape computed).
    """
    import plotly.graph_objects as go

    if not cells:
        raise ValueError("no landscape rows")
    a, b, z = surface_grid(cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(z > 0, np.log10(z), np.nan)
    centre = (len(b) // 2, len(a) // 2)
    fig = go.Figure(
        [
            go.Surface(
                x=a,
                y=b,
                z=z,
                surfacecolor=colour,
                colorscale="Viridis",
                colorbar={"title": {"text": "log10 loss"}},
                contours={"z": {"show": True, "usecolormap": True, "project": {"z": True}}},
                hovertemplate="α %{x:.3g}<br>β %{y:.3g}<br>loss %{z:.4g}<extra></extra>",
            ),
            go.Scatter3d(
                x=[a[centre[1]]],
                y=[b[centre[0]]],
                z=[z[centre]],
                mode="markers+text",
                marker={"size": 4, "color": "red"},
                text=["θ"],
                hovertemplate="θ (the checkpoint)<br>loss %{z:.4g}<extra></extra>",
                showlegend=False,
            ),
        ]
    )
    fig.update_layout(
        title={"text": f"{title}<br><sup>{'<br>'.join(provenance(record))}</sup>", "x": 0.02},
        scene={
            "xaxis": {"title": {"text": "α along d1"}},
            "yaxis": {"title": {"text": "β along d2"}},
            "zaxis": {"title": {"text": "loss"}},
        },
        margin={"l": 0, "r": 0, "t": 80, "b": 0},
        width=720,
        height=620,
    )
    return json.loads(fig.to_json())  # plotly's encoder: arrays as lists, NaN as null


def surface_html(figure: dict[str, Any]) -> str:
    """A self-contained HTML page: plotly.js inline from the installed package, no fetch from anywhere."""
    import plotly.io as pio

    page = pio.to_html(figure, include_plotlyjs=True, full_html=True, config={"displaylogo": False}, validate=False)
    return page.replace("<head>", f"<head>{CSP}", 1)


# The page may run its inline scripts and nothing else: no request leaves it (plotly.js carries URLs for
# map tiles and fonts that a surface never needs; the policy makes sure of it).
CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:\">"
)


def plotly_js_path() -> Path:
    """The plotly.js bundle inside the installed plotly package (served by the Datasette plugin)."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def checkpoint_surface(conn: sqlite3.Connection, checkpoint: str) -> dict[str, Any] | None:
    """The surface figure of a checkpoint's newest 2-D grid landscape, or None without one."""
    from losslens.store import chart_queries, reads
    from losslens.views.landscape import grid_rows

    record = chart_queries.landscape_record(conn, checkpoint, 2, grid_only=True)
    found = reads.landscape(conn, checkpoint)
    if record is None or found is None:
        return None
    return surface_figure(grid_rows(conn, found["id"]), record)
