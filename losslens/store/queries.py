"""Named read queries over the catalog: the only place (with ``store/jobs.py``) where readers' SQL lives.

Every function takes an open :class:`sqlite3.Connection` (``Catalog.conn``, or the connection Datasette
hands to ``db.execute_fn``) and returns plain dicts, so the Datasette plugin, the exports, the CLI and
notebooks read the same way. Functions never write.

Which run a reader shows follows one policy, defined once as SQL views in
``migrations/0006_read_rules.sql``: only ``done`` runs count, and the run that finished last wins (ties broken
by the larger run id). ``latest_runs`` applies it per (metric, subject) whatever the parameters;
``latest_runs_by_params`` per (metric, subject, params_hash). Functions that pick a run take
``params_hash=None`` (newest with any parameters) or a hash (newest with exactly those parameters).

Table and column names passed in (``run_rows``, ``latest_rows``, ``latest_run_with``) are checked against
the catalog's own schema before they reach SQL; values are always bound parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from losslens.errors import LossLensError, unknown

# A database is a LossLens catalog when it has these tables (what the Datasette plugin's hooks are keyed on).
CATALOG_TABLES = ("experiments", "checkpoints", "metric_runs")

Row = dict[str, Any]
Rows = list[Row]

CHECKPOINT_COLUMNS = """
SELECT c.sha256, c.name, c.seed, c.step, c.n_params, c.size_bytes, c.format, c.path, c.meta_json, c.ingested_at,
       c.model_id, m.name AS model_name, m.architecture_json, m.problem_json, m.hparams_json,
       m.setting_id, s.label AS setting_label, s.values_json AS setting_values_json,
       m.experiment_id, e.name AS experiment
