"""The taxonomy as a table: each setting's metrics and phase from the latest ``taxonomy`` run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError
from losslens.store import queries
from losslens.store.catalog import open_catalog


def taxonomy_table(catalog_path: Path | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """One row per setting: its summary metrics, phase and the thresholds used, from each experiment's
    newest done ``taxonomy`` run (the catalog's ``latest_runs`` rule).

    :raises LossLensError: when the catalog is missing or needs ``losslens init``, no experiment has the name
        given, or no taxonomy was computed.
    """
    with open_catalog(catalog_path, readonly=True, snapshot=True) as cat:
        queries.require_experiment(cat.conn, experiment, "taxonomy")
        rows = queries.taxonomy_rows(cat.conn, experiment)
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
