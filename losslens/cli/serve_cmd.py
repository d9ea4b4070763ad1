"""``losslens serve``: Datasette on the catalog, with the LossLens plugin and catalog/datasette.yaml."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import yaml

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, app, console, user_errors
from losslens.errors import LossLensError
from losslens.resources import resource_path
from losslens.store.catalog import init_catalog


def metadata_for(catalog: Path) -> Path:
    """catalog/datasette.yaml describes a database named ``losslens``; Datasette names a database
    after its file, so for another file name a re-keyed copy is written to the temp folder."""
    source = resource_path("catalog/datasette.yaml")
    if catalog.stem == "losslens":
        return source
    metadata = yaml.safe_load(source.read_text())
    metadata["databases"] = {catalog.stem: metadata["databases"]["losslens"]}
    target = Path(tempfile.gettempdir()) / f"losslens-datasette-{os.getpid()}-{catalog.stem}.yaml"
    target.write_text(yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False))
    return target


def datasette_command(catalog: Path, host: str, port: int) -> list[str]:
    """The datasette command line that serves ``catalog`` with LossLens's metadata."""
    return [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        str(catalog),
        "--metadata",
        str(metadata_for(catalog)),
        "--host",
        host,
        "--port",
        str(port),
        "--setting",
        "sql_time_limit_ms",
        "5000",
    ]


@app.command()
@user_errors
def serve(
    catalog: CatalogOpt = DEFAULT_CATALOG,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8001,
    host: Annotated[str, typer.Option("--host", help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
) -> None:
    """Browse the catalog in Datasette, with the LossLens views at /-/losslens/<database>."""
    if not catalog.exists():
        raise LossLensError(f"no catalog at {catalog}", where="serve", hint="create one with losslens ingest SPEC")
    cat, applied, _ = init_catalog(catalog)  # bring the schema up to date so every view's tables exist
    cat.close()
    if applied:
        console.print(f"{catalog}: applied {len(applied)} migration(s)")
    console.print(f"LossLens views: http://{host}:{port}/-/losslens/{catalog.stem}")
    cmd = datasette_command(catalog, host, port)
    os.execv(cmd[0], cmd)
