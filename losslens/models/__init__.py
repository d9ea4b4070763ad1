"""Built-in architectures. Specs name them as ``losslens.models:<name>`` (or just ``<name>``)."""

from losslens.models.hf import hf_causal_lm
from losslens.models.mlp import mlp, pinn_mlp
from losslens.models.resnet import resnet20
from losslens.models.transformer import modular_transformer

__all__ = ["hf_causal_lm", "mlp", "modular_transformer", "pinn_mlp", "resnet20"]
