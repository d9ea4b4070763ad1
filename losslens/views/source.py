"""Data sources of a spec, and reading rows from a catalog connection."""

from __future__ import annotations

import io
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from losslens.store import reads

Data = dict[str, Any]  # {"url": str} or {"values": [row, ...]}
Row = dict[str, Any]
Rows = list[Row]


def url(address: str) -> Data:
    return {"url": address}


def values(rows: Rows) -> Data:
    return {"values": rows}


def inline(spec: Any, fetch: Callable[[str], Rows]) -> Any:
    """A copy of ``spec`` with every ``{"url": u}`` data source replaced by ``{"values": fetch(u)}``."""
    if isinstance(spec, dict):
        if set(spec) == {"url"} and isinstance(spec["url"], str):
            return {"values": fetch(spec["url"])}
        return {k: inline(v, fetch) for k, v in spec.items()}
    if isinstance(spec, list):
        return [inline(v, fetch) for v in spec]
    return spec


def catalog_dir(conn: sqlite3.Connection) -> Path:
    """The folder of the connection's main database file, where ``artifacts/`` lives."""
    return Path(reads.catalog_file(conn)).parent


def load_array(conn: sqlite3.Connection, sha256: str) -> np.ndarray | None:
    """An artifact's array by sha256, or None when the catalog does not know it."""
    path = reads.artifact_path(conn, sha256)
    if path is None:
        return None
    return np.load(catalog_dir(conn) / path, allow_pickle=False)


def npy_summary(blob: bytes) -> str | None:
    """``float32[41, 41]`` for ``.npy`` bytes (read from the header only), else None."""
    if not blob.startswith(b"\x93NUMPY"):
        return None
    try:
        stream = io.BytesIO(blob)
        fmt = np.lib.format
        version = fmt.read_magic(stream)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(stream)
    except (ValueError, OSError, EOFError):
        return None
    return f"{dtype}[{', '.join(map(str, shape))}]"


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such values become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
