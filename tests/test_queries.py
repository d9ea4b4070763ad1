"""The store's named read queries and the "latest done run" rule of migrations/0006_read_rules.sql.

Oracle: runs written by hand with known statuses, parameters and finish times, so the expected choice is
read off the fixture, not computed by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from losslens.errors import LossLensError
from losslens.store import Artifact, open_catalog, queries, reads


def add_run(cat, run_id, metric, subject, *, params_hash="p1", status="done", finished_at="2026-01-01T10:00:00", **where):
    """One metric_runs row on the catalog's first experiment (as the runner would store it)."""
    experiment_id = cat.conn.execute("SELECT id FROM experiments").fetchone()[0]
    with cat.write() as db:
        db["metric_runs"].insert(
            {
                "id": run_id,
                "metric": metric,
                "scope": where.pop("scope", "checkpoint"),
                "subject": subject,
                "checkpoint": where.pop("checkpoint", None),
                "checkpoint_b": where.pop("checkpoint_b", None),
                "setting_id": where.pop("setting_id", None),
                "experiment_id": experiment_id,
                "params_json": "{}",
                "params_hash": params_hash,
                "status": status,
                "error": None if status == "done" else "boom",
                "code_version": "test",
                "started_at": finished_at,
                "finished_at": finished_at,
            }
        )


@pytest.fixture
def cat(pinn_catalog):
    with open_catalog(pinn_catalog) as catalog:
        yield catalog


def shas(cat) -> list[str]:
    return [r["sha256"] for r in queries.checkpoint_records(cat.conn)]


def test_latest_run_policy_newest_done_with_any_or_given_parameters(cat):
    """Done runs only; the last finished wins; params_hash narrows to one parameter set."""
    a = shas(cat)[0]
    add_run(cat, "r1", "hessian", a, checkpoint=a, params_hash="p1", finished_at="2026-01-01T10:00:00")
    add_run(cat, "r2", "hessian", a, checkpoint=a, params_hash="p2", finished_at="2026-01-01T11:00:00")
    add_run(cat, "r3", "hessian", a, checkpoint=a, params_hash="p1", finished_at="2026-01-01T12:00:00", status="failed")
    assert queries.latest_run(cat.conn, "hessian", a)["id"] == "r2"
    assert queries.latest_run(cat.conn, "hessian", a, params_hash="p1")["id"] == "r1"
    assert queries.latest_run(cat.conn, "hessian", a, params_hash="p3") is None
    assert queries.latest_run(cat.conn, "landscape", a) is None
    # the SQL views themselves, as a Datasette user would query them
    assert [r[0] for r in cat.conn.execute("SELECT id FROM latest_runs WHERE metric = 'hessian'")] == ["r2"]
    assert sorted(r[0] for r in cat.conn.execute("SELECT id FROM latest_runs_by_params WHERE metric = 'hessian'")) == ["r1", "r2"]


def test_ties_are_broken_by_run_id_and_pairs_are_unordered(cat):
    a, b = shas(cat)[:2]
    add_run(cat, "ra", "mc", f"{a}:{b}", scope="pair", checkpoint=a, checkpoint_b=b, finished_at="2026-01-01T10:00:00")
    add_run(
        cat,
        "rb",
        "mc",
        f"{a}:{b}",
        scope="pair",
        checkpoint=a,
        checkpoint_b=b,
        params_hash="p2",
        finished_at="2026-01-01T10:00:00",
    )
    assert queries.latest_pair_run(cat.conn, "mc", a, b)["id"] == "rb"
    assert queries.latest_pair_run(cat.conn, "mc", b, a)["id"] == "rb"
    assert queries.latest_pair_run(cat.conn, "mc", b, a, params_hash="p1")["id"] == "ra"


def test_latest_runs_and_rows_per_subject_within_an_experiment(cat):
    """Two checkpoints, one with an older and a newer run: only the newer run's rows are read."""
    a, b = shas(cat)[:2]
    add_run(cat, "old", "performance", a, checkpoint=a, finished_at="2026-01-01T10:00:00")
    add_run(cat, "new", "performance", a, checkpoint=a, params_hash="p2", finished_at="2026-01-02T10:00:00")
    add_run(cat, "onb", "performance", b, checkpoint=b, finished_at="2026-01-01T10:00:00")
    with cat.write() as db:
        db["performance"].insert_all(
            [
                {"run_id": "old", "checkpoint": a, "split": "train", "name": "loss", "value": 9.0},
                {"run_id": "new", "checkpoint": a, "split": "train", "name": "loss", "value": 1.0},
                {"run_id": "new", "checkpoint": a, "split": "test", "name": "loss", "value": 2.0},
                {"run_id": "onb", "checkpoint": b, "split": "train", "name": "loss", "value": 3.0},
            ]
        )
    experiment_id = queries.experiments(cat.conn)[0]["id"]
    runs = queries.latest_runs(cat.conn, "performance", experiment_id=experiment_id)
    assert sorted(r["id"] for r in runs) == ["new", "onb"]
    got = queries.latest_rows(
        cat.conn, "performance", "performance", ["checkpoint", "value"], experiment_id=experiment_id, match={"split": "train"}
    )
    assert sorted((r["checkpoint"], r["value"]) for r in got) == sorted([(a, 1.0), (b, 3.0)])
    assert [r["value"] for r in queries.run_rows(cat.conn, "performance", "new", ["value"], order_by=["split"])] == [2.0, 1.0]
    assert queries.latest_run_with(cat.conn, "performance", checkpoint=a) == "new"
    assert queries.subject_counts(cat.conn, "performance", experiment_id) == {"done": 2, "failed": 0}


