"""A real wheel carries migrations/, viewer/ and catalog/datasette.yaml as package data.

Oracle: a fresh virtual environment with only the built wheel installed (no dependencies,
so it stays small) resolves the resources from site-packages, not from this checkout.
Offline: the wheel is built without build isolation by the build backend of the dev extra
(hatchling), and nothing is fetched from an index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_runtime_resources(tmp_path):
    # the checkout must not leak into the fresh environment through PYTHONPATH
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")}
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        env=clean,
    )
    (wheel,) = dist.glob("losslens-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    migrations = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    for name in migrations:
        assert f"losslens/_data/migrations/{name}" in names
    assert "losslens/_data/catalog/datasette.yaml" in names
    assert any(n.startswith("losslens/_data/viewer/") for n in names)

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    py = env / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, env=clean)
    probe = (
        "from losslens.resources import resource_path; import sys;"
        "m = resource_path('migrations'); c = resource_path('catalog/datasette.yaml'); v = resource_path('viewer');"
        "print(m); print(sorted(p.name for p in m.glob('*.sql'))); print(c.exists(), v.is_dir())"
    )
    out = subprocess.run(
        [str(py), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=clean
    ).stdout.splitlines()
    assert "site-packages" in out[0] and str(ROOT) not in out[0]
    assert out[1] == str(migrations)
    assert out[2] == "True True"


def test_every_package_exports_what_its_all_names():
    """Oracle: the names each package's ``__all__`` promises are attributes of it (``from pkg import *`` works)."""
    import importlib
    import pkgutil

    import losslens

    packages = ["losslens"] + [m.name for m in pkgutil.walk_packages(losslens.__path__, "losslens.") if m.ispkg]
    for name in packages:
        module = importlib.import_module(name)
        missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
        assert not missing, (name, missing)
