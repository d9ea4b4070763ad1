"""``losslens taxonomy``: the settings of an experiment with their global metrics and phase."""

from __future__ import annotations

from rich.table import Table

from losslens.cli.app import DEFAULT_CATALOG, CatalogOpt, ExperimentOpt, JsonOpt, app, console, print_json, user_errors
from losslens.taxonomy.table import taxonomy_table

COLUMNS = (
    ("experiment", "experiment"),
    ("setting", "setting"),
    ("phase", "phase"),
    ("seeds", "n_checkpoints"),
    ("train loss", "train_loss"),
    ("train err", "train_error"),
    ("test err", "test_error"),
    ("log λmax", "log_top_eigenvalue"),
    ("log tr H", "log_trace"),
    ("mc", "mc"),
    ("CKA", "cka"),
    ("note", "note"),
)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command()
@user_errors
def taxonomy(catalog: CatalogOpt = DEFAULT_CATALOG, experiment: ExperimentOpt = None, json: JsonOpt = False) -> None:
    """Settings with training loss/error, Hessian sharpness, mc, CKA and their phase (run `compute taxonomy` first)."""
    rows = taxonomy_table(catalog, experiment)
    if json:
        print_json(rows)
        return
    table = Table(title="Loss-landscape taxonomy (Yang et al. 2021)", title_justify="left")
    for header, key in COLUMNS:
        table.add_column(header, overflow="fold", no_wrap=key in ("setting", "phase"))
    for row in rows:
        table.add_row(*[_cell(row.get(key)) for _, key in COLUMNS])
    console.print(table)
    seen = set()
    for row in rows:
        t = row["thresholds"]
        eps = t["mc"]["epsilon"]
        line = (
            f"{row['experiment']}: well connected when mc ≥ {(-eps) or 0.0:g}; "
            f"sharp when {t['sharpness']['measure']} > {_cell(t['sharpness']['value'])} ({t['sharpness']['source']}); "
            f"high CKA when ≥ {_cell(t['cka']['value'])} ({t['cka']['source']})"
        )
        if line not in seen:
            seen.add(line)
            console.print(line, highlight=False)
