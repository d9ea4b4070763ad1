"""JSON routes: the rows each view draws (``data/<name>.json``) and the specs (``spec/<view>.json``).

Specs point at the data routes by URL, so pages stay small and large data is fetched by the
browser. Every argument is checked against the id formats before any SQL runs, and SQL
takes it as a parameter; an unknown id is a 404.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from datasette.utils.asgi import NotFound, Response

from losslens.views import hessian, landscape, local, modes, pair, taxonomy, topology
from losslens.views.source import Rows, fetch

ID_FORMATS = {
    "experiment": re.compile(r"^[0-9a-f]{16}$"),
    "setting": re.compile(r"^[0-9a-f]{16}$"),
    "checkpoint": re.compile(r"^[0-9a-f]{64}$"),
    "a": re.compile(r"^[0-9a-f]{64}$"),
    "b": re.compile(r"^[0-9a-f]{64}$"),
    "selected": re.compile(r"^[0-9a-f]{16}$|^[0-9a-f]{64}$"),
}
EXISTS = {
    "experiment": "SELECT 1 FROM experiments WHERE id = ?",
    "setting": "SELECT 1 FROM settings WHERE id = ?",
    "checkpoint": "SELECT 1 FROM checkpoints WHERE sha256 = ?",
    "a": "SELECT 1 FROM checkpoints WHERE sha256 = ?",
    "b": "SELECT 1 FROM checkpoints WHERE sha256 = ?",
}


def _landscape_rows(fn: Callable[[sqlite3.Connection, str], Any]) -> Callable[[sqlite3.Connection, str], Rows]:
    def rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
        found = landscape.landscape_of(conn, checkpoint)
        return fn(conn, found["id"]) if found else []

    return rows


LABELLED_CELLS = 100  # above this many settings the grid drops its per-cell phase labels

DATASETS: dict[str, tuple[tuple[str, ...], Callable[..., Rows]]] = {
    "taxonomy": (("experiment",), taxonomy.taxonomy_rows),
    "modes": (("setting",), modes.modes_rows),
    "links": (("setting",), modes.link_rows),
    "glyphs": (("setting",), modes.glyph_rows),
    "landscape": (("checkpoint",), _landscape_rows(landscape.grid_rows)),
    "isolines": (("checkpoint",), _landscape_rows(lambda c, lid: landscape.isoline_rows(landscape.grid_rows(c, lid)))),
    "minima": (("checkpoint",), _landscape_rows(landscape.minima_rows)),
    "tree_nodes": (("checkpoint",), _landscape_rows(lambda c, lid: topology.tree_rows(c, lid)[0])),
    "tree_segments": (("checkpoint",), _landscape_rows(lambda c, lid: topology.tree_rows(c, lid)[1])),
    "persistence": (("checkpoint",), _landscape_rows(topology.persistence_rows)),
    "spectrum": (("checkpoint",), hessian.spectrum_rows),
    "esd": (("checkpoint",), hessian.esd_rows),
    "curve": (("a", "b"), pair.curve_rows),
    "layer_cka": (("a", "b"), pair.layer_cka_rows),
    "fields": (("a", "b"), pair.field_rows),
    "confusion": (("a", "b"), pair.confusion_rows),
}


def database(datasette, name: str):
    from datasette.utils import tilde_decode

    name = tilde_decode(name)
    if name not in datasette.databases or name == "_internal":
        raise NotFound("no such database")
    return name, datasette.get_database(name)


def check_args(conn: sqlite3.Connection, args: dict[str, str]) -> None:
    """Raise NotFound unless every id has its format and names an existing row."""
    for key, value in args.items():
        if key not in ID_FORMATS or not ID_FORMATS[key].match(value or ""):
            raise NotFound(f"bad {key}")
        if key in EXISTS and conn.execute(EXISTS[key], (value,)).fetchone() is None:
            raise NotFound(f"no such {key}")


def data_url(datasette, db_name: str, name: str, **args: str) -> dict[str, str]:
    from datasette.utils import tilde_encode

    return {"url": datasette.urls.path(f"/-/losslens/{tilde_encode(db_name)}/data/{name}.json?{urlencode(args)}")}


def _query_args(request, names: tuple[str, ...]) -> dict[str, str]:
    args = {}
    for n in names:
        if n not in request.args:
            raise NotFound(f"missing {n}")
        args[n] = request.args[n]
    return args


def json_response(body: Any) -> Response:
    return Response(json.dumps(body, allow_nan=False), content_type="application/json; charset=utf-8")


async def data(datasette, request) -> Response:
    name, db = database(datasette, request.url_vars["database"])
    if request.url_vars["name"] not in DATASETS:
        raise NotFound("no such dataset")
    keys, fn = DATASETS[request.url_vars["name"]]
    args = _query_args(request, keys)

    def run(conn: sqlite3.Connection) -> Rows:
        check_args(conn, args)
        return fn(conn, *args.values())

    return json_response(await db.execute_fn(run))


def build_spec(datasette, db_name: str, conn: sqlite3.Connection, view: str, request_args: dict[str, str]) -> dict[str, Any]:
    """The spec of ``view``, with its data as URLs of the data routes."""
    from datasette.utils import tilde_encode

    return view_spec(
        conn,
        view,
        request_args,
        lambda name, **a: data_url(datasette, db_name, name, **a),
        pair_href=datasette.urls.path(f"/-/losslens/{tilde_encode(db_name)}/pair/"),
    )


def view_spec(
    conn: sqlite3.Connection,
    view: str,
    request_args: dict[str, str],
    url: Callable[..., dict[str, Any]],
    pair_href: str | None = None,
) -> dict[str, Any]:
    """The spec of ``view``; ``url(name, **args)`` gives the data source of each DATASETS entry (a data
    route here, inline values in the static exports of :mod:`losslens.export`)."""
    selected = request_args.get("selected")
    if view == "taxonomy":
        e = request_args["experiment"]
        settings = fetch(conn, "SELECT values_json FROM settings WHERE experiment_id = ?", (e,))
        return taxonomy.taxonomy_spec(
            url("taxonomy", experiment=e),
            taxonomy.setting_keys(settings),
            selected=selected,
            cell_labels=len(settings) <= LABELLED_CELLS,
        )
    if view == "modes":
        s = request_args["setting"]
        return modes.modes_spec(
            url("modes", setting=s), url("links", setting=s), url("glyphs", setting=s), selected=selected, pair_href=pair_href
        )
    if view == "local":
        c = request_args["checkpoint"]
        names = ("landscape", "isolines", "minima", "tree_nodes", "tree_segments", "persistence", "spectrum", "esd")
        return local.local_spec(*(url(n, checkpoint=c) for n in names))
    a, b = request_args.get("a"), request_args.get("b")
    if view == "curve":
        return pair.curve_spec(url("curve", a=a, b=b))
    if view == "layer_cka":
        return pair.layer_cka_spec(url("layer_cka", a=a, b=b))
    if view == "predictions":
        if pair.confusion_rows(conn, a, b):
            return pair.confusion_spec(url("confusion", a=a, b=b), pair.disagreement(conn, a, b))
        return pair.fields_spec(url("fields", a=a, b=b))
    raise NotFound("no such view")


SPEC_ARGS = {
    "taxonomy": ("experiment",),
    "modes": ("setting",),
    "local": ("checkpoint",),
    "curve": ("a", "b"),
    "layer_cka": ("a", "b"),
    "predictions": ("a", "b"),
}


async def spec(datasette, request) -> Response:
    name, db = database(datasette, request.url_vars["database"])
    view = request.url_vars["view"]
    if view not in SPEC_ARGS:
        raise NotFound("no such view")
    args = _query_args(request, SPEC_ARGS[view])
    if request.args.get("selected"):
        args["selected"] = request.args["selected"]

    def run(conn: sqlite3.Connection) -> dict[str, Any]:
        check_args(conn, args)
        return build_spec(datasette, name, conn, view, args)

    return json_response(await db.execute_fn(run))
