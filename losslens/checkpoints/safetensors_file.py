"""Layout ``safetensors``: one ``.safetensors`` file (no code at all); its string metadata header is
read as JSON where it parses (``{"seed": "3", "hparams": "{...}"}``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from losslens.checkpoints.base import State
from losslens.errors import LossLensError

NAME = "safetensors"


def read_tensors(path: Path) -> State:
    """All tensors of one file, on the CPU. :raises LossLensError: truncated or not safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise LossLensError(
            f"cannot read safetensors ({exc})", where=str(path), hint="the file is truncated or corrupt; save it again"
        ) from None


def read_header(path: Path) -> dict[str, Any]:
    """The header's metadata, each value decoded from JSON when it is JSON."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise LossLensError(
            f"cannot read safetensors ({exc})", where=str(path), hint="the file is truncated or corrupt; save it again"
        ) from None
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta
