"""Content-addressed ``.npy`` files beside the catalog for arrays too big for rows."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ARTIFACT_DIR = "artifacts"


@dataclass(frozen=True)
class Artifact:
    """An array with its kind; ``sha256`` is of its ``.npy`` bytes, so equal arrays share a file."""

    kind: str
    array: np.ndarray = field(repr=False)
    sha256: str
    npy: bytes = field(repr=False)

    @classmethod
    def from_array(cls, kind: str, array: np.ndarray) -> Artifact:
        array = np.ascontiguousarray(array)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        data = buffer.getvalue()
        return cls(kind, array, hashlib.sha256(data).hexdigest(), data)

    @property
    def relpath(self) -> str:
        return f"{ARTIFACT_DIR}/{self.sha256[:2]}/{self.sha256}.npy"


def save_artifact(catalog_dir: Path, artifact: Artifact) -> Path:
    """Write the file once (atomically); a crash leaves at most an unreferenced file."""
    path = catalog_dir / artifact.relpath
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(artifact.npy)
    os.replace(tmp, path)
    return path


def load_artifact(catalog_dir: Path, relpath: str) -> np.ndarray:
    return np.load(catalog_dir / relpath, allow_pickle=False)
