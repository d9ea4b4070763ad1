"""LossLens: diagnose neural networks through their loss landscapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from losslens.notebook import Lens

__version__ = "0.1.0"


def open(catalog: str = "catalog/losslens.db") -> Lens:
    """A read-only handle on a catalog for notebooks: ``losslens.open(path).chart("landscape", checkpoint=...)``.

    See :class:`losslens.notebook.Lens`. Imported lazily, so ``import losslens`` stays light.
    """
    from losslens.notebook import Lens

    return Lens(catalog)
