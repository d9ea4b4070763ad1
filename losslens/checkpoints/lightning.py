"""Layout ``lightning``: a PyTorch Lightning ``.ckpt``.

Keys: ``state_dict`` (named after the LightningModule's attributes, e.g. ``model.0.weight`` when
the net is ``self.model``), ``hyper_parameters``, ``epoch``, ``global_step``, ``optimizer_states``,
``lr_schedulers``, ``callbacks``, ``loops``. The attribute prefix is removed when the model is
matched (:func:`losslens.checkpoints.matching.fit_state_dict`: ``[checkpoints] prefix`` or the one
prefix that makes the keys match); ``hyper_parameters`` become hyperparameters; ``global_step`` is
the step; optimizer, scheduler, callback and loop states are dropped with a note. A
``hyper_parameters`` holding an ``argparse.Namespace`` or numpy scalars needs
``--allow-global argparse.Namespace`` / ``--allow-global numpy`` (see :mod:`.safe_load`).
"""

from __future__ import annotations

from typing import Any

from losslens.checkpoints.base import State, bundle_metadata, jsonable
from losslens.checkpoints.plain import tensors_only

NAME = "lightning"
_MARKERS = ("pytorch-lightning_version", "hyper_parameters", "optimizer_states", "loops", "global_step")
_DROPPED = ("optimizer_states", "lr_schedulers", "callbacks", "loops", "MixedPrecision", "native_amp_scaling_state")


def matches(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("state_dict"), dict) and any(k in obj for k in _MARKERS)


def split(obj: dict[str, Any], where: str, notes: list[str]) -> tuple[State, dict[str, Any]]:
    state = tensors_only(obj["state_dict"], where)
    meta: dict[str, Any] = {}
    hparams = jsonable(obj.get("hyper_parameters") or {}, "hyper_parameters", notes)
    if isinstance(hparams, dict) and hparams:
        meta["hparams"] = hparams
    meta.update(bundle_metadata(obj, ("state_dict", "hyper_parameters"), _DROPPED, "training state, not the model", notes))
    if "global_step" in meta:
        meta["step"] = meta["global_step"]
    return state, meta
