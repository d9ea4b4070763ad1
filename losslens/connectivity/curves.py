"""Paths between two parameter vectors θ0 and θ1 through k trainable bends (Garipov et al. 2018).

With control points P0 = θ0, P1..Pk = the bends, P(k+1) = θ1:

- ``linear``: θ(t) = (1 − t) θ0 + t θ1 (no bends).
- ``bezier``: θ(t) = Σ_i C(k+1, i) (1 − t)^(k+1−i) t^i P_i. One bend is the quadratic curve
  (1 − t)² θ0 + 2t(1 − t) θb + t² θ1 of Garipov et al. and Yang et al.
- ``polychain``: straight segments P0 → P1 → … → P(k+1), bend i reached at t = i/(k+1).

Bends start on the straight line at t = i/(k+1), where every curve equals the linear path
(Bernstein polynomials reproduce linear functions). Parameters are dicts of tensors, so a point on a
curve is evaluated with ``torch.func.functional_call`` without touching any module.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from losslens.params import Params

CurveName = Literal["bezier", "linear", "polychain"]
CURVES: tuple[str, ...] = ("bezier", "linear", "polychain")


def initial_bends(start: Params, end: Params, k: int) -> list[Params]:
    """k bends evenly spaced on the straight line: the curve starts as the linear path."""
    return [
        {n: ((1 - s) * start[n] + s * end[n]).detach().clone() for n in start} for s in (i / (k + 1) for i in range(1, k + 1))
    ]


def coefficients(curve: CurveName, t: float, k: int) -> list[float]:
    """Weights of the k + 2 control points at t ∈ [0, 1]; they sum to 1."""
    if curve == "linear":
        return [1 - t, t]
    n = k + 1
    if curve == "bezier":
        return [math.comb(n, i) * (1 - t) ** (n - i) * t**i for i in range(n + 1)]
    if curve == "polychain":
        segment = min(int(t * n), n - 1)
        u = t * n - segment
        weights = [0.0] * (n + 1)
        weights[segment], weights[segment + 1] = 1 - u, u
        return weights
    raise ValueError(f"unknown curve {curve!r}; use one of {CURVES}")


def point_on_curve(curve: CurveName, t: float, start: Params, end: Params, bends: list[Params]) -> Params:
    """θ(t) as a parameter dict; differentiable in the bends."""
    points = [start, end] if curve == "linear" else [start, *bends, end]
    if curve != "linear" and not bends:
        raise ValueError(f"the {curve} curve needs at least one bend")
    weights = coefficients(curve, t, len(points) - 2)
    out = {}
    for name in start:
        terms = [w * p[name] for w, p in zip(weights, points, strict=True) if w != 0.0]
        out[name] = sum(terms[1:], terms[0]) if terms else torch.zeros_like(start[name])
    return out
