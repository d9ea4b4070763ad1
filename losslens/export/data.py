"""What a static export covers: the study tree (experiments → settings → modes → pairs), the
metric table and provenance of every subject, and, for the viewer, each view's spec and rows.

Spec and rows come from :mod:`losslens.views.registry`, as in the Datasette plugin's routes. For
the viewer each spec is built with placeholder sources ``{"url": "ll:<dataset>"}`` (``ll:<dataset>-2``, …
when a view draws one dataset for several subjects); identical specs are kept once as templates, and
each view names its template and the table behind each placeholder. The registry itself ships too (``views``' subject, title and metrics), so the viewer
knows which views a subject has; each experiment carries the command that computes each view
(:func:`losslens.views.hints.compute_command`), for the viewer's "not computed" note.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from losslens import __version__
from losslens.export.codec import Blobs, encode_rows
from losslens.store import reads
from losslens.views import registry
from losslens.views.hints import compute_command
from losslens.views.source import Rows, finite

PLACEHOLDER = "ll:"


def experiments_of(conn: sqlite3.Connection, experiment_id: str | None = None) -> Rows:
    return [r for r in reads.experiments(conn) if experiment_id in (None, r["id"])]


def settings_of(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    rows = reads.settings(conn, experiment_id)
    for r in rows:
        r["values"] = json.loads(r.pop("values_json") or "{}")
    return rows


def modes_of(conn: sqlite3.Connection, setting_id: str) -> Rows:
    return reads.modes(conn, setting_id)


def pairs_of(modes: Rows) -> list[tuple[str, str]]:
    """Every two modes of a setting, in seed order: the pairs the pair views compare."""
    return list(itertools.combinations([m["sha256"] for m in modes], 2))


# ---------------------------------------------------------------------------------------------
# Metric tables: [metric, quantity, value, run id] per subject, newest done runs only.


def checkpoint_metrics(conn: sqlite3.Connection, sha: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    run = reads.latest_run(conn, "performance", sha)
    for r in reads.performance(conn, sha):
        rows.append(["performance", f"{r['split']} {r['name']}", finite(r["value"]), run])
    run = reads.latest_run(conn, "hessian", sha)
    for r in reads.hessian_eigenvalues(conn, sha):
        if r["rank"] == 0:
            rows.append(["hessian", "λmax" if r["which"] == "largest" else "λmin", finite(r["value"]), run])
    trace = reads.hessian_trace(conn, sha)
    if trace is not None:
        rows.append(["hessian", "trace", finite(trace), run])
    for summary in reads.landscape_summaries(conn, sha):
        run, dims = summary.pop("run_id"), summary.pop("dims")
        # One definition of a minimum across views: a merge-tree branch with persistence above τ, counted per
        # landscape (a 2-D and a 3-D landscape of one checkpoint have their own minima).
        kept, total, tau = summary.pop("n_minima_above"), summary.pop("n_minima"), summary.pop("threshold")
        rows += [
            ["topology", f"{dims}-D: minima (persistence > τ)", kept, run],
            ["topology", f"{dims}-D: minima pruned (persistence ≤ τ)", total - kept, run],
            ["topology", f"{dims}-D: simplification threshold τ", finite(tau), run],
        ]
        rows += [["topology", f"{dims}-D: {key.replace('_', ' ')}", finite(value), run] for key, value in summary.items()]
    return rows


def setting_metrics(conn: sqlite3.Connection, setting_id: str) -> list[list[Any]]:
    row = reads.setting_taxonomy(conn, setting_id)
    if row is None:
        return []
    run = row.pop("run_id")
    row.pop("thresholds_json")
    return [["taxonomy", key.replace("_", " "), finite(value), run] for key, value in row.items() if value is not None]


def pair_metrics(conn: sqlite3.Connection, a: str, b: str) -> list[list[Any]]:
    """mc per curve, CKA and the other pair metrics, from the newest run of each metric."""
    out = []
    for r in reads.pair_metric_rows(conn, a, b):
        what = f"{r['metric']} ({r['curve']}, {r['quantity']})" if r["curve"] else f"{r['metric']} ({r['quantity']})"
        out.append([r["run_metric"], what, finite(r["value"]), r["run_id"]])
    return out


def runs_by_id(rows: Rows) -> dict[str, dict[str, Any]]:
    """Provenance rows keyed by run id, parameters parsed."""
    return {r.pop("id"): {**r, "params": json.loads(r.pop("params_json"))} for r in rows}


def hint(metrics: list[list[Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """The first of ``names`` found in a metric table: the explorer's one-number hint."""
    found = {q: v for _, q, v, _ in metrics if v is not None}
    for name in names:
        if name in found:
            return {"name": name, "value": found[name]}
    return {}


# ---------------------------------------------------------------------------------------------
# The viewer's data.


