"""The four LossLens pages. Each reads a little context for its header and lists the specs it
embeds; the browser fetches those specs and their data from :mod:`.routes`.

URLs hold the state (``?setting=`` on the global page, ``?mode=`` on a setting page), so a
copied link reproduces the view.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from datasette.utils import tilde_encode
from datasette.utils.asgi import NotFound, Response
from markupsafe import Markup

from losslens.datasette_plugin.assets import asset_url
from losslens.datasette_plugin.routes import check_args, data_url, database, read_remembered, spec_text
from losslens.store import chart_queries, memo, reads
from losslens.views import modes as modes_view
from losslens.views import registry
from losslens.views.hints import compute_command, subject_command
from losslens.views.source import finite

if TYPE_CHECKING:
    from datasette.app import Datasette
    from datasette.utils.asgi import Request


CANVAS_ABOVE = 200  # settings in the taxonomy beyond which the global chart draws on a canvas


def page_url(datasette: Datasette, db_name: str, path: str) -> str:
    base = f"/-/losslens/{tilde_encode(db_name)}"
    return datasette.urls.path(f"{base}/{path}" if path else base)


def spec_url(datasette: Datasette, db_name: str, view: str, **args: str | None) -> str:
    query = urlencode({k: v for k, v in args.items() if v})
    return datasette.urls.path(f"/-/losslens/{tilde_encode(db_name)}/spec/{view}.json?{query}")


def existing(row: dict[str, Any] | None) -> dict[str, Any]:
    """A row that ``check_args`` found; Datasette's 404 should it have gone since."""
    if row is None:
        raise NotFound("no such row")
    return row


async def render(datasette: Datasette, request: Request, template: str, context: dict[str, Any]) -> Response:
    context = {
        **context,
        "bundle_url": asset_url(datasette, "vega-bundle.js"),
        "js_url": asset_url(datasette, "losslens.js"),
        "css_url": asset_url(datasette, "losslens.css"),
        "help_json": help_json(),
    }
    return Response.html(await datasette.render_template(template, context, request=request))


@functools.cache
def help_json() -> Markup:
    """Every view's help text, for the pages' "?" buttons (the registry cannot change while serving)."""
    return script_json({name: v.help for name, v in registry.VIEWS.items()})


def script_json(value: Any) -> Markup:
    """JSON to inline in a ``<script type="application/json">``: ``<``, ``>`` and ``&`` escaped so no
    string in it can close the element."""
    return script_text(json.dumps(value, allow_nan=False))


def script_text(text: str) -> Markup:
    """:func:`script_json` of JSON already serialised (``<``, ``>`` and ``&`` only occur inside its strings)."""
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def experiment_settings(conn: sqlite3.Connection, experiment_id: str) -> dict[str, Any]:
    """What the global page shows of an experiment whichever setting is chosen: its settings (``id``, ``label``)
    and their id → label JSON. Remembered once per experiment (:mod:`losslens.store.memo`), so pages choosing different
    settings of a large sweep share one copy."""
    settings = reads.setting_names(conn, experiment_id)
    return {"settings": settings, "names_json": script_json({s["id"]: s["label"] for s in settings})}


