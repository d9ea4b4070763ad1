"""Helpers shared by the test modules (no test module imports another): checkpoints and specs written
the way users write them, the small pipeline-built catalogs of the plugin, export and browser tests,
Datasette requests, and the browser harness (Debian Chromium driven by Playwright)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import vl_convert as vlc
import yaml
from playwright.sync_api import Browser

from losslens.ingest import ingest
from losslens.jobs import compute
from losslens.models import pinn_mlp, resnet20
from losslens.resources import resource_path
from losslens.views.source import inline

# ---------------------------------------------------------------------------------------------
# Checkpoints and specs


def write_spec(
    path: Path, name: str, model: str, model_kwargs: dict, problem: str, problem_kwargs: dict, globs: list[str], keys: list[str]
) -> Path:
    def kw(d: dict) -> str:
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"

    path.write_text(
        f'name = "{name}"\n\n[model]\nfactory = "{model}"\nkwargs = {kw(model_kwargs)}\n\n'
        f'[problem]\nfactory = "{problem}"\nkwargs = {kw(problem_kwargs)}\n\n'
        f"[checkpoints]\npaths = {json.dumps(globs)}\n\n[settings]\nkeys = {json.dumps(keys)}\n"
    )
    return path


def save_checkpoint(path: Path, model: torch.nn.Module, seed: int, hparams: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": {"seed": seed, "hparams": hparams}}, path)
    return path


PINN_KWARGS = {"width": 8, "depth": 2}


RESNET_KWARGS = {"in_channels": 1, "num_classes": 10, "width_mult": 0.25}


# ---------------------------------------------------------------------------------------------
# The small catalogs of the plugin, export and browser tests, built by the real pipeline

EVIL_MODEL = "<img src=x onerror=alert(1)>"
QUOTED_KEY = 'it\'s "q"'
PINN_METRICS = ["performance", "landscape", "topology", "hessian", "connectivity", "cka", "similarity", "taxonomy", "predictions"]
SMALL = [
    ("connectivity.steps", "3"),
    ("landscape.steps", "11"),
    ("topology.steps", "11"),
    ("points", "5"),
    ("k", "10"),
    ("tol", "1e-3"),
    ("max-iter", "40"),
    ("trace-probes", "4"),
    ("esd-runs", "1"),
    ("esd-steps", "12"),
    ("inputs", "64"),
]


def build_pinn_catalog(root: Path) -> Path:
    """β ∈ {1, 5} × seeds {0, 1, 2}, untrained; the model is named like an XSS payload and the
    second setting key has quotes in it. Every metric, at small sizes."""
    for beta in (1.0, 5.0):
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            save_checkpoint(
                root / "runs" / f"beta{int(beta)}_seed{seed}.pt", pinn_mlp(width=8, depth=2), seed, {"beta": beta, QUOTED_KEY: 1}
            )
    spec = root / "pinn.toml"
    spec.write_text(
        f'name = "tiny-pinn"\n\n[model]\nfactory = "losslens.models:pinn_mlp"\nkwargs = {{ width = 8, depth = 2 }}\n'
        f"name = {json.dumps(EVIL_MODEL)}\n\n"
        '[problem]\nfactory = "losslens.problems:convection"\nkwargs = { n_collocation = 64, n_x = 32, n_t = 16 }\n\n'
        f'[checkpoints]\npaths = ["runs/*.pt"]\n\n[settings]\nkeys = ["beta", {json.dumps(QUOTED_KEY)}]\n'
    )
    db = root / "catalog" / "losslens.db"
    ingest(spec, db)
    report = compute(PINN_METRICS, SMALL, catalog_path=db, device="cpu")
    failures = [f for m in report.metrics for f in m.failures]
    assert not failures, failures
    return db


def shared_catalogs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Both catalogs, built once per test session (the browser tests reuse them)."""
    root = tmp_path_factory.getbasetemp() / "losslens-plugin-catalogs"
    done = root / "done"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        build_pinn_catalog(root)
        build_digits_catalog(root)
        done.touch()
    return root / "catalog" / "losslens.db", root / "dcatalog" / "digits.db"


def build_digits_catalog(root: Path) -> Path:
    """Two seeds of a tiny ResNet-20 on digits, with predictions (confusion matrices) only."""
    kwargs = {"in_channels": 1, "num_classes": 10, "width_mult": 0.25}
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_checkpoint(root / "druns" / f"res_seed{seed}.pt", resnet20(**kwargs), seed, {"residual": True})
    spec = root / "digits.toml"
    spec.write_text(
        'name = "tiny-digits"\n\n[model]\nfactory = "losslens.models:resnet20"\n'
        "kwargs = { in_channels = 1, num_classes = 10, width_mult = 0.25 }\n\n"
        '[problem]\nfactory = "losslens.problems:digits"\nkwargs = { batch_size = 256 }\n\n'
        '[checkpoints]\npaths = ["druns/*.pt"]\n\n[settings]\nkeys = ["residual"]\n'
    )
    db = root / "dcatalog" / "digits.db"
    ingest(spec, db)
    report = compute(["predictions", "disagreement"], [], catalog_path=db, device="cpu")
    assert report.failed == 0
    return db


