"""Content hashes: every row key is derived from what it describes, so reruns are idempotent."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values hash equally."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def content_id(*parts: Any) -> str:
    """A 16-hex-digit id for a tuple of JSON-able parts."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def params_hash(params: dict[str, Any]) -> str:
    """The hash that identifies a metric's parameters in ``metric_runs``."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:16]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