FROM checkpoints c JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id
JOIN experiments e ON e.id = m.experiment_id
"""
CHECKPOINT_ORDER = " ORDER BY e.name, s.label, c.seed, c.step, c.name"


def rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Rows:
    """Rows of a parameterised query as dicts (for this package's functions; others call those)."""
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _first(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
    found = rows(conn, sql, params)
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------
# Schema


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the catalog has a table or view called ``name``."""
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", (name,)).fetchone() is not None
    )


def is_catalog(conn: sqlite3.Connection) -> bool:
    """Whether the database is a LossLens catalog: it has the tables :data:`CATALOG_TABLES`."""
    marks = ", ".join("?" * len(CATALOG_TABLES))
    found = conn.execute(f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})", tuple(CATALOG_TABLES))
    return found.fetchone()[0] == len(CATALOG_TABLES)


def data_version(conn: sqlite3.Connection) -> int:
    """SQLite's ``PRAGMA data_version`` on ``conn``: it changes whenever another connection (of any process)
    commits to the file, so a reader can tell whether what it read before is still current."""
    return conn.execute("PRAGMA data_version").fetchone()[0]


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """Column names of ``table`` in schema order.

    :raises LossLensError: when the catalog has no such table (an older schema: run ``losslens init``).
    """
    if not has_table(conn, table):
        raise LossLensError(f"the catalog has no {table} table", where=table, hint="run `losslens init` to migrate it")
    return [r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]


def _quoted(conn: sqlite3.Connection, table: str, columns: Iterable[str]) -> list[str]:
    known = set(table_columns(conn, table))
    out = []
    for column in columns:
        if column not in known:
            raise LossLensError(f"{table} has no column {column!r}", where=table, hint=f"columns: {', '.join(sorted(known))}")
        out.append(f'"{column}"')
    return out


def _where(conn: sqlite3.Connection, table: str, alias: str, match: dict[str, Any]) -> tuple[str, list[Any]]:
    """``AND alias."col" = ?`` (``IS ?`` for None) for each item of ``match``, with checked names."""
    parts, args = [], []
    for quoted, value in zip(_quoted(conn, table, match), match.values(), strict=True):
        parts.append(f" AND {alias}.{quoted} {'IS' if value is None else '='} ?")
        args.append(value)
    return "".join(parts), args


# ---------------------------------------------------------------------------------------------
# Experiments, settings, checkpoints


def experiments(conn: sqlite3.Connection, experiment: str | None = None) -> Rows:
    """Experiments (``id``, ``name``, ``spec_path``, ``spec_toml``, ``created_at``), oldest first; with
    ``experiment``, only the one whose name or id it is (an empty list when none is)."""
    if experiment is None:
        return rows(conn, "SELECT * FROM experiments ORDER BY created_at, name")
    return rows(conn, "SELECT * FROM experiments WHERE name = ? OR id = ? ORDER BY created_at, name", (experiment, experiment))


def require_experiment(conn: sqlite3.Connection, experiment: str | None, where: str) -> None:
    """Raise the one-line error for an ``experiment`` name (or id) the catalog does not hold, suggesting the
    closest names.

    :raises LossLensError: as said."""
    if experiment is None or experiments(conn, experiment):
        return
    names = [e["name"] for e in experiments(conn)]
    raise unknown(
        "experiment",
        experiment,
        names,
        where=where,
        hint=None if names else "the catalog has none yet: losslens ingest SPEC.toml",
    )


def experiment_summaries(conn: sqlite3.Connection, experiment: str | None = None) -> Rows:
    """Per experiment (by name, optionally only ``experiment``): ``name``, ``spec_path``, ``created_at`` and
    counts of ``settings`` and ``checkpoints``."""
    where, args = (" WHERE e.name = ?", (experiment,)) if experiment else ("", ())
    return rows(
        conn,
        "SELECT e.id, e.name, e.spec_path, e.created_at, "
        "(SELECT COUNT(*) FROM settings s WHERE s.experiment_id = e.id) AS settings, "
        "(SELECT COUNT(*) FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.experiment_id = e.id) AS checkpoints "
        f"FROM experiments e{where} ORDER BY e.name",
        args,
    )


def settings_of(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """Settings of an experiment (``id``, ``experiment_id``, ``label``, ``values_json``) ordered by label."""
    return rows(conn, "SELECT * FROM settings WHERE experiment_id = ? ORDER BY label", (experiment_id,))


def setting_summaries(conn: sqlite3.Connection, experiment: str | None = None) -> Rows:
    """Per setting (optionally of the experiment named ``experiment``): ``experiment`` (name), ``id``,
    ``label``, ``values_json``, ``checkpoints`` (count) and ``seeds`` (comma-separated, or None)."""
    where, args = (" WHERE e.name = ?", (experiment,)) if experiment else ("", ())
    return rows(
        conn,
        "SELECT e.name AS experiment, s.id, s.label, s.values_json, COUNT(c.sha256) AS checkpoints, "
        "GROUP_CONCAT(c.seed) AS seeds FROM settings s JOIN experiments e ON e.id = s.experiment_id "
        "LEFT JOIN models m ON m.setting_id = s.id LEFT JOIN checkpoints c ON c.model_id = m.id "
        f"{where} GROUP BY s.id ORDER BY e.name, s.label",
        args,
    )


def setting_record(conn: sqlite3.Connection, setting_id: str) -> Row | None:
    """One setting (``id``, ``label``, ``values_json``, ``experiment_id``, ``experiment`` name), or None."""
    return _first(
        conn,
        "SELECT s.id, s.label, s.values_json, s.experiment_id, e.name AS experiment FROM settings s "
        "JOIN experiments e ON e.id = s.experiment_id WHERE s.id = ?",
        (setting_id,),
    )


def match_settings(conn: sqlite3.Connection, given: str) -> list[str]:
    """Ids of the settings whose id or label is ``given``; failing that, whose id starts with it."""
    exact = conn.execute("SELECT id FROM settings WHERE id = ? OR label = ? ORDER BY id", (given, given)).fetchall()
    found = (
        exact or conn.execute("SELECT id FROM settings WHERE substr(id, 1, length(?)) = ? ORDER BY id", (given, given)).fetchall()
    )
    return [r[0] for r in found]


def checkpoint_records(
    conn: sqlite3.Connection, *, experiment_id: str | None = None, setting_id: str | None = None, experiment: str | None = None
) -> Rows:
    """Checkpoints with their model, setting and experiment, ordered by experiment, setting label, seed,
    step and name. Each row: ``sha256``, ``name``, ``seed``, ``step``, ``n_params``, ``size_bytes``,
    ``format``, ``path``, ``meta_json``, ``ingested_at``, ``model_id``, ``model_name``,
    ``architecture_json``, ``problem_json``, ``hparams_json``, ``setting_id``, ``setting_label``,
    ``setting_values_json``, ``experiment_id``, ``experiment`` (name). Filters combine with AND."""
    where, args = [], []
    for column, value in (("m.experiment_id", experiment_id), ("m.setting_id", setting_id), ("e.name", experiment)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    return rows(conn, CHECKPOINT_COLUMNS + clause + CHECKPOINT_ORDER, args)


def checkpoint_record(conn: sqlite3.Connection, sha256: str) -> Row | None:
    """One checkpoint as in :func:`checkpoint_records`, or None when the catalog does not hold it."""
    return _first(conn, CHECKPOINT_COLUMNS + " WHERE c.sha256 = ?", (sha256,))


def modes_of(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """The modes (checkpoints) of a setting, as in :func:`checkpoint_records`, ordered by seed then name."""
    return rows(conn, CHECKPOINT_COLUMNS + " WHERE m.setting_id = ? ORDER BY c.seed, c.name", (setting_id,))


def setting_sizes(conn: sqlite3.Connection, experiment_id: str) -> list[int]:
    """How many checkpoints each setting of an experiment has (one int per setting, by setting id)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT COUNT(c.sha256) FROM settings s LEFT JOIN models m ON m.setting_id = s.id "
            "LEFT JOIN checkpoints c ON c.model_id = m.id WHERE s.experiment_id = ? GROUP BY s.id ORDER BY s.id",
            (experiment_id,),
        )
    ]


