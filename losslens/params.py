"""Parameter dicts as flat vectors, in the dict's iteration order (the order of ``Subject.params``).

Hessian eigenvectors, landscape directions and connectivity bends are all stored in this order,
so one pair of functions serves them all.
"""

from __future__ import annotations

import torch
from torch import Tensor

Params = dict[str, Tensor]


def flatten(params: Params) -> Tensor:
    """One vector of all parameters, in dict order."""
    return torch.cat([t.reshape(-1) for t in params.values()])


def unflatten(vector: Tensor, like: Params) -> Params:
    """Split a vector (or the last axis of a batch of them) into tensors shaped like ``like``;
    views of ``vector`` where possible. The inverse of :func:`flatten`."""
    total = sum(t.numel() for t in like.values())
    if vector.shape[-1] != total:
        raise ValueError(f"vector has {vector.shape[-1]} entries, parameters have {total}")
    out, start = {}, 0
    for name, t in like.items():
        out[name] = vector[..., start : start + t.numel()].reshape(*vector.shape[:-1], *t.shape)
        start += t.numel()
    return out
