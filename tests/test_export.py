"""Static exports over the small pipeline-built catalogs of test_datasette_plugin (a tiny PINN sweep
with every metric, a tiny digits pair with predictions): every view in every format, the same
specs as the Datasette plugin serves, ``export all``, the viewer's data and its compact columns."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import vl_convert as vlc
from helpers import EVIL_MODEL, METADATA, get, pinn_ids, query, shared_catalogs
from PIL import Image
from typer.testing import CliRunner

from losslens.cli import app
from losslens.errors import LossLensError
from losslens.export import export_all, export_chart, export_viewer
from losslens.export.all_views import CHECKPOINT_VIEWS, PAIR_VIEWS, SETTING_VIEWS, safe_name
from losslens.export.chart import FORMATS, read_catalog
from losslens.export.codec import Blobs, decode_rows, encode_rows
from losslens.export.data import viewer_data
from losslens.export.viewer import data_script
from losslens.views import registry
from losslens.views.registry import VIEWS
from losslens.views.source import inline

# builds the shared catalog: ingest and every metric over a tiny sweep (the pipeline end to end)
pytestmark = pytest.mark.slow

SVG = "{http://www.w3.org/2000/svg}svg"


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> tuple[Path, Path]:
    return shared_catalogs(tmp_path_factory)


def subject(ids: dict, view: str) -> dict:
    need = VIEWS[view].subject
    if need == "experiment":
        return {}
    if need == "setting":
        return {"setting": ids["setting"]}
    if need == "checkpoint":
        return {"checkpoint": ids["modes"][0]}
    return {"pair": (ids["modes"][0], ids["modes"][1])}


def check_output(path: Path, fmt: str) -> None:
    data = path.read_bytes()
    assert len(data) > 0
    if fmt == "svg":
        root = ET.fromstring(data)
        assert root.tag == SVG and len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 0
    elif fmt == "png":
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.size[0] > 100 and image.size[1] > 50
        lo, hi = image.convert("L").getextrema()
        assert lo < hi  # not a blank canvas
    elif fmt == "pdf":
        assert data.startswith(b"%PDF")
    elif fmt == "html":
        text = data.decode()
        assert not re.search(r"<script[^>]*\bsrc=", text, re.IGNORECASE)  # nothing loaded: no CDN, no http
        assert "vegaEmbed" in text and "default-src 'none'" in text  # the content policy forbids every fetch
    else:
        spec = json.loads(data)
        assert '"url":' not in json.dumps(spec)  # every data source is inline
        vlc.vegalite_to_vega(spec)


# The views of 3-D/4-D landscapes need one, which this shared catalog lacks: test_nd_views covers them.
ND_VIEWS = {
    name
    for name, v in VIEWS.items()
    if "nd_landscape" in v.datasets or "nd_persistence" in v.datasets or "nd_tree_nodes" in v.datasets
}


@pytest.mark.parametrize("view", [v for v in VIEWS if v not in ND_VIEWS])
def test_every_view_in_every_format(catalogs, tmp_path, view):
    """Oracles: xml.etree parses the SVG (an <svg> root with drawn paths), PIL decodes a non-blank PNG,
    the PDF has its %PDF magic, the HTML has no script loaded by src, the JSON compiles with vl-convert."""
    db = catalogs[0]
    ids = pinn_ids(db)
    for fmt in FORMATS:
        out = export_chart(db, view, tmp_path / f"{view}.{fmt}", **subject(ids, view))
        check_output(out, fmt)


def test_classifier_predictions_are_confusion_matrices(catalogs, tmp_path):
    """Oracle: the digits pair's predictions view holds both confusion matrices, each summing to the
    test split's size (the counts of the predictions metric)."""
    db = catalogs[1]
    with read_catalog(db) as conn:
        a, b = (r[0] for r in conn.execute("SELECT sha256 FROM checkpoints ORDER BY seed"))
        n_test = conn.execute("SELECT sum(count) FROM confusion_matrices WHERE split = 'test'").fetchone()[0] / 2
    out = export_chart(db, "predictions", tmp_path / "p.json", pair=(a, b))
    spec = json.loads(out.read_text())
    cells = spec["data"]["values"]
    for model in ("a", "b"):
        assert sum(c["count"] for c in cells if c["model"] == model) == n_test
    check_output(export_chart(db, "predictions", tmp_path / "p.png", pair=(a, b)), "png")


