"""Training the two case studies into checkpoints, sidecars and a ready experiment spec.

``train_convection`` (the PINN across β) and ``train_classifier`` (ResNet-20 with and without skips)
are what ``losslens train`` and ``losslens demo`` call.
"""

from losslens.train.classifier import ClassifierConfig, train_classifier
from losslens.train.convection import ConvectionConfig, train_convection
from losslens.train.datasets import Dataset, parse_dataset
from losslens.train.outputs import RunRecord, TrainResult

__all__ = [
    "ClassifierConfig",
    "ConvectionConfig",
    "Dataset",
    "RunRecord",
    "TrainResult",
    "parse_dataset",
    "train_classifier",
    "train_convection",
]
