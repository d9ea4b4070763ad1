-- Predictions: what the pair view compares between two modes.

CREATE TABLE prediction_fields (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    field TEXT NOT NULL,                 -- u (the PINN's prediction) | u_exact (the exact solution)
    artifact TEXT NOT NULL REFERENCES artifacts(sha256),  -- (n_x, n_t) float32 array on the evaluation grid
    n_x INTEGER NOT NULL,
    n_t INTEGER NOT NULL,
    x_min REAL NOT NULL,
    x_max REAL NOT NULL,                 -- the grid's last x (the period end 2π is excluded)
    t_min REAL NOT NULL,
    t_max REAL NOT NULL,
    PRIMARY KEY (run_id, field)
);
CREATE INDEX prediction_fields_checkpoint ON prediction_fields(checkpoint);

CREATE TABLE confusion_matrices (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    split TEXT NOT NULL,                 -- train | test
    true_label INTEGER NOT NULL,
    predicted_label INTEGER NOT NULL,
    count INTEGER NOT NULL,              -- examples of true_label predicted as predicted_label (zeros included)
    PRIMARY KEY (run_id, split, true_label, predicted_label)
);
CREATE INDEX confusion_matrices_checkpoint ON confusion_matrices(checkpoint);
