"""From checkpoint files into the catalog: read safely, check against the model, hash, upsert.

Each checkpoint is written in its own transaction, so a crash or a bad file leaves every
other checkpoint intact, and re-ingesting adds nothing. How a file was read (its layout, the
prefix removed, the globals allowed, notes on what was dropped or cast) is kept in its
``meta_json`` under ``"losslens"``, so metrics read it back the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslens.checkpoints import (
    checkpoint_metadata,
    checkpoint_sha256,
    checkpoint_size,
    fit_state_dict,
    jsonable,
    read_checkpoint,
)
from losslens.checkpoints.safe_load import resolve_globals
from losslens.errors import LossLensError
from losslens.models.hf import clean_config as architecture_config
from losslens.numerics import all_finite
from losslens.spec import ExperimentSpec, FactorySpec, factory_parameters, load_spec
from losslens.store import content_id, open_catalog
from losslens.store.catalog import Catalog, default_catalog_path, utcnow
from losslens.store.ids import canonical_json


@dataclass
class IngestOutcome:
    path: Path
    status: str  # added | present | would-add | failed
    error: str | None = None
    sha256: str | None = None
    setting: str | None = None
    seed: int | None = None
    layout: str | None = None
    notes: tuple[str, ...] = ()


@dataclass
class IngestReport:
    experiment: str
    outcomes: list[IngestOutcome] = field(default_factory=list)
    empty_patterns: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0 and not self.empty_patterns


def format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def setting_values(keys: tuple[str, ...], sources: list[dict[str, Any]], where: str) -> dict[str, Any]:
    values = {}
    for key in keys:
        for source in sources:
            if key in source:
                values[key] = source[key]
                break
        else:
            raise LossLensError(
                f"setting key {key!r} has no value",
                where=where,
                hint="give it in the sidecar's hparams, the spec's [hparams], or the model/problem kwargs",
            )
    return values


@dataclass
class _Prepared:
    rows: dict[str, dict[str, Any]]
    outcome: IngestOutcome


class _Ingester:
    def __init__(self, spec: ExperimentSpec, experiment: str, allow_globals: tuple[str, ...] = ()):
        self.spec = spec
        self.allow_globals = tuple(dict.fromkeys((*spec.allow_globals, *allow_globals)))
        resolve_globals(self.allow_globals)  # a bad name is one error for the whole batch, before any file
        self.experiment_id = content_id("experiment", experiment)
        self.experiment_row = {
            "id": self.experiment_id,
            "name": experiment,
            "spec_path": str(spec.path),
            "spec_toml": spec.text,
            "created_at": utcnow(),
        }
        self._models: dict[str, Any] = {}
        self._problems: set[str] = set()

    def _model(self, spec: FactorySpec, where: str) -> Any:
        key = canonical_json(spec.as_dict())
        if key not in self._models:
            self._models[key] = spec.build(where)
        return self._models[key]

    def _check_problem(self, spec: FactorySpec, where: str) -> None:
        key = canonical_json(spec.as_dict())
        if key not in self._problems:
            spec.build(where)
            self._problems.add(key)

    def _takes_config(self) -> bool:
        accepted = factory_parameters(self.spec.model.resolve(f"{self.spec.path}: model.factory"))
        return accepted is not None and "config" in accepted

    def prepare(self, path: Path) -> _Prepared:
        where = str(path)
        ckpt = read_checkpoint(path, allow_globals=self.allow_globals, ema=self.spec.ema)
        notes = list(ckpt.notes)
        meta = jsonable(ckpt.meta, "meta", notes)
        hparams, seed, step, name = checkpoint_metadata(meta, self.spec.hparams)
        model_spec = self.spec.model.with_overrides(hparams, f"{self.spec.path}: model.factory")
        if ckpt.layout == "huggingface" and "config" not in self.spec.model.kwargs and self._takes_config():
            # A factory with a ``config`` parameter (hf_causal_lm) is built from the folder's own config.json.
            config = architecture_config(meta["config"], where)
            model_spec = model_spec.with_overrides({"config": config}, f"{self.spec.path}: model.factory")
        problem_spec = self.spec.problem.with_overrides(hparams, f"{self.spec.path}: problem.factory")
        model = self._model(model_spec, f"{self.spec.path}: [model]")
        self._check_problem(problem_spec, f"{self.spec.path}: [problem]")
        fitted, prefix, fit_notes = fit_state_dict(model, ckpt.state_dict, where, self.spec.prefix)
        notes += fit_notes
        finite = all_finite(fitted)
        if not finite:
            notes.append("weights not finite (a diverged run): metrics will refuse it, the taxonomy names it")
        meta["losslens"] = {
            "layout": ckpt.layout,
            "prefix": prefix,
            "allow_globals": list(self.allow_globals),
            "ema": self.spec.ema,
            "finite": finite,
            "notes": notes,
        }
        values = setting_values(self.spec.setting_keys, [hparams, model_spec.kwargs, problem_spec.kwargs], where)
        label = ", ".join(f"{k}={format_value(v)}" for k, v in values.items()) or "default"
        setting_id = content_id("setting", self.experiment_id, values)
        model_id = content_id("model", self.experiment_id, model_spec.as_dict(), problem_spec.as_dict(), hparams)
        short = self.spec.model.factory.rsplit(":", 1)[-1]
        sha = checkpoint_sha256(path)
        rows = {
            "settings": {
                "id": setting_id,
                "experiment_id": self.experiment_id,
                "label": label,
                "values_json": canonical_json(values),
            },
            "models": {
                "id": model_id,
                "experiment_id": self.experiment_id,
                "setting_id": setting_id,
                "name": self.spec.model_name or f"{short} {label}",
                "architecture_json": canonical_json(model_spec.as_dict()),
                "problem_json": canonical_json(problem_spec.as_dict()),
                "hparams_json": canonical_json(hparams),
            },
            "checkpoints": {
                "sha256": sha,
                "path": str(path.resolve()),
                "size_bytes": checkpoint_size(path),
                "format": ckpt.format,
                "model_id": model_id,
                "name": name or path.stem,
                "seed": seed,
                "step": step,
                "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "meta_json": canonical_json(meta),
                "ingested_at": utcnow(),
            },
        }
        outcome = IngestOutcome(path, "added", sha256=sha, setting=label, seed=seed, layout=ckpt.layout, notes=tuple(notes))
        return _Prepared(rows, outcome)

    def write(self, catalog: Catalog, prepared: _Prepared) -> None:
        rows = prepared.rows
        with catalog.write() as db:
            if self.is_present(db, prepared):
                prepared.outcome.status = "present"
                return
            db.table("experiments").insert(self.experiment_row, ignore=True)
            db.table("settings").insert(rows["settings"], ignore=True)
            db.table("models").insert(rows["models"], ignore=True)
            db.table("checkpoints").insert(rows["checkpoints"])

    def is_present(self, db: Any, prepared: _Prepared) -> bool:
        """True when the file is catalogued as this model already (``db``: a sqlite-utils Database).

        A file is catalogued once (its sha256 is its id), so "present" is only true when it is present as
        this experiment's model, not another experiment's or one with other hyperparameters.

        :raises LossLensError: it is catalogued as another experiment's, or with other kwargs/hyperparameters.
        """
        rows = prepared.rows
        sha = rows["checkpoints"]["sha256"]
        if not db["checkpoints"].count_where("sha256 = ?", [sha]):
            return False
        held = db["checkpoints"].get(sha)["model_id"]
        if held != rows["models"]["id"]:
            model = db["models"].get(held)
            other = db["experiments"].get(model["experiment_id"])["name"]
            raise LossLensError(
                f"already catalogued as {held_as(other, model, self.experiment_row['name'])}, and a file is catalogued once",
                where=str(prepared.outcome.path),
                hint="ingest it with that experiment's spec, or into another catalog (--catalog)",
            )
        return True


def held_as(experiment: str, model: dict[str, Any], this: str) -> str:
    """How an already catalogued file's owner differs from what the spec now asks."""
    if experiment != this:
        return f"a checkpoint of experiment {experiment!r}"
    return f"model {model['name']!r} of this experiment with other model/problem kwargs or hyperparameters"


