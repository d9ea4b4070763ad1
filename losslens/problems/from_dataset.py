"""Your model and your dataset, without subclassing: a problem from a ``torch.utils.data.Dataset``
and a loss named in the spec.

.. code-block:: toml

    [problem]
    factory = "losslens.problems:from_dataset"
    kwargs = { train = "mypkg.data:train_set", test = "mypkg.data:test_set", loss = "cross_entropy" }

``train``/``test`` name a Dataset object or a function returning one (called with ``dataset_kwargs``);
each item is ``(input, target)``. The datasets are read once, in index order, into memory, so batches
come in a fixed order and every metric sees the same examples. ``loss`` is ``cross_entropy`` (a
classifier: error, class probabilities and mixup inputs for CKA), ``mse``, or ``pkg.module:fn`` with
``fn(output, target) -> scalar tensor``. For a model with several outputs, ``output`` picks one (an
index of a tuple or a key of a dict); a loss given by import path receives the whole output and can
pick itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, Dataset

from losslens.errors import LossLensError
from losslens.problems.base import ClassificationProblem, Problem, State, cross_entropy

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, written with primitives so every torch.func transform goes through it."""
    return ((output - target.reshape(output.shape).to(output.dtype)) ** 2).mean()


LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "mse": mse}


def pick_output(output: Any, which: int | str | None) -> torch.Tensor:
    """The model output the loss uses: the output itself, or element/key ``which`` of a tuple/dict.

    :raises LossLensError: several outputs and no ``which``, or ``which`` is not one of them.
    """
    if which is None:
        if isinstance(output, torch.Tensor):
            return output
        count = len(output) if isinstance(output, (tuple, list, dict)) else "several"
        raise LossLensError(
            f"the model returns {count} outputs ({type(output).__name__})",
            where="[problem]",
            hint="choose the one the loss uses with output = 0 (or a key) in [problem].kwargs, or give a loss by import path",
        )
    try:
        return output[which]
    except (KeyError, IndexError, TypeError):
        raise LossLensError(f"output {which!r} is not one of the model's outputs", where="[problem]") from None


def _resolve(path: str, field: str) -> Any:
    from losslens.spec import resolve_factory

    return resolve_factory(path, f"[problem].kwargs.{field}")


def load_dataset(path: str, kwargs: dict[str, Any], field: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(input, target)`` items of the dataset at ``path``, stacked in index order.

    :raises LossLensError: the path does not name a Dataset (or a function returning one), or its items
        are not ``(input, target)`` pairs of tensors or numbers.
    """
    obj = _resolve(path, field)
    dataset = obj if isinstance(obj, Dataset) else obj(**kwargs)
    if not isinstance(dataset, Dataset):
        raise LossLensError(
            f"{path} gave a {type(dataset).__name__}, not a torch.utils.data.Dataset",
            where=f"[problem].kwargs.{field}",
            hint="name a Dataset or a function returning one",
        )
    xs, ys = [], []
    where = f"[problem].kwargs.{field}"
    hint = "make the Dataset's __getitem__ return (input, target) tensors or numbers"
    try:
        for batch in DataLoader(dataset, batch_size=256, shuffle=False):
            if not (isinstance(batch, (list, tuple)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)):
                raise LossLensError(f"items of {path} are not (input, target) pairs ({_shape_of(batch)})", where=where, hint=hint)
            xs.append(batch[0])
            ys.append(batch[1])
    except (TypeError, ValueError, RuntimeError) as exc:  # default_collate refuses what it cannot stack
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LossLensError(f"items of {path} are not (input, target) pairs ({detail})", where=where, hint=hint) from None
    if not xs:
        raise LossLensError(f"{path} is empty", where=f"[problem].kwargs.{field}")
    return torch.cat(xs), torch.cat(ys)


def _shape_of(batch: Any) -> str:
    """What a collated batch is, in a few words, for the refusal line."""
    if isinstance(batch, dict):
        return f"each item is a dict with keys {', '.join(map(str, batch))}"
    if isinstance(batch, (list, tuple)):
        kinds = ", ".join(type(t).__name__ for t in batch)
        return f"each item has {len(batch)} fields ({kinds})"
    return f"each item is a {type(batch).__name__}"


class DatasetClassifier(ClassificationProblem):
    """A classifier over an in-memory dataset; ``output`` picks the logits of a multi-output model."""

    def __init__(
        self,
        name: str,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        batch_size: int,
        output: int | str | None,
    ):
        super().__init__(name, *train, *test, batch_size=batch_size)
        self.output = output

    def logits(self, model: nn.Module, state: State, x: torch.Tensor) -> torch.Tensor:
        return pick_output(functional_call(model, state, (x,)), self.output)


class DatasetProblem(Problem):
    """Inputs and targets in memory with any loss ``fn(output, target)``: the base interface only."""

    kind: ClassVar[str] = "dataset"

    def __init__(self, name: str, train: tuple, test: tuple, loss: LossFn, loss_name: str, batch_size: int, output: Any):
        self.name = name
        self.data = {"train": train, "test": test}
        self.loss_fn, self.loss_name = loss, loss_name
        self.batch_size, self.output = batch_size, output

    def to(self, device: torch.device) -> DatasetProblem:
        self.device = torch.device(device)
        self.data = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in self.data.items()}
        return self

    def batches(
        self, split: str = "train", batch_size: int | None = None, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.data[split]
        size = batch_size or self.batch_size
        for i, start in enumerate(range(0, len(x), size)):
            if limit is not None and i >= limit:
                return
            yield x[start : start + size], y[start : start + size]

    def loss(self, model: nn.Module, state: State, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        output = functional_call(model, state, (x,))
        if self.output is not None or self.loss_name in LOSSES:  # a loss by import path may pick itself
            output = pick_output(output, self.output)
        return self.loss_fn(output, y)

    @torch.no_grad()
    def performance(self, model: nn.Module, state: State) -> list[tuple[str, str, float]]:
        rows = []
        for split in ("train", "test"):
            total, n = 0.0, 0
            for batch in self.batches(split):
                total += float(self.loss(model, state, batch)) * len(batch[0])
                n += len(batch[0])
            rows.append((split, "loss", total / n))
        return rows


def from_dataset(
    train: str,
    test: str | None = None,
    loss: str = "cross_entropy",
    dataset_kwargs: dict[str, Any] | None = None,
    batch_size: int = 128,
    output: int | str | None = None,
) -> Problem:
    """A problem from your Dataset(s) and a loss by name (``cross_entropy``, ``mse``) or import path.

    :param train: ``pkg.module:obj``, a Dataset or a function returning one (called with ``dataset_kwargs``).
    :param test: the same for the test split (default: the training set, so test metrics equal train).
    :param output: which output of a multi-output model the loss uses (tuple index or dict key).
    :raises LossLensError: an import path, a dataset or the loss name is wrong (one line naming the field).
    """
    kwargs = dict(dataset_kwargs or {})
    train_xy = load_dataset(train, kwargs, "train")
    test_xy = load_dataset(test, kwargs, "test") if test else train_xy
    if loss == "cross_entropy":
        return DatasetClassifier(train, train_xy, test_xy, batch_size, output)
    fn = LOSSES.get(loss) or (_resolve(loss, "loss") if ":" in loss else None)
    if fn is None:
        raise LossLensError(
            f"unknown loss {loss!r}", where="[problem].kwargs.loss", hint="use cross_entropy, mse, or 'pkg.module:fn'"
        )
    return DatasetProblem(train, train_xy, test_xy, fn, loss, batch_size, output)
