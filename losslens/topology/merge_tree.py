"""The merge tree (join tree) of sublevel sets by a union-find sweep (Carr, Snoeyink & Axen 2003).

The sweep adds points in increasing value; when a point joins components, the younger one
(born at the higher minimum) dies there and the elder lives on: the elder rule. Each
(minimum, death saddle) pair is a *branch*, and the branches are exactly the finite H0
persistence pairs of the same filtration on the same graph.

Fast path: every point first follows a strictly lower neighbour down to a local minimum
(pointer jumping, vectorised), which contracts each descent tree to its minimum without
changing which components meet at which point. Only the edges between different descent
trees remain; their minimum spanning tree (scipy) keeps the same components at every level,
so the Python union-find runs over at most (number of minima − 1) merges.

Order and ties: points are swept by (value, point index). On a plateau, which of several
equal-valued minima counts as the elder is a convention (gudhi's follows its edge order), so
the pairs' values always equal gudhi's while the birth point may be another point of the same
value; on tie-free fields the points agree too. Non-finite values
(NaN, ±inf: failed evaluations, as every LossLens loss is ≥ 0) go to the top of the
filtration as +inf; a component separated from the rest only by such points dies at the
root.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree


def filtration_values(values: np.ndarray) -> np.ndarray:
    """The values as swept: float64, every non-finite value mapped to +inf (the top)."""
    f = np.asarray(values, dtype=np.float64).ravel()
    return np.where(np.isfinite(f), f, np.inf)


@dataclass(frozen=True)
class JoinTree:
    """A join tree as its elder-rule branch decomposition.

    Branches are numbered by birth order (branch 0 is the global minimum). ``saddle`` is the
    point where a branch dies, −1 for a branch that never dies (the global one, and one per
    further connected component of the graph). ``parent`` is the branch it merges into.
    """

    values: np.ndarray  # (n,) filtration values, non-finite → +inf
    rank: np.ndarray  # (n,) position of each point in the sweep
    order: np.ndarray  # (n,) points in sweep order
    minimum: np.ndarray  # (m,) birth point of each branch
    saddle: np.ndarray  # (m,) death point, or −1
    parent: np.ndarray  # (m,) branch merged into, or −1
    descent: np.ndarray  # (n,) per point, the branch whose minimum its descent path reaches

    @property
    def root(self) -> int:
        """The last point of the sweep: the top of the tree."""
        return int(self.order[-1])

    @property
    def birth(self) -> np.ndarray:
        return self.values[self.minimum]

    @property
    def death(self) -> np.ndarray:
        """Death values; +inf for branches that never die or die at a non-finite point."""
        return np.where(self.saddle >= 0, self.values[np.maximum(self.saddle, 0)], np.inf)

    @property
    def persistence(self) -> np.ndarray:
        return self.death - self.birth

    def kept(self, threshold: float) -> np.ndarray:
        """Branches with persistence strictly above ``threshold`` (gudhi's ``min_persistence`` rule);
        a branch's children never outlive it, so the kept set is closed under ``parent``."""
        return self.persistence > threshold

    def segmentation(self, keep: np.ndarray | None = None) -> np.ndarray:
        """Per point, the branch whose component it joins when swept (its basin), with pruned
        branches folded into their nearest kept ancestor."""
        n_branches = len(self.minimum)
        death_rank = np.where(self.saddle >= 0, self.rank[np.maximum(self.saddle, 0)], len(self.values))
        label = self.descent.copy()
        active = np.flatnonzero(death_rank[label] <= self.rank)
        while active.size:
            label[active] = self.parent[label[active]]
            active = active[death_rank[label[active]] <= self.rank[active]]
        if keep is not None:
            ancestor = np.arange(n_branches)
            for _ in range(n_branches):
                lift = ~keep[ancestor]
                if not lift.any():
                    break
                ancestor[lift] = self.parent[ancestor[lift]]
            label = ancestor[label]
        return label


def join_tree(values: np.ndarray, edges: tuple[np.ndarray, np.ndarray]) -> JoinTree:
    """Sweep ``values`` (one per point) over the undirected graph ``edges = (u, v)``."""
    f = filtration_values(values)
    n = len(f)
    u, v = (np.asarray(e, dtype=np.int64) for e in edges)
    order = np.lexsort((np.arange(n), f))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    ru, rv = rank[u], rank[v]
    u_higher = ru > rv
    down = np.arange(n)
    down[np.where(u_higher, u, v)] = np.where(u_higher, v, u)  # any strictly lower neighbour
    while True:
        jumped = down[down]
        if np.array_equal(jumped, down):
            break
        down = jumped
    minima = np.flatnonzero(down == np.arange(n))
    minima = minima[np.argsort(rank[minima])]
    m = len(minima)
    branch_of = np.empty(n, dtype=np.int64)
    branch_of[minima] = np.arange(m)
    descent = branch_of[down]

    a, b, w = _crossing_mst(descent[u], descent[v], np.maximum(ru, rv), m)
    saddle = np.full(m, -1, dtype=np.int64)
    parent = np.full(m, -1, dtype=np.int64)
    uf = list(range(m))
    for x, y, level in zip(a.tolist(), b.tolist(), w.tolist(), strict=True):
        rx, ry = _find(uf, x), _find(uf, y)
        elder, younger = (rx, ry) if rx < ry else (ry, rx)
        uf[younger] = elder
        saddle[younger] = order[level]
        parent[younger] = elder
    return JoinTree(f, rank, order, minima, saddle, parent, descent)


def _crossing_mst(a: np.ndarray, b: np.ndarray, w: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges between different descent trees, reduced to a minimum spanning forest, by weight."""
    cross = a != b
    a, b, w = a[cross], b[cross], w[cross]
    if m < 2 or a.size == 0:
        return a[:0], b[:0], w[:0]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * m + hi
    by_key = np.lexsort((w, key))
    first = np.ones(by_key.size, dtype=bool)
    first[1:] = key[by_key][1:] != key[by_key][:-1]
    keep = by_key[first]  # the lowest edge between each pair of trees (sparse matrices would sum duplicates)
    graph = coo_matrix((w[keep] + 1.0, (lo[keep], hi[keep])), shape=(m, m))  # +1: zero means "no edge"
    forest = minimum_spanning_tree(graph).tocoo()
    weight = np.rint(forest.data).astype(np.int64) - 1
    by_weight = np.argsort(weight, kind="stable")
    return forest.row[by_weight].astype(np.int64), forest.col[by_weight].astype(np.int64), weight[by_weight]


def _find(uf: list[int], x: int) -> int:
    root = x
    while uf[root] != root:
        root = uf[root]
    while uf[x] != root:
        uf[x], x = root, uf[x]
    return root


@dataclass(frozen=True)
class MergeTreeGraph:
    """The drawable tree after simplification: nodes (minima, saddles, one root) and edges.

    ``node_branch`` is the branch a node is drawn on: a minimum on its own branch, a saddle on
    the elder branch that continues through it, the root on branch 0.
    """

    node_kind: list[str]
    node_point: np.ndarray
    node_branch: np.ndarray
    edge_lower: np.ndarray
    edge_upper: np.ndarray
    edge_branch: np.ndarray
    branches: np.ndarray  # kept branch ids


def simplified(tree: JoinTree, keep: np.ndarray) -> MergeTreeGraph:
    """Nodes and edges of the tree with only the ``keep`` branches: each kept branch runs from its
    minimum up through the saddles where kept children join it, to its own death saddle (or to
    the root, for branches that never die or die at a non-finite point). Vectorised."""
    n = len(tree.values)
    keep = keep | (tree.parent < 0)  # essential branches always stay
    kept = np.flatnonzero(keep)
    finite_death = (tree.saddle >= 0) & np.isfinite(tree.death)
    joining = kept[finite_death[kept]]
    root = tree.root
    # (branch, point, rank) for every node along every kept branch; the root ranks last.
    death_point = np.where(finite_death[kept], tree.saddle[kept], root)
    branch = np.concatenate([kept, tree.parent[joining], kept])
    point = np.concatenate([tree.minimum[kept], tree.saddle[joining], death_point])
    rank = np.where(point == root, n, tree.rank[point])
    by = np.lexsort((rank, branch))
    branch, point = branch[by], point[by]
    fresh = np.ones(len(by), dtype=bool)
    fresh[1:] = (branch[1:] != branch[:-1]) | (point[1:] != point[:-1])
    branch, point = branch[fresh], point[fresh]
    same = branch[1:] == branch[:-1]

    node_point, node_of = np.unique(point, return_inverse=True)
    node_branch = np.zeros(len(node_point), dtype=np.int64)  # the root is drawn on branch 0
    node_branch[np.searchsorted(node_point, tree.saddle[joining])] = tree.parent[joining]  # on the elder
    node_branch[np.searchsorted(node_point, tree.minimum[kept])] = kept
    is_min = np.isin(node_point, tree.minimum[kept])
    kind = np.where(node_point == root, "root", np.where(is_min, "minimum", "saddle"))
    node_branch[node_point == root] = 0
    return MergeTreeGraph(
        kind.tolist(),
        node_point,
        node_branch,
        node_of[:-1][same],
        node_of[1:][same],
        branch[:-1][same],
        kept,
    )
