# LossLens tasks. `just` comes with the dev extra (rust-just).

# Create .venv with torch (CPU) and LossLens + dev tools, and Chromium for the browser tests
setup:
    bash .ci/setup

# Train and analyse the PINN case study end to end (pass --quick for the small version)
demo *ARGS:
    .venv/bin/losslens demo {{ARGS}}

# Run the test suite
test *ARGS:
    .venv/bin/pytest {{ARGS}}

# Static checks: ruff (lint and format) on the whole tree, mypy on losslens/ (config in pyproject.toml)
lint:
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy

# Side-by-side benchmarks against the anchors (run on a quiet machine)
bench:
    .venv/bin/python bench/hessian.py
    .venv/bin/python bench/landscape.py
    .venv/bin/python bench/topology.py
    .venv/bin/python bench/cli_start.py

# Browse the catalog with Datasette and the LossLens views on 127.0.0.1
serve *ARGS:
    .venv/bin/losslens serve {{ARGS}}

# Regenerate docs/cli.md from the command line's own help, and docs/schema.md from catalog/datasette.yaml
docs:
    .venv/bin/python -m typer losslens.cli utils docs --name losslens --title "LossLens command line" --output docs/cli.md
    .venv/bin/python -m losslens.store.schema_docs docs/schema.md
