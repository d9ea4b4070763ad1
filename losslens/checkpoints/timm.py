"""Layout ``timm``: timm's training checkpoints (``*.pth.tar``):
``{"epoch", "arch", "state_dict", "state_dict_ema", "optimizer", "args": Namespace, "metric"}``.

The weights are ``state_dict``, or ``state_dict_ema`` with ``[checkpoints] ema = true``; ``args``
(an ``argparse.Namespace``, so the file needs ``--allow-global argparse.Namespace``) become
hyperparameters; ``epoch`` is the step; the optimizer and AMP scaler are dropped with a note.
"""

from __future__ import annotations

from typing import Any

from losslens.checkpoints.base import State, bundle_metadata, jsonable
from losslens.checkpoints.plain import tensors_only
from losslens.errors import LossLensError

NAME = "timm"
_DROPPED = ("optimizer", "amp_scaler", "scheduler")


def matches(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("state_dict"), dict) and any(k in obj for k in ("arch", "args", "state_dict_ema", "version"))


def split(obj: dict[str, Any], where: str, notes: list[str], ema: bool = False) -> tuple[State, dict[str, Any]]:
    key = "state_dict_ema" if ema else "state_dict"
    if key not in obj:
        raise LossLensError(f"no {key} in the file", where=where, hint="set [checkpoints] ema = false, or save the EMA weights")
    state = tensors_only(obj[key], where, key)
    if not ema and "state_dict_ema" in obj:
        notes.append("state_dict_ema not used (set [checkpoints] ema = true to read it)")
    meta: dict[str, Any] = {"weights": key}
    args = jsonable(obj.get("args") or {}, "args", notes)
    if isinstance(args, dict) and args:
        meta["hparams"] = args
    meta.update(bundle_metadata(obj, ("state_dict", "state_dict_ema", "args"), _DROPPED, "training state, not the model", notes))
    if "epoch" in meta and "step" not in meta:
        meta["step"] = meta["epoch"]
    return state, meta
