"""Centred kernel alignment with the linear kernel (Kornblith et al. 2019).

CKA(X, Y) = HSIC(K, L) / √(HSIC(K, K) · HSIC(L, L)) with K = XXᵀ, L = YYᵀ over n examples.
With centred features the biased HSIC is ‖YᵀX‖²_F (up to a factor that cancels), so
linear CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F). The debiased variant uses the unbiased HSIC
estimator of Song et al. (2012), which matters when n is small against the feature count.

Both need only the biased cross term ‖YᵀX‖²_F and the squared row norms of the centred features
(the diagonal of the centred Gram matrix), so a :class:`Representation` keeps whichever of the
features (n × p) or the Gram matrix (n × n) is smaller.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class Representation:
    """Features of n examples, centred, ready for CKA against other representations of the same examples."""

    def __init__(self, features: torch.Tensor | np.ndarray):
        x = torch.as_tensor(features).detach().to(torch.float64).reshape(len(features), -1)
        x = x - x.mean(dim=0, keepdim=True)
        self.n = x.shape[0]
        self.sq_norms = (x * x).sum(dim=1)  # diag of the centred Gram matrix
        self.features = x if x.shape[1] <= self.n else None
        self.gram = None if self.features is not None else x @ x.T
        self._self_hsic: dict[bool, float] = {}

    def cross(self, other: Representation) -> float:
        """The biased cross term ‖YᵀX‖²_F = ⟨K_c, L_c⟩ between two representations."""
        if self.n != other.n:
            raise ValueError(f"representations of {self.n} and {other.n} examples")
        a, b = (self, other) if self.features is not None or other.features is None else (other, self)
        if a.features is not None and b.features is not None:
            return float(torch.linalg.matrix_norm(a.features.T @ b.features) ** 2)
        if a.features is not None and b.gram is not None:  # b has a Gram matrix: ‖XᵀY‖² = tr(Xᵀ L X)
            return float(((b.gram @ a.features) * a.features).sum())
        if a.gram is None or b.gram is None:
            raise AssertionError("a representation keeps either its features or its Gram matrix")
        return float((a.gram * b.gram).sum())

    def hsic(self, other: Representation, debiased: bool = False) -> float:
        """HSIC up to a positive factor shared by all pairs of the same n (it cancels in CKA)."""
        cross = self.cross(other)
        if not debiased:
            return cross
        n = self.n
        if n < 4:
            raise ValueError("debiased HSIC needs at least 4 examples")
        # Unbiased estimator with K̃ = K_c − diag(K_c): centred rows sum to 0, so K̃1 = −diag(K_c).
        dd = float(self.sq_norms @ other.sq_norms)
        total = float(self.sq_norms.sum() * other.sq_norms.sum())
        return (cross - dd + total / ((n - 1) * (n - 2)) - 2.0 * dd / (n - 2)) / (n * (n - 3))

    def self_hsic(self, debiased: bool) -> float:
        if debiased not in self._self_hsic:
            self._self_hsic[debiased] = self.hsic(self, debiased)
        return self._self_hsic[debiased]


def cka(a: Representation, b: Representation, debiased: bool = False) -> float:
    """CKA between two representations; NaN when either has no variance (or a non-positive debiased HSIC)."""
    denominator = a.self_hsic(debiased) * b.self_hsic(debiased)
    if not denominator > 0:
        return math.nan
    return a.hsic(b, debiased) / math.sqrt(denominator)


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, debiased: bool = False) -> float:
    """Linear CKA of two feature matrices over the same n examples (rows)."""
    return cka(Representation(x), Representation(y), debiased)