def test_names_from_callers_are_checked_against_the_schema(cat):
    """Identifiers never reach SQL unchecked: unknown tables and columns are refused with the fix."""
    with pytest.raises(LossLensError, match="no nope table"):
        queries.run_rows(cat.conn, "nope", "r1")
    with pytest.raises(LossLensError, match="no column 'x; DROP TABLE checkpoints'"):
        queries.run_rows(cat.conn, "performance", "r1", ["x; DROP TABLE checkpoints"])
    with pytest.raises(LossLensError, match="no column"):
        queries.latest_run_with(cat.conn, "performance", **{"1=1 OR checkpoint": "x"})


def test_records_of_experiments_settings_and_modes(cat):
    """Oracle: the tiny PINN sweep of conftest (β ∈ {1, 5} × seeds {0, 1})."""
    (experiment,) = queries.experiments(cat.conn)
    assert experiment["name"] == "tiny-pinn"
    assert queries.experiments(cat.conn, "tiny-pinn") == [experiment] == queries.experiments(cat.conn, experiment["id"])
    settings = queries.settings_of(cat.conn, experiment["id"])
    assert [s["label"] for s in settings] == ["beta=1", "beta=5"]
    modes = queries.modes_of(cat.conn, settings[1]["id"])
    assert [m["seed"] for m in modes] == [0, 1] and {m["setting_label"] for m in modes} == {"beta=5"}
    record = queries.checkpoint_record(cat.conn, modes[0]["sha256"])
    assert record["experiment"] == "tiny-pinn" and record["setting_id"] == settings[1]["id"]
    assert queries.checkpoint_record(cat.conn, "0" * 64) is None
    assert queries.match_checkpoints(cat.conn, modes[0]["sha256"][:10]) == [modes[0]["sha256"]]
    assert queries.match_settings(cat.conn, "beta=5") == [settings[1]["id"]]
    assert queries.setting_sizes(cat.conn, experiment["id"]) == [2, 2]
    summary = queries.experiment_summaries(cat.conn)[0]
    assert (summary["settings"], summary["checkpoints"]) == (2, 4)


def test_artifacts_of_a_run(cat):
    a = shas(cat)[0]
    add_run(cat, "r1", "hessian", a, checkpoint=a)
    art = Artifact.from_array("test_kind", np.arange(6.0).reshape(2, 3))
    with cat.write() as db:
        cat.save_artifacts(db, [art])
        db["run_artifacts"].insert({"run_id": "r1", "name": "vectors", "artifact": art.sha256})
    (row,) = queries.run_artifacts(cat.conn, "r1")
    assert (row["name"], row["sha256"], row["kind"]) == ("vectors", art.sha256, "test_kind")
    assert np.array_equal(cat.run_artifact("r1", "vectors"), np.arange(6.0).reshape(2, 3))
    assert queries.run_artifact_path(cat.conn, "r1", "other") is None


def test_setting_keys_in_first_seen_order_of_settings_by_label(cat):
    """The sweep's keys as the taxonomy chart's axes take them: settings by label then id (not by insertion), each
    setting's keys in their written order, each key once; empty values add none. Expected order written by hand."""
    with cat.write() as db:
        db["experiments"].insert({"id": "e" * 16, "name": "keys", "created_at": "2026-01-01T00:00:00"})
        for sid, label, values in [
            ("3" * 16, "c", '{"lr": 1, "beta": 3}'),
            ("1" * 16, "a", '{"width": 8, "lr": 0.1}'),
            ("4" * 16, "d", "{}"),
            ("5" * 16, "b", '{"alpha": 1}'),  # the same label as the next: the setting id breaks the tie
            ("2" * 16, "b", '{"depth": 2, "width": 4}'),
        ]:
            db["settings"].insert({"id": sid, "experiment_id": "e" * 16, "label": label, "values_json": values})
    assert reads.setting_keys(cat.conn, "e" * 16) == ["width", "lr", "depth", "alpha", "beta"]
    assert reads.setting_keys(cat.conn, "f" * 16) == []
