"""Built-in architectures. Specs name them as ``losslens.models:<name>`` (or just ``<name>``)."""

from losslens.models.mlp import mlp, pinn_mlp
from losslens.models.resnet import resnet20

__all__ = ["mlp", "pinn_mlp", "resnet20"]
