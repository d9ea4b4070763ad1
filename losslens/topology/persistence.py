"""Persistence pairs of the sublevel-set filtration, computed by gudhi.

Grids use ``CubicalComplex(vertices=...)`` (H0 … H(d−1) of a d-D grid, e.g. H0 and H1 in 2-D);
sampled landscapes use a ``SimplexTree`` holding the kNN graph (points at their value, edges
at the larger end's value), which gives H0. Each pair carries the points where it is born and
dies; the values are read back at those points. Pairs of zero persistence are dropped, as
gudhi does by default. Non-finite values enter as +inf (see ``merge_tree``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from losslens.topology.merge_tree import filtration_values


@dataclass(frozen=True)
class PersistencePairs:
    """Pairs as arrays. ``death`` is +inf and ``death_point`` −1 for essential classes; a class
    killed only at a non-finite point has ``death`` +inf and a real ``death_point``."""

    dim: np.ndarray
    birth: np.ndarray
    death: np.ndarray
    birth_point: np.ndarray
    death_point: np.ndarray

    def finite_h0(self) -> np.ndarray:
        """Mask of the H0 pairs with a finite death: the merge tree's (minimum, saddle) pairs."""
        return (self.dim == 0) & np.isfinite(self.death)


def _pairs(f: np.ndarray, rows: np.ndarray | list[tuple[int, int, int]]) -> PersistencePairs:
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    dim, bp, dp = arr[:, 0], arr[:, 1], arr[:, 2]
    birth = f[bp]
    death = np.where(dp >= 0, f[np.maximum(dp, 0)], np.inf)
    live = death > birth
    return PersistencePairs(dim[live], birth[live], death[live], bp[live], dp[live])


def grid_persistence(values: np.ndarray) -> PersistencePairs:
    """All persistence pairs of a grid of values (any dimension), points as C-order indices."""
    import gudhi

    shape = values.shape
    f = filtration_values(values)
    complex_ = gudhi.CubicalComplex(vertices=f.reshape(shape))
    complex_.compute_persistence()
    regular, essential = complex_.vertices_of_persistence_pairs()

    def c_index(fortran: np.ndarray) -> np.ndarray:  # gudhi numbers vertices first axis fastest
        return np.ravel_multi_index(np.unravel_index(fortran, shape, order="F"), shape)

    rows = [np.zeros((0, 3), dtype=np.int64)]
    for dim, pairs in enumerate(regular):
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        rows.append(np.column_stack([np.full(len(pairs), dim), c_index(pairs[:, 0]), c_index(pairs[:, 1])]))
    for dim, births in enumerate(essential):
        births = np.asarray(births, dtype=np.int64).ravel()
        rows.append(np.column_stack([np.full(len(births), dim), c_index(births), np.full(len(births), -1)]))
    return _pairs(f, np.concatenate(rows))


def graph_persistence(values: np.ndarray, edges: tuple[np.ndarray, np.ndarray]) -> PersistencePairs:
    """H0 pairs of the sublevel filtration on a graph (e.g. a kNN graph of sampled points)."""
    import gudhi

    f = filtration_values(values)
    u, v = (np.asarray(e, dtype=np.int64) for e in edges)
    tree = gudhi.SimplexTree()
    tree.insert_batch(np.arange(len(f))[None, :], f)
    tree.insert_batch(np.stack([u, v]), np.maximum(f[u], f[v]))
    tree.compute_persistence(persistence_dim_max=False)
    rows = []
    for birth_simplex, death_simplex in tree.persistence_pairs():
        if len(birth_simplex) != 1:
            continue
        death = max(death_simplex, key=lambda p: (f[p], -p)) if death_simplex else -1
        rows.append((0, birth_simplex[0], death))
    return _pairs(f, rows)
