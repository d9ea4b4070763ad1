"""Layout ``state-dict``: ``torch.save(model.state_dict())``, or LossLens's own bundle
``{"state_dict": ..., "meta": {...}}`` (what ``losslens train`` writes)."""

from __future__ import annotations

from typing import Any

from losslens.checkpoints.base import State, jsonable
from losslens.errors import LossLensError

NAME = "state-dict"


def tensors_only(state: Any, where: str, key: str = "state_dict") -> State:
    """``state`` as a dict of tensors; one line naming the first entry that is not a tensor."""
    import torch

    if not isinstance(state, dict):
        raise LossLensError(
            f"{key} is a {type(state).__name__}, not a dict of tensors", where=where, hint="save model.state_dict()"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise LossLensError(f"{key} entry {bad[0]!r} is not a tensor", where=where, hint="save model.state_dict()")
    return dict(state)


_WEIGHT_KEYS = ("state_dict", "model")
_META_KEYS = ("meta", "metadata")


def matches(obj: dict[str, Any]) -> bool:
    import torch

    bare = bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
    return bare or any(isinstance(obj.get(k), dict) for k in _WEIGHT_KEYS)


def split(obj: dict[str, Any], where: str, notes: list[str]) -> tuple[State, dict[str, Any]]:
    key = next((k for k in _WEIGHT_KEYS if isinstance(obj.get(k), dict)), None)
    if key is None:
        return tensors_only(obj, where, "file"), {}
    meta: dict[str, Any] = {}
    for mkey in _META_KEYS:
        if isinstance(obj.get(mkey), dict):
            meta.update(jsonable(obj[mkey], mkey, notes))
    for other, value in obj.items():
        if other not in (key, *_META_KEYS):
            converted = jsonable(value, other, notes)
            if converted is not None:
                meta.setdefault(other, converted)
    return tensors_only(obj[key], where, key), meta
