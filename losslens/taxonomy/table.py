"""The taxonomy as a table: each setting's metrics and phase from the latest ``taxonomy`` run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError
from losslens.store.catalog import open_catalog

TAXONOMY_SQL = """
SELECT e.name AS experiment, s.label AS setting, t.*, r.finished_at
FROM taxonomy t JOIN metric_runs r ON r.id = t.run_id JOIN settings s ON s.id = t.setting_id
JOIN experiments e ON e.id = r.experiment_id
WHERE r.status = 'done' AND r.id = (SELECT id FROM metric_runs WHERE metric = 'taxonomy' AND status = 'done'
                                    AND experiment_id = r.experiment_id ORDER BY finished_at DESC LIMIT 1)
"""


def taxonomy_table(catalog_path: Path | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """One row per setting: its summary metrics, phase and the thresholds used."""
    with open_catalog(catalog_path, readonly=True) as cat:
        if cat.one("SELECT name FROM sqlite_master WHERE name = 'taxonomy'") is None:
            raise LossLensError("the catalog has no taxonomy table", where=str(cat.path), hint="run `losslens init`")
        sql = TAXONOMY_SQL + (" AND e.name = ?" if experiment else "") + " ORDER BY e.name, s.label"
        rows = cat.query(sql, (experiment,) if experiment else ())
    if not rows:
        raise LossLensError(
            "no taxonomy computed" + (f" for {experiment}" if experiment else ""),
            where="taxonomy",
            hint="run `losslens compute taxonomy`",
        )
    for row in rows:
        row["thresholds"] = json.loads(row.pop("thresholds_json"))
        row["sources"] = json.loads(row.pop("sources_json"))
    return rows
