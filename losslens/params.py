"""Parameter dicts as flat vectors, in the dict's iteration order (the order of ``Subject.params``).

Hessian eigenvectors, landscape directions and connectivity bends are all stored in this order,
so one pair of functions serves them all.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import Tensor

from losslens.errors import LossLensError

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


def matches(name: str, pattern: str) -> bool:
    """Whether a parameter name matches a glob: the whole name, or any dotted suffix of it.

    ``fnmatch`` rules, case-sensitive (``*`` also crosses dots). So ``layers.11.*`` matches
    ``gpt_neox.layers.11.attention.dense.weight``, ``*.bias`` every bias, ``lm_head.weight`` that tensor.
    """
    parts = name.split(".")
    return any(fnmatchcase(".".join(parts[i:]), pattern) for i in range(len(parts)))


def block_glob(names: list[str]) -> str:
    """A ``--params`` glob for one block of this model, for refusal hints: the first numbered module
    (``transformer.h.0.ln_1.weight`` gives ``h.0.*``, ``gpt_neox.layers.0.…`` gives ``layers.0.*``, an
    ``nn.Sequential``'s ``0.weight`` gives ``0.*``); a model without numbered modules gets its first tensor's name.

    :raises ValueError: ``names`` is empty.
    """
    for name in names:
        parts = name.split(".")
        for i, part in enumerate(parts[:-1]):
            if part.isdigit():
                return ".".join(parts[max(i - 1, 0) : i + 1]) + ".*"
    return names[0]


def select(params: Params, globs: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the parameters matching any glob (see :func:`matches`), in dict order; all when ``globs`` is empty.

    :raises LossLensError: a glob matches no parameter (the error lists a few names to choose from).
    """
    if not globs:
        return list(params)
    for pattern in globs:
        if not any(matches(name, pattern) for name in params):
            names = list(params)
            sample = ", ".join(names[:3] + (["…", names[-1]] if len(names) > 3 else []))
            raise LossLensError(
                f"--params {pattern!r} matches no parameter", where="params", hint=f"parameter names look like: {sample}"
            )
    return [name for name in params if any(matches(name, p) for p in globs)]
