"""What every layout reader returns, and the rule for which metadata is kept.

A reader turns one checkpoint (a file or a folder) into tensors and JSON-able metadata. Anything
that is not JSON-able (optimizer state, tensors other than weights, arbitrary objects) is dropped
and named in ``notes``, so the catalog's ``meta_json`` never holds a half-converted object.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class CheckpointFile:
    """One checkpoint read into memory.

    ``layout`` names the recognised layout (see :data:`losslens.checkpoints.LAYOUTS`); ``format``
    is how the tensors were stored (``torch`` = ``torch.load(weights_only=True)``, ``safetensors``);
    ``meta`` is JSON-able (seed, step, name, hparams, ...); ``notes`` says what was dropped or
    converted, one short sentence each.
    """

    path: Path
    format: str
    state_dict: State
    meta: dict[str, Any]
    layout: str = "state-dict"
    notes: tuple[str, ...] = field(default_factory=tuple)


def bundle_metadata(
    obj: dict[str, Any], skip: tuple[str, ...], dropped: tuple[str, ...], why: str, notes: list[str]
) -> dict[str, Any]:
    """The JSON-able entries of a checkpoint bundle other than ``skip`` (the weights, read apart).

    Entries named in ``dropped`` (optimizer, scheduler and similar training state) are left out with the
    note ``"<name> dropped (<why>)"``; others that cannot be JSON are left out by :func:`jsonable`.
    """
    meta: dict[str, Any] = {}
    for key, value in obj.items():
        if key in skip:
            continue
        if key in dropped:
            notes.append(f"{key} dropped ({why})")
            continue
        converted = jsonable(value, key, notes)
        if converted is not None:
            meta[key] = converted
    return meta


def jsonable(value: Any, name: str, notes: list[str]) -> Any:
    """``value`` as plain JSON data, or ``None`` with a note naming ``name`` when it cannot be.

    Converts 0-d tensors and numpy scalars to numbers, small arrays to lists, ``argparse.Namespace``
    to a dict and paths to strings; non-finite floats become ``None`` (JSON has no NaN).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return jsonable(value.item(), name, notes)
        notes.append(f"{name}: a tensor of shape {tuple(value.shape)} is not metadata; dropped")
        return None
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, PurePath):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars and 1-element arrays
    if callable(item) and getattr(value, "size", None) == 1:
        return jsonable(item(), name, notes)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and getattr(value, "size", 10**9) <= 1024:
        return tolist()
    if isinstance(value, Mapping):
        out = {}
        for key, sub in value.items():
            converted = jsonable(sub, f"{name}.{key}", notes)
            if converted is not None or sub is None:
                out[str(key)] = converted
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(sub, f"{name}[{i}]", notes) for i, sub in enumerate(value)]
    notes.append(f"{name}: a {type(value).__name__} is not JSON-able; dropped")
    return None
