"""What every LossLens spec shares: the schema, a quiet look, and the phase colours of the taxonomy."""

from __future__ import annotations

from typing import Any

Data = dict[str, Any]

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"

# Yang et al.'s phases: poorly connected I/III warm, well connected II/IV cool, IV-B (best) green.
PHASES = ["I", "II", "III", "IV-A", "IV-B"]
PHASE_COLOURS = ["#d62728", "#ff7f0e", "#9467bd", "#1f77b4", "#2ca02c"]
PHASE_SCALE = {"domain": PHASES, "range": PHASE_COLOURS}
WELL_POOR_SCALE = {"domain": ["well", "poor"], "range": ["#2b8cbe", "#e34a33"]}

CONFIG: dict[str, Any] = {
    "view": {"stroke": "#ddd"},
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "grid": True, "gridColor": "#eee"},
    # Titles and labels are never cut short (Vega's default limits clip them at 180 px).
    "legend": {"labelFontSize": 11, "titleFontSize": 12, "titleLimit": 0, "labelLimit": 0},
    "title": {"fontSize": 14, "anchor": "start"},
    "font": "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif",
}


def present(data: Data, field: str, domain: list[Any], given: list[Any] | None = None) -> list[Any]:
    """The categories of ``domain`` that occur, in ``domain``'s order, so a legend lists only those:
    ``given`` when the caller knows them, else read from inline ``{"values": rows}``; for URL data with
    nothing given, the whole domain."""
    if given is None:
        if "values" not in data:
            return list(domain)
        seen = {row.get(field) for row in data["values"]}
        return [d for d in domain if d in seen]
    return [d for d in domain if d in given]


def subset(scale: dict[str, Any], keep: list[Any]) -> dict[str, Any]:
    """A categorical scale cut to the domain entries in ``keep``, each keeping its own range value."""
    pairs = [(d, r) for d, r in zip(scale["domain"], scale["range"], strict=True) if d in keep]
    return {**scale, "domain": [d for d, _ in pairs], "range": [r for _, r in pairs]}


def chart(body: dict[str, Any], title: str | dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A top-level spec: schema, config and an optional title around ``body``."""
    spec: dict[str, Any] = {"$schema": SCHEMA, "config": CONFIG, **body, **extra}
    if title:
        spec["title"] = title
    return spec
