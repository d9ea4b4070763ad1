"""The global view: every setting of an experiment placed in Yang et al.'s taxonomy.

Two panels share one click selection keyed on ``setting_id``: a phase plot (sharpness
against mode connectivity, the two axes that split phases I–IV, coloured by phase) and the
hyperparameter grid of the sweep (Yang et al.'s phase diagrams), coloured the same way.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from losslens.store import reads
from losslens.views.source import Data, Rows, finite
from losslens.views.spec import PHASE_SCALE, chart


def experiments(conn: sqlite3.Connection) -> Rows:
    return reads.experiments(conn)


def setting_keys(rows: Rows) -> list[str]:
    """The sweep's keys, in first-seen order."""
    keys: list[str] = []
    for row in rows:
        for key in json.loads(row["values_json"] or "{}"):
            if key not in keys:
                keys.append(key)
    return keys


def taxonomy_rows(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """One row per setting, with its latest taxonomy values and its first two sweep values as ``gx``/``gy``."""
    rows = reads.experiment_taxonomy(conn, experiment_id)
    keys = setting_keys(rows)[:2]
    out = []
    for row in rows:
        settings = json.loads(row.pop("values_json") or "{}")
        row = {k: finite(v) for k, v in row.items()}
        row["gx"] = _grid_value(settings.get(keys[0])) if keys else row["label"]
        row["gy"] = _grid_value(settings.get(keys[1])) if len(keys) > 1 else ""
        row["phase"] = row["phase"] or "unknown"
        out.append(row)
    return out


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


def _colour() -> dict[str, Any]:
    scale = {"domain": PHASE_SCALE["domain"] + ["unknown"], "range": PHASE_SCALE["range"] + ["#bbbbbb"]}
    return {"field": "phase", "type": "nominal", "scale": scale, "title": "phase"}


def taxonomy_spec(
    data: Data, keys: list[str] | None = None, selected: str | None = None, cell_labels: bool = True
) -> dict[str, Any]:
    """Phase plot and hyperparameter grid of one experiment's settings, linked on ``setting_id``.

    ``keys`` names the grid's axes (the sweep's first two keys); ``selected`` pre-selects a setting;
    ``cell_labels`` writes the phase in each grid cell (too many marks for large sweeps).
    """
    keys = keys or []
    param: dict[str, Any] = {**SELECTION, "views": ["phase_points", "grid_cells"]}
    if selected:
        param["value"] = [{"setting_id": selected}]
    selected_stroke = {"condition": {"param": "setting", "empty": False, "value": 3}, "value": 0.5}
    phase_plot = {
        "name": "phase_plot",
        "title": "Phase plot",
        "width": 360,
        "height": 300,
        "layer": [
            {
                "mark": {"type": "rule", "strokeDash": [4, 4], "color": "#888"},
                "data": {"values": [{"mc": 0}]},
                "encoding": {"y": {"field": "mc", "type": "quantitative"}},
            },
            {
                "name": "phase_points",
                "mark": {"type": "point", "filled": True, "size": 110, "stroke": "black", "cursor": "pointer"},
                "transform": [{"filter": "isValid(datum.mc) && isValid(datum.log_top_eigenvalue)"}],
                "encoding": {
                    "x": {
                        "field": "log_top_eigenvalue",
                        "type": "quantitative",
                        "title": "log top Hessian eigenvalue (sharper →)",
                        "scale": {"zero": False},
                    },
                    "y": {"field": "mc", "type": "quantitative", "title": "mode connectivity mc (well ↑ / poor ↓)"},
                    "color": _colour(),
                    "strokeWidth": selected_stroke,
                    "opacity": {"condition": {"param": "setting", "value": 1}, "value": 0.35},
                    "tooltip": TOOLTIP,
                },
            },
        ],
    }
    grid = {
        "name": "grid",
        "title": "Settings",
        "width": {"step": 34},
        "height": {"step": 34},
        "encoding": {
            "x": {"field": "gx", "type": "ordinal", "title": keys[0] if keys else "setting"},
            "y": {"field": "gy", "type": "ordinal", "title": keys[1] if len(keys) > 1 else None, "sort": "descending"},
        },
        "layer": [
            {
                "name": "grid_cells",
                "mark": {"type": "rect", "stroke": "black", "cursor": "pointer"},
                "encoding": {
                    "color": _colour(),
                    "strokeWidth": selected_stroke,
                    "opacity": {"condition": {"param": "setting", "value": 1}, "value": 0.35},
                    "tooltip": TOOLTIP,
                },
            },
        ]
        + (
            [{"mark": {"type": "text", "fontSize": 10, "color": "white"}, "encoding": {"text": {"field": "phase"}}}]
            if cell_labels
            else []
        ),
    }
    return chart(
        {"data": data, "params": [param], "hconcat": [phase_plot, grid]}, title="Global: settings in the loss-landscape taxonomy"
    )
