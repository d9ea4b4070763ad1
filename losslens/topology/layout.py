"""A planar drawing of a merge tree from its branch decomposition.

y is the loss. Branch 0 (the global minimum's, which never dies) stands at x = 0. The
children of a branch (the branches that die on it) alternate right and left in order of
decreasing persistence; on each side the child that joins lowest stands nearest, so a
child's connector at its saddle height passes above every sibling subtree nearer in (those
all lie below their own, lower, saddles) and no edges cross. Each subtree takes a contiguous
interval one unit per branch wide.
"""

from __future__ import annotations

import numpy as np

from losslens.topology.merge_tree import JoinTree, MergeTreeGraph


def branch_x(tree: JoinTree, kept: np.ndarray) -> dict[int, float]:
    """x of every kept branch. Branches that never die or die at a non-finite point hang
    from the root, that is, from branch 0 at the top."""
    n = len(tree.values)
    persistence = tree.persistence.tolist()
    joins = (tree.saddle >= 0) & np.isfinite(tree.death)
    join_rank_all = np.where(joins, tree.rank[np.maximum(tree.saddle, 0)], n).tolist()
    parent = tree.parent.tolist()
    children: dict[int, list[int]] = {b: [] for b in kept.tolist()}
    for b in kept.tolist():
        if b != 0:
            children[max(parent[b], 0)].append(b)
    join_rank = {b: join_rank_all[b] for b in children}
    left = dict.fromkeys(children, 0.0)  # leaves (most branches) keep zero extents
    right = dict.fromkeys(children, 0.0)
    offset: dict[int, float] = {}
    parents = [b for b, cs in children.items() if cs]
    for b in sorted(parents, reverse=True):  # children are younger, so numbered after their parent
        ranked = sorted(children[b], key=lambda c: (-persistence[c], c))
        r = lft = 0.0
        for c in sorted(ranked[0::2], key=lambda c: join_rank[c]):
            offset[c] = r + 1 + left[c]
            r = offset[c] + right[c]
        for c in sorted(ranked[1::2], key=lambda c: join_rank[c]):
            offset[c] = -(lft + 1 + right[c])
            lft = -offset[c] + left[c]
        left[b], right[b] = lft, r
    x = {0: 0.0}
    for b in sorted(parents):
        for c in children[b]:
            x[c] = x[b] + offset[c]
    return x


def node_xy(tree: JoinTree, graph: MergeTreeGraph) -> tuple[np.ndarray, np.ndarray]:
    """Drawing positions of the nodes. A non-finite root is drawn 5% of the finite range above
    the highest finite value (its stored value stays NULL)."""
    x_of = branch_x(tree, graph.branches)
    x = np.array([x_of[int(b)] for b in graph.node_branch], dtype=np.float64)
    y = tree.values[graph.node_point].copy()
    finite = tree.values[np.isfinite(tree.values)]
    if finite.size:
        top = finite.max() + 0.05 * max(float(np.ptp(finite)), 1e-12)
        y[~np.isfinite(y)] = top
    return x, y
