"""The "not computed" hints (losslens/views/hints.py): every place that says a view has nothing to draw
gives the same ``losslens compute`` command, written out here as a user must type it."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from datasette.app import Datasette
from helpers import get, pinn_ids, query, shared_catalogs

import losslens
from losslens.errors import LossLensError
from losslens.export import chart as export_chart_module
from losslens.export.data import viewer_data
from losslens.views.hints import compute_command

ROOT = Path(__file__).resolve().parents[1]


def test_command_names_the_experiment_quoted_and_pairs_across_settings():
    """Oracle: shell words a user would type: the experiment's name quoted when it has a space or a quote,
    ``--pairs all`` only for a pair metric across settings."""
    assert compute_command(["landscape", "topology"], "tiny-pinn") == "losslens compute landscape topology -e tiny-pinn"
    assert compute_command(["cka"], "beta sweep", across_settings=True) == "losslens compute cka --pairs all -e 'beta sweep'"
    assert compute_command(["landscape"], "it's", across_settings=True) == "losslens compute landscape -e 'it'\"'\"'s'"
    assert compute_command(["landscape"], None, options=["--dims", "3"]) == "losslens compute landscape --dims 3"


def string_constants(path: Path) -> list[str]:
    """The string constants of a Python module that are not docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_other_place_writes_a_compute_hint():
    """Oracle: the source text: outside hints.py, no string of the views, the plugin, the exports, the
    notebook API or the viewer spells out a ``losslens compute`` command, so no hint can drift from it."""
    python = [
        *(ROOT / "losslens" / "views").glob("*.py"),
        *(ROOT / "losslens" / "datasette_plugin").glob("*.py"),
        *(ROOT / "losslens" / "export").glob("*.py"),
        ROOT / "losslens" / "notebook.py",
    ]
    found = [
        f"{p.relative_to(ROOT)}: {s!r}"
        for p in python
        if p.name != "hints.py"
        for s in string_constants(p)
        if "losslens compute" in s
    ]
    web = [*(ROOT / "viewer").glob("*.js"), *(ROOT / "viewer").glob("*.html")]
    web += [*(ROOT / "losslens" / "datasette_plugin").rglob("*.js"), *(ROOT / "losslens" / "datasette_plugin").rglob("*.html")]
    found += [str(p.relative_to(ROOT)) for p in web if "losslens compute" in p.read_text()]
    assert found == []


@pytest.mark.slow  # builds the shared catalogs
def test_every_hint_for_a_subject_is_the_one_command(tmp_path_factory, tmp_path):
    """Oracle: the commands written out here. Two modes of different settings have no curve until
    ``losslens compute connectivity --pairs all -e tiny-pinn``: the pair page, the notebook API and ``export
    chart`` all give exactly that; the digits catalog has no landscape, and the setting page, the mode page's
    surface, the notebook and the viewer's data all give ``... -e tiny-digits``."""
    pinn, digits = shared_catalogs(tmp_path_factory)
    ds = Datasette([str(pinn), str(digits)])
    asyncio.run(ds.invoke_startup())
    a = pinn_ids(pinn)["modes"][0]
    b = query(
        pinn,
        "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id != ?",
        (pinn_ids(pinn)["setting"],),
    )[0]["sha256"]
    curve = "losslens compute connectivity --pairs all -e tiny-pinn"
    assert f"run <code>{curve}</code>" in get(ds, f"/-/losslens/losslens/pair/{a}/{b}").text
    with pytest.raises(LossLensError) as err:
        losslens.open(pinn).chart("curve", pair=(a, b))
    assert err.value.hint == f"compute it first: {curve}"
    with pytest.raises(LossLensError) as err:
        export_chart_module.export_chart(pinn, "curve", tmp_path / "curve.svg", pair=(a, b))
    assert err.value.hint == f"compute it first: {curve}"

    setting = query(digits, "SELECT id FROM settings")[0]["id"]
    sha = query(digits, "SELECT sha256 FROM checkpoints")[0]["sha256"]
    page = get(ds, f"/-/losslens/digits/setting/{setting}").text
    assert "run <code>losslens compute landscape -e tiny-digits</code>" in page
    assert 'data-hint="losslens compute landscape -e tiny-digits"' in get(ds, f"/-/losslens/digits/checkpoint/{sha}").text
    with pytest.raises(LossLensError) as err:
        losslens.open(digits).chart("hessian", checkpoint=sha)
    assert err.value.hint == "compute it first: losslens compute hessian -e tiny-digits"
    with export_chart_module.read_catalog(digits) as conn:
        compute = viewer_data(conn, digits)["experiments"][0]["compute"]
    assert compute["local"] == "losslens compute landscape topology hessian -e tiny-digits"
    assert compute["taxonomy"] == "losslens compute taxonomy -e tiny-digits"
