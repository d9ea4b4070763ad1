"""``losslens demo --quick`` end to end against a real catalog: trained PINNs, every metric, exports, and an
incremental rerun. The demo runs once per module (about a minute on one core)."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from losslens.case_studies import load_study, pinn_claims, pinn_rows
from losslens.cli import app
from losslens.demo import QUICK, StudyResult, run_demo

pytestmark = pytest.mark.slow  # trains the quick PINN study end to end


ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_METRICS = ("performance", "hessian", "landscape", "topology", "predictions")
PAIR_METRICS = ("connectivity", "cka")
PHASES = {"I", "II", "III", "IV-A", "IV-B"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def first(demo_dir: Path) -> StudyResult:
    return run_demo(demo_dir, quick=True)


@pytest.fixture(scope="module")
def second(first: StudyResult, demo_dir: Path) -> StudyResult:
    return run_demo(demo_dir, quick=True)


@pytest.fixture(scope="module")
def db(first: StudyResult) -> sqlite3.Connection:
    conn = sqlite3.connect(first.catalog)
    conn.row_factory = sqlite3.Row
    return conn


def rows(db: sqlite3.Connection, sql: str, params: tuple = ()) -> list[dict]:
    return [dict(r) for r in db.execute(sql, params)]


def test_first_run_trains_and_computes_everything(first: StudyResult):
    """Oracle: the QUICK plan — β ∈ {1, 30} × seeds {0, 1} — so 4 runs trained, 4 checkpoints added, no failure."""
    assert first.training.trained == 4 and first.ingested.count("added") == 4
    assert first.computed.failed == 0
    done = {m.metric: m.done for m in first.computed.metrics}
    assert done == {
        "performance": 4,
        "hessian": 4,
        "landscape": 4,
        "topology": 4,
        "connectivity": 2,
        "cka": 2,
        "similarity": 2,
        "taxonomy": 1,
        "predictions": 4,
    }
    assert not first.exports_skipped


def test_tables_are_filled_for_every_checkpoint_pair_and_setting(first: StudyResult, db: sqlite3.Connection):
    """Oracle: the catalog's own checkpoints and settings; each metric's documented rows per subject
    (k = 10 eigenvalues, 21×21 landscape points, 7 curve points per curve, one taxonomy row per setting)."""
    shas = [r["sha256"] for r in rows(db, "SELECT sha256 FROM checkpoints")]
    assert len(shas) == 4
    assert rows(db, "SELECT metric, error FROM metric_runs WHERE status != 'done'") == []
    for sha in shas:
        for metric in CHECKPOINT_METRICS:
            assert (
                db.execute(
                    "SELECT count(*) FROM metric_runs WHERE metric = ? AND checkpoint = ? AND status = 'done'", (metric, sha)
                ).fetchone()[0]
                == 1
            ), (metric, sha)

        def count(table: str, where: str = "", sha: str = sha) -> int:
            return db.execute(f"SELECT count(*) FROM {table} WHERE checkpoint = ? {where}", (sha,)).fetchone()[0]

        assert count("performance") == 7  # loss_ic, loss_bc, loss_residual, loss, rel_l2, mean_abs, linf
        assert count("hessian_eigenvalues", "AND which = 'largest'") == 10
        assert count("hessian_trace") == 1 and count("hessian_esd") == 256
        assert count("landscapes") == 1 and count("landscape_summaries") == 1
        assert (
            db.execute(
                "SELECT count(*) FROM landscape_points p JOIN landscapes l ON l.id = p.run_id WHERE l.checkpoint = ?", (sha,)
            ).fetchone()[0]
            == 21 * 21
        )
        assert count("persistence_pairs", "AND dim = 0") >= 1 and count("merge_tree_nodes", "AND kind = 'minimum'") >= 1
        assert count("prediction_fields") == 2  # u and u_exact
        assert count("mds_coords") == 1
    pairs = rows(db, "SELECT checkpoint, checkpoint_b FROM metric_runs WHERE metric = 'connectivity'")
    assert len(pairs) == 2
    for p in pairs:
        a, b = p["checkpoint"], p["checkpoint_b"]
        metrics = rows(
            db,
            "SELECT metric, curve FROM pair_metrics WHERE checkpoint_a = ? AND checkpoint_b = ? ORDER BY metric, curve",
            (a, b),
        )
        assert [(m["metric"], m["curve"]) for m in metrics] == [
            ("cka", None),
            ("cka_debiased", None),
            ("fit_converged", "bezier"),
            ("fit_rel_change", "bezier"),
            ("mc", "bezier"),
            ("mc", "linear"),
        ]
        assert (
            db.execute("SELECT count(*) FROM curve_points WHERE checkpoint_a = ? AND checkpoint_b = ?", (a, b)).fetchone()[0]
            == 2 * 7
        )
        assert db.execute("SELECT count(*) FROM layer_cka WHERE checkpoint_a = ? AND checkpoint_b = ?", (a, b)).fetchone()[0] > 0
    settings = rows(db, "SELECT id FROM settings")
    assert len(settings) == 2
    assert db.execute("SELECT count(DISTINCT setting_id) FROM taxonomy").fetchone()[0] == 2


def test_every_metric_value_is_finite_or_flagged(db: sqlite3.Connection):
    """Oracle: math.isfinite on every stored REAL; NULL only where the table flags the value non-finite
    (is_finite = 0) or where the schema defines NULL (PINN has no train_error; SMAD without a saddle; curvature
    beyond dims)."""
    tables = [
        "performance",
        "hessian_eigenvalues",
        "hessian_trace",
        "hessian_esd",
        "hessian_summaries",
        "landscapes",
        "landscape_points",
        "landscape_summaries",
        "persistence_pairs",
        "merge_tree_nodes",
        "pair_metrics",
        "curve_points",
        "layer_cka",
        "mds_coords",
        "taxonomy",
        "prediction_fields",
    ]
    for table in tables:
        for row in rows(db, f"SELECT * FROM {table}"):
            for column, value in row.items():
                if isinstance(value, float):
                    assert math.isfinite(value), (table, column, value)
            if "is_finite" in row:
                assert (row.get("value", row.get("loss")) is not None) == bool(row["is_finite"]), (table, row)
    required = {
        "performance": ["value"],
        "hessian_eigenvalues": ["value"],
        "hessian_trace": ["estimate", "std_error"],
        "pair_metrics": ["value"],
        "curve_points": ["loss", "error"],
        "mds_coords": ["x", "y"],
        "layer_cka": ["value"],
        "landscape_summaries": ["n_minima", "n_minima_above", "total_persistence", "centre_loss", "curvature_1", "curvature_2"],
        "taxonomy": ["train_loss", "test_error", "log_top_eigenvalue", "log_trace", "mc", "cka"],
    }
    for table, columns in required.items():
        for column in columns:
            nulls = db.execute(f"SELECT count(*) FROM {table} WHERE {column} IS NULL").fetchone()[0]
            assert nulls == 0, (table, column)
    assert (
        db.execute("SELECT count(*) FROM landscape_points WHERE is_finite = 0").fetchone()[0]
        == db.execute("SELECT sum(n_nonfinite) FROM landscapes").fetchone()[0]
    )


def test_every_setting_has_a_phase(first: StudyResult, db: sqlite3.Connection):
    """Oracle: Yang et al.'s five phases; the taxonomy table and the demo's table agree setting by setting."""
    taxonomy = {
        r["label"]: r["phase"] for r in rows(db, "SELECT s.label, t.phase FROM taxonomy t JOIN settings s ON s.id = t.setting_id")
    }
    assert set(taxonomy) == {"beta=1", "beta=30"} and set(taxonomy.values()) <= PHASES
    assert {r["setting"]: r["phase"] for r in first.settings} == taxonomy


def test_pinn_error_at_beta_1_is_far_below_the_largest_beta(first: StudyResult):
    """Oracle: Krishnapriyan et al. — the PINN learns β = 1 (rel. L2 ≈ 1e-2) and fails (≈ 1) at β ≥ 20–30."""
    error = {r["values"]["beta"]: r["rel_l2"] for r in first.settings}
    assert error[1.0] < 0.1 and error[30.0] > 0.5
    assert error[1.0] < error[30.0] / 10


def test_setting_table_medians_match_the_raw_rows(first: StudyResult, db: sqlite3.Connection):
    """Oracle: statistics.median over the performance, Hessian and topology rows read straight from SQLite."""
    for row in first.settings:
        shas = [
            r["sha256"]
            for r in rows(
                db,
                "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id "
                "JOIN settings s ON s.id = m.setting_id WHERE s.label = ?",
                (row["setting"],),
            )
        ]
        marks = ",".join("?" * len(shas))
        rel = [
            r["value"]
            for r in rows(db, f"SELECT value FROM performance WHERE name = 'rel_l2' AND checkpoint IN ({marks})", tuple(shas))
        ]
        top = [
            r["value"]
            for r in rows(
                db,
                f"SELECT value FROM hessian_eigenvalues WHERE which = 'largest' AND rank = 0 AND checkpoint IN ({marks})",
                tuple(shas),
            )
        ]
        minima = [
            r["n_minima_above"]
            for r in rows(db, f"SELECT n_minima_above FROM landscape_summaries WHERE checkpoint IN ({marks})", tuple(shas))
        ]
        assert row["seeds"] == len(shas) == len(rel) == len(top) == 2
        assert row["rel_l2"] == pytest.approx(statistics.median(rel))
        assert row["top_eigenvalue"] == pytest.approx(statistics.median(top))
        assert row["n_minima"] == pytest.approx(statistics.median(minima))


def test_sidecar_error_equals_the_performance_metric(first: StudyResult, db: sqlite3.Connection):
    """Oracle: training's own final evaluation (the sidecar) against the performance metric recomputed from the
    saved checkpoint: the same weights and grid must give the same relative L2 error."""
    for run in first.training.runs:
        sidecar = json.loads(run.sidecar.read_text())
        stored = db.execute(
            "SELECT p.value FROM performance p JOIN checkpoints c ON c.sha256 = p.checkpoint "
            "WHERE c.path = ? AND p.name = 'rel_l2'",
            (str(run.checkpoint.resolve()),),
        ).fetchone()
        assert stored is not None
        assert stored[0] == pytest.approx(sidecar["metrics"]["rel_l2"], rel=1e-5)


def test_exports_are_real_pngs_and_the_viewer(first: StudyResult):
    """Oracle: the PNG signature; every setting has its modes view and every checkpoint its landscape."""
    assert first.views and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in first.views)
    names = {p.relative_to(first.out / "views" / QUICK.name).as_posix() for p in first.views}
    assert {"taxonomy.png", "beta=1/modes.png", "beta=30/modes.png"} <= names
    assert sum(n.endswith("/landscape.png") for n in names) == 4
    assert first.viewer.is_file() and (first.viewer.parent / "data.js").stat().st_size > 0


def test_second_run_recomputes_nothing(second: StudyResult, first: StudyResult):
    """Oracle: the first run's outputs — the rerun trains 0, adds 0, computes 0 and keeps the exports."""
    assert second.training.trained == 0 and all(r.skipped for r in second.training.runs)
    assert second.ingested.count("added") == 0 and second.ingested.count("present") == 4
    assert second.recomputed == 0
    assert all(m.skipped == m.planned and m.failed == 0 for m in second.computed.metrics)
    assert second.exports_skipped and second.views == first.views
    assert second.settings == first.settings