class ViewStore:
    """Specs as shared templates plus encoded tables, for the viewer."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.blobs = Blobs()
        self.templates: list[dict[str, Any]] = []
        self._template_index: dict[str, int] = {}
        self.tables: dict[str, dict[str, Any]] = {}  # the tables of the views stored
        self._read: dict[str, dict[str, Any]] = {}  # every table read, stored or not
        self.views: dict[str, dict[str, Any]] = {}

    def add_views(self, subject: registry.Subject, args: dict[str, str]) -> list[str]:
        """Store every page view of a subject that has rows; returns their names."""
        return [v.name for v in registry.views_of(subject, page=True) if self.add(v.name, args)]

    def table(self, name: str, args: dict[str, str]) -> str:
        """The key of dataset ``name``'s encoded rows for ``args`` (read and encoded once)."""
        key = "|".join([name, *args.values()])
        if key not in self._read:
            self._read[key] = encode_rows(registry.rows(self.conn, name, args), self.blobs)
        return key

    def empty(self, view: str, args: dict[str, str]) -> bool:
        """Whether every dataset of ``view`` drawn for ``args`` itself has no rows, so its spec need not be built
        (most pairs of a sweep have no curve, CKA or predictions). A checkpoint's dataset on a pair's view is
        drawn for each of the two (the pair page's landscapes); False for any other arguments."""
        asked = []
        for name in registry.VIEWS[view].datasets:
            d = registry.DATASETS[name]
            if set(d.args) <= set(args):
                asked.append((name, {k: args[k] for k in d.args}))
            elif d.args == ("checkpoint",) and {"a", "b"} <= set(args):
                asked += [(name, {"checkpoint": args["a"]}), (name, {"checkpoint": args["b"]})]
            else:
                return False
        return all(self._read[self.table(name, a)]["n"] == 0 for name, a in asked)

    def add(self, view: str, args: dict[str, str]) -> bool:
        """Store ``view`` for ``args`` when it has rows to draw; returns whether it did."""
        if self.empty(view, args):
            return False
        used: dict[str, str] = {}
        n_rows = 0

        def url(name: str, **a: str) -> dict[str, str]:
            nonlocal n_rows
            key = self.table(name, a)
            n_rows += self._read[key]["n"]
            # One placeholder per table: a view drawing one dataset for several subjects (both landscapes of a
            # pair) gets "ll:landscape", "ll:landscape-2", ...
            placeholder = next((p for p, k in used.items() if k == key), None)
            if placeholder is None:
                same = sum(1 for p in used if p == PLACEHOLDER + name or p.startswith(f"{PLACEHOLDER}{name}-"))
                placeholder = PLACEHOLDER + name + (f"-{same + 1}" if same else "")
                used[placeholder] = key
            return {"url": placeholder}

        spec = registry.spec(self.conn, view, args, url)
        if n_rows == 0:
            return False
        text = json.dumps(spec, sort_keys=True, allow_nan=False)
        if text not in self._template_index:
            self._template_index[text] = len(self.templates)
            self.templates.append(spec)
        self.views[":".join([view, *args.values()])] = {"t": self._template_index[text], "data": used}
        self.tables.update((key, self._read[key]) for key in used.values())
        return True


def viewer_data(conn: sqlite3.Connection, catalog_path: Path, experiment_id: str | None = None) -> dict[str, Any]:
    """Everything the static viewer shows, as one JSON-able dict."""
    store = ViewStore(conn)
    experiments, settings, checkpoints, pairs, runs = [], {}, {}, {}, {}
    for e in experiments_of(conn, experiment_id):
        store.add_views("experiment", {"experiment": e["id"]})
        runs.update(exp_runs := runs_by_id(reads.experiment_runs(conn, e["id"])))
        e_settings = settings_of(conn, e["id"])
        experiments.append(
            {
                **e,
                "settings": [s["id"] for s in e_settings],
                "runs": list(exp_runs),
                # what to run when a view of this experiment is missing (the viewer's pairs are within settings)
                "compute": {v.name: compute_command(v.metrics, e["name"]) for v in registry.VIEWS.values()},
            }
        )
        for s in e_settings:
            modes = modes_of(conn, s["id"])
            metrics = setting_metrics(conn, s["id"])
            store.add_views("setting", {"setting": s["id"]})
            runs.update(s_runs := runs_by_id(reads.setting_runs(conn, s["id"])))
            s_pairs = pairs_of(modes)
            settings[s["id"]] = {
                **s,
                "experiment": e["id"],
                "modes": [m["sha256"] for m in modes],
                "metrics": metrics,
                "phase": hint(metrics, ("phase",)).get("value"),
                "hint": hint(metrics, ("mc", "log top eigenvalue")),
                "pairs": ["~".join(p) for p in s_pairs],
                "runs": list(s_runs),
            }
            for m in modes:
                sha = m.pop("sha256")
                metrics = checkpoint_metrics(conn, sha)
                store.add_views("checkpoint", {"checkpoint": sha})
                runs.update(c_runs := runs_by_id(reads.checkpoint_runs(conn, sha)))
                checkpoints[sha] = {
                    **m,
                    "setting": s["id"],
                    "metrics": metrics,
                    "runs": list(c_runs),
                    "hint": hint(metrics, ("eval rel_l2", "test error", "train loss")),
                }
            for a, b in s_pairs:
                views = store.add_views("pair", {"a": a, "b": b})
                p_runs = runs_by_id(reads.pair_runs(conn, a, b))
                runs.update(p_runs)
                metrics = pair_metrics(conn, a, b)
                pairs[f"{a}~{b}"] = {
                    "a": a,
                    "b": b,
                    "setting": s["id"],
                    "views": views,
                    "metrics": metrics,
                    "runs": list(p_runs),
                    "hint": hint(metrics, ("mc (bezier, loss)", "mc (bezier, error)")),
                }
    return {
        "catalog": Path(catalog_path).name,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "counts": {
            "experiments": len(experiments),
            "settings": len(settings),
            "checkpoints": len(checkpoints),
            "pairs": len(pairs),
            "runs": len(runs),
        },
        "experiments": experiments,
        "settings": settings,
        "checkpoints": checkpoints,
        "pairs": pairs,
        "runs": runs,
        "registry": registry.manifest(),
        "templates": store.templates,
        "views": store.views,
        "tables": store.tables,
        "blobs": store.blobs.items,
    }
