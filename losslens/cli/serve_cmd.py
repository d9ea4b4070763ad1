"""``losslens serve``: Datasette on the catalog, read-only, with the LossLens plugin.

The plugin's hooks give Datasette the catalog's title, table and column descriptions and canned queries
(from catalog/datasette.yaml), so no metadata file is passed or written.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, app, console, user_errors
from losslens.errors import LossLensError
from losslens.store.catalog import open_catalog, opens_immutable

SETTINGS = {"sql_time_limit_ms": 5000}


#: Characters that mean something in an SQLite URI. Datasette opens a database as ``file:{path}?mode=ro`` without
#: escaping the path, so with any of these in it SQLite opens another file (``run#2.db``: ``run``, read-write,
#: created empty beside the catalog) or none (``run%41.db``: ``runA.db``).
URI_CHARACTERS = "#?%"


def check_datasette_path(catalog: Path) -> None:
    """Refuse, in one line with the fix, a catalog path that Datasette would misread (:data:`URI_CHARACTERS`).

    :raises LossLensError: as said."""
    if any(c in str(catalog) for c in URI_CHARACTERS):
        raise LossLensError(
            "Datasette cannot open a database whose path holds '#', '?' or '%' (it reads the path as an SQLite URI)",
            where=str(catalog),
            hint="rename it, or serve it through a link whose path has none: "
            f"ln -s {shlex.quote(str(catalog))} /tmp/catalog.db && losslens serve --catalog /tmp/catalog.db",
        )


def datasette_options(catalog: Path) -> dict[str, Any]:
    """Keyword arguments of ``datasette.app.Datasette`` that serve ``catalog`` as ``serve`` does: immutable
    when its folder is read-only (no ``-wal``/``-shm`` files can be made there), else read-only mutable, so
    results computed while it runs show up.

    :raises LossLensError: for a path Datasette would misread (:func:`check_datasette_path`)."""
    check_datasette_path(catalog)
    immutable = opens_immutable(catalog)
    return {"files": [] if immutable else [str(catalog)], "immutables": [str(catalog)] if immutable else [], "settings": SETTINGS}


def datasette_command(catalog: Path, host: str, port: int) -> list[str]:
    """The ``datasette serve`` command line for :func:`datasette_options`."""
    options = datasette_options(catalog)
    cmd = [sys.executable, "-m", "datasette", "serve", *options["files"]]
    for path in options["immutables"]:
        cmd += ["-i", path]
    cmd += ["--host", host, "--port", str(port)]
    for name, value in options["settings"].items():
        cmd += ["--setting", name, str(value)]
    return cmd


def views_url(catalog: Path, host: str, port: int) -> str:
    """The LossLens views' address of ``catalog`` as Datasette routes it: the database name is the file's stem,
    tilde-encoded (Datasette's own encoding; spaces and brackets would break the printed link)."""
    from datasette.utils import tilde_encode

    return f"http://{host}:{port}/-/losslens/{tilde_encode(Path(catalog).stem)}"


@app.command()
@user_errors
def serve(
    catalog: CatalogOpt = DEFAULT_CATALOG,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8001,
    host: Annotated[str, typer.Option("--host", help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
) -> None:
    """Browse the catalog in Datasette, read-only, with the LossLens views at /-/losslens/<database>.

    A catalog that an older LossLens wrote is refused with a hint to run `losslens init`; serve never
    migrates or writes it, so it works on a read-only copy or share."""
    check_datasette_path(catalog)
    open_catalog(catalog, readonly=True, snapshot=True).close()  # exists, is a catalog, and its schema is current
    console.print(f"LossLens views: {views_url(catalog, host, port)}")
    cmd = datasette_command(catalog, host, port)
    os.execv(cmd[0], cmd)
