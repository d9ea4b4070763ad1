"""Which metric run a view shows: the latest successful one for its subject."""

from __future__ import annotations

import sqlite3


def latest_run(conn: sqlite3.Connection, metric: str, checkpoint: str, checkpoint_b: str | None = None) -> str | None:
    """Id of the newest done run of ``metric`` on a checkpoint, or on an (unordered) pair of checkpoints."""
    if checkpoint_b is None:
        row = conn.execute(
            "SELECT id FROM metric_runs WHERE metric = ? AND status = 'done' AND checkpoint = ? AND checkpoint_b IS NULL "
            "ORDER BY finished_at DESC LIMIT 1",
            (metric, checkpoint),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT id FROM metric_runs WHERE metric = ? AND status = 'done' AND "
            "((checkpoint = ? AND checkpoint_b = ?) OR (checkpoint = ? AND checkpoint_b = ?)) "
            "ORDER BY finished_at DESC LIMIT 1",
            (metric, checkpoint, checkpoint_b, checkpoint_b, checkpoint),
        ).fetchone()
    return row[0] if row else None
