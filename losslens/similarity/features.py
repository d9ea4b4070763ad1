"""What CKA compares: a fixed input set, the model's outputs on it, and layer outputs via forward hooks."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call

from losslens.jobs.context import Subject

LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def input_set(subject: Subject, n: int, alpha: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and their record: mixup blends of training images for classifiers (Yang et al. 2021), with
    rows (i, j, λ); the evaluation grid for the PINN, with rows (x, t)."""
    problem = subject.problem
    if problem.kind == "classifier":
        return problem.mixup_inputs(n, alpha, seed)
    return problem.grid, problem.grid.detach().to(torch.float64)


def output_name(subject: Subject) -> str:
    return "softmax" if subject.problem.kind == "classifier" else "u"


@torch.no_grad()
def model_outputs(subject: Subject, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (classifiers) or predicted u (PINN) on the input set."""
    if subject.problem.kind == "classifier":
        return subject.problem.probabilities(subject.model, subject.state, x)
    return functional_call(subject.model, subject.state, (x,))


def default_layers(model: nn.Module) -> list[str]:
    """Every convolution and linear layer, in registration order."""
    return [name for name, m in model.named_modules() if isinstance(m, LAYER_TYPES)]


@torch.no_grad()
def layer_outputs(subject: Subject, x: torch.Tensor, layers: list[str], batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Each named layer's output on ``x``, flattened per example, captured by forward hooks on a private copy
    of the model (the subject's model gets no hooks)."""
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
    try:
        for start in range(0, len(x), batch_size):
            functional_call(twin, subject.state, (x[start : start + batch_size],))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in captured.items()}
