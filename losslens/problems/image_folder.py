"""CIFAR-10 (or any image classification set) kept in a local folder.

Two layouts are understood:

* the CIFAR python layout: ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, each a
  pickled dict with ``data`` (N × 3072 uint8) and ``labels``;
* a PNG folder: ``train/<class>/*.png`` and ``test/<class>/*.png``.

The CIFAR pickles are read with an unpickler that only rebuilds plain containers and numpy
arrays, so a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from losslens.errors import LossLensError
from losslens.problems.base import ClassificationProblem

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # arrays in pickle protocol 5 (Python 3.14's default)
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only arrays and plain containers are allowed")


def load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N×3×32×32 uint8, labels) from one CIFAR python batch file."""
    try:
        with open(path, "rb") as fh:
            raw = _ArrayUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise LossLensError(
            f"cannot read CIFAR batch ({exc})", where=str(path), hint="re-extract cifar-10-python.tar.gz"
        ) from None
    if not isinstance(raw, dict):
        raise LossLensError("not a CIFAR batch (expected a dict)", where=str(path))
    raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if "data" not in raw or not ("labels" in raw or "fine_labels" in raw):
        raise LossLensError("not a CIFAR batch (needs 'data' and 'labels')", where=str(path))
    data = np.asarray(raw["data"], dtype=np.uint8)
    side = round((data.shape[1] / 3) ** 0.5)
    labels = np.asarray(raw.get("labels", raw.get("fine_labels")), dtype=np.int64)
    return data.reshape(-1, 3, side, side), labels


def _load_png_split(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for label, cls in enumerate(classes):
        for file in sorted((root / cls).glob("*.png")):
            with Image.open(file) as img:
                images.append(np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise LossLensError("no PNG images found", where=str(root), hint="expected train/<class>/*.png and test/<class>/*.png")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def load_image_folder(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise LossLensError(
            "no such folder",
            where=str(path),
            hint="download CIFAR-10 (python version) on a machine with internet, extract it, and pass its folder",
        )
    train_files = sorted(path.glob("data_batch_*"))
    if train_files and (path / "test_batch").exists():
        parts = [load_cifar_batch(f) for f in train_files]
        x_train = np.concatenate([p[0] for p in parts])
        y_train = np.concatenate([p[1] for p in parts])
        x_test, y_test = load_cifar_batch(path / "test_batch")
        return x_train, y_train, x_test, y_test
    if (path / "train").is_dir() and (path / "test").is_dir():
        x_train, y_train, classes = _load_png_split(path / "train")
        x_test, y_test, test_classes = _load_png_split(path / "test")
        if classes != test_classes:
            raise LossLensError("train and test class folders differ", where=str(path))
        return x_train, y_train, x_test, y_test
    raise LossLensError(
        "unrecognised layout",
        where=str(path),
        hint="expected CIFAR python batches (data_batch_1…, test_batch) or train/<class>/*.png and test/<class>/*.png",
    )


def image_folder(
    path: str, batch_size: int = 128, limit_train: int | None = None, limit_test: int | None = None
) -> ClassificationProblem:
    """Images scaled to [0, 1] and standardised per channel with training statistics."""
    x_train, y_train, x_test, y_test = load_image_folder(Path(path))
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_test, y_test = x_test[:limit_test], y_test[:limit_test]
    xtr = x_train.astype(np.float32) / 255.0
    xte = x_test.astype(np.float32) / 255.0
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-8
    t = torch.as_tensor
    return ClassificationProblem(Path(path).name, t((xtr - mean) / std), t(y_train), t((xte - mean) / std), t(y_test), batch_size)
