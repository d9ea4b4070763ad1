"""Parameter dicts as flat vectors, in the dict's iteration order (the order of ``Subject.params``).

Hessian eigenvectors, landscape directions and connectivity bends are all stored in this order,
so one pair of functions serves them all.
"""

from __future__ import annotations

import difflib
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


def base_prefix(model: object) -> str:
    """The dotted path of a transformers model's base model (``"gpt_neox."``, ``"transformer."``, ``"model."``:
    its ``base_model_prefix`` when the model holds a submodule of that name), else ``""``."""
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if isinstance(prefix, str) and prefix and hasattr(model, prefix) else ""


def matches(name: str, pattern: str, prefix: str = "") -> bool:
    """Whether a parameter name matches a ``--params`` glob.

    The rule: ``fnmatch`` (case-sensitive; ``*`` any run of characters, dots included; ``?`` one
    character; ``[seq]`` one of a set) against the whole dotted name from its start, and, when
    ``prefix`` is given (a transformers model's :func:`base_prefix`), against the name without it.
    Never against a later part of the name: ``0.*`` is ``0.weight`` and ``0.bias`` of an
    ``nn.Sequential``, not ``2.0.weight`` (write ``*.0.*`` for every submodule numbered 0);
    ``layers.11.*`` is ``gpt_neox.layers.11.…`` through the prefix ``gpt_neox.``.
    """
    if fnmatchcase(name, pattern):
        return True
    return bool(prefix) and name.startswith(prefix) and fnmatchcase(name[len(prefix) :], pattern)


def _relative(name: str, prefix: str) -> str:
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def block_glob(names: list[str], prefix: str = "") -> str:
    """A ``--params`` glob for one block of this model, for refusal hints: the path of its first numbered
    module (``transformer.h.0.ln_1.weight`` with prefix ``transformer.`` gives ``h.0.*``, an
    ``nn.Sequential``'s ``0.weight`` gives ``0.*``, ``features.3.weight`` gives ``features.3.*``); a model
    without numbered modules gets its first tensor's name.

    :raises IndexError: ``names`` is empty.
    """
    for name in names:
        parts = _relative(name, prefix).split(".")
        for i, part in enumerate(parts[:-1]):
            if part.isdigit():
                return ".".join(parts[: i + 1]) + ".*"
    return _relative(names[0], prefix)


def module_globs(names: list[str], prefix: str = "") -> list[str]:
    """Every ``--params`` glob that selects one module or one tensor of this model: ``P.*`` for each
    module path ``P`` (relative to ``prefix``) and each tensor's own name, in first-seen order."""
    out: dict[str, None] = {}
    for name in names:
        parts = _relative(name, prefix).split(".")
        for i in range(1, len(parts)):
            out[".".join(parts[:i]) + ".*"] = None
        out[".".join(parts)] = None
    return list(out)


def closest_globs(pattern: str, names: list[str], prefix: str = "", n: int = 3) -> list[str]:
    """The ``--params`` globs of this model closest to ``pattern``, for the hint of a glob that matches
    nothing: ``*.PATTERN`` first when that matches (the usual slip: a module path written without the
    leading ``*.``), then the :func:`module_globs` nearest by :func:`difflib.get_close_matches` (the
    ``n`` most similar, however dissimilar; none only when the model has no parameters)."""
    out = [f"*.{pattern}"] if not pattern.startswith("*") and any(matches(name, f"*.{pattern}") for name in names) else []
    out += difflib.get_close_matches(pattern, module_globs(names, prefix), n=n, cutoff=0.0)
    return list(dict.fromkeys(out))[:n]


def no_match(
    pattern: str, names: list[str], prefix: str = "", *, where: str = "params", model: str | None = None
) -> LossLensError:
    """The one-line refusal of a ``--params`` glob that matches none of ``names``: the glob, the model
    (when named), the closest globs (:func:`closest_globs`) as the fix, the anchoring rule and a few names."""
    sample = ", ".join(names[:3] + (["…", names[-1]] if len(names) > 3 else []))
    anchor = f", or after {prefix!r}" if prefix else ""
    of = f" of model {model}" if model else ""
    close = closest_globs(pattern, names, prefix)
    fix = f"closest: {', '.join(repr(g) for g in close)}; " if close else ""
    return LossLensError(
        f"--params {pattern!r} matches no parameter{of}",
        where=where,
        hint=f"{fix}a glob matches the whole dotted name from its start{anchor}; names look like: {sample}",
    )


def select(
    params: Params, globs: tuple[str, ...] | list[str], prefix: str = "", *, where: str = "params", model: str | None = None
) -> list[str]:
    """Names of the parameters matching any glob (see :func:`matches`), in dict order; all when ``globs`` is empty.

    :param prefix: a transformers model's :func:`base_prefix`, which globs may leave out.
    :param where: the ``where`` of a refusal (planning passes the metric's name).
    :param model: the model a refusal names (planning's label of it: names and checkpoint count).
    :raises LossLensError: a glob matches no parameter (:func:`no_match`: the closest globs and a few names).
    """
    if not globs:
        return list(params)
    for pattern in globs:
        if not any(matches(name, pattern, prefix) for name in params):
            raise no_match(pattern, list(params), prefix, where=where, model=model)
    return [name for name in params if any(matches(name, p, prefix) for p in globs)]
