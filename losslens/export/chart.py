"""``losslens export chart``: one view as JSON, self-contained HTML, SVG, PNG or PDF.

The spec is the one the Datasette plugin serves (the same builder and datasets of
:mod:`losslens.views.registry`), with its data inlined as values instead of data-route URLs. SVG, PNG and PDF are drawn by vl-convert from that same
spec; HTML inlines the vl-convert Vega bundle, so nothing is fetched from anywhere.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vl_convert as vlc

from losslens.errors import LossLensError, unknown
from losslens.store import reads
from losslens.store.catalog import open_catalog
from losslens.views import registry
from losslens.views.bundle import bundle_text
from losslens.views.hints import subject_command

FORMATS = ("json", "html", "svg", "png", "pdf")
PNG_SCALE = 2.0  # sharp on high-density screens and in papers


@contextmanager
def read_catalog(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only snapshot connection to the catalog. Export never migrates or writes it: a catalog whose
    schema is older than this LossLens is refused with the hint to run ``losslens init``."""
    with open_catalog(Path(path), readonly=True, snapshot=True) as catalog:
        yield catalog.conn


def inline_spec(conn: sqlite3.Connection, view: str, args: dict[str, str]) -> tuple[dict[str, Any], int]:
    """(spec of a registered view with its data as values, number of rows it draws).

    :raises LossLensError: for a view the registry does not know.
    """
    try:
        return registry.inline_spec(conn, view, args)
    except registry.NotFound as error:
        raise LossLensError(str(error), where="export chart", hint=f"one of {', '.join(registry.VIEWS)}") from None


def nothing_to_draw(conn: sqlite3.Connection, view: str, args: dict[str, str], where: str) -> LossLensError:
    """The error for a view with no rows for ``args``; its hint is the command that computes them
    (:func:`losslens.views.registry.view_command`)."""
    return LossLensError(
        f"nothing to draw: the {view} view has no rows for {', '.join(args.values())}",
        where=where,
        hint=f"compute it first: {registry.view_command(conn, view, args)}",
    )


def _script_safe(text: str) -> str:
    """Text that cannot end the <script> element it sits in, nor open an HTML comment."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE).replace("<!--", "<\\!--")


# Vega's bound inputs: each name on one line beside its input (as in the pages' and the viewer's CSS).
BIND_STYLE = ".vega-bind label { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }"

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>body {{ margin: 16px; font-family: system-ui, sans-serif; background: #fff; }} {bind_style}</style>
<script>{bundle}</script>
</head>
<body>
<div id="chart"></div>
<script id="spec" type="application/json">{spec}</script>
<script>
vegaEmbed("#chart", JSON.parse(document.getElementById("spec").textContent), {{actions: false, renderer: "svg"}})
  .then(function () {{ document.getElementById("chart").setAttribute("data-rendered", "1"); }});
</script>
</body>
</html>
"""


def _spec_json(spec: dict[str, Any]) -> str:
    """The spec as JSON that no string in it can turn into markup inside a <script>."""
    return json.dumps(spec, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def to_html(spec: dict[str, Any], title: str) -> str:
    """A self-contained page: bundle and spec inline; the content policy forbids every fetch."""
    return HTML.format(title=html.escape(title), bundle=_script_safe(bundle_text()), spec=_spec_json(spec), bind_style=BIND_STYLE)


FRAGMENT = """<style>{bind_style}</style>
<div id="{id}" class="losslens-chart"></div>
<script>{bundle}</script>
<script>
vegaEmbed(document.getElementById("{id}"), {spec}, {{actions: false, renderer: "svg"}})
  .then(function () {{ document.getElementById("{id}").setAttribute("data-rendered", "1"); }});
</script>"""


def html_fragment(spec: dict[str, Any]) -> str:
    """The chart as an HTML fragment for a page that is not ours (a notebook's ``text/html`` output): a
    ``<div>`` with a fresh id, the Vega bundle and the spec inline, so it draws offline where scripts run."""
    return FRAGMENT.format(
        id=f"losslens-{uuid.uuid4().hex}", bundle=_script_safe(bundle_text()), spec=_spec_json(spec), bind_style=BIND_STYLE
    )


def render(spec: dict[str, Any], fmt: str, title: str = "LossLens") -> bytes:
    """The spec in one of FORMATS, as bytes to write."""
    if fmt == "json":
        return json.dumps(spec, indent=1, allow_nan=False).encode()
    if fmt == "html":
        return to_html(spec, title).encode()
    no_network: dict[str, Any] = {"allowed_base_urls": []}
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, **no_network).encode()
    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=PNG_SCALE, **no_network)
    if fmt == "pdf":
        return vlc.vegalite_to_pdf(spec, **no_network)
    raise unknown("format", fmt, FORMATS, where="export chart")


