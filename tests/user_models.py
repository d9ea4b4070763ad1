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


class NormedNet(nn.Module):
    """A 2-w-1 tanh network that fixes an output scale from its first layer's initial weights while it is
    built: a value read from a tensor, which a build on torch's meta device cannot give."""

    def __init__(self, width: int = 6):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1))
        self.scale = float(self.body[0].weight.detach().norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.body(x)


def normed_net(width: int = 6) -> NormedNet:
    return NormedNet(width)


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


class DoubleWell:
    """A toy problem with exactly the abstract members of ``Problem`` (kind ``pinn``), not even inheriting
    it: the residual of u(x)² = 1 at fixed points, so u = ±1 are the two wells. No capabilities beyond."""

    kind = "pinn"

    def __init__(self, n: int = 64):
        self.device = torch.device("cpu")
        self.x = torch.linspace(-2, 2, n)[:, None]

    def batches(self, split: str = "train", batch_size: int | None = None, limit: int | None = None):
        size = batch_size or 32
        for i, start in enumerate(range(0, len(self.x), size)):
            if limit is not None and i >= limit:
                return
            yield self.x[start : start + size]

    def loss(self, model, state, batch):
        u = torch.func.functional_call(model, state, (batch,))
        return ((u**2 - 1) ** 2).mean()

    def performance(self, model, state):
        with torch.no_grad():
            return [("train", "loss", float(sum(self.loss(model, state, b) * len(b) for b in self.batches()) / len(self.x)))]

    def to(self, device):
        self.device = torch.device(device)
        self.x = self.x.to(self.device)
        return self


def double_well(n: int = 64) -> DoubleWell:
    return DoubleWell(n)


def tiny_net(width: int = 8) -> nn.Module:
    return nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1))


class TwoHeads(nn.Module):
    """Several outputs, dropout and BatchNorm (with or without running statistics)."""

    def __init__(self, track_running_stats: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(3, 8), nn.BatchNorm1d(8, track_running_stats=track_running_stats), nn.Tanh(), nn.Dropout(0.5)
        )
        self.out, self.aux = nn.Linear(8, 1), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.out(h), self.aux(h)


def two_heads(track_running_stats: bool = True) -> TwoHeads:
    return TwoHeads(track_running_stats)


def regression_set(n: int = 40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))


def bn_mlp(width: int = 6) -> nn.Sequential:
    """(x, t) → u with a BatchNorm layer: its checkpoints carry running statistics (and, from torch ≥ 0.4.1,
    ``num_batches_tracked``)."""
    return nn.Sequential(nn.Linear(2, width), nn.BatchNorm1d(width), nn.Tanh(), nn.Linear(width, 1))


def single_mlp(width: int = 6) -> nn.Sequential:
    """:func:`double_mlp` in float32."""
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1))


class _Items(torch.utils.data.Dataset):
    """Four items shaped as ``make`` says: datasets whose items are not (input, target) pairs."""

    def __init__(self, make):
        self.make = make

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return self.make(torch.full((2,), float(i)), i % 2, i)


def three_field_items() -> _Items:
    return _Items(lambda x, y, i: (x, y, i))


def dict_items() -> _Items:
    return _Items(lambda x, y, i: {"x": x, "y": y})
