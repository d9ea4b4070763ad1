"""Before and after, side by side: the Datasette plugin's routes, the global page's first render in Chromium and
``losslens export viewer``, for two source trees (a checkout of an older commit and this one), on the synthetic
catalog of ``bench/datasette_catalog.py`` (1,000 settings × 10 checkpoints).

Each tree runs in its own interpreters with its own code on ``PYTHONPATH`` and its own copy of the catalog,
written by this folder's ``datasette_catalog.generate`` through that tree's own store (so each copy has that
tree's schema; the rows are the same, the generator is seeded). The trees alternate round by round (old, new,
old, new, ...) so that a load spike on a shared machine hits both alike; each figure is the median over rounds
of per-round medians. Each route is timed two ways: the same address asked ``--repeats`` times in a row (a
reload; the plugin answers it from its memo of the catalog's current version), and "each page once", 20
addresses of other settings and checkpoints asked once each (browsing; nothing remembered applies), whose
median is reported. In Chromium, three figures per tree: the time Playwright's polling sees the
taxonomy chart drawn (it waits for the page's main thread, so work after the chart counts), and the page's own
``performance.mark`` when the taxonomy chart and then the modes chart below it are drawn. ``export viewer`` is the wall time of the command as a user runs it (a fresh interpreter).

Usage (from the new tree's root)::

    git -C /work/main worktree add --detach /work/wt/old a22d68b
    flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/before_after.py --old /work/wt/old --new .
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

# Run inside each tree's interpreter: this folder's generator and latency helper, that tree's losslens.
GENERATE = """
import sys, json, sqlite3
sys.path.insert(0, {bench!r})
from pathlib import Path
from datasette_catalog import generate
db = Path(sys.argv[1])
exp = generate(db)
conn = sqlite3.connect(db)
setting = conn.execute("SELECT id FROM settings ORDER BY id LIMIT 1").fetchone()[0]
FIRST = "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ? ORDER BY c.seed LIMIT 1"
sha = conn.execute(FIRST, (setting,)).fetchone()[0]
others = [r[0] for r in conn.execute("SELECT id FROM settings ORDER BY id LIMIT 21 OFFSET 1")]
print(json.dumps({{"experiment": exp, "setting": setting, "checkpoint": sha, "settings": others,
                  "checkpoints": [conn.execute(FIRST, (s,)).fetchone()[0] for s in others]}}))
"""
ROUTES = """
import sys, json
sys.path.insert(0, {bench!r})
from pathlib import Path
from datasette_catalog import route_latency
paths, once = json.loads(sys.argv[2])
print(json.dumps(route_latency(Path(sys.argv[1]), paths, repeats=int(sys.argv[3]), once=once)))
"""
RENDER = """
import sys, json
sys.path.insert(0, {bench!r})
from datasette_catalog import first_render
_, warm, drawn = first_render(sys.argv[1], "/-/losslens/losslens", '#global[data-rendered="1"]', "losslens:rendered:global")
_, _, both = first_render(sys.argv[1], "/-/losslens/losslens", '#semi[data-rendered="1"]', "losslens:rendered:semi")
_, anchor, _ = first_render(sys.argv[1], "/losslens/settings", "table.rows-and-columns")
print(json.dumps({{
    "global page, warm first render, seen by Playwright (s)": warm,
    "global page, taxonomy chart drawn, page's own mark (s)": drawn,
    "global page, modes chart drawn too, page's own mark (s)": both,
    "anchor: Datasette settings page (s)": anchor,
}}))
"""


def run_in(tree: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code.format(bench=str(BENCH)), *args], env=env, cwd=tree, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{tree}: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def paths(ids: dict[str, Any]) -> list[str]:
    """The routes ``bench/datasette_catalog.py`` times, for this catalog's ids (each asked ``--repeats`` times)."""
    e, s, c = ids["experiment"], ids["setting"], ids["checkpoint"]
    return [
        f"/-/losslens/losslens/data/taxonomy.json?experiment={e}",
        f"/-/losslens/losslens/spec/taxonomy.json?experiment={e}",
        "/-/losslens/losslens",
        f"/-/losslens/losslens/setting/{s}",
        f"/-/losslens/losslens/data/modes.json?setting={s}",
        f"/-/losslens/losslens/checkpoint/{c}",
        "/losslens/settings.json",
    ]


