"""Benchmark of the Datasette plugin on a large catalog: 1,000 settings × 10 checkpoints.

Writes a synthetic catalog (the foundation rows plus one taxonomy row per setting, values drawn
from a seeded generator: the views' speed depends on row counts, not on the values), serves it
with ``losslens serve`` and measures, side by side in one run:

- time to first render of the global page in Chromium (navigation start → the taxonomy chart's
  ``data-rendered`` marker), cold (first page, bundle parsed) and warm (median of 5), in an
  in-memory context and in a profile on disk (where Chromium keeps V8's code cache); also the
  page's own ``performance.mark`` set when the chart is drawn;
- the same for Datasette's own ``settings`` table page, as the anchor;
- route latency from ``ds.client`` (median of 20) for the data, spec and page routes.

Run: ``flock /tmp/losslens-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python bench/datasette_catalog.py``
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from losslens.store.catalog import init_catalog, utcnow
from losslens.store.ids import content_id

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHASES = ["I", "II", "III", "IV-A", "IV-B"]


def generate(db: Path, n_settings: int = 1000, per_setting: int = 10, seed: int = 0) -> str:
    """Fill ``db`` with one experiment of ``n_settings`` (width × lr grid) settings; returns its id."""
    rng = np.random.default_rng(seed)
    catalog, _, _ = init_catalog(db)
    now = utcnow()
    exp = content_id("bench-sweep")
    widths = [8 * (i + 1) for i in range(40)]
    lrs = [round(10 ** (-4 + 3 * j / 24), 6) for j in range(25)]
    settings, models, checkpoints, taxonomy = [], [], [], []
    run = {
        "id": content_id("taxonomy", exp),
        "metric": "taxonomy",
        "scope": "experiment",
        "subject": exp,
        "experiment_id": exp,
        "params_json": "{}",
        "params_hash": content_id("{}"),
        "status": "done",
        "code_version": "bench",
        "device": "cpu",
        "wall_seconds": 0.0,
        "started_at": now,
        "finished_at": now,
    }
    for k in range(n_settings):
        values = {"width": widths[k % len(widths)], "lr": lrs[k // len(widths) % len(lrs)]}
        sid = content_id(exp, json.dumps(values, sort_keys=True))
        settings.append(
            {
                "id": sid,
                "experiment_id": exp,
                "label": f"width={values['width']}, lr={values['lr']}",
                "values_json": json.dumps(values),
            }
        )
        mid = content_id(sid, "model")
        models.append(
            {
                "id": mid,
                "experiment_id": exp,
                "setting_id": sid,
                "name": f"mlp {k}",
                "architecture_json": "{}",
                "problem_json": "{}",
                "hparams_json": json.dumps(values),
            }
        )
        for s in range(per_setting):
            sha = content_id(sid, str(s)) * 4
            checkpoints.append(
                {
                    "sha256": sha,
                    "path": f"/bench/{sha}.pt",
                    "size_bytes": 1,
                    "format": "torch",
                    "model_id": mid,
                    "name": f"s{k}_seed{s}",
                    "seed": s,
                    "step": None,
                    "n_params": 1,
                    "meta_json": "{}",
                    "ingested_at": now,
                }
            )
        mc, sharp = float(rng.normal(0, 0.5)), float(rng.normal(2, 1))
        taxonomy.append(
            {
                "run_id": run["id"],
                "setting_id": sid,
                "n_checkpoints": per_setting,
                "n_pairs": 45,
                "train_loss": float(rng.uniform(0, 1)),
                "test_error": float(rng.uniform(0, 1)),
                "log_top_eigenvalue": sharp,
                "log_trace": sharp + 3,
                "mc": mc,
                "cka": float(rng.uniform(0, 1)),
                "phase": PHASES[int(rng.integers(5))],
                "thresholds_json": "{}",
                "sources_json": "{}",
            }
        )
    with catalog.write() as d:
        d["experiments"].insert({"id": exp, "name": "bench-sweep", "created_at": now})
        d["settings"].insert_all(settings)
        d["models"].insert_all(models)
        d["checkpoints"].insert_all(checkpoints, batch_size=2000)
        d["metric_runs"].insert(run)
        d["taxonomy"].insert_all(taxonomy)
    catalog.close()
    return exp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_render(
    base: str, path: str, marker: str, mark: str | None = None, repeats: int = 5, profile: bool = False
) -> tuple[float, float, float | None]:
    """(cold, warm median) seconds from navigation start to ``marker`` appearing (seen by Playwright's
    polling, which waits for the page's main thread), and the warm median of the page's own
    ``performance.mark`` named ``mark``, set when the chart is drawn. ``profile``: a browser profile on
    disk, as a user has (its HTTP cache keeps V8's compiled code; the default context is in memory)."""
    from playwright.sync_api import sync_playwright

    times, marks = [], []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as user_data:
        if profile:
            browser = None
            context = p.chromium.launch_persistent_context(
                user_data, executable_path="/usr/bin/chromium", args=ARGS, viewport={"width": 1400, "height": 1000}
            )
        else:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
        for _ in range(repeats + 1):
            page = context.new_page()
            page.goto(base + path, wait_until="commit")
            page.wait_for_selector(marker, timeout=60_000)
            times.append(page.evaluate("performance.now()") / 1000)
            at = page.evaluate("m => m && performance.getEntriesByName(m).map(e => e.startTime)[0]", mark)
            if at is not None:  # pages before the mark existed have none
                marks.append(at / 1000)
            page.close()
        context.close()
        if browser:
            browser.close()
    return times[0], statistics.median(times[1:]), statistics.median(marks[1:]) if len(marks) > 1 else float("nan")


@contextlib.contextmanager
def served(db: Path, tree: Path | None = None) -> Iterator[str]:
    """``losslens serve`` of ``db`` on a free port, from source tree ``tree`` (its code on ``PYTHONPATH``, one OpenMP
    thread; default: the installed code in this environment), ready to answer; yields its base URL and stops it
    on exit."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"} if tree else None
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "losslens", "serve", "--catalog", str(db), "--port", str(port)],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(base + "/-/versions.json", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)


def route_latency(db: Path, paths: list[str], repeats: int = 20, once: list[str] | None = None) -> dict[str, float]:
    """Median seconds per request of each of ``paths`` (``repeats`` requests in a row: the same page asked
    again), then the seconds of one request to each of ``once`` (pages not asked before in this server: what
    a reader browsing from page to page waits for)."""
    from datasette.app import Datasette

    ds = Datasette([str(db)])

    async def timed(path: str) -> float:
        t0 = time.perf_counter()
        response = await ds.client.get(path)
        seconds = time.perf_counter() - t0
        assert response.status_code == 200, path
        return seconds

    async def run() -> dict[str, float]:
        await ds.invoke_startup()
        out = {}
        for path in paths:
            out[path] = statistics.median([await timed(path) for _ in range(repeats)])
        for path in once or []:
            out[path] = await timed(path)
        return out

    return asyncio.run(run())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "losslens.db"
        t0 = time.perf_counter()
        exp = generate(db)
        print(f"generated 1,000 settings / 10,000 checkpoints in {time.perf_counter() - t0:.1f} s")
        with served(db) as base:
            marker, mark = '#global[data-rendered="1"]', "losslens:rendered:global"
            cold, warm, drawn = first_render(base, "/-/losslens/losslens", marker, mark)
            p_cold, p_warm, p_drawn = first_render(base, "/-/losslens/losslens", marker, mark, profile=True)
            a_cold, a_warm, _ = first_render(base, "/losslens/settings", "table.rows-and-columns")
        print(
            f"global page, first render in Chromium: cold {cold:.3f} s, warm {warm:.3f} s (goal ≤ 1 s); "
            f"warm, the page's own mark when drawn: {drawn:.3f} s"
        )
        print(f"global page, profile on disk: cold {p_cold:.3f} s, warm {p_warm:.3f} s; warm mark {p_drawn:.3f} s")
        print(
            f"anchor, Datasette's settings table page: cold {a_cold:.3f} s, warm {a_warm:.3f} s; "
            f"ratio global/anchor warm {warm / a_warm:.2f}"
        )
        import sqlite3

        conn = sqlite3.connect(db)
        setting = conn.execute("SELECT id FROM settings LIMIT 1").fetchone()[0]
        sha = conn.execute("SELECT sha256 FROM checkpoints LIMIT 1").fetchone()[0]
        conn.close()
        paths = [
            f"/-/losslens/losslens/data/taxonomy.json?experiment={exp}",
            f"/-/losslens/losslens/spec/taxonomy.json?experiment={exp}",
            "/-/losslens/losslens",
            f"/-/losslens/losslens/setting/{setting}",
            f"/-/losslens/losslens/data/modes.json?setting={setting}",
            f"/-/losslens/losslens/checkpoint/{sha}",
            "/losslens/settings.json",
        ]
        for path, seconds in route_latency(db, paths).items():
            print(f"ds.client {path.split('?')[0]}: {1000 * seconds:.1f} ms")


if __name__ == "__main__":
    main()
