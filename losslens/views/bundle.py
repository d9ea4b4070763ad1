"""The offline Vega bundle: vega, vega-lite and vega-embed in one script, from vl-convert.

Building it takes seconds, so it is written once to a file (tagged with the vl-convert version, rebuilt
when that changes) and served or inlined from there; never a CDN. The file lives in the user's cache
folder, never inside the installed package (which may be read-only):

1. ``$LOSSLENS_CACHE_DIR`` when set (e.g. on a cluster whose home folder is read-only);
2. otherwise platformdirs' user cache folder for ``losslens``: ``$XDG_CACHE_HOME/losslens`` or
   ``~/.cache/losslens`` on Linux, ``~/Library/Caches/losslens`` on macOS, ``%LOCALAPPDATA%\\losslens\\Cache``
   on Windows.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from pathlib import Path

import platformdirs
import vl_convert

from losslens.errors import LossLensError

CACHE_ENV = "LOSSLENS_CACHE_DIR"
BUNDLE_NAME = "vega-bundle.js"


def cache_dir() -> Path:
    """The folder for files LossLens builds once per machine (see the module docstring for the rule)."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("losslens", appauthor=False))


def bundle_path() -> Path:
    return cache_dir() / BUNDLE_NAME


@functools.cache
def _tag() -> str:
    """The bundle file's first line. Cached: reading a package's version scans the installed distributions (about
    a millisecond, on every page the plugin serves), and it cannot change in a running process."""
    return f"/* vega + vega-lite + vega-embed, bundled by vl-convert {importlib.metadata.version('vl-convert-python')} */\n"


def ensure_bundle(path: Path | None = None) -> Path:
    """Write the bundle to ``path`` (default: :func:`bundle_path`) unless an up-to-date one is there;
    returns the path. The write is atomic (a temporary file renamed into place).

    :raises LossLensError: when the cache folder cannot be written.
    """
    path = bundle_path() if path is None else path
    tag = _tag()
    if path.exists():
        with path.open() as f:
            if f.readline() == tag:
                return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        # vl_convert's stub marks snippet required; at run time it defaults to assigning the globals
        tmp.write_text(tag + vl_convert.javascript_bundle())  # type: ignore[call-arg]
        os.replace(tmp, path)
    except OSError as exc:
        raise LossLensError(
            f"cannot write the Vega bundle: {exc.strerror or exc}",
            where=str(path),
            hint=f"set {CACHE_ENV} to a writable folder",
        ) from exc
    return path


def bundle_text() -> str:
    """The bundle's text, for inlining into a self-contained HTML file."""
    return ensure_bundle().read_text()
