"""The metric registry.

A metric is a pure function ``fn(ctx, params) -> Result`` plus what the job runner needs to
plan, skip, store and document it: a scope (what one job covers), a parameters dataclass
(whose fields become ``losslens compute`` options), the tables it writes, and the metrics it
needs first. Adding a metric is its module, one line in :data:`BUILTIN_MODULES`, and a
migration for its tables. Third-party metrics register through the ``losslens.metrics``
entry-point group.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

import numpy as np

from losslens.errors import unknown
from losslens.store.artifacts import Artifact

Scope = Literal["checkpoint", "pair", "setting", "experiment"]

# The scope of each built-in metric, known without importing its module (which imports torch), for
# ``losslens status``; tests/test_cli.py checks it against the registrations.
BUILTIN_SCOPES: dict[str, Scope] = {
    "performance": "checkpoint",
    "landscape": "checkpoint",
    "topology": "checkpoint",
    "hessian": "checkpoint",
    "connectivity": "pair",
    "cka": "pair",
    "similarity": "setting",
    "taxonomy": "experiment",
    "predictions": "checkpoint",
    "disagreement": "pair",
}

BUILTIN_MODULES: tuple[str, ...] = (
    "losslens.metrics.performance",
    "losslens.landscape.metric",
    "losslens.topology.metric",
    "losslens.hessian.metric",
    "losslens.connectivity.metric",
    "losslens.similarity.metric",
    "losslens.taxonomy.metric",
    "losslens.predictions.metric",
)


@dataclass
class Result:
    """What a metric returns: rows per table, and named arrays for the artifact store."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    def add(self, table: str, **row: Any) -> None:
        self.rows.setdefault(table, []).append(row)

    def extend(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    def artifact(self, name: str, kind: str, array: np.ndarray) -> str:
        """Attach an array under ``name``; returns its sha256 for use in rows."""
        art = Artifact.from_array(kind, array)
        self.artifacts[name] = art
        return art.sha256


@dataclass(frozen=True)
class Read:
    """Results of another metric that a job is shipped with (workers never open the catalog).

    The driver picks, among the done runs of ``metric`` whose checkpoints all belong to the job (the job's
    checkpoint, either side of its pair, its setting's seeds, its experiment), the latest run per subject,
    or with ``params`` only runs with those parameters. The job carries the rows of ``tables`` and the
    arrays of ``artifacts`` of those runs; the metric reads them with ``ctx.results(metric)``.
    """

    metric: str
    tables: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    params: Any = None  # a params dataclass instance of ``metric``: only runs with these parameters


@dataclass(frozen=True)
class Trajectory:
    """The job also carries the records of the other checkpoints of its checkpoint's training run (same
    model and seed, with a step), for ``ctx.trajectory()`` and ``ctx.subject(sha)``."""


Reads = tuple[Read | Trajectory, ...]


@dataclass(frozen=True)
class Metric:
    name: str
    scope: Scope
    params: type
    fn: Callable[[Any, Any], Result]
    tables: tuple[str, ...]
    requires: tuple[str, ...] = ()
    summary: str = ""
    reads: Callable[[Any], Reads] = lambda params: ()  # what a job of these params is shipped with


_REGISTRY: dict[str, Metric] = {}
_loaded = False
_plugins_loaded = False


def register(
    name: str,
    *,
    scope: Scope,
    params: type,
    tables: tuple[str, ...],
    requires: tuple[str, ...] = (),
    reads: Reads | Callable[[Any], Reads] = (),
) -> Callable[[Callable[[Any, Any], Result]], Callable[[Any, Any], Result]]:
    """Decorator: ``@register("hessian", scope="checkpoint", params=HessianParams, tables=(...))``.

    ``reads`` names the other metrics' results a job needs (:class:`Read`, :class:`Trajectory`), as a
    tuple or as a function of the job's params.

    :raises TypeError: when ``params`` is not a dataclass.
    """
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"metric {name}: params must be a dataclass")
    reads_fn = reads if callable(reads) else (lambda _params, fixed=tuple(reads): fixed)

    def inner(fn: Callable[[Any, Any], Result]) -> Callable[[Any, Any], Result]:
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REGISTRY[name] = Metric(name, scope, params, fn, tables, requires, summary, reads_fn)
        return fn

    return inner


def unregister(name: str) -> None:
    """Remove a registered metric (a test's own metric after the test; no error if absent)."""
    _REGISTRY.pop(name, None)


def load_metrics() -> dict[str, Metric]:
    """Import the built-in metric modules and any ``losslens.metrics`` entry points, once."""
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _load_plugins()
        _loaded = True
    return _REGISTRY


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        for ep in entry_points(group="losslens.metrics"):
            ep.load()
        _plugins_loaded = True


def metric_scopes() -> dict[str, str]:
    """Name → scope of every metric: built-ins from :data:`BUILTIN_SCOPES` without importing them,
    plug-ins (``losslens.metrics`` entry points) and metrics registered so far from their registration."""
    scopes: dict[str, str] = dict(BUILTIN_SCOPES)
    _load_plugins()
    scopes.update({name: metric.scope for name, metric in _REGISTRY.items()})
    return scopes


def all_metrics() -> dict[str, Metric]:
    return dict(load_metrics())


def get_metric(name: str) -> Metric:
    metrics = load_metrics()
    if name not in metrics:
        raise unknown("metric", name, metrics, where="compute")
    return metrics[name]
