"""Metadata beside and inside checkpoints: sidecar JSON files, and the (hparams, seed, step, name)
that ingest takes from spec defaults < file metadata < sidecar."""

from __future__ import annotations

import json
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
        raise LossLensError("sidecar must hold a JSON object", where=str(side))
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
    return hparams, _int_or_none(seed), _int_or_none(step), (str(name) if name is not None else None)


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
