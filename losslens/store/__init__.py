"""The catalog: one SQLite file plus a content-addressed artifact folder beside it.

Only this package speaks SQL to the catalog; everything else calls its functions.
"""

from losslens.store import queries
from losslens.store.artifacts import Artifact, load_artifact, save_artifact
from losslens.store.catalog import Catalog, default_catalog_path, open_catalog
from losslens.store.ids import content_id, params_hash, sha256_file

__all__ = [
    "Artifact",
    "Catalog",
    "content_id",
    "default_catalog_path",
    "load_artifact",
    "open_catalog",
    "params_hash",
    "queries",
    "save_artifact",
    "sha256_file",
]
