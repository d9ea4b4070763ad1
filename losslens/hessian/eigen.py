"""Extreme eigenpairs of the Hessian by Lanczos (full reorthogonalisation, no restarts).

One Krylov space gives both ends of the spectrum, so the largest k and the most negative
eigenvalue come from one run. A Ritz pair (θ, y) is accepted when its residual
‖H y − θ y‖ = β_m |s_m| is at most ``tol`` times the largest |θ|, i.e. ``tol`` is relative to
‖H‖: eigenvalues near zero cannot be resolved below float32 rounding of the products anyway,
and the eigenvalue error is of the order of the residual squared over the gap.

A small residual only says that θ is close to *some* eigenvalue: Lanczos can converge a Ritz
value past an eigenvalue its Krylov space has not seen yet (on the trained PINN, top-5 "converged"
after 9 steps with the 5th eigenvalue missing). Like ARPACK's ``ncv ≥ 2k + 1``, we therefore never
stop before 2k + 1 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from losslens.errors import LossLensError
from losslens.hessian.hvp import HVP
from losslens.hessian.lanczos import lanczos

DEFAULT_MAX_ITER = 300


@dataclass(frozen=True)
class Eigenpairs:
    """Eigenvalues sorted (largest: descending; smallest: ascending) with unit eigenvectors as rows."""

    largest: np.ndarray
    largest_vectors: np.ndarray
    smallest: np.ndarray
    smallest_vectors: np.ndarray
    converged: bool
    steps: int
    residuals: np.ndarray  # Lanczos residual estimates β_m|s_m|, largest then smallest


def _select(theta: np.ndarray, largest: int, smallest: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ascending Ritz values: the top ``largest`` (descending), the bottom ``smallest``."""
    m = len(theta)
    return np.arange(m - 1, m - 1 - largest, -1), np.arange(smallest)


def lanczos_eigenpairs(
    hvp: HVP, largest: int = 10, smallest: int = 0, tol: float = 1e-6, max_iter: int = DEFAULT_MAX_ITER, seed: int = 0
) -> Eigenpairs:
    """The ``largest`` algebraically largest and ``smallest`` most negative eigenpairs."""
    if largest < 0 or smallest < 0 or largest + smallest < 1:
        raise LossLensError("ask for at least one eigenpair", where="hessian")
    if largest + smallest > hvp.n:
        raise LossLensError(f"{largest + smallest} eigenpairs asked of a {hvp.n}-parameter Hessian", where="hessian")
    generator = torch.Generator(device=hvp.device).manual_seed(seed)
    start = torch.randn(hvp.n, dtype=torch.float64, device=hvp.device, generator=generator)
    needed = largest + smallest

    def converged(alpha: np.ndarray, beta: np.ndarray, beta_next: float) -> bool:
        if len(alpha) < min(2 * needed + 1, hvp.n):
            return False
        theta, s = eigh_tridiagonal(alpha, beta)
        top, bottom = _select(theta, largest, smallest)
        idx = np.concatenate([top, bottom])
        return bool(np.all(beta_next * np.abs(s[-1, idx]) <= tol * np.abs(theta).max()))

    t = lanczos(hvp, start, max(max_iter, needed), stop=converged, generator=generator)
    theta, s = eigh_tridiagonal(t.alpha, t.beta)
    top, bottom = _select(theta, largest, smallest)
    idx = np.concatenate([top, bottom])
    residuals = t.beta_next * np.abs(s[-1, idx])
    vectors = t.combine(s[:, idx]).T.cpu().numpy()
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ok = len(t.alpha) == hvp.n or bool(np.all(residuals <= tol * np.abs(theta).max()))
    return Eigenpairs(
        largest=theta[top],
        largest_vectors=vectors[:largest],
        smallest=theta[bottom],
        smallest_vectors=vectors[largest:],
        converged=ok,
        steps=len(t.alpha),
        residuals=residuals,
    )


def top_eigenpairs(hvp: HVP, k: int = 10, tol: float = 1e-6, which: str = "largest") -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues, eigenvectors)``: sorted descending for "largest", ascending for "smallest";
    eigenvectors are unit rows, shape (k, n)."""
    if which == "largest":
        pairs = lanczos_eigenpairs(hvp, largest=k, tol=tol)
        return pairs.largest, pairs.largest_vectors
    if which == "smallest":
        pairs = lanczos_eigenpairs(hvp, largest=0, smallest=k, tol=tol)
        return pairs.smallest, pairs.smallest_vectors
    raise ValueError(f"which must be 'largest' or 'smallest', not {which!r}")