def match_checkpoints(conn: sqlite3.Connection, given: str) -> list[str]:
    """sha256 of the checkpoints whose sha256 or name is ``given``; failing that, whose sha256 starts with it."""
    exact = conn.execute("SELECT sha256 FROM checkpoints WHERE sha256 = ? OR name = ? ORDER BY sha256", (given, given)).fetchall()
    found = (
        exact
        or conn.execute(
            "SELECT sha256 FROM checkpoints WHERE substr(sha256, 1, length(?)) = ? ORDER BY sha256", (given, given)
        ).fetchall()
    )
    return [r[0] for r in found]


def trajectory_of(conn: sqlite3.Connection, sha256: str) -> Rows:
    """Other checkpoints of the same model and seed with a known step (``sha256``, ``step``), by step:
    the training trajectory a checkpoint lies on."""
    return rows(
        conn,
        "SELECT o.sha256, o.step FROM checkpoints c JOIN checkpoints o ON o.model_id = c.model_id AND o.seed IS c.seed "
        "WHERE c.sha256 = ? AND o.step IS NOT NULL AND o.sha256 != c.sha256 ORDER BY o.step",
        (sha256,),
    )


# ---------------------------------------------------------------------------------------------
# Metric runs


def _latest_view(params_hash: str | None) -> str:
    return "latest_runs" if params_hash is None else "latest_runs_by_params"


