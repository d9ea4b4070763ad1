"""PyHessian 0.1 as a cross-check backend for top-k eigenvalues and the trace.

PyHessian computes ``criterion(model(inputs), targets)`` and differentiates it twice. We hand
it a module whose forward *is* the problem's loss (:class:`ProblemLoss`), with an identity
criterion, so it sees exactly the loss our Lanczos backend sees (PINN residuals included),
averaged over the same batches with the same size weights. Its pitfalls are worked around:

- it defaults to ``cuda=True``; we pass the subject's device;
- it calls ``backward`` on the model (setting ``.grad``) and leaks the graph through it, so it
  gets a private deep copy that is dropped afterwards;
- its trace stops early on a negative running mean; we pass ``tol=-inf`` so that it draws
  exactly the requested number of probes, and compute the standard error from its samples;
- its ``density()`` calls the removed ``torch.eig``; the ESD always comes from our SLQ;
- it differentiates every parameter with ``requires_grad`` and fails (``AssertionError``) on one the
  loss never uses; such parameters (zero Hessian rows and columns) are hidden from it and get zero
  entries in its eigenvectors.

Its power iteration with deflation returns eigenvalues of largest *magnitude*, in the order
found; we sort them descending.
"""

from __future__ import annotations

import copy
import functools
import importlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn

from losslens.errors import LossLensError
from losslens.hessian.hvp import examples
from losslens.hessian.trace import TraceEstimate, from_samples

if TYPE_CHECKING:
    from losslens.jobs.context import Subject


_CYCLE_WARNING = "Using backward.. with create_graph=True"


class ProblemLoss(nn.Module):
    """``forward(index) = loss of batch index[0]``: a problem's loss in PyHessian's model slot."""

    def __init__(self, subject: Subject, data: list[Any], live: set[str]):
        super().__init__()
        self.net = copy.deepcopy(subject.model).eval()
        for name, p in self.net.named_parameters():
            p.requires_grad_(name in live)
        self.problem = subject.problem
        self.data = data

    def forward(self, index: Tensor) -> Tensor:
        state = {**dict(self.net.named_parameters()), **dict(self.net.named_buffers())}
        return self.problem.loss(self.net, state, self.data[int(index[0])])


def live_parameters(subject: Subject, data: list[Any]) -> set[str]:
    """Trainable parameters whose gradient depends on the parameters (the others have zero Hessian rows)."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in subject.params.items()}
    with torch.enable_grad():
        total = functools.reduce(torch.add, [subject.loss_at(leaves, b) for b in data])
        grads = torch.autograd.grad(total, list(leaves.values()), create_graph=True, allow_unused=True)
    return {name for name, g in zip(leaves, grads, strict=True) if g is not None and g.requires_grad}


def _identity_criterion(output: Tensor, _target: Tensor) -> Tensor:
    return output


class PyHessianBackend:
    """PyHessian's ``hessian`` object over the subject's first ``batches`` training batches."""

    def __init__(self, subject: Subject, batches: int = 1, batch_size: int | None = None):
        try:
            module = importlib.import_module("pyhessian.hessian")  # the module; ``pyhessian.hessian`` is the class
        except ImportError as exc:
            raise LossLensError(
                "pyhessian is not installed", where="hessian", hint="pip install pyhessian, or use --backend lanczos"
            ) from exc

        device = next(iter(subject.params.values())).device
        if device.type == "cuda" and device != torch.device("cuda", torch.cuda.current_device()):
            raise LossLensError("PyHessian only uses the current CUDA device", where="hessian", hint="use --device cuda")
        data = list(subject.problem.batches("train", batch_size=batch_size, limit=batches))
        if not data:
            raise LossLensError("the problem yielded no training batch", where="hessian")
        self.live = live_parameters(subject, data)
        self.shapes = {k: v.shape for k, v in subject.params.items()}
        self.model = ProblemLoss(subject, data, self.live)
        # Index tensors as "inputs": their length is the batch's size, which PyHessian uses as its weight.
        loader = [(torch.full((examples(b),), i, device=device), torch.zeros(1, device=device)) for i, b in enumerate(data)]
        self.batches = len(data)
        self.count = 0
        self._module = module
        cuda = device.type == "cuda"
        with torch.enable_grad(), warnings.catch_warnings():
            # Its backward(create_graph=True) warns of the .grad cycle that close() breaks.
            warnings.filterwarnings("ignore", message=_CYCLE_WARNING)
            if len(loader) == 1:
                self.h = module.hessian(self.model, _identity_criterion, data=loader[0], cuda=cuda)
            else:
                self.h = module.hessian(self.model, _identity_criterion, dataloader=loader, cuda=cuda)
        self.device = device

    @contextmanager
    def _counted(self, seed: int) -> Iterator[None]:
        """Count PyHessian's products and seed its global-RNG draws without disturbing the caller's RNG."""

        def counting(fn: Callable[..., Any]) -> Callable[..., Any]:
            def inner(*args: Any, **kwargs: Any) -> Any:
                self.count += 1
                return fn(*args, **kwargs)

            return inner

        devices = [self.device] if self.device.type == "cuda" else []
        with (
            warnings.catch_warnings(),
            torch.random.fork_rng(devices=devices),
            mock.patch.object(self._module, "hessian_vector_product", counting(self._module.hessian_vector_product)),
            mock.patch.object(self.h, "dataloader_hv_product", counting(self.h.dataloader_hv_product)),
            torch.enable_grad(),
        ):
            warnings.filterwarnings("ignore", message=_CYCLE_WARNING)
            torch.manual_seed(seed)
            yield

    def eigenpairs(self, k: int, tol: float = 1e-3, max_iter: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by |λ| from power iteration with deflation, sorted descending, vectors as unit rows."""
        with self._counted(seed):
            values, vectors = self.h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
        flat = np.stack([self._full(v) for v in vectors])
        flat /= np.linalg.norm(flat, axis=1, keepdims=True)
        order = np.argsort(values)[::-1]
        return np.asarray(values, dtype=np.float64)[order], flat[order]

    def _full(self, parts: list[Tensor]) -> np.ndarray:
        """One flat vector over all trainable parameters: PyHessian's parts, zeros for hidden ones."""
        it = iter(parts)
        return np.concatenate(
            [
                next(it).detach().reshape(-1).double().cpu().numpy() if name in self.live else np.zeros(shape.numel())
                for name, shape in self.shapes.items()
            ]
        )

    def trace(self, probes: int = 100, seed: int = 0) -> TraceEstimate:
        """Hutchinson with exactly ``probes`` Rademacher probes (PyHessian's early stop disabled)."""
        with self._counted(seed):
            samples = self.h.trace(maxIter=probes, tol=float("-inf"))
        return from_samples(np.asarray(samples))

    def close(self) -> None:
        """Drop the graph PyHessian keeps alive through ``.grad``."""
        for p in self.model.parameters():
            p.grad = None
