-- Foundation schema: experiments, settings, models, checkpoints, metric runs and artifacts.
-- Migrations are append-only: never edit an applied file, add a new one.

CREATE TABLE experiments (
    id TEXT PRIMARY KEY,                 -- sha256(name)[:16]
    name TEXT NOT NULL UNIQUE,
    spec_path TEXT,                      -- absolute path of the TOML spec it was ingested from
    spec_toml TEXT,                      -- the spec's text at ingestion time
    created_at TEXT NOT NULL
);

CREATE TABLE settings (
    id TEXT PRIMARY KEY,                 -- sha256(experiment id, values)[:16]
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    label TEXT NOT NULL,                 -- e.g. "beta=30"
    values_json TEXT NOT NULL            -- {"beta": 30.0}
);
CREATE INDEX settings_experiment ON settings(experiment_id);

CREATE TABLE models (
    id TEXT PRIMARY KEY,                 -- sha256(experiment, specs, hparams)[:16]
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    setting_id TEXT NOT NULL REFERENCES settings(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    architecture_json TEXT NOT NULL,     -- {"factory": ..., "kwargs": {...}} after sidecar overrides
    problem_json TEXT NOT NULL,          -- {"factory": ..., "kwargs": {...}} after sidecar overrides
    hparams_json TEXT NOT NULL           -- every hyperparameter known for this model, seed excluded
);
CREATE INDEX models_setting ON models(setting_id);

CREATE TABLE checkpoints (
    sha256 TEXT PRIMARY KEY,             -- of the file's bytes
    path TEXT NOT NULL,                  -- absolute path at ingestion
    size_bytes INTEGER NOT NULL,
    format TEXT NOT NULL,                -- "torch" or "safetensors"
    model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    name TEXT NOT NULL,                  -- display name, the file stem by default
    seed INTEGER,
    step INTEGER,                        -- training step or epoch, when known
    n_params INTEGER NOT NULL,           -- trainable parameters
    meta_json TEXT NOT NULL,             -- sidecar and in-file metadata, verbatim
    ingested_at TEXT NOT NULL
);
CREATE INDEX checkpoints_model ON checkpoints(model_id);

CREATE TABLE metric_runs (
    id TEXT PRIMARY KEY,                 -- sha256(metric, subject, params_hash)[:16]
    metric TEXT NOT NULL,
    scope TEXT NOT NULL,                 -- checkpoint | pair | setting | experiment
    subject TEXT NOT NULL,               -- checkpoint sha, "sha_a:sha_b", setting id or experiment id
    checkpoint TEXT REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    checkpoint_b TEXT REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    setting_id TEXT REFERENCES settings(id) ON DELETE CASCADE,
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    params_json TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    code_version TEXT NOT NULL,
    device TEXT,
    wall_seconds REAL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX metric_runs_metric ON metric_runs(metric, status);
CREATE INDEX metric_runs_checkpoint ON metric_runs(checkpoint);
CREATE INDEX metric_runs_setting ON metric_runs(setting_id);

CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY,             -- of the .npy bytes
    kind TEXT NOT NULL,                  -- e.g. "hessian_eigenvectors", "landscape_grid"
    shape_json TEXT NOT NULL,
    dtype TEXT NOT NULL,
    path TEXT NOT NULL,                  -- relative to the catalog folder: artifacts/ab/abcd....npy
    size_bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,                  -- the role the artifact plays in that run
    artifact TEXT NOT NULL REFERENCES artifacts(sha256),
    PRIMARY KEY (run_id, name)
);

CREATE TABLE performance (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    split TEXT NOT NULL,                 -- train | test | eval
    name TEXT NOT NULL,                  -- loss, accuracy, error, loss_ic, rel_l2, ...
    value REAL,                          -- NULL only when the value is not finite (see is_finite)
    is_finite INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, split, name)
);
CREATE INDEX performance_checkpoint ON performance(checkpoint);