def inline_tables(spec: object) -> list[list[dict]]:
    """Every inline ``values`` table of a Vega-Lite spec (top level, layers, concatenations)."""
    found: list[list[dict]] = []
    if isinstance(spec, dict):
        if isinstance(spec.get("values"), list) and all(isinstance(r, dict) for r in spec["values"]):
            found.append(spec["values"])
        for value in spec.values():
            found += inline_tables(value)
    elif isinstance(spec, list):
        for value in spec:
            found += inline_tables(value)
    return found


def test_exported_specs_carry_the_catalogs_rows(catalogs, tmp_path):
    """Oracle: plain SQL on the catalog's own tables (landscape cells vs ``landscape_points``, Hessian
    bars vs ``hessian_eigenvalues``, curve profile vs ``curve_points``, CKA heat map vs ``layer_cka``):
    the spec ``export chart`` writes (JSON file) and the one the Datasette plugin serves (its data
    routes fetched through ds.client) each ship exactly those rows, so the two agree on the data."""
    from datasette.app import Datasette

    db = catalogs[0]
    ds = Datasette([str(db)], metadata={**METADATA})

    def sql(statement: str, params: tuple) -> list[tuple]:
        return sorted(tuple(r.values()) for r in query(db, statement, params))

    sha = query(db, "SELECT checkpoint FROM landscapes WHERE dims = 2 ORDER BY checkpoint LIMIT 1")[0]["checkpoint"]
    (landscape,) = query(db, "SELECT id FROM landscapes WHERE checkpoint = ? AND dims = 2", (sha,))
    assert len(query(db, "SELECT DISTINCT run_id FROM hessian_eigenvalues WHERE checkpoint = ?", (sha,))) == 1
    pair = query(db, "SELECT DISTINCT checkpoint_a AS a, checkpoint_b AS b FROM curve_points ORDER BY 1, 2 LIMIT 1")[0]
    assert (
        len(
            query(
                db, "SELECT DISTINCT run_id FROM curve_points WHERE checkpoint_a = ? AND checkpoint_b = ?", (pair["a"], pair["b"])
            )
        )
        == 1
    )
    assert (
        len(
            query(db, "SELECT DISTINCT run_id FROM layer_cka WHERE checkpoint_a = ? AND checkpoint_b = ?", (pair["a"], pair["b"]))
        )
        == 1
    )
    cases = {
        # view: (subject, route args, columns, the catalog's rows)
        "landscape": (
            {"checkpoint": sha},
            ("point", "a", "b", "loss"),
            sql("SELECT point, a, b, loss FROM landscape_points WHERE run_id = ?", (landscape["id"],)),
        ),
        "hessian": (
            {"checkpoint": sha},
            ("which", "rank", "value"),
            sql("SELECT which, rank, value FROM hessian_eigenvalues WHERE checkpoint = ?", (sha,)),
        ),
        "curve": (
            {"a": pair["a"], "b": pair["b"]},
            ("curve", "t", "loss"),
            sql("SELECT curve, t, loss FROM curve_points WHERE checkpoint_a = ? AND checkpoint_b = ?", (pair["a"], pair["b"])),
        ),
        "layer-cka": (
            {"a": pair["a"], "b": pair["b"]},
            ("index_a", "index_b", "value"),
            sql(
                "SELECT index_a, index_b, value FROM layer_cka WHERE checkpoint_a = ? AND checkpoint_b = ?",
                (pair["a"], pair["b"]),
            ),
        ),
    }
    for view, (args, columns, expected) in cases.items():
        assert len(expected) > 3, view
        subject = {"pair": (args["a"], args["b"])} if "a" in args else args
        out = export_chart(db, view, tmp_path / f"{view}.json", **subject)
        exported = json.loads(out.read_text())
        route = "&".join(f"{k}={v}" for k, v in args.items())
        served = inline(get(ds, f"/-/losslens/losslens/spec/{view}.json?{route}").json(), lambda u: get(ds, u).json())
        for name, spec in (("exported", exported), ("served", served)):
            shipped = [
                sorted(tuple(r[c] for c in columns) for r in table)
                for table in inline_tables(spec)
                if table and all(c in r for r in table for c in columns)
            ]
            assert expected in shipped, (view, name)


