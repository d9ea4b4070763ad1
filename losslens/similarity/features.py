"""What CKA compares: a fixed input set, the model's outputs on it, and layer outputs via forward hooks.

Causal language models (problems with ``hidden_states``, i.e. :class:`~losslens.problems.causal_lm.CausalLMProblem`)
are compared on their residual stream instead: the input set is the first ``n`` training sequences,
every token position is one example (``n × seq_len`` rows), the model-level representation is the
final hidden state (after the final LayerNorm), and the layers are ``hidden.0`` (the embedding
output) … ``hidden.L`` (transformers' ``output_hidden_states``: ``hidden.i`` is the residual stream
after block i; the last has the final LayerNorm applied).
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from losslens.errors import LossLensError
from losslens.jobs.context import Subject
from losslens.problems.base import Problem
from losslens.problems.capabilities import ClassProbabilities, EvaluationGrid, PinnField, ResidualStream

LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def input_set(subject: Subject, n: int, alpha: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and their record: mixup blends of training images for classifiers (Yang et al. 2021), with
    rows (i, j, λ); the evaluation grid when the problem has one (the PINN's (x, t)); otherwise the first
    ``n`` training inputs in the problem's fixed batch order, recorded as their flattened values."""
    problem = subject.problem
    if isinstance(problem, ResidualStream):
        ids = problem.cka_inputs(n)
        return ids, ids.detach().cpu()
    if isinstance(problem, ClassProbabilities):
        return problem.mixup_inputs(n, alpha, seed)
    if isinstance(problem, EvaluationGrid):
        return problem.grid, problem.grid.detach().to(torch.float64)
    parts, count = [], 0
    inputs = getattr(problem, "model_inputs", None) or partial(Problem.model_inputs, problem)
    for batch in problem.batches("train"):
        x = inputs(batch)
        parts.append(x[: n - count])
        count += len(parts[-1])
        if count >= n:
            break
    x = torch.cat(parts)
    return x, x.detach().reshape(len(x), -1).to(torch.float64)


def is_language_model(subject: Subject) -> bool:
    """Whether the problem has the ``ResidualStream`` capability (hidden states and a token input set)."""
    return isinstance(subject.problem, ResidualStream)


def output_name(subject: Subject) -> str:
    if is_language_model(subject):
        return "final_hidden"
    problem = subject.problem
    return "softmax" if isinstance(problem, ClassProbabilities) else "u" if isinstance(problem, PinnField) else "output"


@torch.no_grad()
def hidden_states(subject: Subject, ids: torch.Tensor, batch_size: int = 8) -> list[torch.Tensor]:
    """The residual stream on token ids (n, L), one (n·L, hidden) matrix per ``hidden.i``, computed in batches."""
    problem = subject.problem
    if not isinstance(problem, ResidualStream):
        raise LossLensError(
            f"{type(problem).__name__} has no residual stream", where="cka", hint="hidden states are for causal language models"
        )
    parts: list[list[torch.Tensor]] = []
    for start in range(0, len(ids), batch_size):
        states = problem.hidden_states(subject.model, subject.state, ids[start : start + batch_size])
        parts.append([h.reshape(-1, h.shape[-1]).float() for h in states])
    return [torch.cat(layer) for layer in zip(*parts, strict=True)]


@torch.no_grad()
def model_outputs(subject: Subject, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (classifiers), the raw output (PINN u, any other problem) or final hidden states (LMs)."""
    if is_language_model(subject):
        return hidden_states(subject, x)[-1]
    if isinstance(subject.problem, ClassProbabilities):
        return subject.problem.probabilities(subject.model, subject.state, x)
    return functional_call(subject.model, subject.state, (x,))


def default_layers(subject: Subject) -> list[str]:
    """Every convolution and linear layer, in registration order; for LMs every ``hidden.i`` of the residual stream."""
    if is_language_model(subject):
        return [f"hidden.{i}" for i in range(_transformer_config(subject.model).num_hidden_layers + 1)]
    return [name for name, m in subject.model.named_modules() if isinstance(m, LAYER_TYPES)]


def _transformer_config(model: nn.Module) -> Any:
    """A Hugging Face model's ``config`` (``nn.Module.__getattr__`` is typed as tensor-or-module)."""
    return model.config


@torch.no_grad()
def layer_outputs(
    subject: Subject, x: torch.Tensor, layers: list[str], batch_size: int = 512, skip_unused: bool = False
) -> dict[str, torch.Tensor]:
    """Each named layer's output on ``x``, flattened per example, captured by forward hooks on a private copy
    of the model (the subject's model gets no hooks). LMs: the named ``hidden.i`` of the residual stream.

    A layer's output is one representation only when ``forward`` calls it exactly once per input; with
    ``skip_unused`` the others (an auxiliary head ``forward`` skips, a block applied twice) are left out.

    :raises KeyError: a name is not a module of the model.
    :raises LossLensError: a named layer is not called exactly once per forward and ``skip_unused`` is off.
    """
    if is_language_model(subject):
        states = hidden_states(subject, x)
        index = {f"hidden.{i}": h for i, h in enumerate(states)}
        missing = [name for name in layers if name not in index]
        if missing:
            raise KeyError(", ".join(missing))
        return {name: index[name] for name in layers}
    twin = copy.deepcopy(subject.model).eval()
    modules = dict(twin.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise KeyError(", ".join(missing))
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: captured[name].append(out.reshape(len(out), -1)))
        for name in layers
    ]
    n_batches = 0
    try:
        for start in range(0, len(x), batch_size):
            functional_call(twin, subject.state, (x[start : start + batch_size],))
            n_batches += 1
    finally:
        for handle in handles:
            handle.remove()
    odd = [name for name in layers if len(captured[name]) != n_batches]
    if odd and not skip_unused:
        calls = len(captured[odd[0]]) / max(n_batches, 1)
        raise LossLensError(
            f"layer {odd[0]} is called {calls:g} times per forward, so it has no single output to compare",
            where=f"cka --layers ({subject.name})",
            hint="name layers that forward calls once each, or leave --layers out",
        )
    return {name: torch.cat(parts) for name, parts in captured.items() if name not in odd}
