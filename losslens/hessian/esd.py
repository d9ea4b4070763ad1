"""The eigenvalue spectral density (ESD) by stochastic Lanczos quadrature (Ghorbani et al. 2019).

Each run starts Lanczos from a normalised Rademacher vector v; the eigenvalues θ_i of the
tridiagonal T (nodes) and the squared first components of its eigenvectors (weights) are a
Gauss quadrature of the spectral measure seen from v. Averaging runs estimates the spectral
measure (1/n) Σ δ(λ − λ_j); each node is then broadened into a Gaussian to give a density.
The weights of a run sum to 1 and its first moment is vᵀHv = a Hutchinson sample of tr H / n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from losslens.hessian.hvp import HVP
from losslens.hessian.lanczos import lanczos
from losslens.hessian.trace import rademacher

#: The grid extends this many broadening widths beyond the extreme nodes, so it holds all the mass.
GRID_MARGIN = 6.0


def min_grid_points(sigma: float) -> int:
    """Fewest grid points that put two on every broadening width, so the density integrates to 1."""
    return int(np.ceil(2 * (1 / sigma + 2 * GRID_MARGIN))) + 1


@dataclass(frozen=True)
class SpectralDensity:
    nodes: np.ndarray  # (runs, steps) Ritz values
    weights: np.ndarray  # (runs, steps), each row sums to 1

    def moments(self, order: int = 1) -> np.ndarray:
        """Per-run moment Σ w θ^order; order 1 estimates tr H / n."""
        return (self.weights * self.nodes**order).sum(axis=1)

    def width(self, sigma: float) -> float:
        """The broadening width: ``sigma`` times the spread of the nodes (or of |θ| if they coincide)."""
        spread = float(self.nodes.max() - self.nodes.min()) or max(float(np.abs(self.nodes).max()), 1.0)
        return sigma * spread

    def density(self, points: int = 256, sigma: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
        """``(x, density)`` on an even grid covering every node ± 6 widths; integrates to 1."""
        s = self.width(sigma)
        x = np.linspace(self.nodes.min() - GRID_MARGIN * s, self.nodes.max() + GRID_MARGIN * s, points)
        return x, gaussian_broadening(self.nodes, self.weights, x, s)


def gaussian_broadening(nodes: np.ndarray, weights: np.ndarray, x: np.ndarray, sigma: float) -> np.ndarray:
    """Σ_runs Σ_i w_i N(x; θ_i, σ²) / runs."""
    runs = nodes.shape[0]
    z = (x[:, None] - nodes.reshape(-1)[None, :]) / sigma
    kernel = np.exp(-0.5 * z**2) / (sigma * np.sqrt(2 * np.pi))
    return kernel @ weights.reshape(-1) / runs


def spectral_density(hvp: HVP, runs: int = 5, steps: int = 50, seed: int = 0) -> SpectralDensity:
    """SLQ with ``runs`` independent starts of ``steps`` Lanczos steps each (capped at n)."""
    generator = torch.Generator(device=hvp.device).manual_seed(seed)
    nodes, weights = [], []
    for _ in range(runs):
        v = rademacher(1, hvp.n, generator, hvp.device)[0].to(torch.float64)
        t = lanczos(hvp, v, steps, generator=generator)
        theta, s = eigh_tridiagonal(t.alpha, t.beta)
        nodes.append(theta)
        weights.append(s[0] ** 2)
    return SpectralDensity(np.array(nodes), np.array(weights))