def test_cli_prints_the_table_and_how_to_browse(second: StudyResult, demo_dir: Path):
    """Oracle: the catalog path and viewer path the library reports; the settings of the QUICK plan."""
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(demo_dir)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "beta=1" in out and "beta=30" in out
    assert f"losslens serve --catalog {second.catalog}" in out
    assert str(second.viewer) in out


def test_readme_quickstart_starts_with_the_demo():
    """Oracle: README.md itself — the first command of the Quickstart block is the demo."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    first_line = block.group(1).splitlines()[0]
    assert first_line.split("#")[0].strip() == "bash .ci/setup && .venv/bin/losslens demo"


def test_report_rows_match_the_setting_table_and_verdicts_are_the_comparisons(first: StudyResult):
    """Oracles: the demo's setting table (an independent query path) for the report's medians, and the comparisons
    done by hand on those rows for each claim's verdict."""
    rows = pinn_rows(load_study(first.catalog, first.study))
    by = {r["values"]["beta"]: r for r in first.settings}
    assert [r["beta"] for r in rows] == sorted(by)
    for row in rows:
        assert row["rel_l2"] == pytest.approx(by[row["beta"]]["rel_l2"])
        assert row["top"] == pytest.approx(by[row["beta"]]["top_eigenvalue"])
        assert row["trace"] == pytest.approx(by[row["beta"]]["trace"])
        assert row["fits"] == 1 and row["converged"] in (0, 1)  # 2 seeds: one pair, one bend fit
    claims = {(c.finding, c.measure): c for c in pinn_claims(rows)}
    learns = claims[("the PINN learns at β = 1 (rel. L2 ≈ 1e-2)", "median rel. L2")]
    assert learns.holds is (by[1.0]["rel_l2"] < 0.05)
    sharper = claims[("larger β gives a sharper landscape", "median top Hessian eigenvalue")]
    assert sharper.holds is (by[1.0]["top_eigenvalue"] < by[30.0]["top_eigenvalue"])
    poorly = claims[("larger β gives poor connectivity (mc < 0)", "mean mc")]
    assert poorly.holds is (rows[-1]["mc"] < 0)
    assert ("Agrees" if poorly.holds else "Does not agree") in poorly.line()
