"""LossLens: diagnose neural networks through their loss landscapes."""

__version__ = "0.1.0"


def open(catalog: str = "catalog/losslens.db"):
    """A read-only handle on a catalog for notebooks: ``losslens.open(path).chart("landscape", checkpoint=...)``.

    See :class:`losslens.notebook.Lens`. Imported lazily, so ``import losslens`` stays light.
    """
    from losslens.notebook import Lens

    return Lens(catalog)
