"""The SQL of the job runner: what planning reads, the skip-done rule, the requirement results a job is
shipped, and storing one finished run. Each planning read is one statement per metric, however many jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

from losslens.errors import LossLensError, did_you_mean
from losslens.store import queries
from losslens.store.catalog import Catalog

#: One checkpoint with what a worker needs to rebuild it (see ``queries.checkpoint_records``); callers add
#: ``WHERE``/``ORDER BY`` clauses over the aliases c, m, s, e.
CHECKPOINT_SQL = queries.CHECKPOINT_COLUMNS


def experiments(catalog: Catalog, name: str | None) -> list[dict[str, Any]]:
    """Every experiment, or the one named.

    :raises LossLensError: when ``name`` is given and no experiment has it (the hint lists the known ones).
    """
    if name is None:
        return catalog.query("SELECT * FROM experiments ORDER BY name")
    rows = catalog.query("SELECT * FROM experiments WHERE name = ?", (name,))
    if not rows:
        known = [r["name"] for r in catalog.query("SELECT name FROM experiments ORDER BY name")]
        raise LossLensError(
            f"no experiment named {name!r}{did_you_mean(name, known)}",
            where=str(catalog.path),
            hint=f"known: {', '.join(known) or 'none (ingest first)'}",
        )
    return rows


def checkpoint_records(catalog: Catalog, experiment_id: str) -> list[dict[str, Any]]:
    """The experiment's checkpoints in a stable order (setting, seed, step, name)."""
    return queries.checkpoint_records(catalog.conn, experiment_id=experiment_id)


_RUN_SPAN = "SELECT id, scope, checkpoint, checkpoint_b, setting_id, experiment_id, started_at, finished_at FROM metric_runs"


def done_run_ids(catalog: Catalog, metric: str, requires: tuple[str, ...] = ()) -> set[str]:
    """Runs of ``metric`` that need no recomputing: done, and not stale.

    A done run is stale when a done run of a requirement that covers the same checkpoints (the same
    checkpoint, either side of a pair, the same setting, or the whole experiment) finished after it
    started: it was computed from inputs that have since changed. Two statements whatever the number of
    runs; the rule is applied over per-checkpoint, per-setting and per-experiment latest finishing times,
    so the check stays linear (a correlated SQL subquery was quadratic in the runs).
    """
    done = catalog.query(_RUN_SPAN + " WHERE metric = ? AND status = 'done'", (metric,))
    if not requires:
        return {d["id"] for d in done}
    marks = ", ".join("?" * len(requires))
    latest: dict[tuple[str, Any], str] = {}

    def bump(key: tuple[str, Any], when: str) -> None:
        if key[1] is not None and when > latest.get(key, ""):
            latest[key] = when

    for r in catalog.query(_RUN_SPAN + f" WHERE metric IN ({marks}) AND status = 'done'", requires):
        when = r["finished_at"]
        bump(("experiment", r["experiment_id"]), when)  # for experiment-scope readers
        if r["scope"] == "experiment":
            bump(("experiment-run", r["experiment_id"]), when)  # covers every reader of the experiment
        bump(("setting", r["setting_id"]), when)  # for setting-scope readers
        if r["scope"] == "setting":
            bump(("setting-run", r["setting_id"]), when)  # covers every reader in the setting
        bump(("checkpoint", r["checkpoint"]), when)
        bump(("checkpoint", r["checkpoint_b"]), when)

    def stale(d: dict[str, Any]) -> bool:
        keys = [("experiment-run", d["experiment_id"]), ("setting-run", d["setting_id"])]
        keys += [("checkpoint", d["checkpoint"]), ("checkpoint", d["checkpoint_b"])]
        if d["scope"] == "experiment":
            keys.append(("experiment", d["experiment_id"]))
        if d["scope"] == "setting":
            keys.append(("setting", d["setting_id"]))
        return any(latest.get(k, "") > d["started_at"] for k in keys if k[1] is not None)

    return {d["id"] for d in done if not stale(d)}


def done_runs(catalog: Catalog, metric: str, experiment_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Every done run of ``metric`` in the experiments, oldest first (so later runs win when indexed)."""
    ids = list(experiment_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return catalog.query(
        "SELECT id, metric, scope, subject, checkpoint, checkpoint_b, setting_id, experiment_id, params_json, params_hash, "
        f"finished_at FROM metric_runs WHERE metric = ? AND status = 'done' AND experiment_id IN ({marks}) "
        "ORDER BY finished_at, id",
        (metric, *ids),
    )


def run_artifact_paths(catalog: Catalog, run_ids: list[str]) -> list[dict[str, Any]]:
    """(run_id, name, path) of every artifact of the given runs; paths are relative to the catalog folder."""
    if not run_ids:
        return []
    marks = ",".join("?" * len(run_ids))
    return catalog.query(
        "SELECT r.run_id, r.name, a.path FROM run_artifacts r JOIN artifacts a ON a.sha256 = r.artifact "
        f"WHERE r.run_id IN ({marks})",
        tuple(run_ids),
    )


def replace_run(db: Database, run: dict[str, Any]) -> None:
    """Insert a run row, first deleting the same run and any stale one of the same subject and parameters
    (e.g. a setting run from before a seed was added); their result rows go too (ON DELETE CASCADE).
    Call inside ``Catalog.write()``."""
    db.execute(
        "DELETE FROM metric_runs WHERE id = ? OR (metric = ? AND subject = ? AND params_hash = ?)",
        [run["id"], run["metric"], run["subject"], run["params_hash"]],
    )
    db.table("metric_runs").insert(run)


def insert_result(db: Database, run_id: str, tables: tuple[str, ...], rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert a run's rows, each table declared by its metric and created by a migration.

    :raises RuntimeError: when a table is undeclared or missing (a bug in the metric or its migration).
    """
    for table, table_rows in rows.items():
        if table not in tables or not db[table].exists():
            raise RuntimeError(f"a metric wrote table {table!r}, which it does not declare or no migration creates")
        if table_rows:
            db.table(table).insert_all([{**row, "run_id": run_id} for row in table_rows])


def link_artifacts(db: Database, run_id: str, names: dict[str, str]) -> None:
    """Name a run's artifacts (name → sha256); the artifact rows are written first by ``save_artifacts``."""
    for name, sha in names.items():
        db.table("run_artifacts").insert({"run_id": run_id, "name": name, "artifact": sha})