def test_cli_chart_by_names_and_errors(catalogs, tmp_path):
    """Oracle: names resolve to the same subject as ids (byte-identical JSON); a missing option and an
    uncomputed metric exit 1 with one ``error:`` line naming the fix."""
    db = catalogs[0]
    runner = CliRunner()
    with read_catalog(db) as conn:
        label, sid = conn.execute("SELECT label, id FROM settings ORDER BY label").fetchone()
    by_label = runner.invoke(
        app, ["export", "chart", "modes", "--setting", label, "--out", str(tmp_path / "a.json"), "--catalog", str(db)]
    )
    by_id = runner.invoke(
        app, ["export", "chart", "modes", "--setting", sid[:6], "--out", str(tmp_path / "b.json"), "--catalog", str(db)]
    )
    assert by_label.exit_code == 0 and by_id.exit_code == 0, by_label.output + by_id.output
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    missing = runner.invoke(app, ["export", "chart", "curve", "--out", str(tmp_path / "c.svg"), "--catalog", str(db)])
    assert missing.exit_code == 1 and "needs --pair" in missing.output
    digits = catalogs[1]
    with read_catalog(digits) as conn:
        sha = conn.execute("SELECT sha256 FROM checkpoints").fetchone()[0]
    with pytest.raises(LossLensError, match="nothing to draw") as err:
        export_chart(digits, "landscape", tmp_path / "l.svg", checkpoint=sha)
    assert "losslens compute landscape" in err.value.line()


