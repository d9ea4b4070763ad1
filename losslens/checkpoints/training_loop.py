"""Layout ``training-loop``: the PyTorch tutorials' bundle
``{"epoch": 7, "model_state_dict": ..., "optimizer_state_dict": ..., "loss": tensor}``.

The weights are ``model_state_dict``; ``epoch`` becomes the step; ``loss`` becomes a number;
optimizer and scheduler states are dropped with a note (they are not part of the model).
"""

from __future__ import annotations

from typing import Any

from losslens.checkpoints.base import State, bundle_metadata
from losslens.checkpoints.plain import tensors_only

NAME = "training-loop"
_DROPPED = ("optimizer_state_dict", "scheduler_state_dict", "lr_scheduler_state_dict", "scaler_state_dict")


def matches(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("model_state_dict"), dict)


def split(obj: dict[str, Any], where: str, notes: list[str]) -> tuple[State, dict[str, Any]]:
    state = tensors_only(obj["model_state_dict"], where, "model_state_dict")
    meta = bundle_metadata(obj, ("model_state_dict",), _DROPPED, "not part of the model", notes)
    if "epoch" in meta and "step" not in meta:
        meta["step"] = meta["epoch"]
    return state, meta