def latest_run(conn: sqlite3.Connection, metric: str, subject: str, *, params_hash: str | None = None) -> Row | None:
    """The ``metric_runs`` row of the newest done run of ``metric`` on ``subject`` (a checkpoint sha256,
    ``"sha_a:sha_b"``, a setting id or an experiment id), with any parameters or only ``params_hash``;
    None when there is none."""
    extra, args = ("", ()) if params_hash is None else (" AND params_hash = ?", (params_hash,))
    return _first(
        conn,
        f"SELECT * FROM {_latest_view(params_hash)} WHERE metric = ? AND subject = ?{extra} "
        "ORDER BY finished_at DESC, id DESC LIMIT 1",
        (metric, subject, *args),
    )


def latest_pair_run(conn: sqlite3.Connection, metric: str, a: str, b: str, *, params_hash: str | None = None) -> Row | None:
    """:func:`latest_run` for the unordered pair of checkpoints ``a`` and ``b`` (subject ``a:b`` or ``b:a``)."""
    extra, args = ("", ()) if params_hash is None else (" AND params_hash = ?", (params_hash,))
    return _first(
        conn,
        f"SELECT * FROM {_latest_view(params_hash)} WHERE metric = ? AND subject IN (?, ?){extra} "
        "ORDER BY finished_at DESC, id DESC LIMIT 1",
        (metric, f"{a}:{b}", f"{b}:{a}", *args),
    )


