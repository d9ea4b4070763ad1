"""Faster ``linear`` and ``tanh`` for vmapped grid evaluation, routed in by a function mode.

Three costs dominate an MLP landscape (the convection PINN, small regression MLPs) on CPU,
all measured in bench/landscape.py:

- vmap turns ``linear`` with per-point weights into ``bmm`` plus a broadcast bias ``add``;
  here its batching rule is one ``baddbmm``, or one ``addcmul`` when the layer has a single
  input (an outer product, where a batched gemm was 5–9× slower).
- ``torch.func.jvp`` gives the weights, which have no tangent, a zero tangent that is still
  multiplied: one wasted matmul and add per layer. Here the jvp rule skips absent tangents
  (``set_materialize_grads(False)``).
- torch 2.13's CPU ``tanh`` costs 3.5–4 ns per float32 element against 0.9 ns for ``sigmoid``,
  so on CPU tanh is computed as 2·sigmoid(2x) − 1 (at most 2.4e-7 from ``torch.tanh`` in
  float32, float rounding; its tangent is t·(1 − y²) as torch's own).

The functions have forward, jvp and vmap rules only: the grid runs under ``no_grad``, and a
backward pass through them raises torch's "backward not implemented" error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode


@overload
def _front(t: Tensor, dim: int | None) -> Tensor: ...
@overload
def _front(t: None, dim: int | None) -> None: ...
def _front(t: Tensor | None, dim: int | None) -> Tensor | None:
    return t if t is None or dim is None else t.movedim(dim, 0)


class Linear(torch.autograd.Function):
    """``F.linear`` whose vmap rule is one ``baddbmm`` (``addcmul`` for one input) and whose jvp
    skips absent tangents."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor | None], output: Tensor) -> None:
        x, weight, _ = inputs
        ctx.save_for_forward(x, weight)
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, weight_t: Tensor | None, bias_t: Tensor | None) -> Tensor:
        x, weight = ctx.saved_tensors
        parts = [Linear.apply(x_t, weight, None)] if x_t is not None else []
        if weight_t is not None:
            parts.append(Linear.apply(x, weight_t, None))
        if bias_t is not None:
            parts.append(bias_t.expand(*x.shape[:-1], weight.shape[0]))
        out = parts[0]
        for part in parts[1:]:
            out = out + part
        return out

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, int]:
        x_dim, w_dim, b_dim = in_dims
        x, weight, bias = _front(x, x_dim), _front(weight, w_dim), _front(bias, b_dim)
        size = info.batch_size
        if w_dim is None:  # shared weights: one plain linear (x or the bias carries the batch)
            out = F.linear(x if x_dim is not None else x.unsqueeze(0), weight, bias if b_dim is None else None)
            if b_dim is not None and bias is not None:  # a batched bias is a tensor
                out = out + bias.reshape(size, *[1] * (out.dim() - 2), -1)
            return out, 0
        lead = x.shape[1:-1] if x_dim is not None else x.shape[:-1]
        rows = x.reshape(size if x_dim is not None else 1, -1, x.shape[-1])
        weight_t = weight.transpose(1, 2)
        if bias is not None and b_dim is not None:
            bias = bias.unsqueeze(-2)
        if x.shape[-1] == 1:  # an outer product: one broadcast pass, 5-9x faster than bmm with K = 1
            out = rows * weight_t if bias is None else torch.addcmul(bias, rows, weight_t)
        elif bias is None:
            out = torch.bmm(rows.expand(size, -1, -1), weight_t)
        else:
            out = torch.baddbmm(bias, rows.expand(size, -1, -1), weight_t)
        return out.reshape(size, *lead, out.shape[-1]), 0


def _tanh(x: Tensor) -> Tensor:
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return torch.tanh(x)
    y = torch.mul(x, 2.0)
    torch.sigmoid(y, out=y)
    return y.lerp_(y.new_ones(()), -1.0)  # y + (-1)(1 - y) = 2y - 1 in one pass


class Tanh(torch.autograd.Function):
    """tanh as 2·sigmoid(2x) − 1 on CPU (see the module docstring), elementwise under vmap."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return _tanh(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_forward(output)

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(x_t, y)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None], x: Tensor) -> tuple[Tensor, int | None]:
        return Tanh.apply(x), in_dims[0]


class GridKernels(TorchFunctionMode):
    """Routes ``F.linear`` (with a matrix weight) and ``tanh`` calls to :class:`Linear` and
    :class:`Tanh` while active; everything else runs as it is."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and len(args) >= 2 and args[1].dim() == 2:
            x, weight, *rest = args
            return Linear.apply(x, weight, rest[0] if rest else kwargs.get("bias"))
        if func in (torch.tanh, Tensor.tanh) and not kwargs:
            return Tanh.apply(args[0])
        return func(*args, **kwargs)
