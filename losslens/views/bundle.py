"""The offline Vega bundle: vega, vega-lite and vega-embed in one script, from vl-convert.

Building it takes seconds, so it is written once to a file (tagged with the vl-convert
version, rebuilt when that changes) and served or inlined from there; never a CDN.
"""

from __future__ import annotations

import os
from pathlib import Path

import vl_convert

STATIC_BUNDLE = Path(__file__).resolve().parent.parent / "datasette_plugin" / "static" / "vega-bundle.js"


def _tag() -> str:
    return f"/* vega + vega-lite + vega-embed, bundled by vl-convert {vl_convert.__version__} */\n"


def ensure_bundle(path: Path = STATIC_BUNDLE) -> Path:
    """Write the bundle to ``path`` unless an up-to-date one is there; returns the path."""
    tag = _tag()
    if path.exists():
        with path.open() as f:
            if f.readline() == tag:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(tag + vl_convert.javascript_bundle())
    os.replace(tmp, path)
    return path


def bundle_text() -> str:
    """The bundle's text, for inlining into a self-contained HTML file."""
    return ensure_bundle().read_text()
