"""The one registry of LossLens views: for each view its subject (and so its arguments), the datasets it
draws, its spec builder and the metrics whose results it shows.

Everything that draws a view reads it from here: the Datasette plugin's ``spec/`` and ``data/`` routes
and pages, ``losslens export chart|all|viewer`` (and the viewer's ``data.js``), and the notebook API
(:mod:`losslens.notebook`). A builder gets a ``url(dataset, **args)`` callable that says where a dataset's
rows come from: a data-route URL in Datasette, inline values in a static export, a placeholder the viewer
fills from its encoded tables. So the specs are the same everywhere and only the data sources differ.

Lookups fail with :class:`NotFound` (a ``LookupError``); the Datasette plugin turns that into its own 404,
the exports into a one-line :class:`~losslens.errors.LossLensError`. Nothing here imports Datasette.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from losslens.store import chart_queries, reads
from losslens.views import hessian, landscape, local, modes, pair, slices, taxonomy, topology
from losslens.views.help import HELP
from losslens.views.hints import subject_command
from losslens.views.source import Data, Rows, values

Subject = Literal["experiment", "setting", "checkpoint", "pair"]
SUBJECT_ARGS: dict[str, tuple[str, ...]] = {
    "experiment": ("experiment",),
    "setting": ("setting",),
    "checkpoint": ("checkpoint",),
    "pair": ("a", "b"),
}
ID_FORMATS = {
    "experiment": re.compile(r"^[0-9a-f]{16}$"),
    "setting": re.compile(r"^[0-9a-f]{16}$"),
    "checkpoint": re.compile(r"^[0-9a-f]{64}$"),
    "a": re.compile(r"^[0-9a-f]{64}$"),
    "b": re.compile(r"^[0-9a-f]{64}$"),
    "selected": re.compile(r"^[0-9a-f]{16}$|^[0-9a-f]{64}$"),
}
KIND_OF_ARG = {"experiment": "experiment", "setting": "setting", "checkpoint": "checkpoint", "a": "checkpoint", "b": "checkpoint"}
LABELLED_CELLS = (
    taxonomy.LABELLED_POINTS
)  # above this many settings the taxonomy drops its grid cells' phases and its points' labels

Url = Callable[..., Data]  # url(dataset_name, **args) -> a data source


class NotFound(LookupError):
    """An unknown view or dataset, a malformed id, or an id the catalog does not hold."""


@dataclass(frozen=True)
class Dataset:
    """Rows a view draws: ``rows(conn, *args)`` in the order of ``args``."""

    name: str
    args: tuple[str, ...]
    rows: Callable[..., Rows]


@dataclass(frozen=True)
class Links:
    """Where clicks lead, in pages that have somewhere to go (Datasette); None in static files."""

    pair: str | None = None  # address prefix: + "<a>/<b>" opens the pair view
    checkpoint: str | None = None  # address prefix: + "<sha>" opens the mode


@dataclass(frozen=True)
class Build:
    """What a builder receives: the catalog, the view's arguments and where each dataset's rows come from."""

    conn: sqlite3.Connection
    args: dict[str, str]
    url: Url
    selected: str | None = None
    links: Links = field(default_factory=Links)

    @cached_property
    def facts(self) -> dict[str, Any]:
        """:func:`losslens.views.local.local_facts` of the checkpoint, read once per build."""
        return local.local_facts(self.conn, self.args["checkpoint"])

    def data(self, name: str) -> Data:
        """The source of dataset ``name`` for this view's subject."""
        ds = DATASETS[name]
        return self.url(name, **{k: self.args[k] for k in ds.args})


