"""Hessian-vector products of a loss with respect to all trainable parameters.

Three ways to get ``H v`` without forming ``H``; all are exact up to rounding:

- ``double-backward``: autograd's gradient graph is built once with ``create_graph=True`` and
  each product is one backward pass through it (``torch.autograd.grad(g, θ, v)``). Fastest
  here, because later products skip the forward and first backward passes (bench/hessian.py).
- ``forward-over-reverse``: ``torch.func.jvp`` of ``torch.func.grad``.
- ``reverse-over-reverse``: ``torch.func.grad`` of ``⟨∇L(θ), v⟩``.

The torch.func forms recompute the loss on every call; they stay as independent checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from losslens.errors import LossLensError
from losslens.params import Params, flatten, unflatten

if TYPE_CHECKING:
    from losslens.jobs.context import Subject

HVP_METHODS = ("double-backward", "forward-over-reverse", "reverse-over-reverse")


def _unflatten_rows(vectors: Tensor, like: Params) -> list[Tensor]:
    """A batch of flat vectors (m, n) as per-parameter batches (m, *shape)."""
    out, start = [], 0
    for t in like.values():
        out.append(vectors[:, start : start + t.numel()].reshape(len(vectors), *t.shape))
        start += t.numel()
    return out


class HVP:
    """``v ↦ H v`` for a fixed loss at fixed parameters; ``count`` is the number of products so far."""

    def __init__(self, loss: Callable[[Params], Tensor], params: Params, method: str = "double-backward", batches: int = 1):
        if method not in HVP_METHODS:
            raise ValueError(f"method must be one of {HVP_METHODS}, not {method!r}")
        self.loss = loss
        self.params = {k: v.detach() for k, v in params.items()}
        self.method = method
        self.batches = batches  # how many data batches the loss averages
        self.n = sum(t.numel() for t in self.params.values())
        first = next(iter(self.params.values()))
        self.dtype, self.device = first.dtype, first.device
        self.count = 0
        self._value: float | None = None
        self._leaves: list[Tensor] | None = None
        self._grads: tuple[Tensor, ...] | None = None
        self._live: list[bool] = []

    def value(self) -> float:
        """The loss at the point (computed once)."""
        if self._value is None:
            with torch.no_grad():
                self._value = float(self.loss(self.params))
        return self._value

    def _graph(self) -> tuple[list[Tensor], tuple[Tensor, ...]]:
        """Leaves and first derivatives, restricted to the parameters the gradient depends on.

        A parameter the loss never uses (an auxiliary head that ``forward`` skips), or one the gradient
        does not depend on, has zero Hessian rows and columns: ``allow_unused`` instead of torch's
        "appears to not have been used in the graph", and zeros are put back in :meth:`_assemble`.
        """
        if self._grads is None:
            leaves = {k: t.detach().requires_grad_(True) for k, t in self.params.items()}
            with torch.enable_grad():
                value = self.loss(leaves)
                if not torch.isfinite(value):
                    raise LossLensError(
                        f"the loss is {float(value)}", where="hessian", hint="the checkpoint's loss must be finite"
                    )
                grads = torch.autograd.grad(value, list(leaves.values()), create_graph=True, allow_unused=True)
            self._live = [g is not None and g.requires_grad for g in grads]
            self._grads = tuple(g for g, live in zip(grads, self._live, strict=True) if live)
            self._leaves = list(leaves.values())
        assert self._leaves is not None
        return self._leaves, self._grads

    def _assemble(self, live_parts: tuple[Tensor | None, ...], batch: int | None) -> Tensor:
        """Flat ``H v`` from the products of the live parameters, zeros for the rest."""
        parts, it = [], iter(live_parts)
        for t, live in zip(self.params.values(), self._live, strict=True):
            part = next(it) if live else None
            shape = (t.numel(),) if batch is None else (batch, t.numel())
            parts.append(torch.zeros(shape, dtype=self.dtype, device=self.device) if part is None else part.reshape(shape))
        return torch.cat(parts, dim=-1)

    def _functional(self, v: Tensor) -> Tensor:
        tangent = unflatten(v, self.params)
        if self.method == "forward-over-reverse":
            return flatten(jvp(grad(self.loss), (self.params,), (tangent,))[1])

        def directional(p: Params) -> Tensor:
            g = grad(self.loss)(p)
            return sum((g[k] * tangent[k]).sum() for k in g)

        return flatten(grad(directional)(self.params))

    def __call__(self, v: Tensor) -> Tensor:
        """``H v`` for one flat vector ``v`` of length ``n``."""
        v = v.to(self.dtype)
        self.count += 1
        if self.method != "double-backward":
            return self._functional(v)
        leaves, grads = self._graph()
        if not grads:
            return torch.zeros(self.n, dtype=self.dtype, device=self.device)
        tangent = [t for t, live in zip(unflatten(v, self.params).values(), self._live, strict=True) if live]
        live_leaves = [leaf for leaf, live in zip(leaves, self._live, strict=True) if live]
        hv = torch.autograd.grad(grads, live_leaves, grad_outputs=tangent, retain_graph=True, allow_unused=True)
        return self._assemble(hv, None)

    def many(self, vectors: Tensor) -> Tensor:
        """``H V`` for a batch of flat vectors (m, n), as one vectorised pass."""
        vectors = vectors.to(self.dtype)
        self.count += len(vectors)
        if self.method != "double-backward":
            return vmap(self._functional)(vectors)
        leaves, grads = self._graph()
        if not grads:
            return torch.zeros(len(vectors), self.n, dtype=self.dtype, device=self.device)
        tangents = [t for t, live in zip(_unflatten_rows(vectors, self.params), self._live, strict=True) if live]
        live_leaves = [leaf for leaf, live in zip(leaves, self._live, strict=True) if live]
        hv = torch.autograd.grad(
            grads, live_leaves, grad_outputs=tangents, retain_graph=True, is_grads_batched=True, allow_unused=True
        )
        return self._assemble(hv, len(vectors))


def examples(batch: Any) -> int:
    """Examples in a classifier batch ``(x, y)``; other problems train on one full batch."""
    return len(batch[0]) if isinstance(batch, (tuple, list)) else 1


def hvp_operator(
    subject: Subject,
    batches: int = 1,
    batch_size: int | None = None,
    method: str = "double-backward",
    names: list[str] | None = None,
) -> HVP:
    """The Hessian of the mean training loss over the first ``batches`` batches of the train split.

    Batches are weighted by their size, so the loss is that of the union of their examples.
    Buffers (BatchNorm running statistics) are fixed: the model is evaluated in eval mode.
    ``names`` restricts the Hessian to those parameters (a diagonal block of the full Hessian; the
    others stay at the checkpoint's values); vectors are then in the order of ``names``.
    """
    if batches < 1:
        raise LossLensError(f"batches must be ≥ 1, not {batches}", where="hessian")
    data = list(subject.problem.batches("train", batch_size=batch_size, limit=batches))
    if not data:
        raise LossLensError("the problem yielded no training batch", where="hessian")
    sizes = [examples(b) for b in data]
    weights = [s / sum(sizes) for s in sizes]

    fixed = {k: v for k, v in subject.params.items() if names is not None and k not in names}

    def loss(params: Params) -> Tensor:
        full = {**fixed, **params} if fixed else params
        return sum(w * subject.loss_at(full, b) for w, b in zip(weights, data, strict=True))  # type: ignore[return-value]

    active = subject.params if names is None else {k: subject.params[k] for k in names}
    return HVP(loss, active, method, batches=len(data))
