"""The ``predictions`` metric: the PINN's u-field on the evaluation grid, or a classifier's confusion matrices.

The pair view compares two modes by what they predict (LossLens): for the PINN both fields,
their errors against the exact solution and their difference; for classifiers both confusion
matrices and the rate at which the two disagree on test examples, stored by the pair metric
``disagreement`` (each example's predicted label is kept as an artifact too). For language models a
confusion matrix over the vocabulary is not useful; their predictions are the top-1 next token at
every position of each split (``{split}_labels``, int32, sequences × (seq_len − 1)), so the
disagreement of two LMs is the fraction of positions where they predict different next tokens, plus
the per-token loss of the test split (``test_token_loss``, float32, same shape).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from losslens.errors import LossLensError
from losslens.jobs.context import JobContext, Subject
from losslens.metrics.registry import Result, register
from losslens.problems.base import State
from losslens.problems.capabilities import ClassProbabilities, PinnField, require
from losslens.store.ids import params_hash


@dataclass(frozen=True)
class PredictionsParams:
    """No options: predictions cover the full evaluation grid (PINN) or the full train and test sets."""


def confusion(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[i, j] = examples of class i predicted as j."""
    return np.bincount(true * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@torch.no_grad()
def _labels(problem: Any, model: nn.Module, state: State, split: str) -> tuple[np.ndarray, np.ndarray]:
    true, predicted = [], []
    for x, y in problem.batches(split, batch_size=512):
        predicted.append(problem.logits(model, state, x).argmax(-1).cpu().numpy())
        true.append(y.cpu().numpy())
    return np.concatenate(true), np.concatenate(predicted)


def _pinn(subject: Subject, problem: PinnField, result: Result) -> None:
    u = problem.predict(subject.model, subject.state).cpu().numpy().astype(np.float32)
    if not np.isfinite(u).all():
        raise LossLensError("the predicted field is not finite", where=subject.name, hint="check the checkpoint's training")
    exact = problem.u_exact.reshape(problem.n_x, problem.n_t).cpu().numpy().astype(np.float32)
    grid = problem.grid.cpu().numpy()
    extent = dict(
        n_x=problem.n_x,
        n_t=problem.n_t,
        x_min=float(grid[:, 0].min()),
        x_max=float(grid[:, 0].max()),
        t_min=float(grid[:, 1].min()),
        t_max=float(grid[:, 1].max()),
    )
    for name, array in (("u", u), ("u_exact", exact)):
        sha = result.artifact(name, "pinn_field", array)
        result.add("prediction_fields", checkpoint=subject.sha256, field=name, artifact=sha, **extent)


def _classifier(subject: Subject, result: Result) -> None:
    problem: Any = subject.problem  # a ClassProbabilities (checked by require) with Problem's batches
    for split in ("train", "test"):
        true, predicted = _labels(problem, subject.model, subject.state, split)
        counts = confusion(true, predicted, problem.num_classes)
        result.extend(
            "confusion_matrices",
            [
                dict(checkpoint=subject.sha256, split=split, true_label=i, predicted_label=j, count=int(counts[i, j]))
                for i in range(problem.num_classes)
                for j in range(problem.num_classes)
            ],
        )
        result.artifact(f"{split}_labels", "predicted_labels", predicted.astype(np.int16))


@torch.no_grad()
def _next_tokens(problem: Any, model: nn.Module, state: State, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(true next tokens, top-1 predicted next tokens) at every position of ``split``, flattened."""
    true, predicted = [], []
    for ids in problem.batches(split):
        predicted.append(problem.logits(model, state, ids)[:, :-1].argmax(-1).reshape(-1).cpu().numpy())
        true.append(ids[:, 1:].reshape(-1).cpu().numpy())
    return np.concatenate(true), np.concatenate(predicted)


@torch.no_grad()
def _language_model(subject: Subject, result: Result) -> None:
    problem: Any = subject.problem  # kind "causal_lm": CausalLMProblem's data and logits
    for split in ("train", "test"):
        if not len(problem.data[split]):
            continue
        labels, losses = [], []
        for ids in problem.batches(split):
            logits = problem.logits(subject.model, subject.state, ids)[:, :-1].float()
            labels.append(logits.argmax(-1).to(torch.int32).cpu().numpy())
            if split == "test":
                nll = -torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
                losses.append(nll.cpu().numpy().astype(np.float32))
        result.artifact(f"{split}_labels", "predicted_labels", np.concatenate(labels))
        if losses:
            result.artifact("test_token_loss", "token_loss", np.concatenate(losses))


@register("predictions", scope="checkpoint", params=PredictionsParams, tables=("prediction_fields", "confusion_matrices"))
def predictions(ctx: JobContext, params: PredictionsParams) -> Result:
    """PINN u(x, t) on the evaluation grid, classifier confusion matrices, or LM next-token predictions, for the pair view."""
    subject = ctx.subject()
    result = Result()
    if subject.problem.kind == "causal_lm":
        _language_model(subject, result)
    elif isinstance(subject.problem, PinnField):
        _pinn(subject, subject.problem, result)
    else:
        require(subject.problem, ClassProbabilities, "predictions")
        _classifier(subject, result)
    return result


@dataclass(frozen=True)
class DisagreementParams:
    split: Literal["train", "test"] = field(default="test", metadata={"help": "Which split's examples to compare on."})
    pairs: Literal["within-setting", "same-step", "all"] = field(
        default="within-setting",
        metadata={
            "help": "Which checkpoint pairs: all pairs within each setting, those at the same training step within each setting, or all pairs."
        },
    )


@register("disagreement", scope="pair", params=DisagreementParams, tables=("pair_metrics",))
def disagreement(ctx: JobContext, params: DisagreementParams) -> Result:
    """Fraction of examples (LMs: token positions) on which two models predict different labels (next tokens)."""
    sha_a, sha_b = ctx.shas
    a, b = ctx.subject(sha_a), ctx.subject(sha_b)
    for s in (a, b):
        if s.problem.kind != "causal_lm":
            require(s.problem, ClassProbabilities, "disagreement")
    labels = _next_tokens if a.problem.kind == "causal_lm" else _labels
    true_a, pred_a = labels(a.problem, a.model, a.state, params.split)
    true_b, pred_b = labels(b.problem, b.model, b.state, params.split)
    if not np.array_equal(true_a, true_b):
        raise LossLensError("the two checkpoints' problems have different examples", where=f"{a.name} and {b.name}")
    result = Result()
    result.add(
        "pair_metrics",
        checkpoint_a=sha_a,
        checkpoint_b=sha_b,
        metric="disagreement",
        curve=None,
        quantity=f"{params.split} labels",
        value=float(np.mean(pred_a != pred_b)),
        params_hash=params_hash(dataclasses.asdict(params)),
    )
    return result
