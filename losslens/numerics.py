"""Numeric guards every metric shares: one dtype rule, and one line for non-finite weights or losses.

- **Dtype**: a model computes in the dtype its factory builds it in. Weights stored in another
  dtype are cast at load (:func:`losslens.checkpoints.fit_state_dict`); floating inputs are cast to
  the model's dtype as they enter it (:func:`cast_inputs_to_model`, a forward pre-hook, so it holds
  for every problem and metric, under ``torch.func`` transforms too). Losses then come out in the
  model's dtype.
- **Non-finite**: a checkpoint whose weights hold NaN/Inf, or whose loss is not finite, is refused
  by every metric with the same line, ``checkpoint NAME: weights not finite`` /
  ``checkpoint NAME: loss not finite``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch import nn

from losslens.errors import LossLensError


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (float32 if none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def cast_inputs_to_model(model: nn.Module) -> nn.Module:
    """Make ``model`` cast floating positional and keyword inputs to its own dtype (idempotent).

    The dtype is read at each call, from the weights the module holds then (``functional_call``
    swaps them in), so a copy cast with ``.double()`` computes in float64.
    """
    if getattr(model, "_losslens_cast_hook", None) is not None:
        return model

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        dtype = model_dtype(module)
        return _cast(args, dtype), {k: _cast(v, dtype) for k, v in kwargs.items()}

    model._losslens_cast_hook = model.register_forward_pre_hook(hook, with_kwargs=True)  # type: ignore[assignment]
    return model


def not_finite(name: str, what: str = "weights") -> LossLensError:
    """The one line every metric gives for a checkpoint whose ``what`` (weights or loss) is NaN/Inf."""
    return LossLensError(
        f"{what} not finite",
        where=f"checkpoint {name}",
        hint="the run diverged; exclude this seed or ingest an earlier checkpoint",
    )


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    """True when no floating tensor holds NaN or Inf."""
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def check_finite_weights(name: str, tensors: dict[str, torch.Tensor]) -> None:
    """:raises LossLensError: any floating tensor holds NaN or Inf (:func:`not_finite`)."""
    if not all_finite(tensors):
        raise not_finite(name)


def refuse_diverged(records: list[dict[str, Any]]) -> None:
    """:raises LossLensError: a checkpoint record that ingest flagged as not finite (:func:`not_finite`),
    so metrics that only read stored results (topology, similarity) give the same line as the rest."""
    for rec in records:
        if json.loads(rec.get("meta_json") or "{}").get("losslens", {}).get("finite") is False:
            raise not_finite(rec["name"])


def check_finite_loss(name: str, value: float) -> float:
    """``value`` unchanged. :raises LossLensError: it is NaN or Inf (:func:`not_finite`)."""
    if not math.isfinite(value):
        raise not_finite(name, "loss")
    return value
