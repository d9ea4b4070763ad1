"""Find the data folders the package reads at run time, installed or from a checkout.

A wheel carries ``migrations/``, ``viewer/`` and ``catalog/datasette.yaml`` under
``losslens/_data/``; an editable install reads them from the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Path of a top-level resource such as ``migrations`` or ``catalog/datasette.yaml``."""
    for base in (_PACKAGE / "_data", _PACKAGE.parent):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"losslens resource {name!r} is missing from the installation")
