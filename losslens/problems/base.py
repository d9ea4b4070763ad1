"""The problem interface: batches, and a pure loss of (model, state, batch).

``state`` maps parameter and buffer names to tensors and is applied with
``torch.func.functional_call``, so a loss can be differentiated, vmapped over many
parameter vectors, and never mutates the module.

Rules every metric follows:

- **eval mode**: models are evaluated in ``eval()`` mode, so dropout is off and BatchNorm uses its
  running statistics (with ``track_running_stats=False`` it uses batch statistics, as torch does);
  connectivity re-estimates BatchNorm statistics at each point of a path (Garipov et al.).
- **buffers** come from the checkpoint and are never differentiated or moved along directions.
- **the interface is this class**: metrics use only these methods, plus optional capabilities
  declared as protocols in :mod:`losslens.problems.capabilities` (class probabilities, an evaluation
  grid, a PINN field), which they check with ``require`` and name in one line when missing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

State = dict[str, torch.Tensor]


class Problem(ABC):
    """A dataset or PDE plus its loss. Subclasses set ``kind``: "classifier" or "pinn"."""

    kind: ClassVar[str]
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def batches(self, split: str = "train", batch_size: int | None = None, limit: int | None = None) -> Iterator[Any]:
        """Batches in a fixed order, on ``self.device``. ``limit`` caps how many are yielded."""

    @abstractmethod
    def loss(self, model: nn.Module, state: State, batch: Any) -> torch.Tensor:
        """The scalar training loss of one batch, as a pure function of ``state``."""

    @abstractmethod
    def performance(self, model: nn.Module, state: State) -> list[tuple[str, str, float]]:
        """``(split, name, value)`` rows describing how well the model does."""

    @abstractmethod
    def to(self, device: torch.device) -> Problem:
        """Move the problem's tensors to ``device`` and return self."""

    def model_inputs(self, batch: Any) -> torch.Tensor:
        """The tensor the model is called on for ``batch`` (CKA compares outputs on these).

        Default: the batch itself when it is a tensor, its first element for ``(x, y)`` pairs.

        :raises LossLensError: neither applies; override this method.
        """
        if isinstance(batch, torch.Tensor):
            return batch
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            return batch[0]
        from losslens.errors import LossLensError

        raise LossLensError(
            f"cannot tell the model's inputs in a {type(batch).__name__} batch",
            where=type(self).__name__,
            hint="override Problem.model_inputs(batch), or give the problem a grid (EvaluationGrid)",
        )


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy written with primitives, so every torch.func transform can go through it."""
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, y[:, None]).mean()


class ClassificationProblem(Problem):
    """Images or feature vectors with integer labels, held in memory, split into train and test."""

    kind: ClassVar[str] = "classifier"

    def __init__(
        self,
        name: str,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        batch_size: int = 128,
        num_classes: int | None = None,
    ):
        self.name = name
        self.data = {"train": (x_train, y_train), "test": (x_test, y_test)}
        self.batch_size = batch_size
        self.num_classes = int(num_classes or int(max(y_train.max(), y_test.max())) + 1)

    def to(self, device: torch.device) -> ClassificationProblem:
        self.device = torch.device(device)
        self.data = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in self.data.items()}
        return self

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.data:
            raise ValueError(f"unknown split {split!r}; use one of {sorted(self.data)}")
        return self.data[split]

    def batches(
        self, split: str = "train", batch_size: int | None = None, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.split(split)
        size = batch_size or self.batch_size
        for i, start in enumerate(range(0, len(x), size)):
            if limit is not None and i >= limit:
                return
            yield x[start : start + size], y[start : start + size]

    def logits(self, model: nn.Module, state: State, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, state, (x,))

    def loss(self, model: nn.Module, state: State, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return cross_entropy(self.logits(model, state, x), y)

    @torch.no_grad()
    def mixup_inputs(self, n: int, alpha: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` mixup blends of training inputs (Zhang et al. 2018), a fixed input set for comparing models.

        Returns the inputs and their recipe, rows (i, j, λ) meaning λ·x_i + (1 − λ)·x_j with
        λ ~ Beta(α, α); the same (n, α, seed) gives the same set. Yang et al. (2021) use 768 with α = 16.
        """
        x, _ = self.split("train")
        rng = np.random.default_rng(seed)
        i, j = rng.integers(len(x), size=n), rng.integers(len(x), size=n)
        lam = rng.beta(alpha, alpha, size=n)
        lam_x = torch.as_tensor(lam, dtype=x.dtype, device=x.device).reshape((n,) + (1,) * (x.dim() - 1))
        mixed = lam_x * x[torch.as_tensor(i, device=x.device)] + (1 - lam_x) * x[torch.as_tensor(j, device=x.device)]
        return mixed, torch.as_tensor(np.stack([i, j, lam], axis=1), dtype=torch.float64)

    @torch.no_grad()
    def probabilities(self, model: nn.Module, state: State, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Softmax outputs for ``x``, in batches: the model-level representation CKA compares."""
        return torch.cat(
            [torch.softmax(self.logits(model, state, x[s : s + batch_size]), -1) for s in range(0, len(x), batch_size)]
        )

    @torch.no_grad()
    def loss_and_error(
        self, model: nn.Module, state: State, split: str = "train", batch_size: int | None = None, limit: int | None = None
    ) -> tuple[float, float]:
        """Mean loss and error fraction over ``split`` (the first ``limit`` batches when given)."""
        n, loss_sum, wrong = 0, 0.0, 0
        for x, y in self.batches(split, batch_size=batch_size, limit=limit):
            logits = self.logits(model, state, x)
            loss_sum += float(cross_entropy(logits, y)) * len(y)
            wrong += int((logits.argmax(-1) != y).sum())
            n += len(y)
        return loss_sum / n, wrong / n

    @torch.no_grad()
    def performance(self, model: nn.Module, state: State) -> list[tuple[str, str, float]]:
        rows = []
        for split in ("train", "test"):
            n, loss_sum, wrong = 0, 0.0, 0
            for x, y in self.batches(split, batch_size=512):
                logits = self.logits(model, state, x)
                loss_sum += float(cross_entropy(logits, y)) * len(y)
                wrong += int((logits.argmax(-1) != y).sum())
                n += len(y)
            rows += [
                (split, "loss", loss_sum / n),
                (split, "accuracy", 1 - wrong / n),
                (split, "error", wrong / n),
            ]
        return rows
