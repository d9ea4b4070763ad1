"""Reading checkpoint files safely and checking them against a model.

``.pt``/``.pth`` files go through ``torch.load(weights_only=True)``, which refuses pickled
objects that are not tensors or plain containers, so a crafted file cannot run code.
``.safetensors`` files carry no code at all. Metadata comes from the file and from a sidecar
JSON beside it (``model.pt.json`` or ``model.json``); the sidecar wins.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from losslens.errors import LossLensError

_STATE_KEYS = ("state_dict", "model_state_dict", "model")
_META_KEYS = ("meta", "metadata")


@dataclass(frozen=True)
class CheckpointFile:
    path: Path
    format: str  # "torch" or "safetensors"
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]  # file metadata, updated by the sidecar


def read_checkpoint(path: Path) -> CheckpointFile:
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise LossLensError("no such file", where=where, hint="check [checkpoints].paths in the spec")
    if path.stat().st_size == 0:
        raise LossLensError("file is empty", where=where, hint="the checkpoint was not written completely; save it again")
    if path.suffix == ".safetensors":
        state, meta, fmt = _read_safetensors(path), _safetensors_meta(path), "safetensors"
    else:
        state, meta, fmt = _read_torch(path)
    meta.update(read_sidecar(path))
    return CheckpointFile(path, fmt, state, meta)


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    where = str(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise LossLensError(
            f"refused: the file holds pickled objects that are not weights ({first})",
            where=where,
            hint="save a plain state_dict with torch.save(model.state_dict(), path), or use .safetensors",
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LossLensError(
            f"cannot read the file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'truncated'})",
            where=where,
            hint="the file is truncated or not a torch checkpoint; save it again",
        ) from None
    return (*_split_state(obj, where), "torch")


def _split_state(obj: Any, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Accept a bare state_dict or ``{"state_dict": ..., "meta": {...}}`` (and common variants)."""
    if not isinstance(obj, dict):
        raise LossLensError(
            f"expected a dict of tensors, found {type(obj).__name__}", where=where, hint="save model.state_dict()"
        )
    for key in _STATE_KEYS:
        if isinstance(obj.get(key), dict):
            state = obj[key]
            meta: dict[str, Any] = {}
            for mkey in _META_KEYS:
                if isinstance(obj.get(mkey), dict):
                    meta.update(obj[mkey])
            meta.update({k: v for k, v in obj.items() if k not in (key, *_META_KEYS) and _is_plain(v)})
            break
    else:
        state, meta = obj, {}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise LossLensError(f"state_dict entry {bad[0]!r} is not a tensor", where=where, hint="save model.state_dict()")
    return dict(state), meta


def _is_plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise LossLensError(
            f"cannot read safetensors ({exc})", where=str(path), hint="the file is truncated or corrupt; save it again"
        ) from None


def _safetensors_meta(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        raw = fh.metadata() or {}
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta


def sidecar_path(path: Path) -> Path | None:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if side is None:
        return {}
    try:
        data = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise LossLensError(f"sidecar JSON syntax error: {exc}", where=str(side), hint="fix or delete the sidecar") from None
    if not isinstance(data, dict):
        raise LossLensError("sidecar must hold a JSON object", where=str(side))
    return data


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Missing keys, unexpected keys and shape mismatches, each named."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise LossLensError(
            f"missing key {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            where=where,
            hint="the checkpoint does not match [model] in the spec",
        )
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise LossLensError(
            f"unexpected key {unexpected[0]!r}" + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""),
            where=where,
            hint="the checkpoint does not match [model] in the spec",
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise LossLensError(
                f"shape mismatch at {key!r}: file {tuple(state[key].shape)}, model {tuple(tensor.shape)}",
                where=where,
                hint="check the model kwargs (width, depth, ...) or the sidecar hyperparameters",
            )


def checkpoint_metadata(
    meta: dict[str, Any], spec_hparams: dict[str, Any]
) -> tuple[dict[str, Any], int | None, int | None, str | None]:
    """(hyperparameters, seed, step, name) from spec defaults < file metadata < sidecar."""
    hparams = dict(spec_hparams)
    if isinstance(meta.get("hparams"), dict):
        hparams.update(meta["hparams"])
    seed = meta.get("seed", hparams.pop("seed", None))
    hparams.pop("seed", None)
    step = meta.get("step", meta.get("epoch"))
    name = meta.get("name")
    return hparams, _int_or_none(seed), _int_or_none(step), (str(name) if name is not None else None)


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
