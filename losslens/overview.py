"""What the catalog holds: experiments, settings, checkpoints and metric coverage."""

from __future__ import annotations

from math import comb
from pathlib import Path
from typing import Any

from losslens.metrics.registry import metric_scopes
from losslens.store.catalog import open_catalog


def listing(catalog_path: Path | None = None, experiment: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Experiments, settings and checkpoints, as rows."""
    where, args = ("WHERE e.name = ?", (experiment,)) if experiment else ("", ())
    with open_catalog(catalog_path, readonly=True) as cat:
        return {
            "experiments": cat.query(
                "SELECT e.name, e.spec_path, e.created_at, "
                "(SELECT COUNT(*) FROM settings s WHERE s.experiment_id = e.id) AS settings, "
                "(SELECT COUNT(*) FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.experiment_id = e.id) AS checkpoints "
                f"FROM experiments e {where} ORDER BY e.name",
                args,
            ),
            "settings": cat.query(
                "SELECT e.name AS experiment, s.id, s.label, s.values_json, COUNT(c.sha256) AS checkpoints, "
                "GROUP_CONCAT(c.seed) AS seeds FROM settings s JOIN experiments e ON e.id = s.experiment_id "
                "LEFT JOIN models m ON m.setting_id = s.id LEFT JOIN checkpoints c ON c.model_id = m.id "
                f"{where} GROUP BY s.id ORDER BY e.name, s.label",
                args,
            ),
            "checkpoints": cat.query(
                "SELECT e.name AS experiment, s.label AS setting, c.name, c.seed, c.step, c.n_params, c.sha256, c.path "
                "FROM checkpoints c JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id "
                f"JOIN experiments e ON e.id = m.experiment_id {where} ORDER BY e.name, s.label, c.seed, c.step, c.name",
                args,
            ),
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

    Pair metrics are counted against all seed pairs within each setting (the default pairing)."""
    scopes = metric_scopes()  # without importing the metric modules (torch): status starts at once
    rows = []
    with open_catalog(catalog_path, readonly=True) as cat:
        exps = cat.query(
            "SELECT id, name FROM experiments" + (" WHERE name = ?" if experiment else "") + " ORDER BY name",
            (experiment,) if experiment else (),
        )
        for exp in exps:
            per_setting = [
                r["n"]
                for r in cat.query(
                    "SELECT COUNT(c.sha256) AS n FROM settings s LEFT JOIN models m ON m.setting_id = s.id "
                    "LEFT JOIN checkpoints c ON c.model_id = m.id WHERE s.experiment_id = ? GROUP BY s.id",
                    (exp["id"],),
                )
            ]
            names = sorted(
                set(scopes)
                | {
                    r["metric"]
                    for r in cat.query("SELECT DISTINCT metric FROM metric_runs WHERE experiment_id = ?", (exp["id"],))
                }
            )
            for name in names:
                counts = cat.one(
                    "SELECT COUNT(DISTINCT CASE WHEN status = 'done' THEN subject END) AS done, "
                    "COUNT(DISTINCT CASE WHEN status = 'failed' AND subject NOT IN (SELECT subject FROM metric_runs "
                    "  WHERE metric = :m AND status = 'done') THEN subject END) AS failed "
                    "FROM metric_runs WHERE metric = :m AND experiment_id = :e",
                    {"m": name, "e": exp["id"]},
                ) or {"done": 0, "failed": 0}
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
