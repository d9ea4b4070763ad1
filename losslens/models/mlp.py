"""Fully connected networks: the PINN of Krishnapriyan et al. and a small generic MLP."""

from __future__ import annotations

import itertools

from torch import nn

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(in_dim: int, out_dim: int, width: int = 50, depth: int = 2, activation: str = "tanh") -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units; the last layer is linear."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, not {activation!r}")
    if depth < 1 or width < 1:
        raise ValueError("depth and width must be positive")
    layers: list[nn.Module] = []
    dims = [in_dim] + [width] * depth
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def pinn_mlp(width: int = 50, depth: int = 4, in_dim: int = 2, out_dim: int = 1, activation: str = "tanh") -> nn.Sequential:
    """The convection PINN: (x, t) -> u. Defaults give 2-50-50-50-50-1 tanh, 7,851 parameters."""
    return mlp(in_dim, out_dim, width=width, depth=depth, activation=activation)