@pytest.mark.slow
def test_export_all_writes_every_view(catalogs, tmp_path):
    """Oracle: the catalog's own counts: one taxonomy, the setting views (modes, the modes' landscapes) per
    setting, the local views per checkpoint and the pair views per within-setting pair, each in every
    requested format."""
    db = catalogs[0]
    with read_catalog(db) as conn:
        n_settings = conn.execute("SELECT count(*) FROM settings").fetchone()[0]
        per_setting = [
            r[0]
            for r in conn.execute("SELECT count(*) FROM checkpoints c JOIN models m ON m.id = c.model_id GROUP BY m.setting_id")
        ]
    result = CliRunner().invoke(
        app, ["export", "all", "--out", str(tmp_path), "--format", "svg", "--format", "json", "--catalog", str(db)]
    )
    assert result.exit_code == 0, result.output
    svgs = sorted(tmp_path.rglob("*.svg"))
    n_pairs = sum(n * (n - 1) // 2 for n in per_setting)
    checkpoint_views = [v for v in CHECKPOINT_VIEWS if v not in ND_VIEWS]  # no 3-D/4-D landscape here: skipped
    expected = 1 + len(SETTING_VIEWS) * n_settings + len(checkpoint_views) * sum(per_setting) + len(PAIR_VIEWS) * n_pairs
    assert len(svgs) == expected and len(list(tmp_path.rglob("*.json"))) == expected
    assert all(re.fullmatch(r"[A-Za-z0-9.=_/-]+", str(p.relative_to(tmp_path))) for p in svgs)
    assert len(export_all(db, tmp_path / "again", formats=("json",))) == expected


def test_safe_names():
    """Oracle: hand-checked names: separators and dots cannot climb out of the folder; clashes get a suffix."""
    taken: set[str] = set()
    assert safe_name("../../etc", taken) == "etc"
    assert safe_name(EVIL_MODEL, taken) == "img_src=x_onerror=alert_1"
    assert safe_name("a/b", taken) == "a_b" and safe_name("a:b", taken) == "a_b-2"
    assert safe_name("...", taken) == "unnamed"


def test_codec_round_trips_every_table(catalogs):
    """Oracle: the registry's rows (the plugin's data routes): decoding every encoded table gives the same rows and keys,
    floats within float32 precision; shared columns are stored once; the tables written are exactly those the
    stored views reference."""
    db = catalogs[0]
    with read_catalog(db) as conn:
        data = viewer_data(conn, db)
        n_typed = 0
        for key, table in data["tables"].items():
            name, *args = key.split("|")
            rows = registry.rows(conn, name, dict(zip(registry.DATASETS[name].args, args, strict=True)))
            back = decode_rows(table, data["blobs"])
            assert len(back) == len(rows) == table["n"]
            for r, s in zip(rows, back, strict=True):
                assert r.keys() == s.keys()
                for k, v in r.items():
                    if isinstance(v, float) and s[k] is not None:
                        assert s[k] == pytest.approx(v, rel=1e-6, abs=1e-30), (key, k)
                    else:
                        assert s[k] == v, (key, k)
            n_typed += json.dumps(table).count('"i32"') + json.dumps(table).count('"f32"') + json.dumps(table).count('"u8"')
        assert len(data["blobs"]) < n_typed  # e.g. grid indices shared by every landscape
        # only what the stored views draw is written: every table is some view's, every view's table is there
        assert set(data["tables"]) == {key for v in data["views"].values() for key in v["data"].values()}


def test_codec_keeps_nulls_types_and_missing_keys():
    """Oracle: hand-made rows: None, booleans, large ints, values beyond float32 and keys only some rows have."""
    rows = [
        {"i": i, "x": None if i % 7 == 0 else i / 3, "big": 1e300 if i == 5 else 1.0, "flag": i % 2 == 0, "s": f"<{i % 3}>"}
        for i in range(200)
    ]
    for r in rows[::10]:
        r["extra"] = "only here"
    blobs = Blobs()
    back = decode_rows(encode_rows(rows, blobs), blobs.items)
    assert [r.keys() for r in back] == [r.keys() for r in rows]
    assert [r["x"] is None for r in back] == [r["x"] is None for r in rows]
    assert back[5]["big"] == 1e300 and [r["flag"] for r in back] == [r["flag"] for r in rows]
    assert [r["s"] for r in back] == [r["s"] for r in rows] and back[0]["extra"] == "only here"
    assert [r["i"] for r in back] == list(range(200))


def test_data_script_cannot_break_out():
    """Oracle: json.loads of the assigned text gives the data back, and no string in it can close
    the script element or open a comment."""
    data = {"name": "</script><script>alert(1)</script><!-- \u2028 & >"}
    text = data_script(data)
    assert "</script" not in text.lower() and "<!--" not in text and "\u2028" not in text
    assert text.startswith("window.LOSSLENS = ") and json.loads(text[len("window.LOSSLENS = ") :].rstrip(";\n")) == data


def test_viewer_files_and_data(catalogs, tmp_path):
    """Oracle: the catalog's counts, and the files the page loads are all in the folder (no URL)."""
    db = catalogs[0]
    index = export_viewer(db, tmp_path / "viewer")
    html = index.read_text()
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(loaded) == ["data.js", "vega-bundle.js", "viewer.css", "viewer.js"]
    assert all((index.parent / name).is_file() for name in loaded)
    text = (index.parent / "data.js").read_text()
    data = json.loads(text[len("window.LOSSLENS = ") :].rstrip(";\n"))
    with read_catalog(db) as conn:
        counts = {k: conn.execute(f"SELECT count(*) FROM {k}").fetchone()[0] for k in ("experiments", "settings", "checkpoints")}
    assert {k: data["counts"][k] for k in counts} == counts
    assert EVIL_MODEL in {c["model"] for c in data["checkpoints"].values()}


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["viewer"], "folder"),
        (["all"], "folder"),
        (["chart", "taxonomy", "--format", "json"], "file"),
        (["landscape", "--checkpoint", "x"], "file"),
    ],
)
def test_export_out_of_the_wrong_kind_is_one_error_not_a_traceback(tmp_path, args, kind):
    """Oracle: Click's own message and the file system. A folder export given an existing file (and a file
    export given an existing folder) stops before the catalog is read (this one does not exist) and leaves the
    path as it was; before, ``export viewer``/``all`` raised FileExistsError/NotADirectoryError tracebacks."""
    wrong = tmp_path / ("taken.txt" if kind == "folder" else "taken")
    if kind == "folder":
        wrong.write_text("mine")
    else:
        wrong.mkdir()
    result = CliRunner().invoke(
        app, ["export", *args, "--out", str(wrong), "--catalog", str(tmp_path / "none.db")], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    expected = f"dir '{wrong}' is a file." if kind == "folder" else f"file '{wrong}' is a directory."
    assert "Invalid value for '--out' / '-o': " + expected in said, said
    assert "Traceback" not in said
    assert (wrong.read_text() == "mine") if kind == "folder" else (list(wrong.iterdir()) == [])
