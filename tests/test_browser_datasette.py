"""The LossLens pages in a real browser: Debian Chromium driven by Playwright against a real
``losslens serve`` subprocess over the small pipeline-built catalog of test_datasette_plugin."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import ARTIFACTS, EVIL_MODEL, WatchedPage, overlapping_labels, pinn_ids, shared_catalogs, wrapped_bind_names

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db, _ = shared_catalogs(tmp_path_factory)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "losslens", "serve", "--catalog", str(db), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90  # the first start builds the Vega bundle
    while True:
        try:
            urllib.request.urlopen(base + "/-/versions.json", timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "losslens serve did not start") from None
            time.sleep(0.5)
    yield base, pinn_ids(db)
    proc.terminate()
    proc.wait(timeout=10)


class Watched(WatchedPage):
    """A page on the local Datasette server: every request must stay on 127.0.0.1."""

    def __init__(self, browser):
        super().__init__(browser, {"width": 1400, "height": 1000}, lambda url: urlsplit(url).hostname == "127.0.0.1", "datasette")

    def rendered(self, selector: str, timeout: float = 30_000) -> None:
        self.page.wait_for_selector(f'{selector}[data-rendered="1"]', timeout=timeout)

    def check(self, name: str) -> None:
        super().check(name, full_page=True)


def test_global_page_click_changes_semi_global(server, browser):
    """Oracle: the URL and the semi-global chart's spec follow the clicked setting's id."""
    base, ids = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens")
    w.rendered("#global")
    w.rendered("#semi")
    before = w.page.get_attribute("#semi", "data-spec")
    assert ids["setting"] in before
    w.page.click('#global path[aria-label^="beta: 5;"]')
    w.page.wait_for_function("s => document.querySelector('#semi').getAttribute('data-spec') !== s", arg=before)
    w.rendered("#semi")
    after = w.page.get_attribute("#semi", "data-spec")
    other = after.split("setting=")[1]
    assert other != ids["setting"] and f"setting={other}" in w.page.url
    # The heading names the clicked setting by its label, not its hash.
    assert w.page.text_content("#setting-label").startswith("beta=5") and other not in w.page.text_content("h2")
    assert w.page.locator("#semi svg .mark-arc path").count() > 0  # glyphs drawn
    # Both settings have one CKA (their seeds share initial weights): their labels in the CKA plot, and the
    # modes' names in the map, are drawn without overlapping (Chromium's text boxes).
    assert overlapping_labels(w.page, "#global") == [] and overlapping_labels(w.page, "#semi") == []
    assert wrapped_bind_names(w.page, "#semi") == []
    w.check("global")


def test_setting_page_click_changes_local(server, browser):
    """Oracle: a click on another mode's centre re-targets the local chart to that checkpoint."""
    base, ids = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens/setting/{ids['setting']}")
    w.rendered("#semi")
    w.rendered("#local")
    assert ids["modes"][0] in w.page.get_attribute("#local", "data-spec")
    w.page.click('#semi path[aria-label*="mode: beta1_seed2"]')
    w.page.wait_for_function(f"() => document.querySelector('#local').getAttribute('data-spec').includes({ids['modes'][2]!r})")
    w.rendered("#local")
    assert f"mode={ids['modes'][2]}" in w.page.url
    assert w.page.text_content("#mode-label") == "beta1_seed2"  # the name, not the sha256
    assert w.page.locator("#local svg .mark-rect path").count() >= 11 * 11  # heat-map cells
    w.check("setting")


def test_checkpoint_page_shows_names_as_text(server, browser):
    """Oracle: the payload model name is visible as text, no <img src=x> element exists, no dialog opened."""
    base, ids = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens/checkpoint/{ids['modes'][0]}")
    w.rendered("#local")
    assert w.page.get_by_text(EVIL_MODEL).count() == 1
    assert w.page.locator('img[src="x"]').count() == 0
    w.check("checkpoint")


