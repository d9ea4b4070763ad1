"""Training the three case studies into checkpoints, sidecars and a ready experiment spec.

``train_convection`` (the PINN across β), ``train_classifier`` (ResNet-20 with and without skips) and
``train_modular`` (a small transformer on (a + b) mod p, with and without weight decay) are what
``losslens train`` and ``losslens demo`` call.
"""

from losslens.train.classifier import ClassifierConfig, train_classifier
from losslens.train.convection import ConvectionConfig, train_convection
from losslens.train.datasets import Dataset, parse_dataset
from losslens.train.modular import ModularConfig, train_modular
from losslens.train.outputs import RunRecord, TrainResult

__all__ = [
    "ClassifierConfig",
    "ConvectionConfig",
    "Dataset",
    "ModularConfig",
    "RunRecord",
    "TrainResult",
    "parse_dataset",
    "train_classifier",
    "train_convection",
    "train_modular",
]
