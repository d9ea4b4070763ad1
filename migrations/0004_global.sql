-- Global structure: mode connectivity, CKA similarity, MDS layout and the loss-landscape taxonomy.

CREATE TABLE pair_metrics (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint_a TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    checkpoint_b TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    metric TEXT NOT NULL,                -- mc | cka | cka_debiased
    curve TEXT,                          -- mc: bezier | polychain | linear; NULL for cka
    quantity TEXT NOT NULL,              -- what it is computed on: error (%, classifiers) | loss (PINN) | softmax | u
    value REAL,                          -- NULL only when not finite
    params_hash TEXT NOT NULL            -- of the run's parameters (= metric_runs.params_hash)
);
CREATE INDEX pair_metrics_run ON pair_metrics(run_id);
CREATE INDEX pair_metrics_pair ON pair_metrics(checkpoint_a, checkpoint_b, metric);

CREATE TABLE curve_points (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint_a TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    checkpoint_b TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    curve TEXT NOT NULL,                 -- bezier | polychain | linear
    t REAL NOT NULL,                     -- position on the curve, 0 = checkpoint_a, 1 = checkpoint_b
    loss REAL,                           -- training loss at t (NULL when not finite)
    error REAL,                          -- training error fraction (classifiers) or eval rel. L2 (PINN)
    PRIMARY KEY (run_id, curve, t)
);

CREATE TABLE layer_cka (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint_a TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    checkpoint_b TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    layer_a TEXT NOT NULL,               -- module name in checkpoint_a's model, e.g. layers.0.conv1
    layer_b TEXT NOT NULL,
    index_a INTEGER NOT NULL,            -- the layer's position in forward order, for heat-map axes
    index_b INTEGER NOT NULL,
    value REAL,                          -- CKA between the two layers' outputs (NULL when not finite)
    PRIMARY KEY (run_id, layer_a, layer_b)
);

CREATE TABLE mds_coords (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    setting_id TEXT NOT NULL REFERENCES settings(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    x REAL NOT NULL,
    y REAL NOT NULL,
    PRIMARY KEY (run_id, checkpoint)
);

CREATE TABLE taxonomy (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    setting_id TEXT NOT NULL REFERENCES settings(id) ON DELETE CASCADE,
    n_checkpoints INTEGER NOT NULL,
    n_pairs INTEGER NOT NULL,            -- seed pairs with an mc value
    train_loss REAL,                     -- mean over checkpoints
    train_error REAL,                    -- mean training error fraction (classifiers); NULL for the PINN
    test_error REAL,                     -- mean test error (classifiers) or eval rel. L2 (PINN)
    log_top_eigenvalue REAL,             -- log of the mean top Hessian eigenvalue
    log_trace REAL,                      -- log of the mean Hessian trace
    mc REAL,                             -- mean mc over seed pairs
    cka REAL,                            -- mean model-level CKA over seed pairs
    well_connected INTEGER,              -- 1 when mc ≥ −ε
    sharp INTEGER,                       -- 1 when the sharpness measure is above its threshold
    high_cka INTEGER,                    -- 1 when cka is at or above its threshold
    phase TEXT,                          -- I | II | III | IV-A | IV-B; NULL when an input is missing
    note TEXT,                           -- why phase is NULL
    thresholds_json TEXT NOT NULL,       -- the thresholds used, and where they came from
    sources_json TEXT NOT NULL,          -- params_hash of the metric runs read, per metric
    PRIMARY KEY (run_id, setting_id)
);
CREATE INDEX taxonomy_setting ON taxonomy(setting_id);