def test_pair_page_renders(server, browser):
    """Oracle: the four pair charts (the registry's pair views) render with SVG marks."""
    base, ids = server
    w = Watched(browser)
    a, b = ids["modes"][:2]
    w.page.goto(f"{base}/-/losslens/losslens/pair/{a}/{b}")
    for view in ("landscapes", "curve", "layer-cka", "predictions"):
        w.rendered(f"#pair-{view}")
        assert w.page.locator(f"#pair-{view} svg path").count() > 0
    w.check("pair")


def test_datasette_cell_opens_the_pair_view(server, browser):
    """Oracle: the pair_metrics table's first row (names from the catalog): a click on its pair link opens
    the pair page headed by both names."""
    base, _ = server
    w = Watched(browser)
    w.page.goto(f"{base}/losslens/pair_metrics?metric=mc")
    link = w.page.locator("td.col-checkpoint_b a", has_text="↔").first
    text = link.text_content()
    link.click()
    w.page.wait_for_url("**/-/losslens/losslens/pair/**")
    w.rendered("#pair-curve")
    first, second = text.removeprefix("pair ").split(" ↔ ")
    assert w.page.text_content("h1") == f"Modes {first} (a) and {second} (b)"
    w.check("pair-from-cell")


def test_compare_picker_opens_any_two(server, browser):
    """Oracle: the option chosen (a mode of the other setting, never paired): the pair page of both, with
    both landscapes drawn on one colour scale and the missing views named with the command to run."""
    base, ids = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens/checkpoint/{ids['modes'][0]}")
    w.rendered("#local")
    option = w.page.locator("#compare optgroup").nth(1).locator("option").first
    other, name = option.get_attribute("value"), option.text_content()
    w.page.select_option("#compare", other)
    w.page.click("form.compare button")
    w.page.wait_for_url(f"**/pair/{ids['modes'][0]}/{other}")
    w.rendered("#pair-landscapes")
    assert w.page.locator("#pair-landscapes svg .mark-rect path").count() >= 2 * 11 * 11
    assert name in w.page.text_content("h1")
    missing = w.page.text_content("#pair-curve")
    assert "Not computed for this pair" in missing and "losslens compute connectivity --pairs all" in missing
    w.check("compare")


def test_global_modes_chart_opens_a_mode(server, browser):
    """Oracle: the clicked glyph's mode name: a click on a mode in the global page's modes chart opens
    that mode's page."""
    base, ids = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens")
    w.rendered("#semi")
    w.page.click('#semi path[aria-label*="mode: beta1_seed1"]')
    w.page.wait_for_url(f"**/checkpoint/{ids['modes'][1]}")
    w.rendered("#local")
    assert w.page.text_content("h1") == "Mode beta1_seed1"


def test_global_modes_chart_link_opens_its_pair(server, browser):
    """Oracle: the clicked link's own tooltip (Vega's aria-label names mode a and mode b): a click on a
    connectivity link in the global page's modes chart (issue 15, finding 12) opens the page of that pair,
    whose heading names both modes. The event is dispatched on the link's own SVG element, so a glyph
    drawn over the middle of a short link cannot take the click."""
    import re

    base, _ = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens")
    w.rendered("#semi")
    link = w.page.locator('#semi g.mark-rule.role-mark line[aria-label*="mode a"]').first
    label = link.get_attribute("aria-label") or ""
    names = re.search(r"mode a: ([^;]+); mode b: ([^;]+)", label)
    assert names, label
    link.dispatch_event("click")
    w.page.wait_for_url("**/pair/**")
    heading = w.page.text_content("h1") or ""
    assert names.group(1) in heading and names.group(2) in heading, (label, heading)
    w.check("global-link-to-pair")


