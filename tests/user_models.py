"""Models as researchers write them, for the numerics tests: an auxiliary head the loss never uses,
a frozen random-features layer that differs per seed, a float64 network. Specs name them as
``user_models:<factory>`` (the tests folder is on ``sys.path`` under pytest)."""

from __future__ import annotations

import torch
from torch import nn


class AuxHeadNet(nn.Module):
    """(x, t) → u through a 2-w-1 tanh body; ``aux`` (w → 3) has ``requires_grad=True`` but ``forward`` skips it."""

    def __init__(self, width: int = 6):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1))
        self.aux = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def aux_head_net(width: int = 6) -> AuxHeadNet:
    return AuxHeadNet(width)


class RandomFeaturesNet(nn.Module):
    """A fixed random-features layer (``requires_grad=False``, drawn per seed) and a trained linear head."""

    def __init__(self, width: int = 6):
        super().__init__()
        self.features = nn.Linear(2, width)
        self.features.requires_grad_(False)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.features(x)))


def random_features_net(width: int = 6) -> RandomFeaturesNet:
    return RandomFeaturesNet(width)


def double_mlp(width: int = 6) -> nn.Sequential:
    """A float64 2-w-1 tanh network (its checkpoints are float64 too)."""
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1)).double()
