"""``losslens export chart``: one view as JSON, self-contained HTML, SVG, PNG or PDF.

The spec is the one the Datasette plugin serves (the same ``losslens/views`` builders, fed by
the plugin's ``DATASETS`` row functions through ``routes.view_spec``), with its data inlined
as values instead of data-route URLs. SVG, PNG and PDF are drawn by vl-convert from that same
spec; HTML inlines the vl-convert Vega bundle, so nothing is fetched from anywhere.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vl_convert as vlc

from losslens.datasette_plugin.routes import DATASETS
from losslens.datasette_plugin.routes import view_spec as plugin_view_spec
from losslens.errors import LossLensError
from losslens.store.catalog import Catalog, init_catalog
from losslens.views import hessian, landscape, topology
from losslens.views.bundle import bundle_text
from losslens.views.source import Data, values

# View → the ids it is drawn for.
VIEWS: dict[str, tuple[str, ...]] = {
    "taxonomy": ("experiment",),
    "modes": ("setting",),
    "landscape": ("checkpoint",),
    "merge-tree": ("checkpoint",),
    "persistence": ("checkpoint",),
    "hessian": ("checkpoint",),
    "curve": ("a", "b"),
    "layer-cka": ("a", "b"),
    "predictions": ("a", "b"),
}
FORMATS = ("json", "html", "svg", "png", "pdf")
# The metric a view needs, for the hint when it has nothing to draw.
NEEDS = {
    "taxonomy": "taxonomy",
    "modes": "similarity",
    "landscape": "landscape",
    "merge-tree": "topology",
    "persistence": "topology",
    "hessian": "hessian",
    "curve": "connectivity",
    "layer-cka": "similarity",
    "predictions": "predictions",
}
PNG_SCALE = 2.0  # sharp on high-density screens and in papers


@contextmanager
def read_catalog(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the catalog, its schema brought up to date first (as ``serve`` does)."""
    path = Path(path)
    if not path.exists():
        raise LossLensError(f"no catalog at {path}", where="export", hint="create one with losslens ingest SPEC")
    init_catalog(path)[0].close()
    catalog = Catalog(path, readonly=True)
    try:
        yield catalog.db.conn
    finally:
        catalog.close()


def spec_for(
    conn: sqlite3.Connection, view: str, args: dict[str, str], url: Callable[..., Data], pair_href: str | None = None
) -> dict[str, Any]:
    """The spec of an exportable view. The local view's panels are exported one by one; every
    other view is the plugin's own spec."""
    c = args.get("checkpoint")
    if view == "landscape":
        return landscape.landscape_spec(
            url("landscape", checkpoint=c), url("isolines", checkpoint=c), url("minima", checkpoint=c)
        )
    if view == "merge-tree":
        return topology.merge_tree_spec(url("tree_nodes", checkpoint=c), url("tree_segments", checkpoint=c))
    if view == "persistence":
        return topology.persistence_spec(url("persistence", checkpoint=c))
    if view == "hessian":
        return hessian.hessian_spec(url("spectrum", checkpoint=c), url("esd", checkpoint=c))
    return plugin_view_spec(conn, view.replace("-", "_"), args, url, pair_href=pair_href)


def dataset_rows(conn: sqlite3.Connection, name: str, args: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of one of the plugin's datasets (the same function its data route calls)."""
    keys, fn = DATASETS[name]
    return fn(conn, *(args[k] for k in keys))


def inline_spec(conn: sqlite3.Connection, view: str, args: dict[str, str]) -> tuple[dict[str, Any], int]:
    """(spec with its data as values, number of rows it draws)."""
    counts: list[int] = []

    def url(name: str, **a: str) -> Data:
        rows = dataset_rows(conn, name, a)
        counts.append(len(rows))
        return values(rows)

    spec = spec_for(conn, view, args, url)
    return spec, sum(counts)


def _script_safe(text: str) -> str:
    """Text that cannot end the <script> element it sits in, nor open an HTML comment."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE).replace("<!--", "<\\!--")


HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>body {{ margin: 16px; font-family: system-ui, sans-serif; background: #fff; }}</style>
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


def to_html(spec: dict[str, Any], title: str) -> str:
    """A self-contained page: bundle and spec inline; the content policy forbids every fetch."""
    data = json.dumps(spec, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return HTML.format(title=html.escape(title), bundle=_script_safe(bundle_text()), spec=data)


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
    raise LossLensError(f"unknown format {fmt!r}", where="export chart", hint=f"one of {', '.join(FORMATS)}")


def format_of(out: Path, fmt: str | None) -> str:
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


def _one(rows: list[sqlite3.Row | tuple], what: str, given: str, hint: str) -> str:
    ids = sorted({r[0] for r in rows})
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise LossLensError(f"no {what} {given!r} in the catalog", where="export", hint=hint)
    raise LossLensError(f"{what} {given!r} is ambiguous ({len(ids)} match)", where="export", hint="give more of the id")


def resolve_experiment(conn: sqlite3.Connection, name: str | None) -> str:
    if name is None:
        rows = conn.execute("SELECT id FROM experiments ORDER BY created_at, name").fetchall()
        if not rows:
            raise LossLensError(
                "the catalog has no experiments", where="export", hint="ingest checkpoints with losslens ingest SPEC"
            )
        return rows[0][0]
    rows = conn.execute("SELECT id FROM experiments WHERE name = ? OR id = ?", (name, name)).fetchall()
    return _one(rows, "experiment", name, "losslens ls lists them")


def resolve_setting(conn: sqlite3.Connection, given: str) -> str:
    rows = (
        conn.execute("SELECT id FROM settings WHERE id = ? OR label = ?", (given, given)).fetchall()
        or conn.execute("SELECT id FROM settings WHERE id LIKE ? || '%'", (given,)).fetchall()
    )
    return _one(rows, "setting", given, "give a setting id or label (losslens taxonomy lists them)")


def resolve_checkpoint(conn: sqlite3.Connection, given: str) -> str:
    rows = (
        conn.execute("SELECT sha256 FROM checkpoints WHERE sha256 = ? OR name = ?", (given, given)).fetchall()
        or conn.execute("SELECT sha256 FROM checkpoints WHERE sha256 LIKE ? || '%'", (given,)).fetchall()
    )
    return _one(rows, "checkpoint", given, "give a checkpoint sha256 (or a unique prefix) or name (losslens ls lists them)")


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
    if view not in VIEWS:
        raise LossLensError(f"unknown view {view!r}", where="export chart", hint=f"one of {', '.join(VIEWS)}")
    needs = VIEWS[view][0]
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


def export_chart(catalog_path: Path, view: str, out: Path, fmt: str | None = None, **subject: Any) -> Path:
    """Write ``view`` for the subject given (see :func:`resolve_args`) to ``out``; returns ``out``."""
    fmt = format_of(Path(out), fmt)
    with read_catalog(catalog_path) as conn:
        args = resolve_args(conn, view, **subject)
        spec, n_rows = inline_spec(conn, view, args)
    if n_rows == 0:
        raise LossLensError(
            f"nothing to draw: the {view} view has no rows for {', '.join(args.values())}",
            where="export chart",
            hint=f"compute it first: losslens compute {NEEDS[view]}",
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(render(spec, fmt, title=f"LossLens: {view}"))
    return out
