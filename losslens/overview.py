"""What the catalog holds: experiments, settings, checkpoints and metric coverage."""

from __future__ import annotations

from math import comb
from pathlib import Path
from typing import Any

from losslens.metrics.registry import metric_scopes
from losslens.store import queries
from losslens.store.catalog import open_catalog


def listing(catalog_path: Path | None = None, experiment: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Experiments, settings and checkpoints (optionally of one experiment, by name), as rows.

    :raises LossLensError: when there is no catalog, its schema needs ``losslens init``, or no experiment has
        the name given.
    """
    with open_catalog(catalog_path, readonly=True, snapshot=True) as cat:
        queries.require_experiment(cat.conn, experiment, "ls")
        experiments = queries.experiment_summaries(cat.conn, experiment)
        for row in experiments:
            del row["id"]
        return {
            "experiments": experiments,
            "settings": queries.setting_summaries(cat.conn, experiment),
            "checkpoints": [
                {
                    "experiment": r["experiment"],
                    "setting": r["setting_label"],
                    **{k: r[k] for k in ("name", "seed", "step", "n_params", "sha256", "path")},
                }
                for r in queries.checkpoint_records(cat.conn, experiment=experiment)
            ],
        }


def _expected(scope: str, per_setting: list[int]) -> int:
    total = sum(per_setting)
    return {
        "checkpoint": total,
        "pair": sum(comb(n, 2) for n in per_setting),
        "setting": len([n for n in per_setting if n]),
        "experiment": 1 if total else 0,
    }[scope]


def coverage(catalog_path: Path | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """Per experiment and metric: subjects done, failed (and not done), and missing.

    Pair metrics are counted against all seed pairs within each setting (the default pairing).

    :raises LossLensError: as :func:`listing`."""
    scopes = metric_scopes()  # without importing the metric modules (torch): status starts at once
    rows = []
    with open_catalog(catalog_path, readonly=True, snapshot=True) as cat:
        queries.require_experiment(cat.conn, experiment, "status")
        for exp in sorted(queries.experiments(cat.conn, experiment), key=lambda e: e["name"]):
            per_setting = queries.setting_sizes(cat.conn, exp["id"])
            for name in sorted(set(scopes) | set(queries.metrics_run(cat.conn, exp["id"]))):
                counts = queries.subject_counts(cat.conn, name, exp["id"])
                expected = _expected(scopes[name], per_setting) if name in scopes else counts["done"] + counts["failed"]
                rows.append(
                    {
                        "experiment": exp["name"],
                        "metric": name,
                        "scope": scopes.get(name, "unknown"),
                        "expected": expected,
                        "done": counts["done"],
                        "failed": counts["failed"],
                        "missing": max(0, expected - counts["done"] - counts["failed"]),
                    }
                )
    return rows
