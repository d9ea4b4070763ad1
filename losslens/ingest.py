"""From checkpoint files into the catalog: read safely, check against the model, hash, upsert.

Each checkpoint is written in its own transaction, so a crash or a bad file leaves every
other checkpoint intact, and re-ingesting adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslens.checkpoints import check_state_dict, checkpoint_metadata, read_checkpoint
from losslens.errors import LossLensError
from losslens.spec import ExperimentSpec, FactorySpec, load_spec
from losslens.store import content_id, open_catalog, sha256_file
from losslens.store.catalog import Catalog, utcnow
from losslens.store.ids import canonical_json


@dataclass
class IngestOutcome:
    path: Path
    status: str  # added | present | would-add | failed
    error: str | None = None
    sha256: str | None = None
    setting: str | None = None
    seed: int | None = None


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
    def __init__(self, spec: ExperimentSpec, experiment: str):
        self.spec = spec
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

    def prepare(self, path: Path) -> _Prepared:
        where = str(path)
        ckpt = read_checkpoint(path)
        hparams, seed, step, name = checkpoint_metadata(ckpt.meta, self.spec.hparams)
        model_spec = self.spec.model.with_overrides(hparams, f"{self.spec.path}: model.factory")
        problem_spec = self.spec.problem.with_overrides(hparams, f"{self.spec.path}: problem.factory")
        model = self._model(model_spec, f"{self.spec.path}: [model]")
        self._check_problem(problem_spec, f"{self.spec.path}: [problem]")
        check_state_dict(model, ckpt.state_dict, where)
        values = setting_values(self.spec.setting_keys, [hparams, model_spec.kwargs, problem_spec.kwargs], where)
        label = ", ".join(f"{k}={format_value(v)}" for k, v in values.items()) or "default"
        setting_id = content_id("setting", self.experiment_id, values)
        model_id = content_id("model", self.experiment_id, model_spec.as_dict(), problem_spec.as_dict(), hparams)
        short = self.spec.model.factory.rsplit(":", 1)[-1]
        sha = sha256_file(path)
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
                "size_bytes": path.stat().st_size,
                "format": ckpt.format,
                "model_id": model_id,
                "name": name or path.stem,
                "seed": seed,
                "step": step,
                "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "meta_json": canonical_json(ckpt.meta),
                "ingested_at": utcnow(),
            },
        }
        return _Prepared(rows, IngestOutcome(path, "added", sha256=sha, setting=label, seed=seed))

    def write(self, catalog: Catalog, prepared: _Prepared) -> None:
        rows = prepared.rows
        with catalog.write() as db:
            if db["checkpoints"].count_where("sha256 = ?", [rows["checkpoints"]["sha256"]]):
                prepared.outcome.status = "present"
                return
            db["experiments"].insert(self.experiment_row, ignore=True)
            db["settings"].insert(rows["settings"], ignore=True)
            db["models"].insert(rows["models"], ignore=True)
            db["checkpoints"].insert(rows["checkpoints"])


def ingest(
    spec_path: Path,
    catalog_path: Path | None = None,
    *,
    experiment: str | None = None,
    dry_run: bool = False,
    on_file: Callable[[IngestOutcome], None] | None = None,
) -> IngestReport:
    """Ingest every checkpoint a spec names. Bad files are reported, not fatal; a bad spec is."""
    spec = load_spec(spec_path)
    name = experiment or spec.name
    files, empty = spec.checkpoint_files()
    report = IngestReport(name, empty_patterns=empty)
    ingester = _Ingester(spec, name)
    catalog = None
    if not dry_run:
        catalog = open_catalog(catalog_path)
    try:
        for path in files:
            try:
                prepared = ingester.prepare(path)
                if catalog is None:
                    prepared.outcome.status = "would-add"
                else:
                    ingester.write(catalog, prepared)
                outcome = prepared.outcome
            except LossLensError as exc:
                outcome = IngestOutcome(path, "failed", error=exc.line() if exc.where else f"{path}: {exc.line()}")
            report.outcomes.append(outcome)
            if on_file:
                on_file(outcome)
    finally:
        if catalog is not None:
            catalog.close()
    return report
