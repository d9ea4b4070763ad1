"""Classical (Torgerson) multidimensional scaling of a dissimilarity matrix."""

from __future__ import annotations

import numpy as np


def classical_mds(dissimilarity: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (n × dims) whose distances best match ``dissimilarity``, and the eigenvalues used.

    B = −½ J D² J with J the centring matrix; the coordinates are the top eigenvectors of B scaled by
    √λ. Negative eigenvalues (D not Euclidean, or fewer than ``dims`` + 1 points) give zero axes.
    Each axis is signed so that its largest-magnitude coordinate is positive, for a stable layout.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or not np.allclose(d, d.T):
        raise ValueError("dissimilarity must be a symmetric square matrix")
    n = len(d)
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (d**2) @ j
    w, v = np.linalg.eigh(b)
    order = np.argsort(w)[::-1][:dims]
    w, v = np.clip(w[order], 0.0, None), v[:, order]
    coords = np.zeros((n, dims))
    coords[:, : len(w)] = v * np.sqrt(w)
    for k in range(dims):
        if coords[np.argmax(np.abs(coords[:, k])), k] < 0:
            coords[:, k] *= -1
    eig = np.zeros(dims)
    eig[: len(w)] = w
    return coords, eig
