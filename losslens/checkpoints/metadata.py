"""Metadata beside and inside checkpoints: sidecar JSON files, and the (hparams, seed, step, name)
that ingest takes from spec defaults < file metadata < sidecar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError


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
        raise LossLensError(
            "sidecar must hold a JSON object", where=str(side), hint='write {"seed": 0, "step": 100, "hparams": {...}}'
        )
    return data


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
    return hparams, _int_or_none("seed", seed), _int_or_none("step", step), (str(name) if name is not None else None)


def _int_or_none(field: str, value: Any) -> int | None:
    """An integer seed or step (``3``, ``3.0``, ``"3"``); None when absent.

    :raises LossLensError: the value is not a whole number (a seed ``"two"`` used to become NULL silently,
        merging that run with the seedless ones).
    """
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise LossLensError(
            f"{field} {value!r} is not an integer",
            hint=f"write {field} as a whole number in the sidecar JSON (NAME.json) or the file's metadata",
        )
    return int(number)