@dataclass(frozen=True)
class View:
    """One view: drawn for a ``subject``, from ``datasets``, by ``build``; ``metrics`` name what
    `losslens compute` must run for it to have something to draw. ``panels`` lists the views a
    composite is made of (``export all`` writes those instead); ``page`` views are the ones the
    Datasette pages and the viewer embed."""

    name: str
    subject: Subject
    title: str
    metrics: tuple[str, ...]
    datasets: tuple[str, ...]
    build: Callable[[Build], dict[str, Any]]
    panels: tuple[str, ...] = ()
    page: bool = True

    @property
    def args(self) -> tuple[str, ...]:
        return SUBJECT_ARGS[self.subject]

    @property
    def help(self) -> str:
        """What the chart shows and how to read it (:data:`losslens.views.help.HELP`)."""
        return HELP[self.name]


# ---------------------------------------------------------------------------------------------
# Datasets.


def _on_landscape(fn: Callable[[sqlite3.Connection, str], Rows]) -> Callable[[sqlite3.Connection, str], Rows]:
    """A dataset of a checkpoint's newest 2-D landscape (no rows without one)."""

    def rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
        found = reads.landscape(conn, checkpoint)
        return fn(conn, found["id"]) if found else []

    return rows


def _on_nd_landscape(fn: Callable[[sqlite3.Connection, str], Rows]) -> Callable[[sqlite3.Connection, str], Rows]:
    """A dataset of a checkpoint's newest 3-D or 4-D grid landscape (no rows without one)."""

    def rows(conn: sqlite3.Connection, checkpoint: str) -> Rows:
        found = chart_queries.nd_landscape_record(conn, checkpoint)
        return fn(conn, found["id"]) if found else []

    return rows


_DATASETS = [
    Dataset("taxonomy", ("experiment",), taxonomy.taxonomy_rows),
    Dataset("modes", ("setting",), modes.modes_rows),
    Dataset("links", ("setting",), modes.link_rows),
    Dataset("glyphs", ("setting",), modes.glyph_rows),
    Dataset("landscape", ("checkpoint",), _on_landscape(landscape.grid_rows)),
    Dataset("isolines", ("checkpoint",), _on_landscape(landscape.isoline_rows)),
    Dataset("minima", ("checkpoint",), _on_landscape(landscape.minima_rows)),
    Dataset("tree_nodes", ("checkpoint",), _on_landscape(topology.tree_node_rows)),
    Dataset("tree_segments", ("checkpoint",), _on_landscape(topology.tree_segment_rows)),
    Dataset("persistence", ("checkpoint",), _on_landscape(topology.persistence_rows)),
    Dataset("nd_landscape", ("checkpoint",), _on_nd_landscape(slices.grid_rows)),
    Dataset("nd_tree_nodes", ("checkpoint",), _on_nd_landscape(topology.tree_node_rows)),
    Dataset("nd_tree_segments", ("checkpoint",), _on_nd_landscape(topology.tree_segment_rows)),
    Dataset("nd_persistence", ("checkpoint",), _on_nd_landscape(topology.persistence_rows)),
    Dataset("spectrum", ("checkpoint",), hessian.spectrum_rows),
    Dataset("esd", ("checkpoint",), hessian.esd_rows),
    Dataset("curve", ("a", "b"), pair.curve_rows),
    Dataset("layer_cka", ("a", "b"), pair.layer_cka_rows),
    Dataset("fields", ("a", "b"), pair.field_rows),
    Dataset("confusion", ("a", "b"), pair.confusion_rows),
]
DATASETS: dict[str, Dataset] = {d.name: d for d in _DATASETS}


# ---------------------------------------------------------------------------------------------
# Builders.


def _taxonomy(b: Build) -> dict[str, Any]:
    e = b.args["experiment"]
    found = reads.experiment_phases(b.conn, e)  # one (phase, mc) per setting
    phases, mc_axis = taxonomy.spec_inputs(found)
    keys = reads.setting_keys(b.conn, e)
    return taxonomy.taxonomy_spec(
        b.data("taxonomy"),
        keys,
        selected=b.selected,
        cell_labels=len(found) <= LABELLED_CELLS,
        thresholds=chart_queries.taxonomy_thresholds(b.conn, e),
        phases=phases,
        mc_axis=mc_axis,
    )


