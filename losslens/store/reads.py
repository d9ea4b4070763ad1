"""Named read queries for the views, the static exports and the Datasette plugin.

Every function takes a ``sqlite3.Connection`` (Datasette hands its read-only connections to
``execute_fn``; the exports open the catalog read-only) and returns plain dicts. "Which result a view
shows" is the catalog's one rule, the SQL views ``latest_runs`` (per metric and subject, the newest done
run whatever its parameters) and ``latest_runs_by_params`` of ``migrations/0006_read_rules.sql``: only done
runs count, the last finished wins, ties go to the larger run id. Ids are always bound as parameters.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from losslens.store import queries

Row = dict[str, Any]
Rows = list[Row]


def fetch(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> Rows:
    """Rows as dicts from a parameterised query."""
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _first(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> Row | None:
    rows = fetch(conn, sql, params)
    return rows[0] if rows else None


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


# ---------------------------------------------------------------------------------------------
# The study tree: experiments → settings → models → checkpoints.

_EXISTS = {
    "experiment": "SELECT 1 FROM experiments WHERE id = ?",
    "setting": "SELECT 1 FROM settings WHERE id = ?",
    "checkpoint": "SELECT 1 FROM checkpoints WHERE sha256 = ?",
}


def exists(conn: sqlite3.Connection, kind: str, key: str) -> bool:
    """Whether an experiment, setting or checkpoint with this id is in the catalog.

    :raises KeyError: for a ``kind`` other than experiment, setting or checkpoint.
    """
    return conn.execute(_EXISTS[kind], (key,)).fetchone() is not None


def experiments(conn: sqlite3.Connection) -> Rows:
    """``id``, ``name`` of every experiment, oldest first."""
    return fetch(conn, "SELECT id, name FROM experiments ORDER BY created_at, name")


def settings(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """``id``, ``label``, ``values_json`` of an experiment's settings, by label."""
    return fetch(conn, "SELECT id, label, values_json FROM settings WHERE experiment_id = ? ORDER BY label", (experiment_id,))


