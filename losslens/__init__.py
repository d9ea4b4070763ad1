"""LossLens: diagnose neural networks through their loss landscapes."""

__version__ = "0.1.0"