def _modes(b: Build) -> dict[str, Any]:
    s = b.args["setting"]
    return modes.modes_spec(
        b.data("modes"),
        b.data("links"),
        b.data("glyphs"),
        selected=b.selected,
        pair_href=b.links.pair,
        layout=modes.mds_layout(b.conn, s),
        scales=modes.glyph_scales(b.conn, s),
        link_classes=sorted({r["link"] for r in modes.link_rows(b.conn, s)}),
    )


def _local(b: Build) -> dict[str, Any]:
    cells, isolines, minima, nodes, segments, pairs, eigenvalues, density = (b.data(n) for n in VIEWS["local"].datasets)
    return local.local_spec(cells, isolines, minima, nodes, segments, pairs, eigenvalues, density, facts=b.facts)


def _nd(b: Build) -> dict[str, Any]:
    cells, nodes, segments, pairs = (b.data(n) for n in VIEWS["nd"].datasets)
    return slices.nd_spec(cells, nodes, segments, pairs, slices.nd_facts(b.conn, b.args["checkpoint"]))


def _nd_facts(b: Build) -> dict[str, Any]:
    return slices.nd_facts(b.conn, b.args["checkpoint"])


def _landscapes(b: Build) -> dict[str, Any]:
    a, bb = b.args["a"], b.args["b"]
    names = reads.checkpoint_names(b.conn, [a, bb])
    panels = [
        {
            **landscape.multiple_facts(b.conn, sha),
            "cells": b.url("landscape", checkpoint=sha),
            "name": f"{tag}: {names.get(sha, sha[:12])}",
        }
        for tag, sha in (("a", a), ("b", bb))
    ]
    return landscape.landscape_multiples(panels, "Landscapes of both modes", checkpoint_href=b.links.checkpoint)


MODE_LANDSCAPES = 12  # the setting's first modes (in seed order) whose landscapes are drawn side by side


def _mode_landscapes(b: Build) -> dict[str, Any]:
    found = [m for m in reads.modes(b.conn, b.args["setting"]) if reads.landscape(b.conn, m["sha256"])]
    shown = found[:MODE_LANDSCAPES]
    panels = [
        {**landscape.multiple_facts(b.conn, m["sha256"]), "cells": b.url("landscape", checkpoint=m["sha256"]), "name": m["name"]}
        for m in shown
    ]
    note = "click a landscape to open its mode (3-D/4-D landscapes: slices on the mode's page)"
    if len(found) > len(shown):
        note += f"; the first {len(shown)} of {len(found)} modes with a landscape, by seed"
    return landscape.landscape_multiples(
        panels, "Landscapes of the setting's modes", checkpoint_href=b.links.checkpoint, note=note
    )


def _predictions(b: Build) -> dict[str, Any]:
    a, bb = b.args["a"], b.args["b"]
    if pair.confusion_rows(b.conn, a, bb):
        return pair.confusion_spec(b.data("confusion"), pair.disagreement(b.conn, a, bb))
    return pair.fields_spec(b.data("fields"), pair.symmetric_limits(pair.field_rows(b.conn, a, bb)))


