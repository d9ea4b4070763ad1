"""The command line as a user meets it: exit codes, --json output, --catalog and LOSSLENS_CATALOG."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.core
import typer.main
from typer.testing import CliRunner

from losslens.cli import app
from losslens.cli.commands import COMMANDS, load_all
from losslens.jobs.options import build_params
from losslens.metrics.registry import BUILTIN_MODULES, BUILTIN_SCOPES, all_metrics, get_metric

ROOT = Path(__file__).resolve().parents[1]

runner = CliRunner()


def test_init_then_up_to_date(tmp_path):
    db = tmp_path / "c" / "losslens.db"
    first = runner.invoke(app, ["init", "--catalog", str(db)])
    assert first.exit_code == 0 and "applied" in first.stdout
    second = runner.invoke(app, ["init", "--catalog", str(db)])
    assert second.exit_code == 0 and "up to date" in second.stdout


def test_env_var_selects_the_catalog(tmp_path, monkeypatch):
    db = tmp_path / "env.db"
    monkeypatch.setenv("LOSSLENS_CATALOG", str(db))
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert db.exists()


def test_ls_and_status_json(pinn_catalog):
    assert runner.invoke(app, ["compute", "performance", "--catalog", str(pinn_catalog), "--device", "cpu"]).exit_code == 0
    listing = json.loads(runner.invoke(app, ["ls", "--catalog", str(pinn_catalog), "--json"]).stdout)
    assert listing["experiments"][0]["name"] == "tiny-pinn"
    assert listing["experiments"][0]["checkpoints"] == 4
    assert sorted(s["label"] for s in listing["settings"]) == ["beta=1", "beta=5"]
    assert len(listing["checkpoints"]) == 4
    cov = json.loads(runner.invoke(app, ["status", "--catalog", str(pinn_catalog), "--json"]).stdout)
    perf = next(r for r in cov if r["metric"] == "performance")
    assert (perf["expected"], perf["done"], perf["failed"], perf["missing"]) == (4, 4, 0, 0)


def test_ls_on_missing_catalog_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["ls", "--catalog", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "error:" in result.output and "losslens init" in result.output and "Traceback" not in result.output


def test_compute_help_lists_every_metric_and_option():
    """Oracle: the metrics' own parameter dataclasses."""
    result = runner.invoke(app, ["compute", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for name, metric in all_metrics().items():
        assert f"{name} ({metric.scope} scope" in result.stdout
        for f in dataclasses.fields(metric.params):
            assert f"--{name}.{f.name.replace('_', '-')}" in result.stdout


def test_compute_options_reach_the_metric_params():
    """Oracle: the parameter dataclasses built directly with the intended values."""
    from losslens.landscape.metric import LandscapeParams
    from losslens.topology.metric import TopologyParams

    load_all()  # the root group builds commands lazily: without this the test passed only after another had run compute
    command = typer.main.get_command(app).commands["compute"]
    args = [
        "topology",
        "--steps",
        "7",
        "--landscape.steps",
        "9",
        "--directions",
        "pca",
        "--no-orthogonalize",
        "--span-mode",
        "absolute",
    ]
    ctx = command.make_context("compute", args)
    options = command.take_metric_options(ctx)
    params = build_params([get_metric("landscape"), get_metric("topology")], options)
    assert params["landscape"] == LandscapeParams(steps=9, directions="pca", orthogonalize=False, span_mode="absolute")
    assert params["topology"] == TopologyParams(steps=7, directions="pca", orthogonalize=False, span_mode="absolute")
    assert ctx.params["metrics"] == ["topology"]


def test_compute_rejects_unknown_option_and_value(pinn_catalog):
    result = runner.invoke(app, ["compute", "performance", "--bogus", "1", "--catalog", str(pinn_catalog)])
    assert result.exit_code == 2 and "No such option" in result.output and "--bogus" in result.output
    result = runner.invoke(app, ["compute", "landscape", "--landscape.directions", "sideways", "--catalog", str(pinn_catalog)])
    assert result.exit_code == 2 and "sideways" in result.output
    # an option of a metric that is not named is one error line, not silently ignored
    result = runner.invoke(app, ["compute", "performance", "--hessian.k", "5", "--catalog", str(pinn_catalog)])
    assert result.exit_code == 1 and "--hessian.k is not an option of performance" in result.output


def test_a_bad_option_value_is_one_line_before_any_job(pinn_catalog):
    """Oracle: the exact line, and the catalog's own metric_runs table read with sqlite3: a value out of a
    metric's range stops the command before planning, so no run (not one failed run per checkpoint or pair)
    is recorded."""
    import sqlite3

    cases = {
        ("landscape", "--dims", "9"): "error: landscape: --dims 9 is out of range — use 1, 2, 3 or 4",
        ("topology", "--landscape.steps", "4"): "error: landscape: --steps 4 must be odd and at least 3 — e.g. --steps 41",
        ("landscape", "topology", "--span", "-1"): "error: landscape: --span -1.0 must be positive",
        ("connectivity", "--connectivity.points", "2"): "error: connectivity: --points must be at least 3",
        ("connectivity", "--bends", "0"): "error: connectivity: --bends must be at least 1 for a curve — or use --curve linear",
    }
    for args, line in cases.items():
        result = runner.invoke(app, ["compute", *args, "--catalog", str(pinn_catalog)])
        assert result.exit_code == 1, (args, result.output)
        assert " ".join(result.output.split()) == line, args
    with sqlite3.connect(pinn_catalog) as conn:
        assert conn.execute("SELECT count(*) FROM metric_runs").fetchone() == (0,)
    conn.close()


FORBIDDEN_AT_START = ("torch", "datasette", "ray", "submitit", *BUILTIN_MODULES)
ENGINES = ("ray", "submitit")


def _modules_after(args: list[str], tmp_path) -> set[str]:
    """Run ``losslens ARGS`` in a fresh interpreter and return the modules it imported."""
    out = tmp_path / "modules.txt"
    code = (
        "import sys\n"
        "from losslens.cli import app\n"
        "try:\n"
        "    app(sys.argv[2:], prog_name='losslens')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "open(sys.argv[1], 'w').write('\\n'.join(sorted(sys.modules)))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(out), *args], check=True, cwd=ROOT, capture_output=True)
    return set(out.read_text().split())


def test_cli_starts_without_torch_or_the_metrics(pinn_catalog, tmp_path):
    """Oracle: the interpreter's own sys.modules after each command (a fresh process each)."""
    db = str(pinn_catalog)
    assert runner.invoke(app, ["compute", "performance", "--catalog", db, "--device", "cpu"]).exit_code == 0
    for args in (["--version"], ["--help"], ["ls", "--catalog", db], ["status", "--catalog", db]):
        loaded = _modules_after(args, tmp_path)
        assert "losslens.cli" in loaded
        assert not [m for m in FORBIDDEN_AT_START if m in loaded], args


@pytest.mark.slow
def test_compute_and_demo_help_import_no_engine(tmp_path):
    """The executor flags are declared without their engines: `compute --help` (which builds the metrics'
    options, so imports torch) and `demo --help` import neither Ray nor submitit. Oracle: sys.modules of a
    fresh interpreter."""
    for args in (["compute", "--help"], ["demo", "--help"]):
        loaded = _modules_after(args, tmp_path)
        assert "losslens.cli.executor_options" in loaded
        assert not [m for m in loaded if m.split(".")[0] in ENGINES], args


def test_status_scopes_without_importing_the_metrics_match_their_registrations():
    """Oracle: the scopes the metric modules register themselves with."""
    registered = {name: m.scope for name, m in all_metrics().items() if m.fn.__module__ in BUILTIN_MODULES}
    assert registered == BUILTIN_SCOPES


def test_command_summaries_are_the_commands_own_help():
    """Oracle: each command's help as Typer builds it from the command module (imported here)."""
    load_all()
    root = typer.main.get_command(app)
    assert set(root.commands) == set(COMMANDS)
    for name, entry in COMMANDS.items():
        command = root.commands[name]
        if not isinstance(command, typer.core.TyperGroup):  # a group's callback is Typer's own
            assert command.callback.__module__ == entry.module, name
        assert (command.help or "").strip().split("\n\n")[0].replace("\n", " ") == entry.summary, name


def _commands(command: typer.core.TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command and subcommand of the tree, with the words that invoke it."""
    out = []
    for name, sub in command.commands.items():
        out.append(((*path, name), sub))
        if isinstance(sub, typer.core.TyperGroup):
            out += _commands(sub, (*path, name))
    return out


def test_help_keeps_every_option_name_whole_at_80_columns():
    """Oracle: each command's own Click parameters (the metric options generated from the dataclasses
    included): at 80 columns every visible option name is printed whole, no line is wider than 80 and no
    cell is cut short with an ellipsis."""
    import click

    load_all()
    for path, command in _commands(typer.main.get_command(app)):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, path
        cut = [line for line in result.stdout.splitlines() if re.search(r"\w…\s*(│|$)", line)]  # Rich's ellipsis ends a cut cell
        assert not cut, (path, cut)
        assert max(len(line) for line in result.stdout.splitlines()) <= 80, path
        ctx = click.Context(command, info_name=path[-1])
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and not param.hidden:
                for name in (*param.opts, *param.secondary_opts):
                    if name.startswith("--"):
                        assert re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", result.stdout), (path, name)


def test_help_paragraphs_are_reflowed_not_broken_where_the_docstring_was():
    """Oracle: the commands' own docstrings. On a wide terminal each paragraph of a command's help (its
    docstring's lines joined) is one line of the help, so the terminal, not the source file, decides where
    sentences break."""
    import inspect

    load_all()
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        doc = inspect.getdoc(command.callback) if command.callback and command.callback.__doc__ else None
        if not doc or isinstance(command, typer.core.TyperGroup):
            continue
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "2000"})
        lines = [" ".join(line.strip(" │").split()) for line in result.stdout.splitlines()]
        for paragraph in doc.split("\n\n")[1:]:
            if "[" in paragraph or any(re.match(r"\s*(?:[-*•]|\d+[.)])\s", line) for line in paragraph.splitlines()):
                continue  # markup and lists are not plain paragraphs
            joined = " ".join(paragraph.split())
            assert joined in lines, (path, joined)
            checked += 1
    assert checked >= 3


def test_mistyped_names_get_the_closest_suggestion(pinn_catalog, tmp_path):
    """Oracle: the exact names the catalog and registries hold. A mistyped metric, executor, view, export format
    or experiment name is one ``error:`` line (no empty line before it) naming the closest choice."""
    db = str(pinn_catalog)
    cases = {
        ("compute", "hesian", "--catalog", db): "error: compute: unknown metric 'hesian'; did you mean 'hessian'?",
        ("compute", "performance", "--executor", "rya", "--catalog", db): "error: compute --executor: unknown executor 'rya'; "
        "did you mean 'ray'?",
        (
            "compute",
            "performance",
            "-e",
            "tiny-pin",
            "--catalog",
            db,
        ): "no experiment named 'tiny-pin'; did you mean 'tiny-pinn'?",
        ("export", "chart", "taxonmy", "-o", str(tmp_path / "t.json"), "--catalog", db): "error: export chart: unknown view "
        "'taxonmy'; did you mean 'taxonomy'?",
        ("export", "chart", "taxonomy", "-o", str(tmp_path / "t.jsn"), "-f", "jsn", "--catalog", db): "error: export chart: "
        "unknown format 'jsn'; did you mean 'json'?",
        ("ls", "-e", "tiny-pin", "--catalog", db): "error: ls: unknown experiment 'tiny-pin'; did you mean 'tiny-pinn'?",
        (
            "status",
            "-e",
            "tiny-pinm",
            "--catalog",
            db,
        ): "error: status: unknown experiment 'tiny-pinm'; did you mean 'tiny-pinn'?",
    }
    for args, line in cases.items():
        result = runner.invoke(app, list(args))
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error: ") and line in result.output, (args, result.output)
        assert result.output.startswith(line) or not line.startswith("error:"), (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, (args, result.output)
    assert not (tmp_path / "t.json").exists()


def test_an_empty_catalog_is_one_line_not_empty_tables(tmp_path):
    """Oracle: a catalog just made by ``init`` holds no experiment: ``ls`` and ``status`` say so in one line that
    names the command adding one, and their JSON is empty."""
    db = tmp_path / "empty.db"
    assert runner.invoke(app, ["init", "--catalog", str(db)]).exit_code == 0
    for command in ("ls", "status"):
        result = runner.invoke(app, [command, "--catalog", str(db)])
        assert result.exit_code == 0
        assert result.stdout == f"{db} holds no experiments yet — add one with: losslens ingest SPEC.toml --catalog {db}\n"
    assert json.loads(runner.invoke(app, ["ls", "--catalog", str(db), "--json"]).stdout) == {
        "experiments": [],
        "settings": [],
        "checkpoints": [],
    }
