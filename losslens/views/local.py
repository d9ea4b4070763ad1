"""The local view of one mode: landscape, merge tree, persistence diagram, Hessian spectrum and ESD.

One chart, so that a click on a minimum (in the heat map, the tree or the diagram) selects it
in all three: the ``minimum`` selection is keyed on the grid point of the minimum.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from losslens.store import chart_queries
from losslens.views.hessian import esd_panel, spectrum_panel
from losslens.views.landscape import MINIMUM, landscape_panel
from losslens.views.source import Data
from losslens.views.spec import chart
from losslens.views.topology import barcode_panel, merge_tree_panel, persistence_panel


def local_spec(
    cells: Data,
    isolines: Data,
    minima: Data,
    nodes: Data,
    segments: Data,
    pairs: Data,
    eigenvalues: Data,
    density: Data,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``facts`` (see :func:`local_facts`) puts provenance, the simplification threshold, λmax and the
    trace into the panels' subtitles."""
    facts = facts or {}
    threshold = (facts.get("topology") or {}).get("threshold")
    param = {**MINIMUM, "views": ["landscape_minima", "tree_minima", "diagram_minima"]}
    return chart(
        {
            "params": [param],
            "vconcat": [
                {
                    "hconcat": [
                        landscape_panel(
                            cells,
                            isolines,
                            minima,
                            record=facts.get("landscape"),
                            loss_domain=facts.get("loss_domain"),
                            pairs=pairs,
                            threshold=threshold,
                        ),
                        merge_tree_panel(nodes, segments, facts.get("topology"), facts.get("kinds")),
                        persistence_panel(pairs, facts.get("topology"), facts.get("dims")),
                    ],
                    "resolve": {"scale": {"color": "independent", "shape": "independent"}},
                },
                {
                    "hconcat": [
                        spectrum_panel(eigenvalues, facts.get("hessian")),
                        esd_panel(density),
                        barcode_panel(pairs, facts.get("topology"), facts.get("dims")),
                    ],
                    # the spectrum's "largest" and the barcode's H0 are different categories: one shared colour
                    # scale would paint H0 in the spectrum's colour
                    "resolve": {"scale": {"color": "independent"}},
                },
            ],
            "resolve": {"scale": {"color": "independent"}},
        },
        title="Local: the mode's landscape, topology and curvature",
    )


def local_facts(conn: sqlite3.Connection, checkpoint: str, shared_with: list[str] | None = None) -> dict[str, Any]:
    """What the local panels state besides their rows: the newest 2-D landscape's record (provenance),
    its topology summary (simplification threshold, minima kept and pruned), the Hessian summary
    (λmax, trace) and, with ``shared_with`` (checkpoints shown on the same page), one loss domain."""
    record = chart_queries.landscape_record(conn, checkpoint, 2, grid_only=True)
    categories = chart_queries.topology_categories(conn, record["id"]) if record else {"dims": [], "kinds": []}
    return {
        "landscape": record,
        "topology": chart_queries.topology_summary(conn, record["id"]) if record else None,
        "dims": [f"H{d}" for d in categories["dims"]],
        "kinds": categories["kinds"],
        "hessian": chart_queries.hessian_summary(conn, checkpoint),
        "loss_domain": chart_queries.loss_range_of_landscapes(conn, [checkpoint, *shared_with]) if shared_with else None,
    }
