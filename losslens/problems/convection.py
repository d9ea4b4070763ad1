"""1-D convection, u_t + β u_x = 0, as a physics-informed problem (Krishnapriyan et al. 2021).

Domain x ∈ [0, 2π), t ∈ [0, 1]; u(x, 0) = sin x; periodic boundary u(0, t) = u(2π, t);
exact solution u = sin(x − βt). The loss is MSE(initial) + MSE(boundary) + MSE(residual)
at ``n_collocation`` points drawn (with ``data_seed``) from the 256 × 100 evaluation grid.

The residual u_t + β u_x is the directional derivative of u along (β, 1) in (x, t), so it
is one forward-mode ``torch.func.jvp``: no input ``requires_grad``, and it composes with
``vmap`` over parameters and with double-backward Hessian-vector products.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jvp

from losslens.problems.base import Problem, State


@dataclass(frozen=True)
class ConvectionBatch:
    x_ic: torch.Tensor  # (n_x, 2) points (x, 0)
    u_ic: torch.Tensor  # (n_x, 1) sin x
    x_left: torch.Tensor  # (n_t, 2) points (0, t)
    x_right: torch.Tensor  # (n_t, 2) points (2π, t)
    x_f: torch.Tensor  # (n_collocation, 2) residual points


class ConvectionProblem(Problem):
    kind: ClassVar[str] = "pinn"

    def __init__(self, beta: float, n_collocation: int, n_x: int, n_t: int, data_seed: int):
        self.beta = float(beta)
        self.n_collocation = n_collocation
        self.n_x, self.n_t, self.data_seed = n_x, n_t, data_seed
        x = np.linspace(0.0, 2 * math.pi, n_x, endpoint=False)
        t = np.linspace(0.0, 1.0, n_t)
        xx, tt = np.meshgrid(x, t, indexing="ij")  # (n_x, n_t)
        grid = np.stack([xx.ravel(), tt.ravel()], axis=1)
        rng = np.random.default_rng(data_seed)
        idx = rng.choice(len(grid), size=n_collocation, replace=n_collocation > len(grid))
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        self.batch = ConvectionBatch(
            x_ic=as_t(np.stack([x, np.zeros_like(x)], axis=1)),
            u_ic=as_t(np.sin(x)[:, None]),
            x_left=as_t(np.stack([np.zeros_like(t), t], axis=1)),
            x_right=as_t(np.stack([np.full_like(t, 2 * math.pi), t], axis=1)),
            x_f=as_t(grid[idx]),
        )
        self.grid = as_t(grid)
        self.u_exact = as_t(self.exact(grid[:, 0], grid[:, 1])[:, None])

    def exact(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.sin(x - self.beta * t)

    def to(self, device: torch.device) -> ConvectionProblem:
        self.device = torch.device(device)
        self.batch = ConvectionBatch(*(getattr(self.batch, f).to(self.device) for f in ConvectionBatch.__dataclass_fields__))
        self.grid = self.grid.to(self.device)
        self.u_exact = self.u_exact.to(self.device)
        return self

    def batches(self, split: str = "train", batch_size: int | None = None, limit: int | None = None) -> Iterator[ConvectionBatch]:
        """The PINN trains on one full batch; ``batch_size`` is ignored."""
        if limit is None or limit > 0:
            yield self.batch

    def loss_terms(self, model: nn.Module, state: State, batch: ConvectionBatch) -> dict[str, torch.Tensor]:
        def u(points: torch.Tensor) -> torch.Tensor:
            return functional_call(model, state, (points,))

        tangent = torch.zeros_like(batch.x_f)
        tangent[:, 0] = self.beta
        tangent[:, 1] = 1.0
        residual = jvp(u, (batch.x_f,), (tangent,))[1]  # (u, ∂u/∂t + β ∂u/∂x)
        return {
            "loss_ic": ((u(batch.x_ic) - batch.u_ic) ** 2).mean(),
            "loss_bc": ((u(batch.x_left) - u(batch.x_right)) ** 2).mean(),
            "loss_residual": (residual**2).mean(),
        }

    def loss(self, model: nn.Module, state: State, batch: ConvectionBatch) -> torch.Tensor:
        terms = self.loss_terms(model, state, batch)
        return terms["loss_ic"] + terms["loss_bc"] + terms["loss_residual"]

    def predict(self, model: nn.Module, state: State) -> torch.Tensor:
        """u on the evaluation grid, shaped (n_x, n_t)."""
        with torch.no_grad():
            return functional_call(model, state, (self.grid,)).reshape(self.n_x, self.n_t)

    def relative_l2(self, model: nn.Module, state: State) -> float:
        """‖u − u_exact‖₂ / ‖u_exact‖₂ on the evaluation grid: the PINN's error."""
        err = self.predict(model, state).reshape(-1, 1) - self.u_exact
        return float(torch.linalg.vector_norm(err) / torch.linalg.vector_norm(self.u_exact))

    def performance(self, model: nn.Module, state: State) -> list[tuple[str, str, float]]:
        terms = {k: float(v.detach()) for k, v in self.loss_terms(model, state, self.batch).items()}
        err = (self.predict(model, state).reshape(-1, 1) - self.u_exact).abs()
        rows = [("train", name, value) for name, value in terms.items()]
        rows.append(("train", "loss", sum(terms.values())))
        rows += [
            ("eval", "rel_l2", float(torch.linalg.vector_norm(err) / torch.linalg.vector_norm(self.u_exact))),
            ("eval", "mean_abs", float(err.mean())),
            ("eval", "linf", float(err.max())),
        ]
        return rows


def convection(
    beta: float = 1.0, n_collocation: int = 1000, n_x: int = 256, n_t: int = 100, data_seed: int = 0
) -> ConvectionProblem:
    """The convection PINN problem at wave speed ``beta``."""
    if n_collocation < 1 or n_x < 2 or n_t < 2:
        raise ValueError("n_collocation must be ≥ 1 and n_x, n_t ≥ 2")
    return ConvectionProblem(beta, n_collocation, n_x, n_t, data_seed)
