"""Experiment specs: a TOML file that says how to rebuild a model and its problem from weights.

.. code-block:: toml

    name = "convection-beta"

    [model]
    factory = "losslens.models:pinn_mlp"   # or any "pkg.module:callable"
    kwargs = { width = 50, depth = 4 }

    [problem]
    factory = "losslens.problems:convection"
    kwargs = { beta = 30.0, n_collocation = 100 }

    [checkpoints]
    paths = ["runs/conv/beta30/*.pt"]      # globs (files or folders), relative to the spec file
    # prefix = "model."                    # optional: remove exactly this key prefix (else detected)
    # allow_globals = ["argparse.Namespace", "numpy"]  # optional: trusted extra globals for torch.load
    # ema = true                           # optional: timm's state_dict_ema instead of state_dict

    [settings]
    keys = ["beta"]                        # hyperparameters that define a setting
"""

from __future__ import annotations

import glob
import importlib
import inspect
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError, unknown

_TOP_KEYS = {"name", "description", "model", "problem", "checkpoints", "settings", "hparams"}
_FACTORY_KEYS = {"factory", "kwargs", "name"}
_CHECKPOINT_KEYS = {"paths", "prefix", "allow_globals", "ema"}


@dataclass(frozen=True)
class FactorySpec:
    """A ``pkg.module:callable`` and the keyword arguments it is called with."""

    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def resolve(self, where: str) -> Callable[..., Any]:
        return resolve_factory(self.factory, where)

    def with_overrides(self, overrides: dict[str, Any], where: str) -> FactorySpec:
        """Apply hyperparameters whose names the factory accepts (sidecar values win)."""
        accepted = factory_parameters(self.resolve(where))
        merged = dict(self.kwargs)
        merged.update({k: v for k, v in overrides.items() if accepted is None or k in accepted})
        return FactorySpec(self.factory, merged)

    def build(self, where: str) -> Any:
        fn = self.resolve(where)
        try:
            return fn(**self.kwargs)
        except LossLensError:
            raise
        except (TypeError, ValueError) as exc:
            raise LossLensError(f"{self.factory}(**{self.kwargs}) failed: {exc}", where=where, hint="fix the kwargs") from None

    def as_dict(self) -> dict[str, Any]:
        return {"factory": self.factory, "kwargs": self.kwargs}


@dataclass(frozen=True)
class ExperimentSpec:
    path: Path
    text: str
    name: str
    model: FactorySpec
    problem: FactorySpec
    checkpoint_globs: tuple[str, ...]
    setting_keys: tuple[str, ...]
    hparams: dict[str, Any]
    model_name: str | None = None
    description: str = ""
    prefix: str | None = None
    allow_globals: tuple[str, ...] = ()
    ema: bool = False

    def checkpoint_files(self) -> tuple[list[Path], list[str]]:
        """Files matched by the globs (relative to the spec), and the patterns that matched nothing."""
        files: list[Path] = []
        empty: list[str] = []
        for pattern in self.checkpoint_globs:
            # the pattern is relative to the spec's folder, whose own name may hold glob characters
            # (`runs/[data]/spec.toml`): only the pattern is a glob, the folder is taken literally
            base = Path("/") if Path(pattern).is_absolute() else self.path.parent
            full = str(base / pattern)
            if glob.has_magic(pattern):
                found = glob.glob(pattern, root_dir=base, recursive=True)
                matches = sorted(base / p for p in found if not p.endswith(".json"))
                if not matches:
                    empty.append(pattern)
                files += matches
            else:
                files.append(Path(full))  # a missing literal path is reported per file
        first: dict[Path, Path] = {}  # each resolved path once, where it first appears
        for f in files:
            first.setdefault(f.resolve(), f)
        return list(first.values()), empty


