"""Compact columns for the static viewer's inlined rows.

A view's rows repeat themselves: a 41 × 41 landscape has 1,681 rows of ten fields, but only
41 distinct ``a`` values, and the grid indices are the same for every checkpoint. As JSON
objects that is ~250 KB per checkpoint, so the viewer would blow its size budget. Here a
table of rows becomes columns, each either plain JSON (short or non-numeric columns), a
little-endian typed array in base64 (numbers), or a dictionary of distinct values plus an
index column. Typed arrays are stored once by content (``blobs``), so a column shared by
many datasets (grid indices, the PINN evaluation grid) costs its bytes once. ``viewer.js``
turns a table back into the same rows, so the specs receive exactly what the plugin sends,
with floats of large columns at float32 precision (7 significant digits).
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

import numpy as np

Rows = list[dict[str, Any]]
SMALL = 64  # columns with fewer rows stay plain JSON: exact and readable


class Blobs:
    """Typed arrays stored once by content; a column refers to one by index."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[bytes, int] = {}

    def add(self, array: np.ndarray) -> int:
        raw = array.tobytes()
        key = hashlib.sha256(array.dtype.str.encode() + raw).digest()
        if key not in self._index:
            self._index[key] = len(self.items)
            self.items.append(base64.b64encode(raw).decode("ascii"))
        return self._index[key]


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _numeric(values: list[Any], blobs: Blobs) -> dict[str, Any]:
    """Integers that fit as int32 (no nulls), else float32 with null as NaN."""
    if all(isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31 for v in values):
        return {"i32": blobs.add(np.asarray(values, dtype="<i4"))}
    floats = np.asarray([math.nan if v is None else v for v in values], dtype="<f8")
    if np.nanmax(np.abs(floats), initial=0.0) > np.finfo(np.float32).max:
        return {"f64": blobs.add(floats)}
    return {"f32": blobs.add(floats.astype("<f4"))}


def encode_column(values: list[Any], blobs: Blobs) -> dict[str, Any]:
    if len(values) < SMALL or not all(_is_number(v) for v in values):
        distinct = list(dict.fromkeys(values)) if all(isinstance(v, (str, bool)) or v is None for v in values) else None
        if distinct is not None and len(values) >= SMALL and len(distinct) <= 255:
            index = {v: i for i, v in enumerate(distinct)}
            return {"dict": {"json": distinct}, "idx": {"u8": blobs.add(np.asarray([index[v] for v in values], dtype="u1"))}}
        return {"json": values}
    distinct = list(dict.fromkeys(values))
    if len(distinct) <= 255 and len(distinct) * 4 < len(values):
        index = {v: i for i, v in enumerate(distinct)}
        return {
            "dict": encode_column(distinct, blobs) if len(distinct) >= SMALL else {"json": distinct},
            "idx": {"u8": blobs.add(np.asarray([index[v] for v in values], dtype="u1"))},
        }
    return _numeric(values, blobs)


def encode_rows(rows: Rows, blobs: Blobs) -> dict[str, Any]:
    """``{"n": rows, "cols": {name: column}}``. A key that only some rows have (the glyphs' bars and
    rings differ) also gets ``"has"``, a 0/1 column, so that rows come back with exactly their keys."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    cols = {}
    for name in names:
        cols[name] = encode_column([r.get(name) for r in rows], blobs)
        if not all(name in r for r in rows):
            cols[name]["has"] = encode_column([int(name in r) for r in rows], blobs)
    return {"n": len(rows), "cols": cols}


def decode_rows(table: dict[str, Any], blobs: list[str]) -> Rows:
    """The inverse of :func:`encode_rows` (what viewer.js does), for tests and for reading back."""

    def column(spec: dict[str, Any]) -> list[Any]:
        if "json" in spec:
            return list(spec["json"])
        if "dict" in spec:
            lookup = column(spec["dict"])
            return [lookup[i] for i in column(spec["idx"])]
        ((kind, ref),) = spec.items()
        array = np.frombuffer(base64.b64decode(blobs[ref]), dtype={"i32": "<i4", "f32": "<f4", "f64": "<f8", "u8": "u1"}[kind])
        if kind in ("f32", "f64"):
            return [None if math.isnan(v) else float(v) for v in array]
        return [int(v) for v in array]

    cols = {name: column({k: v for k, v in spec.items() if k != "has"}) for name, spec in table["cols"].items()}
    has = {name: column(spec["has"]) for name, spec in table["cols"].items() if "has" in spec}
    return [{name: cols[name][i] for name in cols if name not in has or has[name][i]} for i in range(table["n"])]