# ---------------------------------------------------------------------------------------------
# Datasette

METADATA = yaml.safe_load(resource_path("catalog/datasette.yaml").read_text())


def get(ds: Any, path: str, method: str = "get") -> Any:
    """Datasette redirects %-escapes in paths to its ~-escapes; follow that, as a browser does."""
    return asyncio.run(getattr(ds.client, method)(path, follow_redirects=True))


def query(db: Path, sql: str, params: tuple = ()) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def spec_urls(html: str) -> list[str]:
    """The data-spec URLs of a LossLens page."""
    return [u.replace("&amp;", "&") for u in re.findall(r'data-spec="([^"]+)"', html)]


def compiled(ds: Any, spec_url: str) -> tuple[dict, str]:
    """The spec at ``spec_url`` with its data inlined from the data routes, compiled and drawn."""
    response = get(ds, spec_url)
    assert response.status_code == 200, spec_url
    spec = inline(response.json(), lambda u: get(ds, u).json())
    vlc.vegalite_to_vega(spec)
    return spec, vlc.vegalite_to_svg(spec)


def pinn_ids(db: Path) -> dict:
    setting = query(db, "SELECT id FROM settings ORDER BY label")[0]["id"]
    modes = [
        r["sha256"]
        for r in query(
            db,
            "SELECT c.sha256 FROM checkpoints c JOIN models m ON m.id = c.model_id WHERE m.setting_id = ? ORDER BY c.seed",
            (setting,),
        )
    ]
    experiment = query(db, "SELECT id FROM experiments")[0]["id"]
    return {"experiment": experiment, "setting": setting, "modes": modes}


# ---------------------------------------------------------------------------------------------
# The browser harness

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


class WatchedPage:
    """A new page; ``allowed(url)`` says which requests stay local. ``check`` saves a screenshot under
    tests/artifacts/ and asserts that nothing went wrong or left."""

    def __init__(self, browser: Browser, viewport: dict[str, int], allowed: Callable[[str], bool], prefix: str):
        self.page = browser.new_page(viewport=viewport)
        self.prefix = prefix
        self.errors: list[str] = []
        self.remote: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: allowed(r.url) or self.remote.append(r.url))

    def _console(self, message: Any) -> None:
        """Errors, and Vega's warning that two panels share a scale with conflicting domains or ranges
        (a chart that paints one category in another's colour)."""
        if message.type == "error" or "Conflicting scale property" in message.text:
            self.errors.append(message.text)

    def check(self, name: str, full_page: bool = False) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.prefix}-{name}.png"), full_page=full_page)
        assert self.errors == [], self.errors
        assert self.remote == [], self.remote
        assert self.dialogs == [], self.dialogs
        self.page.close()


# Every text mark of the charts under a selector (axis labels, legends and titles are Vega's own and left
# out), as drawn: [text, left, top, right, bottom] in CSS px.
_TEXT_BOXES = """sel => Array.from(document.querySelectorAll(sel + ' g.mark-text.role-mark text'))
  .filter(t => t.textContent.trim())
  .map(t => { const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; })
  .filter(b => b[3] > b[1] && b[4] > b[2])"""


def drawn_labels(page: Any, selector: str) -> list[list[Any]]:
    """The text marks drawn under ``selector``: ``[text, left, top, right, bottom]`` from Chromium's layout."""
    return page.evaluate(_TEXT_BOXES, selector)


def overlapping_labels(page: Any, selector: str, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of text marks under ``selector`` whose drawn boxes overlap by more than ``tolerance`` px both ways."""
    boxes = drawn_labels(page, selector)
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if min(a[3], b[3]) - max(a[1], b[1]) > tolerance and min(a[4], b[4]) - max(a[2], b[2]) > tolerance
    ]


# Each bound input (Vega's .vega-bind) as drawn: [name, whether the name is one line beside its input].
_BIND_LINES = """sel => Array.from(document.querySelectorAll(sel + ' .vega-bind')).map(b => {
  const n = b.querySelector('.vega-bind-name'), i = b.querySelector('input, select');
  const nr = n.getBoundingClientRect(), ir = i.getBoundingClientRect(), s = getComputedStyle(n);
  const line = s.lineHeight === 'normal' ? 1.3 * parseFloat(s.fontSize) : parseFloat(s.lineHeight);
  return [n.textContent, nr.height <= 1.5 * line && nr.top < ir.bottom && ir.top < nr.bottom];
})"""


def wrapped_bind_names(page: Any, selector: str) -> list[str]:
    """The names of bound inputs under ``selector`` drawn on more than one line, or on another line than their input."""
    found = page.evaluate(_BIND_LINES, selector)
    assert found, f"no bound input under {selector}"
    return [text for text, one_line in found if not one_line]
