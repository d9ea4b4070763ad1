"""(a + b) mod p, the grokking task (Power et al. 2022), generated in code: no data files.

Every pair (a, b) with 0 ≤ a, b < p is one example, the tokens ``(a, b, =)`` with ``=`` the token p and
the label (a + b) mod p. A seeded permutation puts ``train_fraction`` of the p² pairs in the training
split and the rest in the test split, so generalisation means predicting sums never seen.
Training is full-batch as in Power et al. and Nanda et al.: the default batch is the whole training set.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from losslens.errors import LossLensError
from losslens.problems.base import ClassificationProblem


class ModularAdditionProblem(ClassificationProblem):
    """A :class:`ClassificationProblem` over token inputs (N, 3) of dtype int64."""

    def __init__(self, p: int, train_fraction: float, data_seed: int, batch_size: int | None):
        a, b = (grid.ravel() for grid in np.meshgrid(np.arange(p), np.arange(p), indexing="ij"))
        tokens = np.stack([a, b, np.full_like(a, p)], axis=1).astype(np.int64)
        labels = ((a + b) % p).astype(np.int64)
        order = np.random.default_rng(data_seed).permutation(p * p)
        cut = round(train_fraction * p * p)
        train, test = order[:cut], order[cut:]
        t = torch.as_tensor
        super().__init__(
            f"modular-addition-p{p}",
            t(tokens[train]),
            t(labels[train]),
            t(tokens[test]),
            t(labels[test]),
            batch_size or len(train),
            num_classes=p,
        )
        self.p, self.train_fraction, self.data_seed = p, train_fraction, data_seed

    @torch.no_grad()
    def mixup_inputs(self, n: int, alpha: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token inputs cannot be blended, so CKA's fixed input set is ``n`` training examples drawn with
        replacement by a seeded generator; the recipe rows are (i, i, 1.0), i.e. mixup with λ = 1 (``alpha``
        is not used)."""
        x, _ = self.split("train")
        i = np.random.default_rng(seed).integers(len(x), size=n)
        recipe = np.stack([i, i, np.ones(n)], axis=1)
        return x[torch.as_tensor(i, device=x.device)], torch.as_tensor(recipe, dtype=torch.float64)


def modular_addition(
    p: int = 23, train_fraction: float = 0.5, data_seed: int = 0, batch_size: int | None = None
) -> ModularAdditionProblem:
    """All p² sums (a + b) mod ``p``, ``train_fraction`` of them for training (the split fixed by ``data_seed``).

    Raises LossLensError when p < 2 or the fraction leaves a split empty.
    """
    if p < 2:
        raise LossLensError(f"p = {p} is too small", where="modular addition", hint="use p ≥ 2, e.g. --p 23")
    cut = round(train_fraction * p * p) if math.isfinite(train_fraction) else 0
    if not 0 < cut < p * p:
        raise LossLensError(
            f"train fraction {train_fraction} leaves a split empty at p = {p}",
            where="modular addition",
            hint="use a fraction strictly between 0 and 1, e.g. --train-fraction 0.5",
        )
    return ModularAdditionProblem(p, train_fraction, data_seed, batch_size)
