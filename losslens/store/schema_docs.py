"""The catalog schema's documentation, from its one source: ``catalog/datasette.yaml``.

That file describes every table, view and column of a migrated catalog (a test checks it against
``PRAGMA table_info``), the sections and notes of ``docs/schema.md``, and the canned queries. From it come
the Datasette metadata the plugin's ``get_metadata`` hook serves for every LossLens catalog, the canned
queries of its ``canned_queries`` hook, and ``docs/schema.md`` (``python -m losslens.store.schema_docs``
rewrites it; a test checks that it is current).
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Any

import yaml

from losslens.resources import resource_path

SOURCE = "catalog/datasette.yaml"


@functools.cache
def source() -> dict[str, Any]:
    """The parsed source file (cached; treat as read-only)."""
    return yaml.safe_load(resource_path(SOURCE).read_text())


def _catalog_block() -> dict[str, Any]:
    return source()["databases"]["losslens"]


def _plain(text: str) -> str:
    """Markdown code spans become plain text: Datasette shows descriptions as text."""
    return text.replace("`", "")


@functools.cache
def _plain_tables() -> dict[str, tuple[str, dict[str, str], str | None]]:
    """Every documented table's description, column texts and label column as Datasette shows them (built once:
    the plugin's ``get_metadata`` hook runs several times per page)."""
    return {
        table: (
            _plain(doc["description"]),
            {name: _plain(text) for name, text in doc["columns"].items()},
            doc.get("label_column"),
        )
        for table, doc in _catalog_block()["tables"].items()
    }


def table_metadata(table: str) -> dict[str, Any] | None:
    """Datasette metadata of one table or view (``description``, ``columns`` and, where the table's name column
    is not called ``name``, ``label_column``: what Datasette shows for a foreign key to it), or None if
    undocumented. A fresh dict each call: Datasette merges the user's own metadata into what the hook returns."""
    found = _plain_tables().get(table)
    if found is None:
        return None
    description, columns, label_column = found
    meta: dict[str, Any] = {"description": description, "columns": dict(columns)}
    if label_column:
        meta["label_column"] = label_column
    return meta


def database_metadata(table: str | None = None) -> dict[str, Any]:
    """Datasette metadata of one catalog: its description and its tables' (only ``table``'s when given)."""
    names = [table] if table is not None else list(_plain_tables())
    tables = {name: meta for name in names if (meta := table_metadata(name)) is not None}
    return {"description": _plain(_catalog_block()["description"]), "tables": tables}


def instance_metadata() -> dict[str, Any]:
    """The top-level title and description of a Datasette that serves LossLens catalogs."""
    return {"title": source()["title"], "description_html": source()["description_html"]}


def canned_queries() -> dict[str, dict[str, Any]]:
    """The canned queries of a catalog (name → ``{"title", "description", "sql"}``), fresh copies."""
    return copy.deepcopy(_catalog_block()["queries"])


def documented_tables() -> dict[str, dict[str, Any]]:
    """Every documented table or view → ``{"description", "columns", ...}`` as written in the source."""
    return _catalog_block()["tables"]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def schema_markdown() -> str:
    """The text of ``docs/schema.md``: the source's intro, then per section its notes and, per table or
    view, its description, notes and a column table."""
    doc = source()["docs"]
    tables = documented_tables()
    out = [f"# {doc['title']}", "", doc["intro"].strip(), ""]
    for section in doc["sections"]:
        out += [f"## {section['title']}", ""]
        if section.get("about"):
            out += [section["about"].strip(), ""]
        for name in section["tables"]:
            table = tables[name]
            out += [f"### `{name}`", table["description"].strip(), ""]
            if table.get("notes"):
                out += [table["notes"].strip(), ""]
            out += ["| column | meaning |", "|---|---|"]
            out += [f"| `{column}` | {_cell(text)} |" for column, text in table["columns"].items()]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m losslens.store.schema_docs [PATH]``: write the schema reference (default docs/schema.md)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path("docs/schema.md")
    path.write_text(schema_markdown())


if __name__ == "__main__":
    main()