async def global_page(datasette: Datasette, request: Request) -> Response:
    """Taxonomy of an experiment's settings, with the chosen setting's modes below."""
    name, db = database(datasette, request.url_vars["database"])
    wanted_experiment, wanted_setting = request.args.get("experiment"), request.args.get("setting")

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        experiments = reads.experiments(conn)
        if wanted_experiment:
            check_args(conn, {"experiment": wanted_experiment})
        experiment = next((e for e in experiments if e["id"] == wanted_experiment), experiments[0] if experiments else None)
        if experiment is None:
            return {"experiments": [], "experiment": None, "setting": None, "n_settings": 0}
        shared = memo.remembered(
            conn, ("experiment-settings", experiment["id"]), lambda c: experiment_settings(c, experiment["id"])
        )
        settings = shared["settings"]
        setting = None
        if wanted_setting:
            check_args(conn, {"setting": wanted_setting})
            setting = next((s for s in settings if s["id"] == wanted_setting), None)
            if setting is None:
                raise NotFound("that setting is in another experiment")
        setting = setting or (settings[0] if settings else None)
        # The first chart's spec goes into the page, saving a round trip before the bundle can draw (the spec
        # route's text, remembered under the same key).
        spec = spec_text(datasette, name, conn, "taxonomy", {"experiment": experiment["id"]}, setting["id"] if setting else None)
        return {
            "experiments": experiments,
            "experiment": experiment,
            "setting": setting,
            "n_settings": len(settings),
            "taxonomy_spec_json": script_text(spec),
            "names_json": shared["names_json"],
        }

    ctx = await read_remembered(db, ("global", wanted_experiment, wanted_setting), read)
    e, s = ctx["experiment"], ctx["setting"]
    return await render(
        datasette,
        request,
        "losslens_global.html",
        {
            **ctx,
            "database": name,
            "db_url": datasette.urls.database(name),
            "page_url": page_url(datasette, name, ""),
            "page_base": page_url(datasette, name, ""),
            "setting_page": page_url(datasette, name, f"setting/{s['id']}") if s else None,
            "taxonomy_spec": spec_url(datasette, name, "taxonomy", experiment=e["id"], selected=s and s["id"]) if e else None,
            "taxonomy_data": data_url(datasette, name, "taxonomy", experiment=e["id"])["url"] if e else None,
            "modes_spec": spec_url(datasette, name, "modes", setting=s["id"]) if s else None,
            "modes_spec_base": spec_url(datasette, name, "modes"),
            # SVG keeps marks addressable (tests, accessibility); canvas draws thousands of marks faster.
            "renderer": "svg" if ctx["n_settings"] <= CANVAS_ABOVE else "canvas",
            "setting_page_base": page_url(datasette, name, "setting/"),
        },
    )


async def setting_page(datasette: Datasette, request: Request) -> Response:
    """One setting's modes, with the chosen mode's local views below."""
    name, db = database(datasette, request.url_vars["database"])
    setting_id, wanted_mode = request.url_vars["setting_id"], request.args.get("mode")

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        check_args(conn, {"setting": setting_id})
        setting = existing(reads.setting(conn, setting_id))
        modes = reads.modes(conn, setting_id)
        if wanted_mode and not any(m["sha256"] == wanted_mode for m in modes):
            raise NotFound("no such mode in this setting")
        names = {m["sha256"]: m["name"] for m in modes}
        pairs = [
            {
                **p,
                "name_a": names.get(p["checkpoint_a"], p["checkpoint_a"][:12]),
                "name_b": names.get(p["checkpoint_b"], p["checkpoint_b"][:12]),
            }
            for p in modes_view.connectivity_rows(conn, setting_id)
        ]
        values = json.loads(setting["values_json"] or "{}")
        kinds = chart_queries.setting_landscape_kinds(conn, setting_id)
        return {
            "setting": setting,
            "values": values,
            "modes": modes,
            "pairs": pairs,
            "names_json": script_json(names),
            "has_landscapes": any(k["has_2d"] for k in kinds.values()),
            "landscapes_hint": compute_command(registry.VIEWS["mode-landscapes"].metrics, setting["experiment"]),
            "nd_modes": [{**m, "dims": dims} for m in modes if (dims := kinds[m["sha256"]]["nd_dims"])],
        }

    ctx = await read_remembered(db, ("setting", setting_id, wanted_mode), read)
    mode = wanted_mode or (ctx["modes"][0]["sha256"] if ctx["modes"] else None)
    return await render(
        datasette,
        request,
        "losslens_setting.html",
        {
            **ctx,
            "database": name,
            "mode": mode,
            "mode_name": next((m["name"] for m in ctx["modes"] if m["sha256"] == mode), mode),
            "global_page": page_url(datasette, name, "")
            + "?"
            + urlencode({"experiment": ctx["setting"]["experiment_id"], "setting": setting_id}),
            "page_base": page_url(datasette, name, ""),
            "modes_spec": spec_url(datasette, name, "modes", setting=setting_id, selected=mode),
            "local_spec": spec_url(datasette, name, "local", checkpoint=mode) if mode else None,
            "local_spec_base": spec_url(datasette, name, "local"),
            "landscapes_spec": spec_url(datasette, name, "mode-landscapes", setting=setting_id),
        },
    )


PICKER_ALL = 200  # experiments with at most this many other checkpoints list them all in the "compare with…" picker
FOUND_MAX = 50  # checkpoints a name search on the mode page shows