def setting_names(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """``id``, ``label`` of an experiment's settings, by label (what a page lists, without their values)."""
    return fetch(conn, "SELECT id, label FROM settings WHERE experiment_id = ? ORDER BY label", (experiment_id,))


def setting(conn: sqlite3.Connection, setting_id: str) -> Row | None:
    """One setting with its experiment's id and name, or None."""
    return _first(
        conn,
        "SELECT s.id, s.label, s.values_json, s.experiment_id, e.name AS experiment FROM settings s "
        "JOIN experiments e ON e.id = s.experiment_id WHERE s.id = ?",
        (setting_id,),
    )


def modes(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """The checkpoints (modes) of a setting in seed order: ``sha256, name, seed, step, n_params, model``."""
    return fetch(
        conn,
        "SELECT c.sha256, c.name, c.seed, c.step, c.n_params, m.name AS model FROM checkpoints c "
        "JOIN models m ON m.id = c.model_id WHERE m.setting_id = ? ORDER BY c.seed, c.name",
        (setting_id,),
    )


def experiment_size(conn: sqlite3.Connection, experiment_id: str) -> int:
    """How many checkpoints an experiment holds."""
    return conn.execute(
        "SELECT count(*) FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.experiment_id = ?", (experiment_id,)
    ).fetchone()[0]


def experiment_modes(conn: sqlite3.Connection, experiment_id: str, limit: int) -> Rows:
    """At most ``limit`` checkpoints of an experiment, in one query: ``sha256, name, setting_id, setting_label``,
    by setting label, then seed and name (the order of :func:`modes` within each setting)."""
    return fetch(
        conn,
        "SELECT c.sha256, c.name, m.setting_id, s.label AS setting_label FROM checkpoints c "
        "JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id "
        "WHERE m.experiment_id = ? ORDER BY s.label, m.setting_id, c.seed, c.name LIMIT ?",
        (experiment_id, limit),
    )


def search_modes(conn: sqlite3.Connection, experiment_id: str, text: str, limit: int) -> Rows:
    """At most ``limit`` checkpoints of an experiment whose name contains ``text`` (any case; ``%`` and ``_``
    taken literally), by name: ``sha256, name, setting_id, setting_label``."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return fetch(
        conn,
        "SELECT c.sha256, c.name, m.setting_id, s.label AS setting_label FROM checkpoints c "
        "JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id "
        "WHERE m.experiment_id = ? AND c.name LIKE ? ESCAPE '\\' ORDER BY c.name, c.sha256 LIMIT ?",
        (experiment_id, pattern, limit),
    )


def checkpoint(conn: sqlite3.Connection, sha: str) -> Row | None:
    """A checkpoint with its model, setting and experiment names, or None."""
    return _first(
        conn,
        """
        SELECT c.sha256, c.name, c.seed, c.step, c.n_params, m.name AS model_name, m.setting_id, s.label AS setting_label,
               s.experiment_id, e.name AS experiment
        FROM checkpoints c JOIN models m ON m.id = c.model_id JOIN settings s ON s.id = m.setting_id
        JOIN experiments e ON e.id = s.experiment_id WHERE c.sha256 = ?""",
        (sha,),
    )


def checkpoint_names(conn: sqlite3.Connection, shas: list[str]) -> dict[str, str]:
    """sha256 → name for the checkpoints given (unknown ones left out)."""
    if not shas:
        return {}
    marks = ",".join("?" * len(shas))
    return dict(conn.execute(f"SELECT sha256, name FROM checkpoints WHERE sha256 IN ({marks})", tuple(shas)).fetchall())


def setting_labels(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    """setting id → label for the ids given (unknown ones left out)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return dict(conn.execute(f"SELECT id, label FROM settings WHERE id IN ({marks})", tuple(ids)).fetchall())


# Finding a subject by id, unique id prefix or name (the CLI's and the notebook's arguments).


def find_experiments(conn: sqlite3.Connection, given: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM experiments WHERE name = ? OR id = ?", (given, given))]


def find_settings(conn: sqlite3.Connection, given: str) -> list[str]:
    exact = [r[0] for r in conn.execute("SELECT id FROM settings WHERE id = ? OR label = ?", (given, given))]
    return exact or [r[0] for r in conn.execute("SELECT id FROM settings WHERE id LIKE ? || '%'", (given,))]


def find_checkpoints(conn: sqlite3.Connection, given: str) -> list[str]:
    exact = [r[0] for r in conn.execute("SELECT sha256 FROM checkpoints WHERE sha256 = ? OR name = ?", (given, given))]
    return exact or [r[0] for r in conn.execute("SELECT sha256 FROM checkpoints WHERE sha256 LIKE ? || '%'", (given,))]


# ---------------------------------------------------------------------------------------------
# Which run: the newest done run of a metric on its subject.


def latest_run(conn: sqlite3.Connection, metric: str, checkpoint: str, checkpoint_b: str | None = None) -> str | None:
    """Id of the newest done run of ``metric`` on a checkpoint, or on an (unordered) pair of checkpoints."""
    if checkpoint_b is None:
        row = queries.latest_run(conn, metric, checkpoint)
    else:
        row = queries.latest_pair_run(conn, metric, checkpoint, checkpoint_b)
    return row["id"] if row else None


def latest_experiment_run(conn: sqlite3.Connection, metric: str, experiment_id: str) -> Row | None:
    """The newest done experiment-scope run of ``metric`` (``id``, ``params_json``), or None."""
    return _first(
        conn,
        "SELECT id, params_json FROM latest_runs WHERE metric = ? AND scope = 'experiment' AND subject = ? "
        "ORDER BY finished_at DESC, id DESC LIMIT 1",
        (metric, experiment_id),
    )


def run_artifact(conn: sqlite3.Connection, run_id: str, name: str) -> str | None:
    """sha256 of a run's named artifact, or None."""
    row = conn.execute("SELECT artifact FROM run_artifacts WHERE run_id = ? AND name = ?", (run_id, name)).fetchone()
    return row[0] if row else None


def artifact_path(conn: sqlite3.Connection, sha256: str) -> str | None:
    """An artifact's path relative to the catalog folder, or None when the catalog does not know it."""
    row = conn.execute("SELECT path FROM artifacts WHERE sha256 = ?", (sha256,)).fetchone()
    return row[0] if row else None


def catalog_file(conn: sqlite3.Connection) -> str:
    """The path of the connection's main database file."""
    return next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")


_RUN_COLUMNS = "id, metric, params_json, code_version, device, wall_seconds, finished_at"


def _newest_per_metric(rows: Rows) -> Rows:
    newest = {r["metric"]: r for r in rows}  # rows come oldest first: of a pair's two orders, the newer wins
    return list(newest.values())


def experiment_runs(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """Provenance of the newest done experiment-scope run of each metric."""
    sql = f"SELECT {_RUN_COLUMNS} FROM latest_runs WHERE subject = ? AND scope = 'experiment' ORDER BY finished_at, id"
    return _newest_per_metric(fetch(conn, sql, (experiment_id,)))


def setting_runs(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """Provenance of the newest done setting-scope run of each metric."""
    sql = f"SELECT {_RUN_COLUMNS} FROM latest_runs WHERE subject = ? AND scope = 'setting' ORDER BY finished_at, id"
    return _newest_per_metric(fetch(conn, sql, (setting_id,)))


def checkpoint_runs(conn: sqlite3.Connection, sha: str) -> Rows:
    """Provenance of the newest done run of each metric on one checkpoint."""
    sql = f"SELECT {_RUN_COLUMNS} FROM latest_runs WHERE subject = ? AND scope = 'checkpoint' ORDER BY finished_at, id"
    return _newest_per_metric(fetch(conn, sql, (sha,)))


def pair_runs(conn: sqlite3.Connection, a: str, b: str) -> Rows:
    """Provenance of the newest done run of each metric on an (unordered) pair."""
    sql = f"SELECT {_RUN_COLUMNS} FROM latest_runs WHERE subject IN (?, ?) AND scope = 'pair' ORDER BY finished_at, id"
    return _newest_per_metric(fetch(conn, sql, (f"{a}:{b}", f"{b}:{a}")))


# ---------------------------------------------------------------------------------------------
# Per-checkpoint results.


def performance(conn: sqlite3.Connection, sha: str) -> Rows:
    """``split, name, value`` of the newest performance run of a checkpoint."""
    run = latest_run(conn, "performance", sha)
    if run is None:
        return []
    return fetch(conn, "SELECT split, name, value FROM performance WHERE run_id = ? ORDER BY split, name", (run,))


def hessian_eigenvalues(conn: sqlite3.Connection, sha: str) -> Rows:
    """``which, rank, value, residual`` of the newest hessian run of a checkpoint."""
    run = latest_run(conn, "hessian", sha)
    if run is None:
        return []
    return fetch(
        conn, "SELECT which, rank, value, residual FROM hessian_eigenvalues WHERE run_id = ? ORDER BY which, rank", (run,)
    )


def hessian_trace(conn: sqlite3.Connection, sha: str) -> float | None:
    """The Hutchinson trace estimate of the newest hessian run, or None."""
    run = latest_run(conn, "hessian", sha)
    row = conn.execute("SELECT estimate FROM hessian_trace WHERE run_id = ?", (run,)).fetchone() if run else None
    return row[0] if row else None


def hessian_esd(conn: sqlite3.Connection, sha: str) -> Rows:
    """``x, density`` of the newest hessian run's spectral density."""
    run = latest_run(conn, "hessian", sha)
    if run is None:
        return []
    return fetch(conn, "SELECT x, density FROM hessian_esd WHERE run_id = ? ORDER BY x", (run,))


def landscape_summaries(conn: sqlite3.Connection, sha: str) -> Rows:
    """The newest done topology summary of each dimension of a checkpoint's landscapes (``dims``, ``run_id`` and
    the summary columns), lowest dimension first: a 2-D and a 3-D landscape count their minima separately."""
    rows = fetch(
        conn,
        """
        SELECT l.dims, s.run_id, s.n_minima, s.n_minima_above, s.threshold, s.total_persistence, s.max_persistence,
               s.centre_loss, s.grid_min, s.grid_max, s.smad
        FROM landscape_summaries s JOIN latest_runs r ON r.id = s.run_id JOIN landscapes l ON l.id = s.landscape_id
        WHERE s.checkpoint = ? ORDER BY l.dims, r.finished_at DESC, r.id DESC""",
        (sha,),
    )
    newest: dict[int, Row] = {}
    for row in rows:
        newest.setdefault(row["dims"], row)
    return list(newest.values())


def prediction_fields(conn: sqlite3.Connection, sha: str) -> dict[str, Row]:
    """field name → row of ``prediction_fields`` from the newest predictions run of a checkpoint."""
    run = latest_run(conn, "predictions", sha)
    if run is None:
        return {}
    return {r["field"]: r for r in fetch(conn, "SELECT * FROM prediction_fields WHERE run_id = ?", (run,))}


def confusion(conn: sqlite3.Connection, sha: str, split: str) -> Rows | None:
    """``true_label, predicted_label, count`` of the newest predictions run, or None without such a run."""
    run = latest_run(conn, "predictions", sha)
    if run is None:
        return None
    return fetch(
        conn, "SELECT true_label, predicted_label, count FROM confusion_matrices WHERE run_id = ? AND split = ?", (run, split)
    )


# ---------------------------------------------------------------------------------------------
# Landscapes and their topology.


def landscape(conn: sqlite3.Connection, sha: str) -> Row | None:
    """The newest done 2-D grid landscape of a checkpoint (id, directions, normalization, steps, span, span_mode,
    centre_loss), or None: the newest among the parameter sets that draw a 2-D grid (``latest_runs_by_params``),
    so a later 1-D, 3-D or sampled landscape does not hide it."""
    return _first(
        conn,
        """
        SELECT l.id, l.directions, l.normalization, l.steps, l.span, l.span_mode, l.centre_loss
        FROM landscapes l JOIN latest_runs_by_params r ON r.id = l.run_id
        WHERE l.checkpoint = ? AND l.dims = 2 AND l.samples = 0
        ORDER BY r.finished_at DESC, r.id DESC LIMIT 1""",
        (sha,),
    )


def landscape_points(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """``point, i, j, a, b, loss`` of a landscape grid, in point order."""
    return fetch(conn, "SELECT point, i, j, a, b, loss FROM landscape_points WHERE run_id = ? ORDER BY point", (landscape_id,))


def landscape_grid_indices(conn: sqlite3.Connection, landscape_id: str) -> Rows:
    """``point, i, j, k, l, loss`` of a grid landscape (indices NULL past its dims), in point (C) order."""
    return fetch(conn, "SELECT point, i, j, k, l, loss FROM landscape_points WHERE run_id = ? ORDER BY point", (landscape_id,))


def latest_topology_run(conn: sqlite3.Connection, landscape_id: str) -> str | None:
    """Id of the newest done topology run of a landscape (among the parameter sets that analyse it), or None."""
    row = conn.execute(
        "SELECT r.id FROM latest_runs_by_params r WHERE r.metric = 'topology' AND EXISTS "
        "(SELECT 1 FROM merge_tree_nodes n WHERE n.run_id = r.id AND n.landscape_id = ?) ORDER BY r.finished_at DESC, r.id DESC LIMIT 1",
        (landscape_id,),
    ).fetchone()
    return row[0] if row else None


def merge_tree_minima(conn: sqlite3.Connection, run_id: str) -> Rows:
    """The minima of a topology run's merge tree placed on its grid: ``point, loss, persistence, basin_size, a, b``."""
    return fetch(
        conn,
        """
        SELECT n.point, n.value AS loss, n.persistence, n.basin_size, p.a, p.b
        FROM merge_tree_nodes n JOIN landscape_points p ON p.run_id = n.landscape_id AND p.point = n.point
        WHERE n.run_id = ? AND n.kind = 'minimum' ORDER BY n.persistence DESC""",
        (run_id,),
    )


def merge_tree_nodes(conn: sqlite3.Connection, run_id: str) -> Rows:
    """The nodes of a topology run's merge tree: ``node, kind, point, value, x, y, branch, persistence, basin_size``."""
    return fetch(
        conn,
        "SELECT node, kind, point, value, x, y, branch, persistence, basin_size FROM merge_tree_nodes WHERE run_id = ? ORDER BY node",
        (run_id,),
    )


def merge_tree_edges(conn: sqlite3.Connection, run_id: str) -> Rows:
    """The edges of a topology run's merge tree with both ends placed, in one read:
    ``lower_x, lower_y, upper_x, upper_y, branch``, ordered by (lower, upper); an edge whose end node
    is missing is left out."""
    return fetch(
        conn,
        """
        SELECT lo.x AS lower_x, lo.y AS lower_y, up.x AS upper_x, up.y AS upper_y, e.branch
        FROM merge_tree_edges e
        JOIN merge_tree_nodes lo ON lo.run_id = e.run_id AND lo.node = e.lower
        JOIN merge_tree_nodes up ON up.run_id = e.run_id AND up.node = e.upper
        WHERE e.run_id = ? ORDER BY e.lower, e.upper""",
        (run_id,),
    )


def persistence_pairs(conn: sqlite3.Connection, run_id: str) -> Rows:
    """``dim, birth, death, persistence, point`` (the birth point) of a topology run."""
    return fetch(
        conn,
        "SELECT dim, birth, death, persistence, birth_point AS point FROM persistence_pairs WHERE run_id = ? ORDER BY dim, birth",
        (run_id,),
    )


def run_params(conn: sqlite3.Connection, run_id: str) -> str | None:
    """A run's ``params_json``."""
    row = conn.execute("SELECT params_json FROM metric_runs WHERE id = ?", (run_id,)).fetchone()
    return row[0] if row else None


# ---------------------------------------------------------------------------------------------
# Per-setting results (the semi-global view).


def mode_positions(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """Every mode of a setting with its position in the newest MDS run (``x``, ``y`` None before one ran):
    ``checkpoint, name, seed, x, y``."""
    return fetch(
        conn,
        """
        SELECT c.sha256 AS checkpoint, c.name, c.seed, d.x, d.y
        FROM checkpoints c JOIN models m ON m.id = c.model_id
        LEFT JOIN mds_coords d ON d.checkpoint = c.sha256 AND d.run_id = (
            SELECT d2.run_id FROM mds_coords d2 JOIN latest_runs r ON r.id = d2.run_id
            WHERE d2.setting_id = ? ORDER BY r.finished_at DESC, r.id DESC LIMIT 1)
        WHERE m.setting_id = ?
        ORDER BY c.seed, c.name""",
        (setting_id, setting_id),
    )


def setting_performance(conn: sqlite3.Connection, setting_id: str) -> Rows:
    """``checkpoint, split, name, value`` of the newest performance run of each mode of a setting."""
    return fetch(
        conn,
        """
        SELECT p.checkpoint, p.split, p.name, p.value FROM performance p
        WHERE p.run_id IN (SELECT r.id FROM latest_runs r WHERE r.metric = 'performance' AND r.setting_id = ?)""",
        (setting_id,),
    )


def setting_eigenvalues(conn: sqlite3.Connection, setting_id: str, top_k: int) -> Rows:
    """``checkpoint, rank, value``: the ``top_k`` largest Hessian eigenvalues of each mode's newest hessian run."""
    if not has_table(conn, "hessian_eigenvalues"):
        return []
    return fetch(
        conn,
        """
        SELECT e.checkpoint, e.rank, e.value FROM hessian_eigenvalues e
        WHERE e.which = 'largest' AND e.rank < ? AND e.run_id IN (
            SELECT r.id FROM latest_runs r WHERE r.metric = 'hessian' AND r.setting_id = ?)
        ORDER BY e.checkpoint, e.rank""",
        (top_k, setting_id),
    )


def pair_metric_rows(conn: sqlite3.Connection, a: str, b: str) -> Rows:
    """Every ``pair_metrics`` row of the newest done run of each metric on an (unordered) pair, with the run's
    metric (``run_metric``) and parameters: ``run_metric, params_json, metric, curve, quantity, value, run_id``."""
    runs = {r["metric"]: r for r in pair_runs(conn, a, b)}
    if not runs:
        return []
    ids = tuple(r["id"] for r in runs.values())
    marks = ",".join("?" * len(ids))
    rows = fetch(
        conn,
        f"""SELECT r.metric AS run_metric, r.params_json, pm.metric, pm.curve, pm.quantity, pm.value, pm.run_id
            FROM pair_metrics pm JOIN metric_runs r ON r.id = pm.run_id WHERE pm.run_id IN ({marks})
            ORDER BY pm.metric, pm.curve""",
        ids,
    )
    return rows


def setting_pair_metrics(conn: sqlite3.Connection, setting_id: str, metric: str) -> Rows:
    """``pair_metrics`` rows of ``metric`` (mc, cka, ...) for the pairs of a setting, from the newest done run of
    each pair: ``checkpoint_a, checkpoint_b, curve, quantity, value, params_json``."""
    return fetch(
        conn,
        """
        SELECT pm.checkpoint_a, pm.checkpoint_b, pm.curve, pm.quantity, pm.value, r.params_json
        FROM pair_metrics pm JOIN latest_runs r ON r.id = pm.run_id
        WHERE pm.metric = ? AND r.setting_id = ?
        ORDER BY pm.checkpoint_a, pm.checkpoint_b, pm.curve""",
        (metric, setting_id),
    )


def setting_taxonomy(conn: sqlite3.Connection, setting_id: str) -> Row | None:
    """The newest done taxonomy row of a setting (with ``run_id`` and ``thresholds_json``), or None."""
    return _first(
        conn,
        """
        SELECT t.run_id, t.phase, t.mc, t.cka, t.log_top_eigenvalue, t.log_trace, t.train_loss, t.train_error, t.test_error,
               t.n_checkpoints, t.n_pairs, t.thresholds_json
        FROM taxonomy t JOIN latest_runs r ON r.id = t.run_id
        WHERE t.setting_id = ? ORDER BY r.finished_at DESC, r.id DESC LIMIT 1""",
        (setting_id,),
    )


# ---------------------------------------------------------------------------------------------
# Per-experiment results (the global view).


# The experiment's newest done taxonomy run (latest_runs: one per metric and subject; a taxonomy run's subject is its
# experiment). Uncorrelated, so SQLite runs it once per query, not once per setting.
_LATEST_TAXONOMY_RUN = (
    "(SELECT id FROM latest_runs WHERE metric = 'taxonomy' AND subject = :experiment ORDER BY finished_at DESC, id DESC LIMIT 1)"
)


def experiment_taxonomy(conn: sqlite3.Connection, experiment_id: str) -> Rows:
    """One row per setting of an experiment, by label, with the values of the experiment's newest done taxonomy
    run (None where that run has no row for the setting)."""
    return fetch(
        conn,
        f"""
        SELECT s.id AS setting_id, s.label, s.values_json,
               (SELECT count(*) FROM models m JOIN checkpoints c ON c.model_id = m.id WHERE m.setting_id = s.id) AS n_modes,
               t.phase, t.mc, t.cka, t.log_top_eigenvalue, t.log_trace, t.train_loss, t.train_error, t.test_error,
               t.sharp, t.well_connected, t.high_cka, t.note
        FROM settings s LEFT JOIN taxonomy t ON t.setting_id = s.id AND t.run_id = {_LATEST_TAXONOMY_RUN}
        WHERE s.experiment_id = :experiment
        ORDER BY s.label, s.id""",
        {"experiment": experiment_id},
    )


def experiment_phases(conn: sqlite3.Connection, experiment_id: str) -> list[tuple[str | None, float | None]]:
    """``(phase, mc)`` of each setting of an experiment, in no set order, from the rows of
    :func:`experiment_taxonomy` (None where not computed): what the taxonomy chart's legend and mc axis need,
    without the other columns."""
    return conn.execute(
        f"""SELECT t.phase, t.mc FROM settings s
            LEFT JOIN taxonomy t ON t.setting_id = s.id AND t.run_id = {_LATEST_TAXONOMY_RUN}
            WHERE s.experiment_id = :experiment""",
        {"experiment": experiment_id},
    ).fetchall()


def setting_keys(conn: sqlite3.Connection, experiment_id: str) -> list[str]:
    """The keys of an experiment's settings' ``values`` in first-seen order: settings by label (then id), each
    one's keys in their written order (what :func:`losslens.views.taxonomy.keys_of` gives from the parsed values
    of :func:`experiment_taxonomy`'s rows). SQLite's ``json_each`` reads them, so a page need not parse every
    setting's JSON; each key's ``position`` is taken from the row of its first setting (SQLite's rule for bare
    columns beside ``min()``)."""
    return [
        key
        for key, _, _ in conn.execute(
            """SELECT j.key, min(s.label || char(0) || s.id) AS first_setting, j.id AS position
               FROM settings s, json_each(coalesce(nullif(s.values_json, ''), '{}')) j
               WHERE s.experiment_id = ?
               GROUP BY j.key ORDER BY first_setting, position""",
            (experiment_id,),
        )
    ]


# ---------------------------------------------------------------------------------------------
# Per-pair results (the pair view).


def curve_points(conn: sqlite3.Connection, run_id: str) -> Rows:
    """``checkpoint_a, curve, t, loss, error`` of a connectivity run, by curve and t."""
    return fetch(
        conn, "SELECT checkpoint_a, curve, t, loss, error FROM curve_points WHERE run_id = ? ORDER BY curve, t", (run_id,)
    )


def layer_cka(conn: sqlite3.Connection, a: str, b: str) -> Rows:
    """Layer-CKA rows (``checkpoint_a, layer_a, layer_b, index_a, index_b, value``) of the newest done run on a pair."""
    return fetch(
        conn,
        """
        SELECT checkpoint_a, layer_a, layer_b, index_a, index_b, value FROM layer_cka
        WHERE run_id = (SELECT l.run_id FROM layer_cka l JOIN latest_runs r ON r.id = l.run_id
                        WHERE (l.checkpoint_a = ? AND l.checkpoint_b = ?) OR (l.checkpoint_a = ? AND l.checkpoint_b = ?)
                        ORDER BY r.finished_at DESC, r.id DESC LIMIT 1)""",
        (a, b, b, a),
    )
