"""BatchNorm statistics for a point on a curve.

The running statistics stored with either endpoint do not describe the activations of θ(t), so
they are recomputed at each evaluated t (Garipov et al. 2018; Yang et al. 2021): train-mode forward
passes over training batches, averaging the batch statistics cumulatively (``momentum=None``).
The passes run on a private copy of the model with fresh buffers; the subject's model is untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

Params = dict[str, torch.Tensor]


def batch_norm_modules(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def cumulative_bn_copy(model: nn.Module) -> nn.Module:
    """A train-mode copy whose BatchNorm layers average over all batches seen (momentum=None)."""
    twin = copy.deepcopy(model).train()
    for m in batch_norm_modules(twin).values():
        m.momentum = None
    return twin


def fresh_buffers(model: nn.Module, buffers: Params) -> Params:
    """Copies of ``buffers`` with every BatchNorm's statistics reset (mean 0, var 1, count 0)."""
    out = {k: v.clone() for k, v in buffers.items()}
    for name, m in batch_norm_modules(model).items():
        prefix = f"{name}." if name else ""
        if m.track_running_stats:
            out[prefix + "running_mean"].zero_()
            out[prefix + "running_var"].fill_(1.0)
            out[prefix + "num_batches_tracked"].zero_()
    return out


@torch.no_grad()
def recompute_bn_stats(
    twin: nn.Module,
    params: Params,
    buffers: Params,
    batches: Iterable[Any],
    forward: Callable[[nn.Module, Params, Any], Any],
) -> Params:
    """Buffers for ``params`` with BatchNorm statistics re-estimated over ``batches``.

    ``twin`` comes from :func:`cumulative_bn_copy`; ``forward(model, state, batch)`` runs the model
    functionally (e.g. the problem's loss). The returned buffers are new tensors.
    """
    state = {**params, **fresh_buffers(twin, buffers)}
    for batch in batches:
        forward(twin, state, batch)
    return {k: state[k] for k in buffers}
