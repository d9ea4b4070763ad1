-- Hessian metric: eigenvalues, trace, spectral density and a summary row per run.
-- Eigenvectors and SLQ nodes/weights are run artifacts ("eigenvectors", "smallest_eigenvector",
-- "esd_nodes", "esd_weights").

CREATE TABLE hessian_eigenvalues (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    params_hash TEXT NOT NULL,
    which TEXT NOT NULL CHECK (which IN ('largest', 'smallest')),
    rank INTEGER NOT NULL,               -- 0 = largest (which='largest') or most negative (which='smallest')
    value REAL NOT NULL,                 -- signed eigenvalue
    residual REAL,                       -- Lanczos estimate of ‖Hv − λv‖; NULL for the pyhessian backend
    PRIMARY KEY (run_id, which, rank)
);
CREATE INDEX hessian_eigenvalues_checkpoint ON hessian_eigenvalues(checkpoint);

CREATE TABLE hessian_trace (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    params_hash TEXT NOT NULL,
    estimate REAL NOT NULL,              -- Hutchinson mean of zᵀHz
    std_error REAL NOT NULL,             -- sample std / sqrt(probes)
    probes INTEGER NOT NULL,
    PRIMARY KEY (run_id)
);
CREATE INDEX hessian_trace_checkpoint ON hessian_trace(checkpoint);

CREATE TABLE hessian_esd (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    params_hash TEXT NOT NULL,
    x REAL NOT NULL,                     -- eigenvalue grid point
    density REAL NOT NULL,               -- Gaussian-broadened SLQ density; integrates to 1 over x
    PRIMARY KEY (run_id, x)
);
CREATE INDEX hessian_esd_checkpoint ON hessian_esd(checkpoint);

CREATE TABLE hessian_summaries (
    run_id TEXT NOT NULL REFERENCES metric_runs(id) ON DELETE CASCADE,
    checkpoint TEXT NOT NULL REFERENCES checkpoints(sha256) ON DELETE CASCADE,
    params_hash TEXT NOT NULL,
    backend TEXT NOT NULL,               -- lanczos | pyhessian
    eigen_method TEXT NOT NULL,          -- lanczos-full-reorthogonalisation | power-iteration-deflation
    hvp_method TEXT NOT NULL,            -- how Hessian-vector products were computed
    tolerance REAL NOT NULL,             -- the eigen solver's tolerance actually used
    max_iter INTEGER NOT NULL,
    converged INTEGER,                   -- 1/0 for lanczos; NULL for pyhessian (it does not say)
    lanczos_steps INTEGER,               -- Krylov dimension reached (lanczos)
    eigen_hvps INTEGER NOT NULL,         -- Hessian-vector products spent on eigenpairs
    eigen_seconds REAL NOT NULL,
    trace_hvps INTEGER,
    trace_seconds REAL,
    esd_method TEXT,                     -- slq, or NULL when the ESD was not asked for
    esd_runs INTEGER,
    esd_steps INTEGER,
    esd_sigma REAL,                      -- absolute Gaussian width used
    esd_hvps INTEGER,
    esd_seconds REAL,
    n_params INTEGER NOT NULL,
    batches INTEGER NOT NULL,            -- training batches the loss averaged (the PINN has one)
    batch_size INTEGER,                  -- examples per batch (classifiers)
    bn_mode TEXT,                        -- 'eval' when the model has BatchNorm (running statistics), else NULL
    loss REAL NOT NULL,                  -- the training loss at which the Hessian was taken
    PRIMARY KEY (run_id)
);
CREATE INDEX hessian_summaries_checkpoint ON hessian_summaries(checkpoint);
