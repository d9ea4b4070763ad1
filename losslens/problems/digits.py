"""scikit-learn's bundled 8×8 digits (1,797 images): the offline stand-in for CIFAR-10."""

from __future__ import annotations

import numpy as np
import torch

from losslens.problems.base import ClassificationProblem


def split_indices(n: int, test_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle, the first ``test_fraction`` of it for testing."""
    order = np.random.default_rng(split_seed).permutation(n)
    n_test = round(n * test_fraction)
    return order[n_test:], order[:n_test]


def digits(test_fraction: float = 0.2, split_seed: int = 0, batch_size: int = 128) -> ClassificationProblem:
    """Images as (N, 1, 8, 8) floats standardised with the training mean and std."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None] / 16.0
    y = bunch.target.astype(np.int64)
    train, test = split_indices(len(x), test_fraction, split_seed)
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    t = torch.as_tensor
    return ClassificationProblem("digits", t(x[train]), t(y[train]), t(x[test]), t(y[test]), batch_size, num_classes=10)