def latest_runs(
    conn: sqlite3.Connection,
    metric: str,
    *,
    experiment_id: str | None = None,
    setting_id: str | None = None,
    checkpoint: str | None = None,
    params_hash: str | None = None,
) -> Rows:
    """The newest done run of ``metric`` for each subject, as ``metric_runs`` rows ordered by subject,
    optionally only within an experiment, a setting, or those whose first checkpoint is ``checkpoint``."""
    where, args = ["metric = ?"], [metric]
    for column, value in (
        ("experiment_id", experiment_id),
        ("setting_id", setting_id),
        ("checkpoint", checkpoint),
        ("params_hash", params_hash),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return rows(conn, f"SELECT * FROM {_latest_view(params_hash)} WHERE {' AND '.join(where)} ORDER BY subject", args)


def latest_runs_of_subject(conn: sqlite3.Connection, subject: str) -> Rows:
    """The newest done run of every metric computed on ``subject`` (one ``metric_runs`` row per metric, by metric)."""
    return rows(conn, "SELECT * FROM latest_runs WHERE subject = ? ORDER BY metric", (subject,))


def latest_run_with(conn: sqlite3.Connection, table: str, **match: Any) -> str | None:
    """Id of the newest done run that has rows in result ``table`` matching ``match`` (column = value),
    e.g. ``latest_run_with(conn, "merge_tree_nodes", landscape_id=lid)``; None when there is none.

    :raises LossLensError: when ``table`` or a column of ``match`` is not in the catalog.
    """
    where, args = _where(conn, table, "t", match)
    row = conn.execute(
        f"SELECT r.id FROM metric_runs r WHERE r.status = 'done' AND EXISTS (SELECT 1 FROM \"{table}\" t "
        f"WHERE t.run_id = r.id{where}) ORDER BY r.finished_at DESC, r.id DESC LIMIT 1",
        args,
    ).fetchone()
    return row[0] if row else None


def latest_rows(
    conn: sqlite3.Connection,
    metric: str,
    table: str,
    columns: Sequence[str],
    *,
    experiment_id: str | None = None,
    setting_id: str | None = None,
    checkpoint: str | None = None,
    params_hash: str | None = None,
    match: dict[str, Any] | None = None,
) -> Rows:
    """Rows of result ``table`` written by the newest done run of ``metric`` per subject (see
    :func:`latest_runs` for the filters). Each row has ``run_id``, ``subject``, ``params_hash`` and the
    asked ``columns``; ``match`` keeps only rows whose columns equal the given values.

    :raises LossLensError: when ``table`` or a column is not in the catalog.
    """
    selected = ", ".join(f"t.{c}" for c in _quoted(conn, table, columns))
    extra, extra_args = _where(conn, table, "t", match or {})
    where, args = ["r.metric = ?"], [metric]
    for column, value in (
        ("experiment_id", experiment_id),
        ("setting_id", setting_id),
        ("checkpoint", checkpoint),
        ("params_hash", params_hash),
    ):
        if value is not None:
            where.append(f"r.{column} = ?")
            args.append(value)
    return rows(
        conn,
        f'SELECT t.run_id, r.subject, r.params_hash, {selected} FROM "{table}" t JOIN {_latest_view(params_hash)} r '
        f"ON r.id = t.run_id WHERE {' AND '.join(where)}{extra} ORDER BY r.subject, t.rowid",
        [*args, *extra_args],
    )


def run_record(conn: sqlite3.Connection, run_id: str) -> Row | None:
    """The ``metric_runs`` row of one run (any status), or None."""
    return _first(conn, "SELECT * FROM metric_runs WHERE id = ?", (run_id,))


def run_rows(
    conn: sqlite3.Connection,
    table: str,
    run_id: str | Sequence[str],
    columns: Sequence[str] | None = None,
    *,
    match: dict[str, Any] | None = None,
    order_by: Sequence[str] = (),
) -> Rows:
    """Rows of result ``table`` written by one run (or any of several), with ``columns`` (all when None),
    only those matching ``match`` (column = value), ordered by ``order_by`` (else insertion order).

    :raises LossLensError: when ``table`` or a column is not in the catalog.
    """
    ids = [run_id] if isinstance(run_id, str) else list(run_id)
    if not ids:
        return []
    selected = ", ".join(_quoted(conn, table, columns)) if columns else "*"
    extra, extra_args = _where(conn, table, "t", match or {})
    order = ", ".join(f"t.{c}" for c in _quoted(conn, table, order_by)) or "t.rowid"
    marks = ", ".join("?" * len(ids))
    return rows(
        conn, f'SELECT {selected} FROM "{table}" t WHERE t.run_id IN ({marks}){extra} ORDER BY {order}', [*ids, *extra_args]
    )


def rows_where(
    conn: sqlite3.Connection, table: str, columns: Sequence[str] | None = None, *, order_by: Sequence[str] = (), **match: Any
) -> Rows:
    """Rows of any catalog ``table`` whose columns equal ``match`` (e.g. ``rows_where(conn, "landscapes",
    id=lid)``), with ``columns`` (all when None), ordered by ``order_by`` (else insertion order).

    :raises LossLensError: when ``table`` or a column is not in the catalog.
    """
    selected = ", ".join(_quoted(conn, table, columns)) if columns else "*"
    where, args = _where(conn, table, "t", match)
    order = ", ".join(f"t.{c}" for c in _quoted(conn, table, order_by)) or "t.rowid"
    return rows(conn, f'SELECT {selected} FROM "{table}" t WHERE 1{where} ORDER BY {order}', args)


def subject_counts(conn: sqlite3.Connection, metric: str, experiment_id: str) -> Row:
    """``{"done": n, "failed": m}``: subjects of an experiment with a done run of ``metric``, and subjects
    whose runs all failed."""
    row = _first(
        conn,
        "SELECT COUNT(DISTINCT CASE WHEN status = 'done' THEN subject END) AS done, "
        "COUNT(DISTINCT CASE WHEN status = 'failed' AND subject NOT IN (SELECT subject FROM metric_runs "
        "  WHERE metric = :m AND status = 'done') THEN subject END) AS failed "
        "FROM metric_runs WHERE metric = :m AND experiment_id = :e",
        {"m": metric, "e": experiment_id},
    )
    return row or {"done": 0, "failed": 0}


def metrics_run(conn: sqlite3.Connection, experiment_id: str | None = None) -> list[str]:
    """Names of the metrics with any run (optionally in one experiment), sorted."""
    if experiment_id is None:
        return [r[0] for r in conn.execute("SELECT DISTINCT metric FROM metric_runs ORDER BY metric")]
    return [
        r[0]
        for r in conn.execute("SELECT DISTINCT metric FROM metric_runs WHERE experiment_id = ? ORDER BY metric", (experiment_id,))
    ]


def has_done_run(conn: sqlite3.Connection, metric: str, experiment: str | None = None) -> bool:
    """Whether ``metric`` has any done run (optionally in the experiment of that name or id)."""
    if experiment is None:
        found = conn.execute("SELECT 1 FROM metric_runs WHERE metric = ? AND status = 'done' LIMIT 1", (metric,))
    else:
        found = conn.execute(
            "SELECT 1 FROM metric_runs r JOIN experiments e ON e.id = r.experiment_id "
            "WHERE r.metric = ? AND r.status = 'done' AND (e.name = ? OR e.id = ?) LIMIT 1",
            (metric, experiment, experiment),
        )
    return found.fetchone() is not None


def catalog_state(conn: sqlite3.Connection) -> tuple[list[str], list[list[Any]]]:
    """What an export shows depends on: every checkpoint's sha256 (sorted) and every run's
    ``[id, status, finished_at]`` (by id)."""
    shas = [r[0] for r in conn.execute("SELECT sha256 FROM checkpoints ORDER BY sha256")]
    runs = [list(r) for r in conn.execute("SELECT id, status, finished_at FROM metric_runs ORDER BY id")]
    return shas, runs


# ---------------------------------------------------------------------------------------------
# Artifacts


def artifact_path(conn: sqlite3.Connection, sha256: str) -> str | None:
    """Path of an artifact's ``.npy`` file relative to the catalog folder, or None when unknown."""
    row = conn.execute("SELECT path FROM artifacts WHERE sha256 = ?", (sha256,)).fetchone()
    return row[0] if row else None


def run_artifact_path(conn: sqlite3.Connection, run_id: str, name: str) -> str | None:
    """Relative path of the artifact a run stored under role ``name``, or None when it has none."""
    row = conn.execute(
        "SELECT a.path FROM run_artifacts r JOIN artifacts a ON a.sha256 = r.artifact WHERE r.run_id = ? AND r.name = ?",
        (run_id, name),
    ).fetchone()
    return row[0] if row else None


def run_artifacts(conn: sqlite3.Connection, run_id: str) -> Rows:
    """Artifacts of a run: ``name`` (role), ``sha256``, ``kind``, ``shape_json``, ``dtype``, ``path``, ``size_bytes``."""
    return rows(
        conn,
        "SELECT r.name, a.sha256, a.kind, a.shape_json, a.dtype, a.path, a.size_bytes FROM run_artifacts r "
        "JOIN artifacts a ON a.sha256 = r.artifact WHERE r.run_id = ? ORDER BY r.name",
        (run_id,),
    )


# ---------------------------------------------------------------------------------------------
# Taxonomy


def taxonomy_rows(conn: sqlite3.Connection, experiment: str | None = None) -> Rows:
    """Rows of the ``taxonomy`` table from each experiment's newest done taxonomy run (optionally only the
    experiment of that name), with ``experiment`` (name), ``setting`` (label) and ``finished_at``; ordered
    by experiment and setting label.

    :raises LossLensError: when the catalog has no taxonomy table (run ``losslens init``).
    """
    table_columns(conn, "taxonomy")
    where, args = (" AND e.name = ?", (experiment,)) if experiment else ("", ())
    return rows(
        conn,
        "SELECT e.name AS experiment, s.label AS setting, t.*, r.finished_at FROM taxonomy t "
        "JOIN latest_runs r ON r.id = t.run_id AND r.metric = 'taxonomy' JOIN settings s ON s.id = t.setting_id "
        f"JOIN experiments e ON e.id = r.experiment_id WHERE 1{where} ORDER BY e.name, s.label",
        args,
    )