def resolve_factory(path: str, where: str) -> Callable[..., Any]:
    """Import ``pkg.module:callable``; a bare name means a LossLens built-in."""
    if ":" not in path:
        module_name, attr = _builtin_module(path), path
    else:
        module_name, attr = path.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LossLensError(
            f"cannot import {module_name!r} ({exc})", where=where, hint="check the module path, written as 'pkg.module:callable'"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise unknown(f"callable of {module_name}:", attr, public, where=where)
    return fn


def _builtin_module(name: str) -> str:
    import losslens.models
    import losslens.problems

    for module in (losslens.models, losslens.problems):
        if name in getattr(module, "__all__", []):
            return module.__name__
    return "losslens.models"


def factory_parameters(fn: Callable[..., Any]) -> set[str] | None:
    """Keyword names a factory accepts, or None when it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _factory_spec(raw: Any, section: str, where: str) -> tuple[FactorySpec, str | None]:
    if not isinstance(raw, dict):
        raise LossLensError(
            f"[{section}] must be a table", where=where, hint=f'add [{section}] with factory = "pkg.module:callable"'
        )
    for key in raw:
        if key not in _FACTORY_KEYS:
            raise unknown(f"key in [{section}]:", key, _FACTORY_KEYS, where=where)
    if not isinstance(raw.get("factory"), str):
        raise LossLensError(f"{section}.factory is missing", where=where, hint='set it to "pkg.module:callable"')
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise LossLensError(f"{section}.kwargs must be a table", where=where)
    spec = FactorySpec(raw["factory"], dict(kwargs))
    fn = spec.resolve(f"{where}: {section}.factory")
    accepted = factory_parameters(fn)
    if accepted is not None:
        for key in kwargs:
            if key not in accepted:
                raise LossLensError(
                    f"{section}.kwargs.{key}: {raw['factory']} has no parameter {key!r}",
                    where=where,
                    hint=f"valid: {', '.join(sorted(accepted))}",
                )
    name = raw.get("name")
    return spec, (str(name) if name is not None else None)


def load_spec(path: Path) -> ExperimentSpec:
    """Parse and validate a spec; every problem is one :class:`LossLensError` naming the field."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise LossLensError("no such spec file", where=where, hint="pass the path of an experiment TOML file")
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LossLensError(f"TOML syntax error: {exc}", where=where, hint="fix the syntax at that line") from None
    for key in raw:
        if key not in _TOP_KEYS:
            raise unknown("top-level key", key, _TOP_KEYS, where=where)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise LossLensError("name is missing", where=where, hint='add name = "my-experiment" at the top')
    model, model_name = _factory_spec(raw.get("model"), "model", where)
    problem, _ = _factory_spec(raw.get("problem"), "problem", where)
    ckpts = raw.get("checkpoints", {})
    paths = ckpts.get("paths") if isinstance(ckpts, dict) else None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise LossLensError("checkpoints.paths is missing", where=where, hint='add [checkpoints] paths = ["runs/*.pt"]')
    extra = set(ckpts) - _CHECKPOINT_KEYS
    if extra:
        raise unknown("key in [checkpoints]:", sorted(extra)[0], _CHECKPOINT_KEYS, where=where)
    prefix = ckpts.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise LossLensError("checkpoints.prefix must be a string", where=where, hint='e.g. prefix = "model."')
    allow = ckpts.get("allow_globals", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise LossLensError("checkpoints.allow_globals must be a list of names", where=where, hint='e.g. ["argparse.Namespace"]')
    ema = ckpts.get("ema", False)
    if not isinstance(ema, bool):
        raise LossLensError("checkpoints.ema must be true or false", where=where)
    settings = raw.get("settings", {})
    if not isinstance(settings, dict) or set(settings) - {"keys"}:
        raise LossLensError("[settings] may only hold keys = [...]", where=where)
    keys = settings.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise LossLensError("settings.keys must be a list of hyperparameter names", where=where)
    hparams = raw.get("hparams", {})
    if not isinstance(hparams, dict):
        raise LossLensError("[hparams] must be a table", where=where)
    return ExperimentSpec(
        path=path.resolve(),
        text=text,
        name=name.strip(),
        model=model,
        problem=problem,
        checkpoint_globs=tuple(paths),
        setting_keys=tuple(keys),
        hparams=dict(hparams),
        model_name=model_name,
        description=str(raw.get("description", "")),
        prefix=prefix,
        allow_globals=tuple(allow),
        ema=ema,
    )