def distinct_paths(ids: dict[str, Any]) -> dict[str, list[str]]:
    """Per page, 20 addresses not asked before (other settings and checkpoints), each asked once: a reader
    going from page to page, where nothing the server remembered from an earlier answer applies."""
    e = ids["experiment"]
    return {
        "spec/taxonomy.json?selected=…": [
            f"/-/losslens/losslens/spec/taxonomy.json?experiment={e}&selected={s}" for s in ids["settings"]
        ],
        "global page HTML ?setting=…": [f"/-/losslens/losslens?experiment={e}&setting={s}" for s in ids["settings"]],
        "setting page HTML": [f"/-/losslens/losslens/setting/{s}" for s in ids["settings"]],
        "data/modes.json": [f"/-/losslens/losslens/data/modes.json?setting={s}" for s in ids["settings"]],
        "checkpoint page HTML": [f"/-/losslens/losslens/checkpoint/{c}" for c in ids["checkpoints"]],
    }


def export_viewer(tree: Path, db: Path, out: Path) -> float:
    """Wall seconds of ``losslens export viewer`` run from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "losslens", "export", "viewer", "--out", str(out), "--catalog", str(db)],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def render(tree: Path, db: Path) -> dict[str, float]:
    """Warm first render of the global page and of Datasette's own settings page, served by ``tree``."""
    from datasette_catalog import served

    with served(db, tree) as base:
        return json.loads(run_in(tree, RENDER, base))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="requests per route per round (median taken)")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results: dict[str, dict[str, list[float]]] = {side: {} for side in trees}
    with tempfile.TemporaryDirectory() as tmp:
        dbs, ids = {}, {}
        for side, tree in trees.items():
            dbs[side] = Path(tmp) / side / "losslens.db"
            dbs[side].parent.mkdir()
            ids[side] = json.loads(run_in(tree, GENERATE, str(dbs[side])))
            export_viewer(tree, dbs[side], Path(tmp) / side / "warm")  # builds what a first run builds (bundle)
        for r in range(args.rounds):
            for side, tree in trees.items():
                distinct = distinct_paths(ids[side])
                asked = [paths(ids[side]), [p for family in distinct.values() for p in family]]
                found = json.loads(run_in(tree, ROUTES, str(dbs[side]), json.dumps(asked), str(args.repeats)))
                for path in asked[0]:
                    key = "route " + path.split("?")[0].replace(ids[side]["setting"], "<setting>").replace(
                        ids[side]["checkpoint"], "<sha>"
                    )
                    results[side].setdefault(key + " (ms)", []).append(1000 * found[path])
                for family, family_paths in distinct.items():
                    seconds = statistics.median(found[p] for p in family_paths)
                    results[side].setdefault(f"each page once: {family} (ms)", []).append(1000 * seconds)
                wall = export_viewer(tree, dbs[side], Path(tmp) / side / f"viewer{r}")
                results[side].setdefault("export viewer, wall (s)", []).append(wall)
                if not args.no_browser:
                    for key, value in render(tree, dbs[side]).items():
                        results[side].setdefault(key, []).append(value)
            print(f"round {r + 1} done; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print("\n| measure | old | new | new ÷ old | old, per round | new, per round |")
    print("|---|---:|---:|---:|---|---|")
    for key in results["new"]:
        old, new = results["old"][key], results["new"][key]
        mo, mn = statistics.median(old), statistics.median(new)
        print(
            f"| {key} | {mo:.3g} | {mn:.3g} | {mn / mo:.2f} | {', '.join(f'{v:.3g}' for v in old)} | "
            f"{', '.join(f'{v:.3g}' for v in new)} |"
        )
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