_VIEWS = [
    View("taxonomy", "experiment", "Taxonomy", ("taxonomy",), ("taxonomy",), _taxonomy),
    View("modes", "setting", "Modes", ("similarity", "connectivity", "hessian"), ("modes", "links", "glyphs"), _modes),
    View("mode-landscapes", "setting", "Landscapes of the modes", ("landscape",), ("landscape",), _mode_landscapes),
    View(
        "local",
        "checkpoint",
        "Local views",
        ("landscape", "topology", "hessian"),
        ("landscape", "isolines", "minima", "tree_nodes", "tree_segments", "persistence", "spectrum", "esd"),
        _local,
        panels=("landscape", "merge-tree", "persistence", "barcode", "hessian"),
    ),
    View(
        "landscape",
        "checkpoint",
        "Loss landscape",
        ("landscape", "topology"),
        ("landscape", "isolines", "minima", "persistence"),
        lambda b: landscape.landscape_spec(
            b.data("landscape"),
            b.data("isolines"),
            b.data("minima"),
            record=b.facts["landscape"],
            pairs=b.data("persistence"),
            threshold=(b.facts["topology"] or {}).get("threshold"),
        ),
        page=False,
    ),
    View(
        "merge-tree",
        "checkpoint",
        "Merge tree",
        ("topology",),
        ("tree_nodes", "tree_segments"),
        lambda b: topology.merge_tree_spec(b.data("tree_nodes"), b.data("tree_segments"), b.facts["topology"], b.facts["kinds"]),
        page=False,
    ),
    View(
        "persistence",
        "checkpoint",
        "Persistence diagram",
        ("topology",),
        ("persistence",),
        lambda b: topology.persistence_spec(b.data("persistence"), b.facts["topology"], b.facts["dims"]),
        page=False,
    ),
    View(
        "barcode",
        "checkpoint",
        "Persistence barcode",
        ("topology",),
        ("persistence",),
        lambda b: topology.barcode_spec(b.data("persistence"), b.facts["topology"], b.facts["dims"]),
        page=False,
    ),
    View(
        "hessian",
        "checkpoint",
        "Hessian spectrum",
        ("hessian",),
        ("spectrum", "esd"),
        lambda b: hessian.hessian_spec(b.data("spectrum"), b.data("esd"), b.facts["hessian"]),
        page=False,
    ),
    View(
        "nd",
        "checkpoint",
        "n-D landscape",
        ("landscape", "topology"),
        ("nd_landscape", "nd_tree_nodes", "nd_tree_segments", "nd_persistence"),
        _nd,
        panels=("slice", "nd-merge-tree", "nd-persistence", "nd-barcode"),
    ),
    View(
        "slice",
        "checkpoint",
        "Slice of the n-D landscape",
        ("landscape",),
        ("nd_landscape",),
        lambda b: slices.slice_spec(b.data("nd_landscape"), *(lambda f: (f["landscape"], f["loss_domain"]))(_nd_facts(b))),
        page=False,
    ),
    View(
        "nd-merge-tree",
        "checkpoint",
        "Merge tree of the n-D landscape",
        ("topology",),
        ("nd_tree_nodes", "nd_tree_segments"),
        lambda b: slices.nd_tree_spec(b.data("nd_tree_nodes"), b.data("nd_tree_segments"), _nd_facts(b)),
        page=False,
    ),
    View(
        "nd-persistence",
        "checkpoint",
        "Persistence diagram of the n-D landscape",
        ("topology",),
        ("nd_persistence",),
        lambda b: slices.nd_persistence_spec(b.data("nd_persistence"), _nd_facts(b)),
        page=False,
    ),
    View(
        "nd-barcode",
        "checkpoint",
        "Persistence barcode of the n-D landscape",
        ("topology",),
        ("nd_persistence",),
        lambda b: slices.nd_barcode_spec(b.data("nd_persistence"), _nd_facts(b)),
        page=False,
    ),
    View(
        "landscapes",
        "pair",
        "Both landscapes",
        ("landscape",),
        ("landscape",),
        _landscapes,
    ),
    View("curve", "pair", "Curve profile", ("connectivity",), ("curve",), lambda b: pair.curve_spec(b.data("curve"))),
    View("layer-cka", "pair", "Layer CKA", ("cka",), ("layer_cka",), lambda b: pair.layer_cka_spec(b.data("layer_cka"))),
    View("predictions", "pair", "Predictions", ("predictions", "disagreement"), ("fields", "confusion"), _predictions),
]
VIEWS: dict[str, View] = {v.name: v for v in _VIEWS}


# ---------------------------------------------------------------------------------------------
# Using the registry.


def view(name: str) -> View:
    """The registered view ``name``.

    :raises NotFound: when no view has that name.
    """
    if name not in VIEWS:
        raise NotFound(f"no view {name!r} (one of {', '.join(VIEWS)})")
    return VIEWS[name]


