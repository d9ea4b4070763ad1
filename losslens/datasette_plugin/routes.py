"""JSON routes: the rows each view draws (``data/<name>.json``, or ``.csv`` to download) and the specs (``spec/<view>.json``),
both straight from :mod:`losslens.views.registry`.

Specs point at the data routes by URL, so pages stay small and large data is fetched by the
browser. Every argument is checked against the id formats before any SQL runs, and SQL
takes it as a parameter; an unknown id is a 404 (the registry's ``NotFound`` becomes Datasette's).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from datasette.utils.asgi import NotFound, Response

from losslens.store import memo
from losslens.views import registry
from losslens.views.source import Rows

if TYPE_CHECKING:
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.utils.asgi import Request


T = TypeVar("T")


def database(datasette: Datasette, name: str) -> tuple[str, Database]:
    from datasette.utils import tilde_decode

    name = tilde_decode(name)
    if name not in datasette.databases or name == "_internal":
        raise NotFound("no such database")
    return name, datasette.get_database(name)


def found(fn: Callable[[], T]) -> T:
    """Run ``fn``, turning the registry's NotFound into Datasette's (a 404 page)."""
    try:
        return fn()
    except registry.NotFound as error:
        raise NotFound(str(error)) from None


async def read_remembered(db: Database, key: Hashable, fn: Callable[[sqlite3.Connection], T]) -> T:
    """:func:`losslens.store.memo.remembered` on one of ``db``'s read connections (Datasette's ``execute_fn``)."""
    return await db.execute_fn(lambda conn: memo.remembered(conn, key, fn))


def check_args(conn: sqlite3.Connection, args: dict[str, str]) -> None:
    """Raise Datasette's NotFound unless every id has its format and names an existing row."""
    found(lambda: registry.check_args(conn, args))


def data_url(datasette: Datasette, db_name: str, name: str, **args: str) -> dict[str, str]:
    from datasette.utils import tilde_encode

    return {"url": datasette.urls.path(f"/-/losslens/{tilde_encode(db_name)}/data/{name}.json?{urlencode(args)}")}


def links(datasette: Datasette, db_name: str) -> registry.Links:
    from datasette.utils import tilde_encode

    base = f"/-/losslens/{tilde_encode(db_name)}"
    return registry.Links(pair=datasette.urls.path(f"{base}/pair/"), checkpoint=datasette.urls.path(f"{base}/checkpoint/"))


def json_response(body: Any) -> Response:
    return json_text_response(json.dumps(body, allow_nan=False))


def json_text_response(text: str) -> Response:
    return Response(text, content_type="application/json; charset=utf-8")


async def data(datasette: Datasette, request: Request) -> Response:
    _, db = database(datasette, request.url_vars["database"])
    dataset = request.url_vars["name"]
    if dataset not in registry.DATASETS:
        raise NotFound("no such dataset")
    args = {k: request.args.get(k, "") for k in registry.DATASETS[dataset].args}

    def rows(conn: sqlite3.Connection) -> Rows:
        check_args(conn, args)
        return registry.rows(conn, dataset, args)

    if request.url_vars.get("format") == "csv":
        return csv_response(await db.execute_fn(rows), f"{dataset}.csv")

    def text(conn: sqlite3.Connection) -> str:
        check_args(conn, args)
        key = ("data", dataset, tuple(sorted(args.items())))
        return memo.remembered(
            conn,
            key,
            lambda c: json.dumps(registry.rows(c, dataset, args), allow_nan=False),
            keep=lambda t: len(t) <= DATA_REMEMBERED_MAX,
        )

    return json_text_response(await db.execute_fn(text))


DATA_REMEMBERED_MAX = 256 * 1024  # characters of a data route's JSON kept in the memo; larger rows are read each time


def csv_response(rows: Rows, filename: str) -> Response:
    """Rows as CSV (the union of their keys as the header, in first-seen order), offered as a download."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        content_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def build_spec(
    datasette: Datasette, db_name: str, conn: sqlite3.Connection, view: str, args: dict[str, str], selected: str | None = None
) -> dict[str, Any]:
    """The spec of ``view``, with its data as URLs of the data routes."""
    return found(
        lambda: registry.spec(
            conn,
            view,
            args,
            lambda dataset, **a: data_url(datasette, db_name, dataset, **a),
            selected=selected,
            links=links(datasette, db_name),
        )
    )


async def spec(datasette: Datasette, request: Request) -> Response:
    name, db = database(datasette, request.url_vars["database"])
    view = request.url_vars["view"]
    wanted = found(lambda: registry.view(view)).args
    args = found(lambda: registry.args_of(view, {k: request.args.get(k, "") for k in wanted}))
    selected = request.args.get("selected") or None

    def run(conn: sqlite3.Connection) -> str:
        check_args(conn, {**args, **({"selected": selected} if selected else {})})
        return spec_text(datasette, name, conn, view, args, selected)

    return json_text_response(await db.execute_fn(run))


def spec_text(
    datasette: Datasette, db_name: str, conn: sqlite3.Connection, view: str, args: dict[str, str], selected: str | None = None
) -> str:
    """:func:`build_spec` as JSON text, remembered per catalog version (:mod:`losslens.store.memo`): the spec route and the
    global page, which inlines the taxonomy's, share it."""
    key = ("spec", view, tuple(sorted(args.items())), selected)
    return memo.remembered(
        conn, key, lambda c: json.dumps(build_spec(datasette, db_name, c, view, args, selected), allow_nan=False)
    )


async def surface(datasette: Datasette, request: Request) -> Response:
    """The plotly figure of a checkpoint's 3-D landscape surface (:mod:`losslens.views.surface`); ``null``
    when it has no 2-D landscape yet."""
    from losslens.views.surface import checkpoint_surface

    _, db = database(datasette, request.url_vars["database"])
    sha = request.url_vars["sha"]

    def run(conn: sqlite3.Connection) -> dict[str, Any] | None:
        check_args(conn, {"checkpoint": sha})
        return checkpoint_surface(conn, sha)

    return json_response(await db.execute_fn(run))
