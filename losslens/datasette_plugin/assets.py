"""The plugin's scripts and stylesheet at content-hashed URLs that browsers may cache for good.

Datasette's ``/-/static-plugins/`` route sends neither Cache-Control nor a validator, so Chromium
fetched and parsed the 900 KB Vega bundle on every page (≈ 0.55 s of the global page's first
render). Here the URL carries a hash of the file's bytes and the response says ``immutable``:
a changed file gets a new URL, and an unchanged one is served from the browser's cache together
with V8's cached compiled code.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from datasette.utils.asgi import NotFound, Response

from losslens.views.bundle import ensure_bundle

if TYPE_CHECKING:
    from datasette.app import Datasette
    from datasette.utils.asgi import Request

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {
    "vega-bundle.js": "text/javascript; charset=utf-8",
    "losslens.js": "text/javascript; charset=utf-8",
    "losslens.css": "text/css; charset=utf-8",
    "plotly.min.js": "text/javascript; charset=utf-8",  # from the installed plotly package (3-D surface)
}
IMMUTABLE = "public, max-age=31536000, immutable"

_loaded: dict[str, tuple[tuple[int, int], bytes, str]] = {}


@functools.cache
def _path(name: str) -> Path:
    """Where static file ``name`` lives (found once: the bundle's and plotly's places cannot move while serving)."""
    if name == "vega-bundle.js":
        return ensure_bundle()
    if name == "plotly.min.js":
        from losslens.views.surface import plotly_js_path

        return plotly_js_path()
    return STATIC / name


def asset(name: str) -> tuple[bytes, str]:
    """``(bytes, hash)`` of static file ``name``, read again only when the file changes (one ``stat`` per call;
    a bundle removed from the cache folder while serving is built again)."""
    try:
        stat = _path(name).stat()
    except FileNotFoundError:
        _path.cache_clear()
        stat = _path(name).stat()
    path = _path(name)
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _loaded.get(name)
    if cached is None or cached[0] != key:
        body = path.read_bytes()
        cached = (key, body, hashlib.sha256(body).hexdigest()[:16])
        _loaded[name] = cached
    return cached[1], cached[2]


def asset_url(datasette: Datasette, name: str) -> str:
    return datasette.urls.path(f"/-/losslens-static/{asset(name)[1]}/{name}")


async def serve(datasette: Datasette, request: Request) -> Response:
    """One static file; a hash that is not the current file's is a 404 (no stale content under a new name)."""
    name = request.url_vars["name"]
    if name not in TYPES:
        raise NotFound("no such file")
    body, digest = asset(name)
    if request.url_vars["digest"] != digest:
        raise NotFound("that version of the file is gone")
    headers = {"Cache-Control": IMMUTABLE, "ETag": f'"{digest}"'}
    if request.headers.get("if-none-match") == f'"{digest}"':
        return Response("", status=304, headers=headers)
    return Response(body, headers=headers, content_type=TYPES[name])
