"""Numbers that summarise one landscape and its merge tree, for tables and comparisons."""

from __future__ import annotations

from typing import Any

import numpy as np

from losslens.topology.merge_tree import JoinTree, MergeTreeGraph


def curvature(values: np.ndarray, centre: int, probes: list[tuple[int, int]], steps: list[float]) -> list[float | None]:
    """Second difference (f(+h) − 2 f(0) + f(−h)) / h² at the centre along each axis, h being the
    parameter-space length of one step; None where a value is not finite."""
    out: list[float | None] = []
    for (minus, plus), h in zip(probes, steps, strict=True):
        c = (values[plus] - 2 * values[centre] + values[minus]) / h**2
        out.append(float(c) if np.isfinite(c) else None)
    return out


def smad(tree: JoinTree, graph: MergeTreeGraph) -> float | None:
    """Landscaper's SMAD: mean |f(saddle) − f(minimum)| over saddle–minimum edges of the tree."""
    kinds = np.asarray(graph.node_kind)
    sel = (kinds[graph.edge_lower] == "minimum") & (kinds[graph.edge_upper] == "saddle")
    if not sel.any():
        return None
    lo = tree.values[graph.node_point[graph.edge_lower[sel]]]
    hi = tree.values[graph.node_point[graph.edge_upper[sel]]]
    return float(np.mean(np.abs(hi - lo)))


def summarize(
    raw: np.ndarray,
    tree: JoinTree,
    graph: MergeTreeGraph,
    basins: np.ndarray,
    threshold: float,
    centre: int,
    probes: list[tuple[int, int]],
    steps: list[float],
) -> dict[str, Any]:
    """One ``landscape_summaries`` row (without ids). ``raw`` are the stored losses, NaN and inf kept."""
    finite = np.isfinite(raw)
    pers = tree.persistence
    dying = (tree.saddle >= 0) & np.isfinite(pers) & (pers > 0)
    kept = graph.branches
    sizes = np.bincount(basins, minlength=len(tree.minimum))[kept]
    order = np.argsort(-pers[kept], kind="stable")
    curv = curvature(raw, centre, probes, steps) + [None] * (4 - len(probes))
    vals = raw[finite]
    centre_loss = float(raw[centre]) if finite[centre] else None
    row = {
        "threshold": threshold,
        "n_minima": len(tree.minimum),
        "n_minima_above": len(kept),
        "total_persistence": float(pers[dying].sum()),
        "max_persistence": float(pers[dying].max()) if dying.any() else 0.0,
        "smad": smad(tree, graph),
        "basin_sizes_json": "[" + ",".join(str(int(v)) for v in sizes[order]) + "]",
        "centre_basin_size": int(sizes[np.flatnonzero(kept == basins[centre])[0]]),
        "n_points": int(raw.size),
        "n_nonfinite": int((~finite).sum()),
        "centre_loss": centre_loss,
        "grid_min": float(vals.min()) if vals.size else None,
        "grid_mean": float(vals.mean()) if vals.size else None,
        "grid_max": float(vals.max()) if vals.size else None,
        "centre_minus_mean": centre_loss - float(vals.mean()) if centre_loss is not None else None,
        "centre_over_max": centre_loss / float(vals.max()) if centre_loss is not None and vals.max() != 0 else None,
    }
    for axis in range(4):
        row[f"curvature_{axis + 1}"] = curv[axis]
    return row
