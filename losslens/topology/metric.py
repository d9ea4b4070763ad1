"""The ``topology`` metric: persistence pairs, the simplified merge tree with its layout, and a
summary row, for the landscape computed with the same landscape options.

The topology's options are the landscape's plus its own, so one command line routes the same
``--steps`` or ``--directions`` to both; the driver ships the landscape run with those options.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from losslens.errors import LossLensError
from losslens.landscape.grid import grid_coordinates
from losslens.landscape.metric import LandscapeParams
from losslens.metrics.registry import Read, Result, register
from losslens.numerics import not_finite
from losslens.topology.graph import grid_edges, knn_edges
from losslens.topology.isolines import isolines
from losslens.topology.layout import node_xy
from losslens.topology.merge_tree import join_tree, simplified
from losslens.topology.persistence import graph_persistence, grid_persistence
from losslens.topology.summaries import summarize


@dataclass(frozen=True)
class TopologyParams(LandscapeParams):
    persistence_threshold: float = field(
        default=0.01,
        metadata={"help": "Merge-tree branches with persistence at or below this are pruned (see --threshold-mode)."},
    )
    threshold_mode: Literal["relative", "absolute"] = field(
        default="relative", metadata={"help": "relative: a fraction of the landscape's finite loss range; absolute: loss units."}
    )
    knn: int = field(default=0, metadata={"help": "Neighbours per point for sampled landscapes; 0 is 4·dims."})

    def landscape_params(self) -> LandscapeParams:
        return LandscapeParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(LandscapeParams)})


def _centre_probes(landscape: dict[str, Any], shape: tuple[int, ...] | None) -> tuple[int, list[tuple[int, int]], list[float]]:
    """The centre point, its neighbours one step either way along each axis, and each step's length in parameter space."""
    steps, dims = landscape["steps"], landscape["dims"]
    half = json.loads(landscape["half_widths_json"])
    norms = json.loads(landscape["direction_norms_json"])
    lengths = [2 * h / (steps - 1) * n for h, n in zip(half, norms, strict=True)]
    if shape is None:  # sampled: θ, then −/+ one step per axis (see landscape.metric)
        return 0, [(1 + 2 * a, 2 + 2 * a) for a in range(dims)], lengths
    mid = [steps // 2] * dims
    centre = int(np.ravel_multi_index(mid, shape))
    probes = []
    for axis in range(dims):
        lo, hi = list(mid), list(mid)
        lo[axis] -= 1
        hi[axis] += 1
        probes.append((int(np.ravel_multi_index(lo, shape)), int(np.ravel_multi_index(hi, shape))))
    return centre, probes, lengths


def _value(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


@register(
    "topology",
    scope="checkpoint",
    params=TopologyParams,
    tables=("persistence_pairs", "merge_tree_nodes", "merge_tree_edges", "landscape_summaries"),
    requires=("landscape",),
    reads=lambda p: (Read("landscape", tables=("landscapes",), artifacts=("grid", "coordinates"), params=p.landscape_params()),),
)
def topology(ctx: Any, params: TopologyParams) -> Result:
    """Persistence diagram (gudhi), merge tree with planar layout, landscape summaries, and isolines of 2-D grids."""
    sha = ctx.shas[0]
    runs = ctx.results("landscape")  # the landscape with this topology's landscape options, shipped by the driver
    if not runs:
        raise LossLensError(
            "no landscape with these options for this checkpoint",
            where=sha[:12],
            hint="compute it in the same command: losslens compute landscape topology [options]",
        )
    landscape = runs[-1].rows["landscapes"][0]
    lid = landscape["id"]
    raw = np.asarray(runs[-1].artifacts["grid"], dtype=np.float64)
    if not np.isfinite(raw).any():  # nothing to filter: no sublevel set is ever non-empty
        raise not_finite(ctx.checkpoints[0]["name"], "loss")
    if landscape["samples"]:
        coords = runs[-1].artifacts["coordinates"] / np.array(json.loads(landscape["half_widths_json"]))
        edges = knn_edges(coords, params.knn or 4 * landscape["dims"])
        pairs = graph_persistence(raw, edges)
        shape = None
    else:
        edges = grid_edges(raw.shape)
        pairs = grid_persistence(raw)
        shape = raw.shape
    flat_raw = raw.ravel()
    tree = join_tree(flat_raw, edges)
    finite = flat_raw[np.isfinite(flat_raw)]
    scale = float(np.ptp(finite)) if params.threshold_mode == "relative" and finite.size else 1.0
    threshold = params.persistence_threshold * scale
    keep = tree.kept(threshold)
    graph = simplified(tree, keep)
    x, y = node_xy(tree, graph)
    basins = tree.segmentation(keep)
    centre, probes, lengths = _centre_probes(landscape, shape)

    result = Result()
    if shape is not None and len(shape) == 2:  # drawn by the landscape view: computed once here, not per request
        axes, _ = grid_coordinates(json.loads(landscape["half_widths_json"]), landscape["steps"])
        result.artifact("isolines", "landscape_isolines", isolines(axes[0], axes[1], raw))
    base = {"landscape_id": lid, "checkpoint": sha}
    result.extend(
        "persistence_pairs",
        [
            {
                **base,
                "dim": int(d),
                "birth": float(b),
                "death": _value(e),
                "persistence": _value(e - b),
                "birth_point": int(bp),
                "death_point": int(dp) if dp >= 0 else None,
            }
            for d, b, e, bp, dp in zip(pairs.dim, pairs.birth, pairs.death, pairs.birth_point, pairs.death_point, strict=True)
        ],
    )
    sizes = np.bincount(basins, minlength=len(tree.minimum))
    pers = tree.persistence
    result.extend(
        "merge_tree_nodes",
        [
            {
                **base,
                "node": i,
                "kind": kind,
                "point": int(p),
                "value": _value(tree.values[p]),
                "x": float(x[i]),
                "y": float(y[i]),
                "branch": int(b),
                "persistence": _value(pers[b]) if kind == "minimum" else None,
                "basin_size": int(sizes[b]) if kind == "minimum" else None,
            }
            for i, (kind, p, b) in enumerate(zip(graph.node_kind, graph.node_point, graph.node_branch, strict=True))
        ],
    )
    result.extend(
        "merge_tree_edges",
        [
            {**base, "lower": int(lo), "upper": int(hi), "branch": int(b)}
            for lo, hi, b in zip(graph.edge_lower, graph.edge_upper, graph.edge_branch, strict=True)
        ],
    )
    result.add("landscape_summaries", **base, **summarize(flat_raw, tree, graph, basins, threshold, centre, probes, lengths))
    return result
