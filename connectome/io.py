"""Saving and loading networks: one ``.npz`` file, versioned and checksummed.

``net.save(path)`` (or :func:`save`) writes a network, and optionally its
optimiser, to ``path``; :func:`load` rebuilds it exactly: the same populations
in the same order, the same projections with the same synapses, weights, fan-out
rules and initialisers, the same biases, dropout rates and training mode, and
the same random-generator state.  So ``predict`` on the loaded network is
bitwise equal to the original's, and further training (``grow`` from the
initialiser, ``add_neurons``, SET rewiring, dropout masks) draws the same
random numbers as the original would have.

File format (schema version 1)
------------------------------
A zip archive written by ``numpy.savez`` (uncompressed); every member is a plain
``.npy`` array, so it is read with ``numpy.load(..., allow_pickle=False)``.  The
file is written at exactly the path given: no ``.npz`` suffix is added (".npz"
is the recommended extension).  Members (``i`` indexes populations in creation
order, ``j`` projections in creation order, ``S`` the projection's synapses):

``header``          (H,) uint8, UTF-8 JSON, described below
``checksum``        (64,) uint8, ASCII hex sha256 of every other member (below)
``pop.i.bias``      (N_i,) float32, the population's biases
``pop.i.state.k``   (N_i, ...) the k-th per-neuron optimiser array
                    (``pop._neuron_state``), only when an optimiser was saved
``proj.j.counts``   (n_pre,) int32, synapses per presynaptic neuron (row lengths)
``proj.j.post``     (S,) int32, postsynaptic ids, rows one after the other, each
                    strictly increasing: the order of ``Projection.to_coo``
``proj.j.w``        (S,) float32, weights in the same order
``proj.j.state0``,
``proj.j.state1``   (S,) float32, the optimiser's per-synapse columns
                    (``COL_STATE0`` / ``COL_STATE1``), only when an optimiser
                    was saved and the column is enabled
``rng.k``, ``opt.k``  arrays referenced from the header's ``rng`` / ``optimizer``

The header is a JSON object::

    {"format": "connectome.network", "schema_version": 1,
     "library_version": "0.1.0", "checksum": "sha256",
     "training": true,
     "populations": [{"name": "input", "size": 64, "activation": "linear",
                      "dropout": 0.0, "neuron_state": ["momentum", ...]}, ...],
     "projections": [{"pre": "input", "post": "hidden", "fanout_rule": 16,
                      "n_synapses": 1024,
                      "init": {"kind": "uniform", "a": -0.5, "b": 0.5,
                               "description": "uniform(-0.5, 0.5)"},
                      "state_columns": ["state0", "state1"]}, ...],
     "rng": <numpy bit_generator.state>,
     "optimizer": null | {"class": "SGD", "state": <opt.state_dict()>}}

``init.kind`` is "const", "uniform" or "normal" (U(a, b), N(a, b^2), or the
constant a); ``neuron_state`` and ``state_columns`` are empty lists when no
optimiser was saved.  Values that JSON cannot hold exactly are tagged:
``{"__array__": "opt.3"}`` (a member array; ``"scalar": true`` for a numpy
scalar), ``{"__tuple__": [...]}`` and ``{"__items__": [[key, value], ...]}``
(a dict whose keys are not all plain strings).  Python floats and ints
round-trip exactly through JSON.

The checksum is the sha256 of, for each member except ``checksum`` in sorted
name order: the name, the dtype string (``numpy.dtype.str``), the shape and the
array's C-order bytes, each followed by a NUL byte (see :func:`_digest`).
Gradients are not saved (a loaded network starts with zero gradients), nor is
the forward cache.

Reading checks everything: the zip structure and CRCs, the format name, the
schema version, the checksum, the header's types, every array's dtype and
shape, and that every index is in range and every row strictly increasing.
Anything wrong raises :class:`FormatError` (a ValueError) naming the file and
the problem; a missing file raises FileNotFoundError.

Writing is atomic: the archive goes to a temporary file in the target's
directory, is flushed and fsync'ed, then ``os.replace``'d onto the target (and
the directory fsync'ed where the OS allows).  If anything fails, an existing
file at the path is left untouched and the temporary file is removed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from .network import _ACTIVATIONS, _MAX_NEURONS, Network, Population, Projection

__all__ = ["FORMAT_NAME", "SCHEMA_VERSION", "FormatError", "load", "save"]

FORMAT_NAME = "connectome.network"
SCHEMA_VERSION = 1

_INIT_KINDS = {
    "const": _core.INIT_CONST,
    "uniform": _core.INIT_UNIFORM,
    "normal": _core.INIT_NORMAL,
}
_INIT_NAMES = {v: k for k, v in _INIT_KINDS.items()}
_STATE_COLUMNS = {"state0": _core.COL_STATE0, "state1": _core.COL_STATE1}
_TAGS = ("__array__", "__tuple__", "__items__")


class FormatError(ValueError):
    """A file that is not a valid connectome network file (corrupt, truncated, other format)."""


# ------------------------------------------------------------------ encoding
class _Encoder:
    """Turns nested state (dicts, lists, tuples, scalars, numpy arrays) into JSON + arrays."""

    def __init__(self, prefix: str, arrays: dict[str, np.ndarray]):
        self.prefix = prefix
        self.arrays = arrays
        self.count = 0

    def __call__(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, (np.ndarray, np.generic)):
            a = np.asarray(value)
            if a.dtype.kind not in "biufc":
                raise TypeError(f"{where} has dtype {a.dtype}: only numeric and bool arrays can be saved")
            name = f"{self.prefix}.{self.count}"
            self.count += 1
            self.arrays[name] = np.array(a, order="C", copy=True)
            tag: dict[str, Any] = {"__array__": name}
            if isinstance(value, np.generic):
                tag["scalar"] = True
            return tag
        if isinstance(value, tuple):
            return {"__tuple__": [self(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) and k not in _TAGS for k in value):
                return {k: self(v, f"{where}[{k!r}]") for k, v in value.items()}
            return {
                "__items__": [
                    [self(k, f"{where} key {k!r}"), self(v, f"{where}[{k!r}]")] for k, v in value.items()
                ]
            }
        raise TypeError(
            f"{where} is a {type(value).__name__}: expected None, bool, int, float, str, a numpy array "
            "or a list / tuple / dict of them"
        )


def _decode(value: Any, arrays: Mapping[str, np.ndarray], where: str, err: Any) -> Any:
    """Inverse of _Encoder; err(message) builds the FormatError."""
    if isinstance(value, list):
        return [_decode(v, arrays, f"{where}[{i}]", err) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        name = value["__array__"]
        if not isinstance(name, str) or name not in arrays:
            raise err(f"{where} refers to array {name!r}, which the file does not contain")
        a = arrays[name]
        return a[()] if value.get("scalar") else a
    if "__tuple__" in value:
        items = value["__tuple__"]
        if not isinstance(items, list):
            raise err(f"{where}: __tuple__ must hold a list")
        return tuple(_decode(v, arrays, f"{where}[{i}]", err) for i, v in enumerate(items))
    if "__items__" in value:
        items = value["__items__"]
        if not isinstance(items, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise err(f"{where}: __items__ must hold a list of [key, value] pairs")
        out = {}
        for k, v in items:
            key = _decode(k, arrays, f"{where} key", err)
            try:
                out[key] = _decode(v, arrays, f"{where}[{key!r}]", err)
            except TypeError:  # an unhashable key
                raise err(f"{where} has an unhashable key {key!r}") from None
        return out
    return {k: _decode(v, arrays, f"{where}[{k!r}]", err) for k, v in value.items()}


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the canonical bytes of every member except 'checksum' (see the module docstring)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "checksum":
            continue
        a = np.asarray(arrays[name], order="C")  # (not ascontiguousarray: keeps 0-d)
        h.update(name.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(repr(tuple(int(d) for d in a.shape)).encode("ascii") + b"\0")
        if a.size:
            h.update(a.reshape(-1).view(np.uint8).data)
        h.update(b"\0")
    return h.hexdigest()


def _check_path(path: Any) -> str:
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = os.fspath(path)
    if isinstance(p, bytes):
        raise TypeError("path must be a str or os.PathLike of str, got a bytes path")
    if not p:
        raise ValueError("path='' is invalid: expected a file name")
    return p


# ---------------------------------------------------------------------- save
def _collect(net: Network, optimizer: Any) -> dict[str, np.ndarray]:
    """Every member of the archive (checksum included), built before anything is written."""
    from . import __version__

    arrays: dict[str, np.ndarray] = {}
    pops = list(net._populations.values())
    pop_entries = []
    for i, pop in enumerate(pops):
        arrays[f"pop.{i}.bias"] = np.array(pop._bias, dtype=np.float32, copy=True)
        keys: list[str] = []
        if optimizer is not None:
            state = getattr(pop, "_neuron_state", None) or {}
            for k, (key, value) in enumerate(state.items()):
                a = np.asarray(value)
                if a.ndim < 1 or a.shape[0] != pop.size or a.dtype.kind not in "biuf":
                    raise ValueError(
                        f"population {pop.name!r}: _neuron_state[{key!r}] has shape {a.shape} and dtype "
                        f"{a.dtype}, expected a numeric array of shape ({pop.size}, ...)"
                    )
                arrays[f"pop.{i}.state.{k}"] = np.array(a, order="C", copy=True)
                keys.append(str(key))
        pop_entries.append(
            {
                "name": pop.name,
                "size": int(pop.size),
                "activation": pop.activation,
                "dropout": float(getattr(pop, "dropout", 0.0)),
                "neuron_state": keys,
            }
        )
    proj_entries = []
    for j, p in enumerate(net._projections):
        core = p._core
        _, post, w = core.to_coo()
        arrays[f"proj.{j}.counts"] = np.asarray(core.fanout(), dtype=np.int32)
        arrays[f"proj.{j}.post"] = np.asarray(post, dtype=np.int32)
        arrays[f"proj.{j}.w"] = np.asarray(w, dtype=np.float32)
        cols = []
        if optimizer is not None:
            for name, col in _STATE_COLUMNS.items():
                if core.column_enabled(col):
                    arrays[f"proj.{j}.{name}"] = np.asarray(core.get_column(col), dtype=np.float32)
                    cols.append(name)
        kind, init_a, init_b = p._init
        proj_entries.append(
            {
                "pre": p.pre.name,
                "post": p.post.name,
                "fanout_rule": int(p.fanout_rule),
                "n_synapses": int(post.shape[0]),
                "init": {
                    "kind": _INIT_NAMES[int(kind)],
                    "a": float(init_a),
                    "b": float(init_b),
                    "description": p.init,
                },
                "state_columns": cols,
            }
        )
    rng_state = _Encoder("rng", arrays)(net._rng.bit_generator.state, "rng state")
    opt_entry = None
    if optimizer is not None:
        state_dict = optimizer.state_dict()
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"optimizer.state_dict() returned a {type(state_dict).__name__}, expected a dict")
        opt_entry = {
            "class": type(optimizer).__name__,
            "state": _Encoder("opt", arrays)(state_dict, "optimizer.state_dict()"),
        }
    header = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "library_version": __version__,
        "checksum": "sha256",
        "training": bool(getattr(net, "training", True)),
        "populations": pop_entries,
        "projections": proj_entries,
        "rng": rng_state,
        "optimizer": opt_entry,
    }
    text = json.dumps(header, separators=(",", ":"))
    arrays["header"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()
    arrays["checksum"] = np.frombuffer(_digest(arrays).encode("ascii"), dtype=np.uint8).copy()
    return arrays


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly racy with other threads)
    os.umask(mask)
    return mask


def save(net: Network, path: str | os.PathLike[str], optimizer: Any = None) -> None:
    """Write net (and optionally an optimiser's state) to path, atomically.

    See the module docstring for the format.  The file is written at exactly
    ``path`` (no suffix is added); an existing file there is replaced only once
    the new one is complete and synced, so a failure at any point leaves it
    intact and no temporary file behind.

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        Target file name; its directory must exist.
    optimizer : optimiser or None
        An optimiser of ``net`` (``cx.optim.SGD`` / ``Adam``): its
        ``state_dict()``, the per-synapse state columns (``COL_STATE0/1``,
        where enabled) and every population's per-neuron state
        (``pop._neuron_state``) are saved too, for ``load(path,
        with_optimizer=True)``.

    Raises
    ------
    TypeError
        net is not a Network, path not a str / PathLike, or the optimiser
        state holds a value that cannot be saved.
    ValueError
        The optimiser belongs to another network.
    OSError
        Writing failed (the previous file, if any, is unchanged).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, got {type(net).__name__}")
    target = _check_path(path)
    if optimizer is not None:
        if not callable(getattr(optimizer, "state_dict", None)):
            raise TypeError(
                f"optimizer must be an optimiser with state_dict() (cx.optim.SGD / Adam), "
                f"got {type(optimizer).__name__}"
            )
        owner = getattr(optimizer, "net", getattr(optimizer, "_net", net))
        if owner is not net:
            raise ValueError("optimizer belongs to another network: expected an optimiser of net")
    arrays = _collect(net, optimizer)

    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual mode
                try:
                    mode = os.stat(target).st_mode & 0o777
                except OSError:
                    mode = 0o666 & ~_umask()
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # Make the rename itself durable (POSIX); not possible on every platform.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------- load
class _Reader:
    """Typed access to the header and arrays, every failure a FormatError naming the file."""

    def __init__(self, path: str, arrays: dict[str, np.ndarray]):
        self.path = path
        self.arrays = arrays
        self.used: set[str] = {"header", "checksum"}

    def error(self, message: str) -> FormatError:
        return FormatError(f"{self.path!r} is not a valid connectome network file: {message}")

    def field(self, d: Any, key: str, types: Any, where: str) -> Any:
        if not isinstance(d, dict):
            raise self.error(f"{where} must be a JSON object")
        if key not in d:
            raise self.error(f"header field {where}.{key} is missing")
        v = d[key]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in _as_tuple(types))
        if not ok:
            names = " or ".join(t.__name__ for t in _as_tuple(types))
            raise self.error(f"header field {where}.{key}={v!r} has the wrong type: expected {names}")
        return v

    def array(self, name: str, dtype: Any, shape: tuple[int, ...] | None) -> np.ndarray:
        if name not in self.arrays:
            raise self.error(f"array {name!r} is missing")
        a = self.arrays[name]
        want = np.dtype(dtype)
        if a.dtype.kind != want.kind or a.dtype.itemsize != want.itemsize:
            raise self.error(f"array {name!r} has dtype {a.dtype}, expected {want}")
        if shape is not None and a.shape != shape:
            raise self.error(f"array {name!r} has shape {a.shape}, expected {shape}")
        self.used.add(name)
        return np.asarray(a, dtype=want, order="C")


