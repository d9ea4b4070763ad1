"""Optional capabilities of a problem, as typed protocols: what a metric may use beyond :class:`Problem`.

Every metric needs only :class:`~losslens.problems.base.Problem` (``batches``, ``loss``,
``performance``, ``to`` and ``model_inputs``). Some use more, and declare it with
:func:`require`, which fails in one line naming the missing capability and its members:

- ``ClassProbabilities``: ``num_classes``, ``logits``, ``probabilities``, ``loss_and_error``,
  ``mixup_inputs``. Used by connectivity (mc on error %), CKA (softmax on mixup inputs), predictions
  and disagreement (labels).
- ``LossAndError``: ``loss_and_error``. Used by connectivity for the error along a path.
- ``EvaluationGrid``: ``grid`` (points × input dims). CKA's inputs (else the first training inputs).
- ``PinnField``: ``grid``, ``n_x``, ``n_t``, ``u_exact``, ``predict``, ``relative_l2``. Connectivity's
  relative L2 error, predictions (the u field).
- ``ResidualStream``: ``hidden_states``, ``cka_inputs``. CKA of language models (final hidden states and
  the residual stream per layer on token sequences).

They are ``runtime_checkable`` protocols: a problem has a capability when it has the members, whether
or not it subclasses anything here.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from losslens.errors import LossLensError

State = dict[str, torch.Tensor]


@runtime_checkable
class ClassProbabilities(Protocol):
    """A classifier: integer labels, logits and softmax probabilities (see ``ClassificationProblem``)."""

    num_classes: int

    def logits(self, model: nn.Module, state: State, x: torch.Tensor) -> torch.Tensor: ...

    def probabilities(self, model: nn.Module, state: State, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor: ...

    def loss_and_error(
        self, model: nn.Module, state: State, split: str = "train", batch_size: int | None = None, limit: int | None = None
    ) -> tuple[float, float]: ...

    def mixup_inputs(self, n: int, alpha: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class LossAndError(Protocol):
    """Mean loss and error fraction over a split (classifiers; language models' top-1 next token)."""

    def loss_and_error(
        self, model: nn.Module, state: State, split: str = "train", batch_size: int | None = None, limit: int | None = None
    ) -> tuple[float, float]: ...


@runtime_checkable
class EvaluationGrid(Protocol):
    """A fixed set of model inputs, ``grid`` of shape (points, input dims), on which models are compared."""

    grid: torch.Tensor


@runtime_checkable
class PinnField(Protocol):
    """A PDE solution field on an ``n_x`` × ``n_t`` grid with a known exact solution (see ``ConvectionProblem``)."""

    grid: torch.Tensor
    n_x: int
    n_t: int
    u_exact: torch.Tensor

    def predict(self, model: nn.Module, state: State) -> torch.Tensor: ...

    def relative_l2(self, model: nn.Module, state: State) -> float: ...


@runtime_checkable
class ResidualStream(Protocol):
    """A language model's fixed token input set and its hidden states (see ``CausalLMProblem``)."""

    def hidden_states(self, model: nn.Module, state: State, ids: torch.Tensor) -> list[torch.Tensor]: ...

    def cka_inputs(self, n: int) -> torch.Tensor: ...


def members(capability: type) -> list[str]:
    """The names a capability protocol declares (attributes and methods)."""
    names = set(getattr(capability, "__annotations__", {}))
    names |= {n for n, v in vars(capability).items() if callable(v) and not n.startswith("_")}
    return sorted(names)


def require(problem: Any, capability: type, metric: str) -> Any:
    """``problem`` itself when it has ``capability``.

    :raises LossLensError: it lacks one of the capability's members; the line names the metric, the
        problem class, the capability and the missing members.
    """
    missing = [name for name in members(capability) if not hasattr(problem, name)]
    if missing:
        raise LossLensError(
            f"problem {type(problem).__name__} lacks the {capability.__name__} capability (missing: {', '.join(missing)})",
            where=metric,
            hint=f"implement them (losslens.problems.capabilities.{capability.__name__}), or compute another metric",
        )
    return problem
