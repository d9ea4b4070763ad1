"""Fitting a checkpoint's tensors to the model its spec builds: name prefixes, then keys and shapes,
then the one dtype rule.

Prefixes: ``nn.DataParallel``/DDP save keys as ``module.…``, ``torch.compile`` as ``_orig_mod.…``,
Lightning as ``<attribute>.…`` (``model.`` for ``self.model``). With ``[checkpoints] prefix`` set,
exactly that prefix is removed (keys outside it are dropped with a note); otherwise the one dotted
prefix under which the keys equal the model's is found and removed (torch's
``consume_prefix_in_state_dict_if_present``). Two such prefixes (a teacher and a student) are
ambiguous and refused.

Keys torch's own ``load_state_dict`` fills in are not required either: BatchNorm's
``num_batches_tracked`` (absent from checkpoints written before torch 0.4.1 and from many converted
weights) is set to 0, as torch does, with a note; it only matters for training with ``momentum=None``.

Dtype rule (one for every metric): **the model computes in the dtype its factory builds it in**.
Floating tensors stored in another dtype (bf16/fp16 files for a float32 model, a float32 file for a
float64 model) are cast to the model's dtype at load, with a note recorded at ingest; inputs reach
the model through :func:`losslens.numerics.cast_inputs_to_model`.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from losslens.checkpoints.base import State
from losslens.errors import LossLensError
from losslens.models.hf import align_state_dict

_HINT = "the checkpoint does not match [model] in the spec"


def _first(names: list[str]) -> str:
    return f"{names[0]!r}" + (f" (and {len(names) - 1} more)" if len(names) > 1 else "")


def check_state_dict(model: nn.Module, state: State, where: str) -> None:
    """Missing keys, unexpected keys and shape mismatches, each named in one line.

    :raises LossLensError: on the first kind of mismatch found.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise LossLensError(f"missing key {_first(missing)}", where=where, hint=_HINT)
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise LossLensError(f"unexpected key {_first(unexpected)}", where=where, hint=_HINT)
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise LossLensError(
                f"shape mismatch at {key!r}: file {tuple(state[key].shape)}, model {tuple(tensor.shape)}",
                where=where,
                hint="check the model kwargs (width, depth, ...) or the sidecar hyperparameters",
            )


def optional_keys(model: nn.Module) -> set[str]:
    """Keys torch's ``load_state_dict`` fills in when a file lacks them: BatchNorm's ``num_batches_tracked``."""
    return {
        f"{name}.num_batches_tracked" if name else "num_batches_tracked"
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats
    }


def fill_optional(model: nn.Module, state: State) -> tuple[State, list[str]]:
    """``state`` with the :func:`optional_keys` it lacks set as torch sets them (0), and a note."""
    absent = sorted(k for k in optional_keys(model) if k not in state)
    if not absent:
        return state, []
    filled = {**state, **{k: torch.tensor(0, dtype=torch.long) for k in absent}}
    return filled, [f"{len(absent)} BatchNorm num_batches_tracked absent, set to 0 as torch's load_state_dict does"]


def _fits(keys: set[str], expected: set[str], optional: set[str]) -> bool:
    return expected - optional <= keys <= expected


def find_prefix(keys: list[str], expected: set[str], optional: set[str] | None = None) -> str | None:
    """The dotted prefix under which ``keys`` equal ``expected`` ("" if they already do), or None;
    keys in ``optional`` may be absent.

    :raises LossLensError: more than one prefix fits.
    """
    optional = optional or set()
    if _fits(set(keys), expected, optional):
        return ""
    counts: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")
        counts.update(".".join(parts[:i]) + "." for i in range(1, len(parts)))
    fits = [
        p
        for p, n in counts.items()
        if len(expected - optional) <= n <= len(expected)
        and _fits({k[len(p) :] for k in keys if k.startswith(p)}, expected, optional)
    ]
    if len(fits) > 1:
        raise LossLensError(
            f"the keys match the model under several prefixes ({', '.join(repr(p) for p in sorted(fits))})",
            hint='choose one with [checkpoints] prefix = "..." in the spec',
        )
    return fits[0] if fits else None


def strip_prefix(state: State, prefix: str) -> State:
    """The entries under ``prefix``, with it removed."""
    sub = {k: v for k, v in state.items() if k.startswith(prefix)}
    consume_prefix_in_state_dict_if_present(sub, prefix)
    return sub


def fit_state_dict(model: nn.Module, state: State, where: str, prefix: str | None = None) -> tuple[State, str, list[str]]:
    """``state`` renamed, checked and cast so that ``model.load_state_dict`` takes it.

    :returns: (the fitted state, the prefix removed ("" if none), notes on what was dropped or cast).
    :raises LossLensError: a configured prefix matches no key, several prefixes fit, or keys/shapes do
        not match the model (see :func:`check_state_dict`).
    """
    notes: list[str] = []
    expected = model.state_dict()
    if prefix is None:
        try:
            found = find_prefix(list(state), set(expected), optional_keys(model))
        except LossLensError as exc:
            raise LossLensError(exc.what, where=where, hint=exc.hint) from None
        prefix = found or ""
    elif prefix and not any(k.startswith(prefix) for k in state):
        first = next(iter(state), "")
        raise LossLensError(
            f"no key starts with the prefix {prefix!r} (keys look like {first!r})",
            where=where,
            hint="fix [checkpoints] prefix in the spec, or remove it to detect the prefix",
        )
    if prefix:
        outside = len(state) - sum(k.startswith(prefix) for k in state)
        state = strip_prefix(state, prefix)
        notes.append(f"prefix {prefix!r} removed" + (f"; {outside} tensors outside it dropped" if outside else ""))
    state = align_state_dict(model, state)  # transformers' own key renames; tied parameters saved once
    state, filled = fill_optional(model, state)
    notes += filled
    check_state_dict(model, state, where)
    cast: Counter[str] = Counter()
    fitted: State = {}
    for key, target in expected.items():
        tensor = state[key]
        if tensor.dtype != target.dtype:
            cast[f"{str(tensor.dtype).removeprefix('torch.')} to {str(target.dtype).removeprefix('torch.')}"] += 1
            tensor = tensor.to(target.dtype)
        fitted[key] = tensor
    notes += [f"{n} tensors cast from {pair} (the model's dtype)" for pair, n in cast.items()]
    return fitted, prefix, notes
