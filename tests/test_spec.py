"""Experiment specs: every mistake is one error line that names the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from losslens.errors import LossLensError
from losslens.spec import load_spec

GOOD = """
name = "conv"

[model]
factory = "losslens.models:pinn_mlp"
kwargs = { width = 8, depth = 2 }

[problem]
factory = "losslens.problems:convection"
kwargs = { beta = 30.0, n_collocation = 16 }

[checkpoints]
paths = ["runs/*.pt"]

[settings]
keys = ["beta"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def error_line(tmp_path: Path, text: str) -> str:
    with pytest.raises(LossLensError) as info:
        load_spec(write(tmp_path, text))
    line = info.value.line()
    assert "\n" not in line
    assert str(tmp_path / "spec.toml") in line
    return line


def test_good_spec_parses(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.name == "conv"
    assert spec.model.kwargs == {"width": 8, "depth": 2}
    assert spec.setting_keys == ("beta",)
    assert spec.problem.build("p").beta == 30.0


def test_bare_builtin_names_resolve(tmp_path):
    spec = load_spec(
        write(
            tmp_path, GOOD.replace("losslens.models:pinn_mlp", "pinn_mlp").replace("losslens.problems:convection", "convection")
        )
    )
    assert spec.model.build("m") is not None


def test_typo_in_factory_module(tmp_path):
    line = error_line(tmp_path, GOOD.replace("losslens.models:pinn_mlp", "losslens.modles:pinn_mlp"))
    assert "model.factory" in line and "losslens.modles" in line


def test_typo_in_factory_name_lists_choices(tmp_path):
    line = error_line(tmp_path, GOOD.replace("losslens.models:pinn_mlp", "losslens.models:pinn_mpl"))
    assert "pinn_mpl" in line and "pinn_mlp" in line


def test_unknown_kwarg_names_the_field(tmp_path):
    line = error_line(tmp_path, GOOD.replace("width = 8", "widht = 8"))
    assert "model.kwargs.widht" in line and "width" in line


def test_toml_syntax_error(tmp_path):
    line = error_line(tmp_path, GOOD.replace('name = "conv"', 'name = "conv'))
    assert "TOML syntax error" in line and "line" in line


def test_unknown_top_level_key(tmp_path):
    line = error_line(tmp_path, GOOD + '\n[modle]\nfactory = "x"\n')
    assert "modle" in line


def test_missing_checkpoint_paths(tmp_path):
    line = error_line(tmp_path, GOOD.replace('paths = ["runs/*.pt"]', ""))
    assert "checkpoints.paths" in line


def test_missing_spec_file(tmp_path):
    with pytest.raises(LossLensError, match="no such spec file"):
        load_spec(tmp_path / "missing.toml")
