-- Loss landscapes (metric `landscape`) and their topology (metric `topology`).
-- A landscape's id is its metric run's id; the topology tables point at it with landscape_id.

CREATE TABLE landscapes (
    id TEXT PRIMARY KEY,                 -- = run_id: content id of (landscape, checkpoint, params hash)
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    directions TEXT NOT NULL,            -- random | hessian | pca
    direction_source TEXT NOT NULL,      -- how the directions were made (seed, hessian run id, PCA variance)
    normalization TEXT NOT NULL,         -- filter | layer | unit
    orthogonalized INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    dims INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    samples INTEGER NOT NULL,            -- 0: full grid; N: sampled landscape
    span REAL NOT NULL,
    span_mode TEXT NOT NULL,             -- relative | absolute
    theta_norm REAL NOT NULL,
    direction_norms_json TEXT NOT NULL,
    half_widths_json TEXT NOT NULL,      -- per axis, in units of the direction
    n_points INTEGER NOT NULL,
    n_nonfinite INTEGER NOT NULL,
    centre_loss REAL,
    loss_batches INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    eval_seconds REAL NOT NULL,
    batch_norm_eval INTEGER NOT NULL,
    notes TEXT,
    params_hash TEXT NOT NULL,
    grid_artifact TEXT NOT NULL REFERENCES artifacts(sha256),
    directions_artifact TEXT NOT NULL REFERENCES artifacts(sha256),
    coordinates_artifact TEXT REFERENCES artifacts(sha256)
);
CREATE INDEX landscapes_checkpoint ON landscapes(checkpoint);

CREATE TABLE landscape_points (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,   -- = landscapes.id
    point INTEGER NOT NULL,              -- C-order flat index into the grid artifact (or sample index)
    i INTEGER, j INTEGER, k INTEGER, l INTEGER,
    a REAL, b REAL, c REAL, d REAL,
    loss REAL,                           -- NULL when not finite
    is_finite INTEGER NOT NULL,
    PRIMARY KEY (run_id, point)
);

CREATE TABLE persistence_pairs (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    landscape_id TEXT NOT NULL REFERENCES landscapes(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    dim INTEGER NOT NULL,
    birth REAL NOT NULL,
    death REAL,                          -- NULL: never dies, or dies only at a non-finite point
    persistence REAL,
    birth_point INTEGER NOT NULL,
    death_point INTEGER                  -- NULL for essential classes
);
CREATE INDEX persistence_pairs_run ON persistence_pairs(run_id, dim);

CREATE TABLE merge_tree_nodes (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    landscape_id TEXT NOT NULL REFERENCES landscapes(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    node INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('minimum', 'saddle', 'root')),
    point INTEGER NOT NULL,
    value REAL,                          -- NULL for a non-finite root
    x REAL NOT NULL,
    y REAL NOT NULL,
    branch INTEGER NOT NULL,
    persistence REAL,
    basin_size INTEGER,
    PRIMARY KEY (run_id, node)
);

CREATE TABLE merge_tree_edges (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    landscape_id TEXT NOT NULL REFERENCES landscapes(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    lower INTEGER NOT NULL,
    upper INTEGER NOT NULL,
    branch INTEGER NOT NULL,
    PRIMARY KEY (run_id, lower, upper)
);

CREATE TABLE landscape_summaries (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    landscape_id TEXT NOT NULL REFERENCES landscapes(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    threshold REAL NOT NULL,
    n_minima INTEGER NOT NULL,
    n_minima_above INTEGER NOT NULL,
    total_persistence REAL NOT NULL,
    max_persistence REAL NOT NULL,
    smad REAL,
    basin_sizes_json TEXT NOT NULL,
    centre_basin_size INTEGER NOT NULL,
    n_points INTEGER NOT NULL,
    n_nonfinite INTEGER NOT NULL,
    centre_loss REAL,
    grid_min REAL,
    grid_mean REAL,
    grid_max REAL,
    centre_minus_mean REAL,
    centre_over_max REAL,
    curvature_1 REAL, curvature_2 REAL, curvature_3 REAL, curvature_4 REAL,
    PRIMARY KEY (run_id)
);