def test_setting_page_landscapes_share_a_scale_and_open_their_modes(server, browser):
    """Oracles: the legends drawn: ticked (the default) every landscape's legend reads the same, unticking the
    box gives each its own; a click on the second landscape opens the second mode's page (seed order)."""
    base, ids = server
    w = Watched(browser)
    w.page.goto(f"{base}/-/losslens/losslens/setting/{ids['setting']}")
    w.rendered("#landscapes")

    def legends() -> list[str]:
        return [g.text_content() for g in w.page.locator("#landscapes g.role-legend").all()]

    shared = legends()
    assert len(shared) == len(ids["modes"]) and len(set(shared)) == 1
    assert wrapped_bind_names(w.page, "#landscapes") == [] and wrapped_bind_names(w.page, "#semi") == []
    w.page.locator("#landscapes input[type=checkbox]").click()
    w.page.wait_for_function(
        "() => new Set(Array.from(document.querySelectorAll('#landscapes g.role-legend'), g => g.textContent)).size > 1"
    )
    w.page.locator("#landscapes input[type=checkbox]").click()
    w.page.screenshot(path=str(ARTIFACTS / "datasette-setting-landscapes.png"), full_page=True)
    w.page.locator("#landscapes g.concat_1_marks path").nth(60).click()
    w.page.wait_for_url(f"**/checkpoint/{ids['modes'][1]}")
    w.rendered("#local")
    w.check("landscape-to-mode")


def test_downloads_and_help_under_a_chart(server, browser):
    """Oracles: the bytes downloaded: the PNG has PNG's magic number and the SVG is an <svg> document; the CSV
    of the spectrum has the rows of the JSON route; the help text opens with one click."""
    import json
    import urllib.request

    base, ids = server
    w = Watched(browser)
    sha = ids["modes"][0]
    w.page.goto(f"{base}/-/losslens/losslens/checkpoint/{sha}")
    w.rendered("#local")
    tools = w.page.locator("#local-tools")
    assert w.page.locator("#local-tools + .chart-help").is_hidden()
    tools.get_by_role("button", name="? What is this").click()
    assert "persistence" in w.page.locator("#local-tools + .chart-help").text_content()
    with w.page.expect_download() as png:
        tools.get_by_role("button", name="PNG").click()
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with w.page.expect_download() as svg:
        tools.get_by_role("button", name="SVG").click()
    assert b"<svg" in Path(svg.value.path()).read_bytes()[:400]
    with w.page.expect_download() as csv_file:
        tools.get_by_role("link", name="spectrum.csv").click()
    lines = Path(csv_file.value.path()).read_text().splitlines()
    rows = json.load(urllib.request.urlopen(f"{base}/-/losslens/losslens/data/spectrum.json?checkpoint={sha}"))
    assert len(lines) == len(rows) + 1 and csv_file.value.suggested_filename == "spectrum.csv"
    w.check("downloads")


def test_checkpoint_page_turns_the_landscape_into_a_3d_surface(server, browser):
    """Oracle: opening the box loads plotly.js from the local server (no other host) and draws one WebGL
    surface whose z values are the landscape grid (read back from Plotly's own data and compared with the
    page's heat-map rows)."""
    base, ids = server
    w = Watched(browser)
    sha = ids["modes"][0]
    w.page.goto(f"{base}/-/losslens/losslens/checkpoint/{sha}")
    w.rendered("#local")
    w.page.click("#surface-box summary")
    w.rendered("#surface-box")
    assert w.page.locator("#surface canvas").count() >= 1
    z = w.page.evaluate("Array.from(document.getElementById('surface')._fullData[0].z, r => Array.from(r))")
    cells = w.page.evaluate(f"fetch('{base}/-/losslens/losslens/data/landscape.json?checkpoint={sha}').then(r => r.json())")
    grid = {(c["j"], c["i"]): c["loss"] for c in cells}
    assert len(z) * len(z[0]) == len(grid)
    assert all(z[j][i] == pytest.approx(v) for (j, i), v in grid.items())
    w.check("checkpoint-surface")
