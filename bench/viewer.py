"""Static viewer and exports: viewer size, time to first render in Chromium over file://, and
``export all`` time, on a catalog filled by the real pipeline (the demo's, by default).

    flock /tmp/losslens-bench.lock .venv/bin/python bench/viewer.py --catalog demo/catalog/losslens.db

Time to first render is ``performance.now()`` (from navigation start) once the first chart is
drawn, over fresh pages, median reported. The anchor, measured alternately in the same run, is
the self-contained taxonomy chart of ``export chart`` (the same bundle and spec, nothing else).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from losslens.export import export_all, export_chart, export_viewer
from losslens.views.bundle import ensure_bundle

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def first_render_ms(pages: dict[str, Path], repeats: int) -> dict[str, list[float]]:
    """Per page, ``performance.now()`` once a chart is drawn (polled, so both pages carry the same
    polling overhead), over fresh pages, alternating the pages."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {name: [] for name in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for _ in range(repeats):
            for name, path in pages.items():
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.goto(path.as_uri())
                page.wait_for_selector('[data-rendered="1"]', timeout=30_000, state="attached")
                times[name].append(page.evaluate("performance.now()"))
                page.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ensure_bundle()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        index = export_viewer(args.catalog, out / "viewer")
        t_viewer = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in index.parent.iterdir()}
        anchor = export_chart(args.catalog, "taxonomy", out / "taxonomy.html")
        render = first_render_ms({"viewer": index, "anchor": anchor}, args.repeats)
        t0 = time.perf_counter()
        files = export_all(args.catalog, out / "all")
        t_all = time.perf_counter() - t0
        n_views = len(files) // 2
    print(f"export viewer: {t_viewer:.2f} s")
    print(
        f"viewer size: {sum(sizes.values()) / 1e6:.2f} MB ({', '.join(f'{k} {v / 1e3:.0f} kB' for k, v in sorted(sizes.items()))})"
    )
    for name, runs in render.items():
        print(f"first render, {name}: median {statistics.median(runs):.0f} ms (runs: {', '.join(f'{t:.0f}' for t in runs)})")
    print(f"ratio viewer / anchor: {statistics.median(render['viewer']) / statistics.median(render['anchor']):.2f}")
    print(f"export all (svg + png): {t_all:.1f} s for {n_views} views, {t_all / n_views * 1e3:.0f} ms per view")


if __name__ == "__main__":
    main()
