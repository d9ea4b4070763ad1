"""Neighbour graphs over landscape points: the grid connectivity gudhi uses, and kNN graphs.

gudhi's ``CubicalComplex(vertices=...)`` gives every cube the maximum of its vertices, so
its 1-skeleton joins only axis neighbours: 4 neighbours in 2-D, 6 in 3-D, 2n in n-D. The
merge tree must sweep the same graph for its (minimum, saddle) pairs to equal gudhi's H0
pairs. Points are numbered in C order (numpy's ``ravel``).
"""

from __future__ import annotations

import numpy as np


def grid_edges(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Both ends ``(u, v)`` of every axis-neighbour edge of a grid, as flat C-order indices."""
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    us, vs = [], []
    for axis in range(len(shape)):
        lo = [slice(None)] * len(shape)
        hi = [slice(None)] * len(shape)
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        us.append(index[tuple(lo)].ravel())
        vs.append(index[tuple(hi)].ravel())
    return np.concatenate(us), np.concatenate(vs)


def knn_edges(coords: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges of the k-nearest-neighbour graph of sampled points, each once."""
    from scipy.spatial import cKDTree

    n = len(coords)
    k = min(k, n - 1)
    _, nbr = cKDTree(coords).query(coords, k=k + 1)
    u = np.repeat(np.arange(n, dtype=np.int64), k)
    v = nbr[:, 1:].ravel().astype(np.int64)
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    pairs = np.unique(lo * n + hi)
    return pairs // n, pairs % n