def checkpoint_context(conn: sqlite3.Connection, sha: str, find: str | None = None) -> dict[str, Any]:
    """What the mode page shows, in a fixed number of queries whatever the experiment's size.

    The "compare with…" picker lists every other checkpoint of the experiment when it has at most
    :data:`PICKER_ALL` of them, else the setting's own; any checkpoint of the experiment can be found by name
    (``find``: at most :data:`FOUND_MAX` shown, ``found_more`` says there were more)."""
    check_args(conn, {"checkpoint": sha})
    record = existing(reads.checkpoint(conn, sha))
    experiment = record["experiment_id"]
    # What every mode page of the experiment shares is read once per catalog version (browsing mode to mode).
    n_others = memo.remembered(conn, ("experiment_size", experiment), lambda c: reads.experiment_size(c, experiment)) - 1
    if n_others <= PICKER_ALL:
        listed = memo.remembered(
            conn, ("experiment_modes", experiment), lambda c: reads.experiment_modes(c, experiment, PICKER_ALL + 1)
        )
    else:
        listed = [
            {**m, "setting_id": record["setting_id"], "setting_label": record["setting_label"]}
            for m in reads.modes(conn, record["setting_id"])
        ]
    choices: list[dict[str, Any]] = []
    for m in listed:
        if m["sha256"] == sha:
            continue
        if not choices or choices[-1]["setting_id"] != m["setting_id"]:
            choices.append({"setting_id": m["setting_id"], "label": m["setting_label"], "modes": []})
        choices[-1]["modes"].append(m)
    found = None
    if find:
        found = [m for m in reads.search_modes(conn, experiment, find, FOUND_MAX + 2) if m["sha256"] != sha]
    nd = chart_queries.nd_landscape_record(conn, sha)
    return {
        "record": record,
        "performance": reads.performance(conn, sha),
        "choices": choices,
        "n_others": n_others,
        "all_listed": n_others <= PICKER_ALL,
        "find": find or "",
        "found": found[:FOUND_MAX] if found is not None else None,
        "found_more": found is not None and len(found) > FOUND_MAX,
        "nd_dims": nd and nd["dims"],
        "surface_hint": subject_command(conn, ("landscape",), {"checkpoint": sha}),
    }


async def checkpoint_page(datasette: Datasette, request: Request) -> Response:
    """One mode's local views and its performance."""
    name, db = database(datasette, request.url_vars["database"])
    sha = request.url_vars["sha"]
    other = request.args.get("compare")
    if other:  # the "compare with…" picker: the pair page of this mode and the one chosen
        await db.execute_fn(lambda conn: check_args(conn, {"a": sha, "b": other}))
        return Response.redirect(page_url(datasette, name, f"pair/{sha}/{other}"))
    find = (request.args.get("find") or "").strip()[:200] or None
    ctx = await read_remembered(db, ("checkpoint", sha, find), lambda conn: checkpoint_context(conn, sha, find))
    return await render(
        datasette,
        request,
        "losslens_checkpoint.html",
        {
            **ctx,
            "database": name,
            "page_base": page_url(datasette, name, ""),
            "local_spec": spec_url(datasette, name, "local", checkpoint=sha),
            "nd_spec": spec_url(datasette, name, "nd", checkpoint=sha) if ctx["nd_dims"] else None,
            "surface_url": page_url(datasette, name, f"surface/{sha}.json"),
            "plotly_url": asset_url(datasette, "plotly.min.js"),
        },
    )


async def pair_page(datasette: Datasette, request: Request) -> Response:
    """Two modes: curve profile, layer CKA and predictions."""
    name, db = database(datasette, request.url_vars["database"])
    a, b = request.url_vars["a"], request.url_vars["b"]

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        check_args(conn, {"a": a, "b": b})
        metrics = reads.pair_metric_rows(conn, a, b)
        ra, rb = existing(reads.checkpoint(conn, a)), existing(reads.checkpoint(conn, b))
        views = []
        for v in registry.views_of("pair", page=True):
            ready = registry.has_rows(conn, v.name, {"a": a, "b": b})
            hint = None if ready else subject_command(conn, v.metrics, {"a": a, "b": b})
            views.append({"name": v.name, "title": v.title, "ready": ready, "hint": hint})
        return {"a": ra, "b": rb, "metrics": [{**m, "value": finite(m["value"])} for m in metrics], "views": views}

    ctx = await read_remembered(db, ("pair", a, b), read)
    return await render(
        datasette,
        request,
        "losslens_pair.html",
        {
            **ctx,
            "database": name,
            "page_base": page_url(datasette, name, ""),
            "views": [{**v, "spec": spec_url(datasette, name, v["name"], a=a, b=b)} for v in ctx["views"]],
        },
    )