def _as_tuple(types: Any) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


# Everything numpy's and zipfile's readers raise on a damaged archive (MemoryError: a corrupt
# .npy header announcing an absurd shape).
_READ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    MemoryError,
)


def _read_archive(path: str) -> dict[str, np.ndarray]:
    """Every member of the .npz at path, checked only for being readable .npy arrays."""
    with open(path, "rb") as f:  # FileNotFoundError, IsADirectoryError, PermissionError propagate
        magic = f.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise FormatError(
                f"{path!r} is not a connectome network file: not a zip (.npz) archive (starts with {magic!r})"
            )
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                names = list(npz.files)
                arrays = {}
                for name in names:
                    arrays[name] = npz[name]  # other members than .npy come back as bytes
        except _READ_ERRORS as e:
            raise FormatError(
                f"{path!r} is not a valid connectome network file: the archive is truncated or "
                f"corrupt ({type(e).__name__}: {e})"
            ) from None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise FormatError(
                f"{path!r} is not a valid connectome network file: member {name!r} is not a .npy array"
            )
    return arrays


def _read_header(r: _Reader) -> dict[str, Any]:
    if "header" not in r.arrays:
        raise r.error("the 'header' array is missing (not a file written by connectome's save)")
    raw = r.arrays["header"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise r.error(f"the header has dtype {raw.dtype} and shape {raw.shape}, expected (H,) uint8")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise r.error(f"the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise r.error("the header is not a JSON object")
    fmt = header.get("format")
    if fmt != FORMAT_NAME:
        raise r.error(f"format is {fmt!r}, expected {FORMAT_NAME!r}")
    version = header.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise r.error(f"schema_version={version!r} is not an integer")
    if version != SCHEMA_VERSION:
        newer = " (written by a newer connectome: upgrade to read it)" if version > SCHEMA_VERSION else ""
        raise r.error(
            f"schema_version={version} is not supported: this connectome reads version "
            f"{SCHEMA_VERSION}{newer}"
        )
    return header


def _verify_checksum(r: _Reader, header: dict[str, Any]) -> None:
    algo = header.get("checksum")
    if algo != "sha256":
        raise r.error(f"checksum algorithm {algo!r} is unknown, expected 'sha256'")
    if "checksum" not in r.arrays:
        raise r.error("the 'checksum' array is missing")
    stored = r.arrays["checksum"]
    if stored.dtype != np.uint8 or stored.shape != (64,):
        raise r.error(f"the checksum has dtype {stored.dtype} and shape {stored.shape}, expected (64,) uint8")
    got = _digest(r.arrays)
    if stored.tobytes() != got.encode("ascii"):
        raise r.error(
            f"checksum mismatch (stored {stored.tobytes()[:16]!r}..., computed {got[:16]}...): "
            "the file was modified or corrupted after it was written"
        )


def _restore_rng(r: _Reader, state: Any) -> np.random.Generator:
    try:
        st = _decode(state, r.arrays, "rng", r.error)
        name = st["bit_generator"]
        cls = getattr(np.random, name, None) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
            raise r.error(f"rng bit_generator={name!r} is not a numpy bit generator")
        bg = cls()
        bg.state = st
    except FormatError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        raise r.error(f"the random-generator state is invalid ({type(e).__name__}: {e})") from None
    for k in r.arrays:
        if k.startswith("rng."):
            r.used.add(k)
    return np.random.Generator(bg)


def _build_projection(
    r: _Reader, net: Network, j: int, entry: Any
) -> tuple[Projection, dict[str, np.ndarray]]:
    """Projection j of the file (not yet attached to net) and its saved state columns."""
    where = f"projections[{j}]"
    pops = net._populations
    pre_name = r.field(entry, "pre", str, where)
    post_name = r.field(entry, "post", str, where)
    for side, name in (("pre", pre_name), ("post", post_name)):
        if name not in pops:
            raise r.error(f"{where}.{side}={name!r} is not a population of the file")
    pre, post = pops[pre_name], pops[post_name]
    if pre is post:
        raise r.error(f"{where} connects {pre_name!r} to itself")
    if any(q.post is post for q in pre._outgoing):
        raise r.error(f"{where} repeats the projection {pre_name!r} -> {post_name!r}")
    if net._reaches(post, pre):
        raise r.error(f"{where} ({pre_name!r} -> {post_name!r}) would close a cycle")
    fanout_rule = r.field(entry, "fanout_rule", int, where)
    if not 0 <= fanout_rule <= _MAX_NEURONS:
        raise r.error(f"{where}.fanout_rule={fanout_rule} is out of range")
    n_syn = r.field(entry, "n_synapses", int, where)
    init = r.field(entry, "init", dict, where)
    kind_name = r.field(init, "kind", str, f"{where}.init")
    if kind_name not in _INIT_KINDS:
        raise r.error(f"{where}.init.kind={kind_name!r} is unknown: expected one of {list(_INIT_KINDS)}")
    a = float(r.field(init, "a", (int, float), f"{where}.init"))
    b = float(r.field(init, "b", (int, float), f"{where}.init"))
    if not (math.isfinite(a) and math.isfinite(b)):
        raise r.error(f"{where}.init has non-finite parameters a={a}, b={b}")
    desc = r.field(init, "description", str, f"{where}.init")
    cols = r.field(entry, "state_columns", list, where)
    if any(c not in _STATE_COLUMNS for c in cols) or len(set(cols)) != len(cols):
        raise r.error(f"{where}.state_columns={cols!r}: expected distinct names among {list(_STATE_COLUMNS)}")

    n_pre, n_post = pre.size, post.size
    counts = r.array(f"proj.{j}.counts", np.int32, (n_pre,))
    targets = r.array(f"proj.{j}.post", np.int32, (n_syn,))
    w = r.array(f"proj.{j}.w", np.float32, (n_syn,))
    if counts.size and (counts.min() < 0 or counts.max() > n_post):
        raise r.error(f"proj.{j}.counts has a row length outside [0, {n_post}]")
    if int(counts.sum(dtype=np.int64)) != n_syn:
        raise r.error(
            f"proj.{j}.counts sums to {int(counts.sum(dtype=np.int64))}, expected n_synapses={n_syn}"
        )
    if n_syn and (targets.min() < 0 or targets.max() >= n_post):
        raise r.error(f"proj.{j}.post has an id outside [0, {n_post}) (the size of {post_name!r})")
    # Each row strictly increasing: a descent is allowed only where a new row starts.
    if n_syn > 1:
        ok = np.diff(targets) > 0
        starts = np.cumsum(counts, dtype=np.int64)[:-1]
        starts = starts[(starts > 0) & (starts < n_syn)]
        ok[starts - 1] = True
        if not ok.all():
            k = int(np.argmin(ok))
            raise r.error(f"proj.{j}.post is not strictly increasing within its row at position {k + 1}")
    states = {c: r.array(f"proj.{j}.{c}", np.float32, (n_syn,)) for c in cols}

    core = _core.CoreProjection(n_pre, n_post)
    if n_syn:
        pre_ids = np.repeat(np.arange(n_pre, dtype=np.int32), counts)
        core.add(pre_ids, targets, w)
    proj = Projection(net, pre, post, core, fanout_rule, (_INIT_KINDS[kind_name], a, b), desc)
    return proj, states


def load(path: str | os.PathLike[str], with_optimizer: bool = False) -> Any:
    """Read a network written by :meth:`Network.save` / :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as named when saved.
    with_optimizer : bool
        False (default): return the network only; any optimiser state in the
        file is checked but not restored.  True: also rebuild the optimiser
        (``cx.optim.from_state_dict``) with its per-synapse and per-neuron
        state, and return ``(net, optimizer)``, optimizer None when the file
        holds none.

    Returns
    -------
    Network, or (Network, optimiser or None) with with_optimizer=True

    Raises
    ------
    FileNotFoundError
        No file at path.
    FormatError (ValueError)
        Not a connectome network file, or truncated, corrupted, of another
        schema version, or inconsistent; the message names the file and what
        is wrong.
    """
    target = _check_path(path)
    if not isinstance(with_optimizer, (bool, np.bool_)):
        raise TypeError(f"with_optimizer must be a bool, got {type(with_optimizer).__name__}")
    r = _Reader(target, _read_archive(target))
    header = _read_header(r)
    _verify_checksum(r, header)

    training = r.field(header, "training", bool, "header")
    pop_entries = r.field(header, "populations", list, "header")
    proj_entries = r.field(header, "projections", list, "header")
    if "rng" not in header:
        raise r.error("header field header.rng is missing")
    if "optimizer" not in header:
        raise r.error("header field header.optimizer is missing")

    net = Network(seed=_restore_rng(r, header["rng"]))
    neuron_states: list[dict[str, np.ndarray]] = []
    for i, entry in enumerate(pop_entries):
        where = f"populations[{i}]"
        name = r.field(entry, "name", str, where)
        size = r.field(entry, "size", int, where)
        activation = r.field(entry, "activation", str, where)
        dropout = float(r.field(entry, "dropout", (int, float), where))
        keys = r.field(entry, "neuron_state", list, where)
        if not name or name in net._populations:
            raise r.error(f"{where}.name={name!r} is empty or repeated")
        if not 1 <= size <= _MAX_NEURONS:
            raise r.error(f"{where}.size={size} is out of range [1, {_MAX_NEURONS}]")
        if activation not in _ACTIVATIONS:
            raise r.error(
                f"{where}.activation={activation!r} is unknown: expected one of {list(_ACTIVATIONS)}"
            )
        pop: Population = net.add_population(name, size, activation)
        if dropout != 0.0:
            if not hasattr(type(pop), "dropout"):
                raise r.error(f"{where}.dropout={dropout}: this connectome has no dropout")
            try:
                pop.dropout = dropout
            except (TypeError, ValueError) as e:
                raise r.error(f"{where}.dropout={dropout} is invalid ({e})") from None
        pop._bias[...] = r.array(f"pop.{i}.bias", np.float32, (size,))
        state = {}
        for k, key in enumerate(keys):
            if not isinstance(key, str):
                raise r.error(f"{where}.neuron_state[{k}]={key!r} is not a string")
            name_k = f"pop.{i}.state.{k}"
            if name_k not in r.arrays:
                raise r.error(f"array {name_k!r} is missing")
            a = r.arrays[name_k]
            if a.ndim < 1 or a.shape[0] != size or a.dtype.kind not in "biuf":
                raise r.error(
                    f"array {name_k!r} has shape {a.shape} and dtype {a.dtype}, "
                    f"expected a numeric array of shape ({size}, ...)"
                )
            r.used.add(name_k)
            state[key] = np.array(a, copy=True)
        neuron_states.append(state)

    column_states = []
    for j, entry in enumerate(proj_entries):
        proj, states = _build_projection(r, net, j, entry)
        column_states.append(states)
        net._projections.append(proj)
        proj.pre._outgoing.append(proj)
        proj.post._incoming.append(proj)
        net._order = None
    net._invalidate()

    opt_entry = header["optimizer"]
    if opt_entry is not None:
        r.field(opt_entry, "class", str, "header.optimizer")
        if "state" not in opt_entry:
            raise r.error("header field header.optimizer.state is missing")
        state_dict = _decode(opt_entry["state"], r.arrays, "header.optimizer.state", r.error)
        r.used.update(k for k in r.arrays if k.startswith("opt."))
    extra = sorted(set(r.arrays) - r.used)
    if extra:
        raise r.error(f"unexpected arrays {extra[:5]} (not described by the header)")

    if not training:
        if hasattr(net, "eval"):
            net.eval()
        else:
            raise r.error("the network was saved in eval mode, which this connectome does not have")

    if not with_optimizer:
        return net

    for proj, states in zip(net._projections, column_states):
        for c, values in states.items():
            proj._core.enable_column(_STATE_COLUMNS[c])
            proj._core.set_column(_STATE_COLUMNS[c], values)
    for pop, state in zip(net._populations.values(), neuron_states):
        if state or hasattr(pop, "_neuron_state"):
            pop._neuron_state = state
    if opt_entry is None:
        return net, None
    try:
        from . import optim
    except ImportError as e:  # pragma: no cover - only before cx.optim exists
        raise r.error(f"the file holds optimiser state but connectome.optim is unavailable ({e})") from None
    try:
        opt = optim.from_state_dict(net, state_dict)
    except (TypeError, ValueError, KeyError) as e:
        raise r.error(f"the optimiser state is invalid ({type(e).__name__}: {e})") from None
    return net, opt