def ingest(
    spec_path: Path,
    catalog_path: Path | None = None,
    *,
    experiment: str | None = None,
    dry_run: bool = False,
    allow_globals: tuple[str, ...] = (),
    on_file: Callable[[IngestOutcome], None] | None = None,
) -> IngestReport:
    """Ingest every checkpoint a spec names. Bad files are reported, not fatal; a bad spec is.

    :param allow_globals: extra trusted globals for ``torch.load(weights_only=True)``, added to the
        spec's ``[checkpoints] allow_globals`` (see :mod:`losslens.checkpoints.safe_load`).
    :param dry_run: read and check every file, report each one's layout, write nothing.
    :raises LossLensError: the spec is invalid, or an allowed global is unknown or unsafe.
    """
    spec = load_spec(spec_path)
    name = experiment or spec.name
    files, empty = spec.checkpoint_files()
    report = IngestReport(name, empty_patterns=empty)
    ingester = _Ingester(spec, name, allow_globals)
    catalog = reader = None
    if not dry_run:
        catalog = open_catalog(catalog_path)
    else:
        reader = _existing_catalog(catalog_path)
    try:
        for path in files:
            try:
                prepared = ingester.prepare(path)
                if catalog is None:
                    present = reader is not None and ingester.is_present(reader.db, prepared)
                    prepared.outcome.status = "present" if present else "would-add"
                else:
                    ingester.write(catalog, prepared)
                outcome = prepared.outcome
            except LossLensError as exc:
                outcome = IngestOutcome(path, "failed", error=exc.line() if exc.where else f"{path}: {exc.line()}")
            except Exception as exc:  # a file torch or safetensors chokes on must not stop the batch
                detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                outcome = IngestOutcome(path, "failed", error=f"{path}: cannot ingest ({detail}) — report this file as a bug")
            report.outcomes.append(outcome)
            if on_file:
                on_file(outcome)
    finally:
        for opened in (catalog, reader):
            if opened is not None:
                opened.close()
    return report


def _existing_catalog(path: Path | None) -> Catalog | None:
    """The catalog, read-only, for a dry run to tell "present" from "would-add"; None where there is none
    yet, or it must be migrated first (the real ingest would do that)."""
    path = Path(path) if path is not None else default_catalog_path()
    if not path.exists():
        return None
    try:
        return open_catalog(path, readonly=True, snapshot=True)
    except LossLensError:
        return None
