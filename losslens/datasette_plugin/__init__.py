"""LossLens views inside Datasette: the global, setting, checkpoint and pair pages.

Small hook functions only; the pages live in :mod:`.pages`, the JSON routes in :mod:`.routes`.
The plugin is read-only: every route is a GET that runs parameterised SQL on Datasette's
read-only connections.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from losslens.datasette_plugin import assets, pages, routes
from losslens.store import memo, queries, reads, schema_docs
from losslens.views.bundle import ensure_bundle
from losslens.views.source import npy_summary

if TYPE_CHECKING:
    from datasette.app import Datasette

SHA = re.compile(r"^[0-9a-f]{64}$")
SETTING_ID = re.compile(r"^[0-9a-f]{16}$")
CHECKPOINT_COLUMNS = {"checkpoint", "checkpoint_a", "checkpoint_b"}


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
def prepare_connection(conn):
    """An empty memo for each connection Datasette opens (see :mod:`losslens.store.memo`)."""
    memo.reset(conn)


#: The metadata keys this plugin gives values to (None: Datasette asks for everything). Datasette calls the hook
#: dozens of times per page of its own, mostly for keys such as ``allow``; those are answered without work.
INSTANCE_KEYS = frozenset({"title", "description_html"})
METADATA_KEYS = frozenset({None, "databases", "tables", "description", "columns"}) | INSTANCE_KEYS


@hookimpl
def get_metadata(datasette, key, database, table):
    """Title, and table and column descriptions, for every database that is a LossLens catalog, from
    catalog/datasette.yaml (the schema's one documented source). The user's own metadata wins."""
    catalogs = _catalogs.get(datasette, frozenset())
    if not catalogs or key not in METADATA_KEYS:
        return {}  # Datasette looks up ``key`` alone (``allow``, ``license``, ...): nothing of ours can answer it
    meta = schema_docs.instance_metadata()
    if key in INSTANCE_KEYS:
        return meta
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
        (db + r"/data/(?P<name>[a-z_]+)\.(?P<format>json|csv)$", get_only(routes.data)),
        (db + r"/spec/(?P<view>[a-z-]+)\.json$", get_only(routes.spec)),
        (db + r"/surface/(?P<sha>[0-9a-f]{64})\.json$", get_only(routes.surface)),
        (r"/-/losslens-static/(?P<digest>[0-9a-f]{16})/(?P<name>[a-z.-]+)$", get_only(assets.serve)),
    ]


START_TABLES = ("experiments", "settings", "checkpoints", "taxonomy")
FLOAT_DIGITS = 6  # significant digits shown for REAL cells (the full value is the cell's tooltip)


def _link(datasette: Datasette, database: str, path: str, text: str, title: str | None = None) -> Markup:
    href = pages.page_url(datasette, database, path)
    if title:
        return Markup('<a href="{}" title="{}">{}</a>').format(href, title, text)
    return Markup('<a href="{}">{}</a>').format(href, text)


def _kind(column: str, value: str) -> str | None:
    """Which LossLens subject a cell names, from its column and the id's format."""
    if column in CHECKPOINT_COLUMNS and SHA.match(value):
        return "checkpoint"
    if column == "setting_id" and SETTING_ID.match(value):
        return "setting"
    if column == "experiment_id" and SETTING_ID.match(value):
        return "experiment"
    return None


def _expanded(value: Any) -> tuple[Any, str | None]:
    """``(id, label)`` of a foreign key Datasette expanded (``{"value", "label"}``: one query per column per page,
    by the table's label column), else ``(value, None)``."""
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        label = value.get("label")
        return value["value"], label if isinstance(label, str) and label != value["value"] else None
    return value, None


def _other_checkpoint(row: sqlite3.Row | Mapping[str, Any], column: str) -> tuple[str, str | None] | None:
    """The ``checkpoint_a`` beside a ``checkpoint_b`` cell (a pair), with its expanded label if any; else None."""
    if column != "checkpoint_b":
        return None
    try:
        a = row["checkpoint_a"]
    except (IndexError, KeyError):
        try:
            a = row["checkpoint"]  # metric_runs: checkpoint, checkpoint_b
        except (IndexError, KeyError):
            return None
    sha, label = _expanded(a)
    return (sha, label) if isinstance(sha, str) and SHA.match(sha) else None


def _subject_link(datasette: Datasette, database: str, kind: str, value: str, other: str | None, names: dict) -> Markup:
    """The link of an id cell to its LossLens view, labelled with the subject's name from ``names`` (the id's
    start where unknown); a ``checkpoint_b`` beside a checkpoint ``other`` also links the pair."""
    if kind == "checkpoint":
        link = _link(datasette, database, f"checkpoint/{value}", names.get(value, value[:12] + "…"), title=value)
        if other:
            label = f"pair {names.get(other, other[:8])} ↔ {names.get(value, value[:8])}"
            link += Markup(" · ") + _link(datasette, database, f"pair/{other}/{value}", label)
        return link
    if kind == "setting":
        return _link(datasette, database, f"setting/{value}", names.get(value, value), title=value)
    href = pages.page_url(datasette, database, "") + "?" + urlencode({"experiment": value})
    return Markup('<a href="{}" title="{}">{}</a>').format(href, value, names.get(value, value))


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    """In a LossLens catalog only (every other database keeps Datasette's own cells: the plugin is an entry point
    that runs for any Datasette of the environment): ``.npy`` BLOBs as their dtype and shape (any other BLOB
    keeps Datasette's download link); floats to :data:`FLOAT_DIGITS` significant digits; checkpoint, pair,
    setting and experiment ids (in any table or canned query) as links to their LossLens view, labelled with the
    subject's name: from Datasette's own expansion of a foreign key where it did one, else read from the
    catalog."""
    if database not in _catalogs.get(datasette, frozenset()):
        return None
    if isinstance(value, bytes):
        summary = npy_summary(value)
        return Markup("<em>{}</em>").format(summary) if summary else None
    if isinstance(value, float):
        return Markup('<span title="{}">{}</span>').format(repr(value), f"{value:.{FLOAT_DIGITS}g}")
    value, label = _expanded(value)
    if not isinstance(value, str):
        return None
    if table == "checkpoints" and column == "name" and SHA.match(str(row["sha256"])):
        return _link(datasette, database, f"checkpoint/{row['sha256']}", value)
    if table == "settings" and column == "label" and SETTING_ID.match(str(row["id"])):
        return _link(datasette, database, f"setting/{row['id']}", value)
    kind = _kind(column, value)
    if kind is None:
        return None
    other, other_label = _other_checkpoint(row, column) or (None, None)
    if label is not None and (other is None or other_label is not None):
        return _subject_link(datasette, database, kind, value, other, {value: label, other: other_label})

    async def labelled() -> Markup:
        db = datasette.get_database(database)
        if kind == "checkpoint":
            names = await db.execute_fn(lambda conn: reads.checkpoint_names(conn, [value, *([other] if other else [])]))
        elif kind == "setting":
            names = await db.execute_fn(lambda conn: reads.setting_labels(conn, [value]))
        else:
            names = await db.execute_fn(lambda conn: {e["id"]: e["name"] for e in reads.experiments(conn)})
        return _subject_link(datasette, database, kind, value, other, names)

    return labelled


@hookimpl
def extra_template_vars(datasette):
    """For the home and database pages' pointer to the LossLens views (templates/index.html, database.html)."""
    return {
        "losslens_views_url": lambda name: pages.page_url(datasette, name, ""),
        "losslens_start_tables": START_TABLES,
        "losslens_catalogs": sorted(_catalogs.get(datasette, frozenset())),
    }


@hookimpl
def menu_links(datasette, actor):
    return [
        {"href": pages.page_url(datasette, db, ""), "label": f"LossLens views: {db}"}
        for db in sorted(_catalogs.get(datasette, frozenset()))
    ]
