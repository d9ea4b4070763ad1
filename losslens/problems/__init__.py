"""What a loss is computed on, and how. Specs name them as ``losslens.problems:<name>``.

Every metric is written against :class:`~losslens.problems.base.Problem`, never a model.
"""

from losslens.problems.base import ClassificationProblem, Problem
from losslens.problems.causal_lm import CausalLMProblem, causal_lm
from losslens.problems.convection import ConvectionProblem, convection
from losslens.problems.digits import digits
from losslens.problems.from_dataset import from_dataset
from losslens.problems.image_folder import image_folder
from losslens.problems.mnist import fashion_mnist, mnist
from losslens.problems.modular import ModularAdditionProblem, modular_addition

__all__ = [
    "CausalLMProblem",
    "ClassificationProblem",
    "ConvectionProblem",
    "ModularAdditionProblem",
    "Problem",
    "causal_lm",
    "convection",
    "digits",
    "fashion_mnist",
    "from_dataset",
    "image_folder",
    "mnist",
    "modular_addition",
]