def format_of(out: Path, fmt: str | None) -> str:
    """``fmt``, or the format ``out``'s suffix names.

    :raises LossLensError: for an unknown ``fmt`` (the closest formats suggested) or a suffix that names none."""
    if fmt is not None and fmt not in FORMATS:
        raise unknown("format", fmt, [*FORMATS, SURFACE], where="export chart")
    fmt = fmt or out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise LossLensError(
            f"cannot tell the format of {out}",
            where="export chart",
            hint=f"pass --format {'|'.join(FORMATS)} or end the file name in one of them",
        )
    return fmt


# ---------------------------------------------------------------------------------------------
# Which subject: ids, unique id prefixes or names.


def _one(found: list[str], what: str, given: str, hint: str) -> str:
    ids = sorted(set(found))
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise LossLensError(f"no {what} {given!r} in the catalog", where="export", hint=hint)
    raise LossLensError(f"{what} {given!r} is ambiguous ({len(ids)} match)", where="export", hint="give more of the id")


def resolve_experiment(conn: sqlite3.Connection, name: str | None) -> str:
    if name is None:
        rows = reads.experiments(conn)
        if not rows:
            raise LossLensError(
                "the catalog has no experiments", where="export", hint="ingest checkpoints with losslens ingest SPEC"
            )
        return rows[0]["id"]
    return _one(reads.find_experiments(conn, name), "experiment", name, "losslens ls lists them")


def resolve_setting(conn: sqlite3.Connection, given: str) -> str:
    return _one(reads.find_settings(conn, given), "setting", given, "give a setting id or label (losslens taxonomy lists them)")


def resolve_checkpoint(conn: sqlite3.Connection, given: str) -> str:
    return _one(
        reads.find_checkpoints(conn, given),
        "checkpoint",
        given,
        "give a checkpoint sha256 (or a unique prefix) or name (losslens ls lists them)",
    )


def resolve_args(
    conn: sqlite3.Connection,
    view: str,
    *,
    experiment: str | None = None,
    setting: str | None = None,
    checkpoint: str | None = None,
    pair: tuple[str, str] | None = None,
) -> dict[str, str]:
    """The ids ``view`` is drawn for, from the options given."""
    if view not in registry.VIEWS:
        raise unknown("view", view, registry.VIEWS, where="export chart")
    needs = registry.VIEWS[view].subject
    if needs == "experiment":
        return {"experiment": resolve_experiment(conn, experiment)}
    if needs == "setting":
        if setting is None:
            raise LossLensError(f"the {view} view needs --setting", where="export chart", hint="--setting ID or label")
        return {"setting": resolve_setting(conn, setting)}
    if needs == "checkpoint":
        if checkpoint is None:
            raise LossLensError(f"the {view} view needs --checkpoint", where="export chart", hint="--checkpoint SHA or name")
        return {"checkpoint": resolve_checkpoint(conn, checkpoint)}
    if pair is None:
        raise LossLensError(
            f"the {view} view needs --pair", where="export chart", hint="--pair A B (two checkpoint shas or names)"
        )
    a, b = (resolve_checkpoint(conn, p) for p in pair)
    return {"a": a, "b": b}


SURFACE = "surface"  # the rotatable 3-D surface of a 2-D landscape (plotly, offline HTML): landscape and local only
SURFACE_VIEWS = ("landscape", "local")


def export_surface(catalog_path: Path, view: str, out: Path, **subject: Any) -> Path:
    """Write the 3-D surface (:mod:`losslens.views.surface`) of a checkpoint's landscape as one offline HTML file.

    :raises LossLensError: for a view other than landscape/local, or a checkpoint without a 2-D landscape.
    """
    from losslens.views.surface import checkpoint_surface, surface_html

    if view not in SURFACE_VIEWS:
        raise LossLensError(
            f"--format surface draws a landscape, not the {view} view",
            where="export chart",
            hint="export chart landscape --format surface",
        )
    with read_catalog(catalog_path) as conn:
        args = resolve_args(conn, view, **subject)
        figure = checkpoint_surface(conn, args["checkpoint"])
        if figure is None:
            raise LossLensError(
                f"nothing to draw: no 2-D landscape for {args['checkpoint']}",
                where="export chart",
                hint=f"compute it first: {subject_command(conn, ('landscape',), args)}",
            )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(surface_html(figure))
    return out


def export_chart(catalog_path: Path, view: str, out: Path, fmt: str | None = None, **subject: Any) -> Path:
    """Write ``view`` for the subject given (see :func:`resolve_args`) to ``out``; returns ``out``.
    ``fmt`` ``surface`` writes the 3-D surface of a landscape instead (see :func:`export_surface`)."""
    if fmt == SURFACE:
        return export_surface(catalog_path, view, out, **subject)
    fmt = format_of(Path(out), fmt)
    with read_catalog(catalog_path) as conn:
        args = resolve_args(conn, view, **subject)
        spec, n_rows = inline_spec(conn, view, args)
        if n_rows == 0:
            raise nothing_to_draw(conn, view, args, "export chart")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(render(spec, fmt, title=f"LossLens: {view}"))
    return out