def views_of(subject: Subject, *, page: bool | None = None, exported: bool = False) -> list[View]:
    """The views drawn for a kind of subject, in registry order. ``page``: only the views pages embed
    (True) or only the panels (False); ``exported``: the views ``export all`` writes (composites left out,
    their panels written instead)."""
    out = [v for v in _VIEWS if v.subject == subject and (page is None or v.page == page)]
    return [v for v in out if not v.panels] if exported else out


def check_args(conn: sqlite3.Connection, args: dict[str, str]) -> None:
    """Check every id's format, then that it names a row of the catalog.

    :raises NotFound: for an unknown argument name, a malformed id or an id not in the catalog.
    """
    for key, value in args.items():
        if key not in ID_FORMATS or not ID_FORMATS[key].match(value or ""):
            raise NotFound(f"bad {key}")
        if key in KIND_OF_ARG and not reads.exists(conn, KIND_OF_ARG[key], value):
            raise NotFound(f"no such {key}")


def args_of(name: str, given: dict[str, str]) -> dict[str, str]:
    """The arguments ``view`` needs, taken from ``given`` in order.

    :raises NotFound: for an unknown view or a missing argument.
    """
    wanted = view(name).args
    missing = [k for k in wanted if not given.get(k)]
    if missing:
        raise NotFound(f"missing {missing[0]}")
    return {k: given[k] for k in wanted}


def rows(conn: sqlite3.Connection, dataset: str, args: dict[str, str]) -> Rows:
    """The rows of ``dataset`` for ``args`` (keyed by the dataset's argument names).

    :raises NotFound: for an unknown dataset or a missing argument.
    """
    if dataset not in DATASETS:
        raise NotFound(f"no dataset {dataset!r}")
    ds = DATASETS[dataset]
    missing = [k for k in ds.args if not args.get(k)]
    if missing:
        raise NotFound(f"missing {missing[0]}")
    return ds.rows(conn, *(args[k] for k in ds.args))


def spec(
    conn: sqlite3.Connection,
    name: str,
    args: dict[str, str],
    url: Url,
    *,
    selected: str | None = None,
    links: Links | None = None,
) -> dict[str, Any]:
    """The Vega-Lite spec of view ``name`` for ``args``; ``url(dataset, **args)`` gives each data source.

    :raises NotFound: for an unknown view or a missing argument (ids are not checked here: see :func:`check_args`).
    """
    v = view(name)
    return v.build(Build(conn, args_of(name, args), url, selected, links or Links()))


def has_rows(conn: sqlite3.Connection, name: str, args: dict[str, str]) -> bool:
    """Whether view ``name`` has anything to draw for ``args`` (some dataset it reads has rows)."""
    return inline_spec(conn, name, args)[1] > 0


def view_command(conn: sqlite3.Connection, name: str, args: dict[str, str]) -> str:
    """The ``losslens compute`` command that gives view ``name`` rows for ``args``
    (:func:`losslens.views.hints.subject_command` of the view's metrics).

    :raises NotFound: when no view has that name.
    """
    return subject_command(conn, view(name).metrics, args)


def inline_spec(conn: sqlite3.Connection, name: str, args: dict[str, str]) -> tuple[dict[str, Any], int]:
    """(the spec with its data inline as values, the number of rows it draws)."""
    counts: list[int] = []

    def url(dataset: str, **a: str) -> Data:
        found = rows(conn, dataset, a)
        counts.append(len(found))
        return values(found)

    made = spec(conn, name, args, url)
    return made, sum(counts)


def manifest() -> dict[str, dict[str, Any]]:
    """The registry as JSON for the static viewer's ``data.js``: subject, title, metrics, help text and whether pages embed it."""
    return {
        v.name: {
            "subject": v.subject,
            "title": v.title,
            "metrics": list(v.metrics),
            "page": v.page,
            "panels": list(v.panels),
            "help": v.help,
        }
        for v in _VIEWS
    }
