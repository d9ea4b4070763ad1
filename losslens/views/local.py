"""The local view of one mode: landscape, merge tree, persistence diagram, Hessian spectrum and ESD.

One chart, so that a click on a minimum (in the heat map, the tree or the diagram) selects it
in all three: the ``minimum`` selection is keyed on the grid point of the minimum.
"""

from __future__ import annotations

from typing import Any

from losslens.views.hessian import esd_panel, spectrum_panel
from losslens.views.landscape import MINIMUM, landscape_panel
from losslens.views.source import Data
from losslens.views.spec import chart
from losslens.views.topology import merge_tree_panel, persistence_panel


def local_spec(
    cells: Data, isolines: Data, minima: Data, nodes: Data, segments: Data, pairs: Data, eigenvalues: Data, density: Data
) -> dict[str, Any]:
    param = {**MINIMUM, "views": ["landscape_minima", "tree_minima", "diagram_minima"]}
    return chart(
        {
            "params": [param],
            "vconcat": [
                {
                    "hconcat": [
                        landscape_panel(cells, isolines, minima),
                        merge_tree_panel(nodes, segments),
                        persistence_panel(pairs),
                    ],
                    "resolve": {"scale": {"color": "independent", "shape": "independent"}},
                },
                {"hconcat": [spectrum_panel(eigenvalues), esd_panel(density)]},
            ],
            "resolve": {"scale": {"color": "independent"}},
        },
        title="Local: the mode's landscape, topology and curvature",
    )
