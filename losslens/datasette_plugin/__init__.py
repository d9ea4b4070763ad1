"""LossLens views inside Datasette: the global, setting, checkpoint and pair pages.

Small hook functions only; the pages live in :mod:`.pages`, the JSON routes in :mod:`.routes`.
The plugin is read-only: every route is a GET that runs parameterised SQL on Datasette's
read-only connections.
"""

from __future__ import annotations

import asyncio
import re
import weakref

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from losslens.datasette_plugin import assets, pages, routes
from losslens.store import queries, schema_docs
from losslens.views.bundle import ensure_bundle
from losslens.views.source import npy_summary

SHA = re.compile(r"^[0-9a-f]{64}$")
SETTING_ID = re.compile(r"^[0-9a-f]{16}$")
CHECKPOINT_COLUMNS = {"checkpoint", "checkpoint_a", "checkpoint_b"}
PAIR_TABLES = {"pair_metrics", "curve_points", "layer_cka"}


# Per Datasette instance: the names of its databases that are LossLens catalogs (found at startup).
_catalogs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@hookimpl
def startup(datasette):
    async def start():
        _catalogs[datasette] = frozenset(
            [name for name, db in datasette.databases.items() if name != "_internal" and await db.execute_fn(queries.is_catalog)]
        )
        await asyncio.to_thread(ensure_bundle)

    return start


@hookimpl
def get_metadata(datasette, key, database, table):
    """Title, and table and column descriptions, for every database that is a LossLens catalog, from
    catalog/datasette.yaml (the schema's one documented source). The user's own metadata wins."""
    catalogs = _catalogs.get(datasette, frozenset())
    if not catalogs:
        return {}
    meta = schema_docs.instance_metadata()
    if database is None:
        meta["databases"] = {name: schema_docs.database_metadata() for name in catalogs}
    elif database in catalogs:
        meta["databases"] = {database: schema_docs.database_metadata(table)}
    return meta


@hookimpl
def canned_queries(datasette, database, actor):
    """The catalog's canned queries (settings by phase, the sharpest modes, ...) on every LossLens catalog."""
    if database in _catalogs.get(datasette, frozenset()):
        return schema_docs.canned_queries()
    return None


def get_only(handler):
    """Every LossLens route reads; anything but GET (or HEAD) is refused."""

    async def view(datasette, request):
        if request.method not in ("GET", "HEAD"):
            return Response.text("LossLens views are read-only", status=405)
        return await handler(datasette, request)

    return view


@hookimpl
def register_routes():
    db = r"/-/losslens/(?P<database>[^/]+)"
    return [
        (db + r"$", get_only(pages.global_page)),
        (db + r"/setting/(?P<setting_id>[^/]+)$", get_only(pages.setting_page)),
        (db + r"/checkpoint/(?P<sha>[^/]+)$", get_only(pages.checkpoint_page)),
        (db + r"/pair/(?P<a>[^/]+)/(?P<b>[^/]+)$", get_only(pages.pair_page)),
        (db + r"/data/(?P<name>[a-z_]+)\.json$", get_only(routes.data)),
        (db + r"/spec/(?P<view>[a-z-]+)\.json$", get_only(routes.spec)),
        (r"/-/losslens-static/(?P<digest>[0-9a-f]{16})/(?P<name>[a-z.-]+)$", get_only(assets.serve)),
    ]


def _link(datasette, database: str, path: str, text: str) -> Markup:
    href = pages.page_url(datasette, database, path)
    return Markup('<a href="{}">{}</a>').format(href, text)


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    """Array BLOBs as short summaries; ids as links to the LossLens pages."""
    if isinstance(value, bytes):
        summary = npy_summary(value)
        return Markup("<em>{}</em>").format(summary or f"<{len(value):,} bytes>")
    if table is None or not isinstance(value, str):
        return None
    if table == "checkpoints" and column == "name" and SHA.match(str(row["sha256"])):
        return _link(datasette, database, f"checkpoint/{row['sha256']}", value)
    if table == "settings" and column == "label" and SETTING_ID.match(str(row["id"])):
        return _link(datasette, database, f"setting/{row['id']}", value)
    if column in CHECKPOINT_COLUMNS and SHA.match(value):
        link = _link(datasette, database, f"checkpoint/{value}", value[:12] + "…")
        if table in PAIR_TABLES and column == "checkpoint_b" and SHA.match(str(row["checkpoint_a"])):
            link += Markup(" ") + _link(datasette, database, f"pair/{row['checkpoint_a']}/{value}", "pair view")
        return link
    if column == "setting_id" and SETTING_ID.match(value):
        return _link(datasette, database, f"setting/{value}", value)
    return None


@hookimpl
def menu_links(datasette, actor):
    return [
        {"href": pages.page_url(datasette, db, ""), "label": f"LossLens views: {db}"}
        for db in datasette.databases
        if db != "_internal"
    ]
