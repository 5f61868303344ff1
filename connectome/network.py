"""The Python face of connectome: networks of populations joined by projections.

A :class:`Network` is a directed acyclic graph whose nodes are populations
(named groups of neurons sharing an activation function) and whose edges are
projections (every synapse from one population to another, stored as one
adjacency list per presynaptic neuron in the C core).  Arrays cross the API
batch-major, ``(B, N)``; inside, activations are kept neuron-major ``(N, B)``
float32 C-contiguous, so that each synapse touches one contiguous batch
vector.  Shapes below use thinc's letters: ``B`` batch, ``N`` neurons of the
population at hand, ``S`` synapses of the projection at hand.

Every method checks all of its arguments before it changes anything, so a call
that raises leaves the network exactly as it was (except, after a failed
allocation, possibly the capacity reported by ``nbytes``).
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

from . import _core
from ._threads import get_num_threads

__all__ = ["Network", "Population", "Projection"]

# Neuron ids are cx_index (int32) in the C core.
_MAX_NEURONS = 2**31 - 1
_ACTIVATIONS = {
    "linear": _core.LINEAR,
    "relu": _core.RELU,
    "tanh": _core.TANH,
    "sigmoid": _core.SIGMOID,
}
_INIT_NAMES = ("uniform", "normal", "zeros")

PopulationLike = Union["Population", str]


# --------------------------------------------------------------- argument checks
def _describe(value: Any) -> str:
    """A short description of a bad value for an error message."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _as_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """An integer argument; bool and float are refused (TypeError), range -> ValueError."""
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {_describe(value)}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_s = "" if lo is None else f"{lo} <= "
        hi_s = "" if hi is None else f" <= {hi}"
        raise ValueError(f"{name}={v} is out of range: expected {lo_s}{name}{hi_s}")
    return v


_F32_MAX = float(np.finfo(np.float32).max)


def _as_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_describe(value)}")
    return bool(value)


def _as_real(name: str, value: Any, *, finite: bool = True) -> float:
    """A real scalar argument (int or float, not bool).

    With finite=True, NaN, inf and values that overflow float32 (the core's
    cx_real) are refused with ValueError.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        v = math.inf if value > 0 else -math.inf
    if finite and not (math.isfinite(v) and abs(v) <= _F32_MAX):
        raise ValueError(f"{name}={v} is not finite in float32: expected a finite real number")
    return v


def _as_real_array(name: str, value: Any, into: str = "float32") -> np.ndarray:
    """np.asarray(value), refusing non-real dtypes (TypeError) and ragged input (ValueError).

    ``into`` names the dtype the caller converts to, for the message.
    """
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} could not be converted to a numeric array: {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {a.dtype}, expected a real dtype (bool, integer or float; converted to {into})"
        )
    return a


def _check_finite(name: str, a: np.ndarray, where: str = "", into: str = "float32") -> None:
    """ValueError naming the first non-finite entry of a (already converted to ``into``)."""
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        pos = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        if where:
            loc = where.format(*pos)
        else:
            loc = f"{name}[{', '.join(map(str, pos))}]" if pos else name
        raise ValueError(
            f"{loc}={float(a[tuple(pos)])!r} is not finite (after conversion to {into}): "
            f"expected finite values in {name}"
        )


def _as_index_array(name: str, value: Any, n: int, what: str) -> np.ndarray:
    """A 0-d or 1-D integer array of ids in [0, n), returned as int32 (1-D).

    TypeError for a non-integer dtype (bool and float included), ValueError
    for more than one dimension, IndexError for an id out of range.
    """
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} could not be converted to an integer array: {e}") from None
    if a.ndim > 1:
        raise ValueError(f"{name} has shape {a.shape}, expected a 1-D array of {what} ids")
    a = a.reshape(-1)
    if a.size == 0:
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {a.dtype}, expected integer {what} ids")
        return np.empty(0, dtype=np.int32)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {a.dtype}, expected integer {what} ids")
    bad = (a < 0) | (a >= n)
    if bad.any():
        i = int(np.argmax(bad))
        raise IndexError(f"{name}[{i}]={int(a[i])} is out of range: expected 0 <= {name} < {n} ({what} ids)")
    return a.astype(np.int32)


def _first_duplicate(keys: np.ndarray) -> tuple[int, int] | None:
    """Positions (i, j), i < j, of the first repeated key, or None."""
    if keys.size < 2:
        return None
    order = np.argsort(keys, kind="stable")
    s = keys[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if dup.size == 0:
        return None
    # The earliest second occurrence in input order.
    js = order[dup + 1]
    k = int(np.argmin(js))
    return int(order[dup[k]]), int(js[k])


def _as_seed(name: str, value: Any) -> int:
    return _as_int(name, value, 0, 2**64 - 1)


def _as_dropout(p: Any) -> float:
    """A dropout probability, 0 <= p < 1."""
    v = _as_real("dropout", p, finite=False)
    if not 0.0 <= v < 1.0:  # also refuses NaN
        raise ValueError(f"dropout={v} is out of range: expected 0 <= dropout < 1")
    return v


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


# ------------------------------------------------------------------- Population
class Population:
    """A named group of neurons sharing an activation function (a "layer").

    Created by :meth:`Network.add_population`; do not instantiate directly.
    A population with no incoming projection is an *input*: its activation is
    the user's value as given (no bias, no activation function applied).  One
    with no outgoing projection is an *output*.

    Attributes
    ----------
    name : str
        Unique within the network.
    size : int
        Number of neurons, N (also ``len(pop)``).
    activation : str
        "linear", "relu", "tanh" or "sigmoid".
    """

    def __init__(self, network: Network, name: str, size: int, activation: str, index: int):
        self._net = network
        self._name = name
        self._size = size
        self._activation = activation
        self._act = _ACTIVATIONS[activation]
        self._index = index  # creation order: tie-break of the topological order
        self._bias = np.zeros(size, dtype=np.float32)
        self._bias_grad = np.zeros(size, dtype=np.float32)
        # Per-neuron optimiser state (the biases' momentum / Adam moments), each array shaped
        # (size, ...): extended with zeros by add_neurons and np.delete'd by remove_neurons,
        # together with the biases (connectome/optim.py keeps its bias state here).
        self._neuron_state: dict[str, np.ndarray] = {}
        self._dropout = 0.0  # probability of zeroing an output activation in training mode
        self._incoming: list[Projection] = []  # creation order
        self._outgoing: list[Projection] = []

    # -- read-only facts
    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    @property
    def activation(self) -> str:
        return self._activation

    @property
    def network(self) -> Network:
        return self._net

    @property
    def incoming(self) -> list[Projection]:
        """Projections into this population, in creation order (a copy)."""
        return list(self._incoming)

    @property
    def outgoing(self) -> list[Projection]:
        """Projections out of this population, in creation order (a copy)."""
        return list(self._outgoing)

    @property
    def is_input(self) -> bool:
        return not self._incoming

    @property
    def is_output(self) -> bool:
        return not self._outgoing

    # -- parameters
    @property
    def bias(self) -> np.ndarray:
        """bias : (N,) float32, a writable view of the biases.

        Writes through the view take effect at the next forward.  Assigning
        ``pop.bias = values`` checks shape and finiteness and copies in place.
        The view goes stale after :meth:`add_neurons` / :meth:`remove_neurons`
        (the population then owns a new array).  Ignored for input populations.
        """
        return self._bias

    @bias.setter
    def bias(self, values: Any) -> None:
        a = _as_real_array("bias", values)
        if a.ndim != 0 and a.shape != (self._size,):
            raise ValueError(
                f"bias has shape {a.shape}, expected ({self._size},) for population {self._name!r}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            a = np.broadcast_to(a.astype(np.float32), (self._size,))
        _check_finite("bias", a)
        self._bias[...] = a

    @property
    def bias_grad(self) -> np.ndarray:
        """bias_grad : (N,) float32, dL/d(bias) accumulated by backward (a view)."""
        return self._bias_grad

    @property
    def dropout(self) -> float:
        """Dropout probability p of the population's output, ``0 <= p < 1``.

        In training mode (:meth:`Network.train`), each forward zeroes every
        output activation (after bias and activation; for an input, the given
        value) independently with probability p and scales the survivors by
        ``1 / (1 - p)`` (inverted dropout), with masks drawn from the
        network's seeded generator.  In eval mode it does nothing.
        Setting it takes effect at the next forward.
        """
        return self._dropout

    @dropout.setter
    def dropout(self, p: Any) -> None:
        self._dropout = _as_dropout(p)

    # -- neurogenesis
    def add_neurons(self, n: int) -> np.ndarray:
        """Append n neurons to the population, in place.

        New neurons get the largest ids (``size .. size + n - 1``), bias 0, zero
        optimiser state (``_neuron_state``; their synapses' state columns too) and
        synapses by each projection's rule:

        - outgoing projection (this population is the source): each new neuron
          gets ``min(fanout_rule, n_post)`` random targets with weight **0**, so
          the network's function is unchanged at the moment of birth;
        - incoming projection (this population is the target): each new
          neuron gets a fan-in of ``round(fanout_rule * n_pre / n_post_before)``
          (clipped to ``[0, n_pre]``) random sources, weights drawn from the
          projection's init (the same distribution as at ``connect``).

        Each projection draws a fresh seed from the network's generator.  If a
        projection fails (e.g. MemoryError), those already extended are rolled
        back (their new ids removed) and the error propagates.  Invalidates the
        forward cache.  Views of ``bias`` / ``bias_grad`` go stale.

        Parameters
        ----------
        n : int
            Number of neurons to add, ``n >= 0``.

        Returns
        -------
        ids : (n,) int64
            The ids of the new neurons.
        """
        net = self._net
        n = _as_int("n", n, 0, _MAX_NEURONS - self._size)
        new_ids = np.arange(self._size, self._size + n, dtype=np.int32)
        if n == 0:
            return new_ids.astype(np.int64)
        # Allocate first: nothing below may fail before the C calls.
        new_bias = np.concatenate([self._bias, np.zeros(n, dtype=np.float32)])
        new_bias_grad = np.concatenate([self._bias_grad, np.zeros(n, dtype=np.float32)])
        new_state = {  # new neurons start from zero optimiser state
            k: np.concatenate([v, np.zeros((n, *v.shape[1:]), dtype=v.dtype)])
            for k, v in self._neuron_state.items()
        }
        state = net._rng.bit_generator.state
        n_threads = get_num_threads()
        done: list[tuple[str, Projection]] = []
        try:
            for p in self._incoming:
                n_pre, n_post = p._core.n_pre, p._core.n_post
                fanin = math.floor(p._fanout_rule * n_pre / n_post + 0.5)
                fanin = min(max(fanin, 0), n_pre)
                kind, a, b = p._init
                p._core.add_post(n, fanin, kind, a, b, net._draw_seed())
                done.append(("post", p))
            for p in self._outgoing:
                fanout = min(p._fanout_rule, p._core.n_post)
                p._core.add_pre(n, fanout, _core.INIT_CONST, 0.0, 0.0, net._draw_seed())
                done.append(("pre", p))
        except BaseException:
            for side, p in reversed(done):
                if side == "post":
                    p._core.remove_post(new_ids, n_threads)
                else:
                    p._core.remove_pre(new_ids)
            net._rng.bit_generator.state = state
            raise
        self._bias = new_bias
        self._bias_grad = new_bias_grad
        self._neuron_state = new_state
        self._size += n
        net._invalidate()
        return new_ids.astype(np.int64)

    def remove_neurons(self, idx: Any) -> None:
        """Remove neurons, in place, renumbering the survivors as np.delete does.

        Every synapse from or to a removed neuron is removed; later ids move
        down to close the gaps (neuron ``i`` becomes ``i - (number of removed
        ids < i)``) in this population, its biases, its per-neuron optimiser state
        and every projection that touches it.  Invalidates the forward cache.  Views of ``bias`` /
        ``bias_grad`` go stale.

        Parameters
        ----------
        idx : int or (K,) integer array
            Distinct ids in ``[0, size)``, any order.  At least one neuron must
            remain.

        Raises
        ------
        TypeError
            Non-integer ids (bool and float included).
        IndexError
            An id out of range.
        ValueError
            A repeated id, or removing every neuron of the population.
        """
        ids = _as_index_array("idx", idx, self._size, "neuron")
        if ids.size == 0:
            return
        dup = _first_duplicate(ids)
        if dup is not None:
            i, j = dup
            raise ValueError(f"idx[{j}]={int(ids[j])} repeats idx[{i}]: expected distinct neuron ids")
        if ids.size >= self._size:
            raise ValueError(
                f"idx removes all {self._size} neurons of population {self._name!r}: "
                "expected at least one to remain"
            )
        ids = np.sort(ids)
        new_bias = np.delete(self._bias, ids)
        new_bias_grad = np.delete(self._bias_grad, ids)
        new_state = {k: np.delete(v, ids, axis=0) for k, v in self._neuron_state.items()}
        n_threads = get_num_threads()
        # Validated above and allocation-free in C: these cannot fail part-way.
        for p in self._incoming:
            p._core.remove_post(ids, n_threads)
        for p in self._outgoing:
            p._core.remove_pre(ids)
        self._bias = new_bias
        self._bias_grad = new_bias_grad
        self._neuron_state = new_state
        self._size -= int(ids.size)
        self._net._invalidate()

    def __repr__(self) -> str:
        role = []
        if self.is_input:
            role.append("input")
        if self.is_output:
            role.append("output")
        role_s = f", {'/'.join(role)}" if role else ""
        drop = f", dropout={self._dropout:g}" if self._dropout else ""
        return f"Population({self._name!r}, size={self._size}, activation={self._activation!r}{drop}{role_s})"


# ------------------------------------------------------------------- Projection
class Projection:
    """Every synapse from one population (pre) to another (post).

    Created by :meth:`Network.connect`; do not instantiate directly.  Stored
    as one row per presynaptic neuron: its targets (strictly increasing) and
    weights.  Synapses are exported in (pre, post) order; ``weights``,
    ``grad()`` and ``set_weights`` use the same order as :meth:`to_coo`.
    Structural edits (add/remove/prune/grow) invalidate the forward cache.

    Attributes
    ----------
    pre, post : Population
    fanout_rule : int
        The fan-out given to ``connect``; used for new neurons (see
        :meth:`Population.add_neurons`).
    init : str
        Description of the weight distribution used for new synapses.
    """

    def __init__(
        self,
        network: Network,
        pre: Population,
        post: Population,
        core: Any,
        fanout_rule: int,
        init: tuple[int, float, float],
        init_desc: str,
    ):
        self._net = network
        self._pre = pre
        self._post = post
        self._core = core
        self._fanout_rule = fanout_rule
        self._init = init
        self._init_desc = init_desc

    # -- facts
    @property
    def pre(self) -> Population:
        return self._pre

    @property
    def post(self) -> Population:
        return self._post

    @property
    def network(self) -> Network:
        return self._net

    @property
    def fanout_rule(self) -> int:
        return self._fanout_rule

    @property
    def init(self) -> str:
        return self._init_desc

    @property
    def n_synapses(self) -> int:
        return int(self._core.n_synapses)

    def __len__(self) -> int:
        return int(self._core.n_synapses)

    @property
    def density(self) -> float:
        """n_synapses / (n_pre * n_post)."""
        return self.n_synapses / (self._core.n_pre * self._core.n_post)

    @property
    def nbytes(self) -> int:
        """Heap bytes owned by the projection (rows, capacity, enabled columns)."""
        return int(self._core.nbytes)

    def fanout(self) -> np.ndarray:
        """fanout : (n_pre,) int32, outgoing synapses per presynaptic neuron."""
        return np.asarray(self._core.fanout())

    def fanin(self) -> np.ndarray:
        """fanin : (n_post,) int32, incoming synapses per postsynaptic neuron."""
        return np.asarray(self._core.fanin())

    # -- export
    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copy the synapses out, sorted by (pre, post).

        Returns
        -------
        pre : (S,) int32
        post : (S,) int32
        w : (S,) float32
        """
        pre, post, w = self._core.to_coo()
        return np.asarray(pre), np.asarray(post), np.asarray(w)

    @property
    def weights(self) -> np.ndarray:
        """weights : (S,) float32, a copy in :meth:`to_coo` order.

        Assigning ``p.weights = w`` is :meth:`set_weights`.
        """
        return np.asarray(self._core.get_column(_core.COL_WEIGHT))

    @weights.setter
    def weights(self, w: Any) -> None:
        self.set_weights(w)

    def set_weights(self, w: Any) -> None:
        """Overwrite every weight.

        Parameters
        ----------
        w : (S,) real array or scalar
            In :meth:`to_coo` order, finite; converted to float32.
        """
        a = _as_real_array("w", w)
        n = self.n_synapses
        if a.ndim != 0 and a.shape != (n,):
            raise ValueError(f"w has shape {a.shape}, expected ({n},) (one weight per synapse)")
        with np.errstate(over="ignore", invalid="ignore"):
            a = np.ascontiguousarray(np.broadcast_to(a.astype(np.float32), (n,)))
        _check_finite("w", a)
        self._core.set_column(_core.COL_WEIGHT, a)

    def grad(self) -> np.ndarray:
        """grad : (S,) float32, dL/dw accumulated by backward (zeros before any), a copy."""
        return np.asarray(self._core.get_column(_core.COL_GRAD))

    def synapses(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The outgoing synapses of presynaptic neuron i.

        Returns
        -------
        targets : (K,) int32, strictly increasing
        weights : (K,) float32
        """
        n_pre = self._core.n_pre
        try:
            i = _as_int("i", i)
        except TypeError:
            raise TypeError(f"i must be an integer neuron id, got {_describe(i)}") from None
        if not 0 <= i < n_pre:
            raise IndexError(f"i={i} is out of range: expected 0 <= i < {n_pre} (presynaptic neuron ids)")
        post, w = self._core.row(i)
        return np.asarray(post), np.asarray(w)

    # -- edits
    def _pairs(self, pre: Any, post: Any) -> tuple[np.ndarray, np.ndarray]:
        """Checked (pre, post) id arrays of one length, int32; a 0-d side broadcasts."""
        n_pre, n_post = self._core.n_pre, self._core.n_post
        a = _as_index_array("pre", pre, n_pre, "presynaptic neuron")
        b = _as_index_array("post", post, n_post, "postsynaptic neuron")
        if a.size != b.size:
            if np.ndim(pre) == 0 and a.size == 1:
                a = np.full(b.size, a[0], dtype=np.int32)
            elif np.ndim(post) == 0 and b.size == 1:
                b = np.full(a.size, b[0], dtype=np.int32)
            else:
                raise ValueError(f"pre has {a.size} entries and post has {b.size}: expected the same length")
        dup = _first_duplicate(a.astype(np.int64) * n_post + b)
        if dup is not None:
            i, j = dup
            raise ValueError(
                f"synapse (pre, post)=({int(a[j])}, {int(b[j])}) appears twice, at positions "
                f"{i} and {j}: expected distinct synapses"
            )
        return a, b

    def add_synapses(self, pre: Any, post: Any, w: Any = 0.0) -> None:
        """Add synapses pre[k] -> post[k] with weight w[k] (atomic).

        Parameters
        ----------
        pre, post : (K,) integer arrays (or ints, broadcast against the other)
            Neuron ids of the source / target populations, in range.
        w : (K,) real array or scalar
            Finite weights, converted to float32.

        Raises
        ------
        TypeError, IndexError, ValueError
            Bad ids or weights; a pair repeated in the batch; a synapse that
            already exists (ValueError naming it).
        """
        a, b = self._pairs(pre, post)
        wa = _as_real_array("w", w)
        if wa.ndim != 0 and wa.shape != (a.size,):
            raise ValueError(f"w has shape {wa.shape}, expected ({a.size},) or a scalar")
        with np.errstate(over="ignore", invalid="ignore"):
            wa = np.ascontiguousarray(np.broadcast_to(wa.astype(np.float32), (a.size,)))
        _check_finite("w", wa)
        if a.size == 0:
            return
        self._core.add(a, b, wa)
        self._net._invalidate()

    def remove_synapses(self, pre: Any, post: Any) -> None:
        """Remove the synapses pre[k] -> post[k] (atomic).

        Raises
        ------
        KeyError
            A synapse does not exist (nothing is removed).
        TypeError, IndexError, ValueError
            Bad or repeated ids.
        """
        a, b = self._pairs(pre, post)
        if a.size == 0:
            return
        self._core.remove(a, b)
        self._net._invalidate()

    def prune(self, threshold: float | None = None, *, fraction: float | None = None) -> int:
        """Remove weak synapses, by magnitude.

        Exactly one of:

        threshold : float, >= 0 (not NaN)
            Remove every synapse with ``|w| < threshold`` (and NaN weights).
        fraction : float in [0, 1]
            Remove the ``floor(fraction * n_synapses)`` synapses of smallest
            ``|w|`` (ties broken by (pre, post) order).

        Returns
        -------
        n_removed : int
        """
        if (threshold is None) == (fraction is None):
            raise ValueError(
                f"prune needs exactly one of threshold and fraction, got threshold={threshold!r} "
                f"and fraction={fraction!r}"
            )
        n_threads = get_num_threads()
        if threshold is not None:
            t = _as_real("threshold", threshold, finite=False)
            if math.isnan(t) or t < 0:
                raise ValueError(f"threshold={t} is invalid: expected a magnitude >= 0 (not NaN)")
            removed = int(self._core.prune_threshold(t, n_threads))
        else:
            f = _as_real("fraction", fraction, finite=False)
            if not 0.0 <= f <= 1.0:  # also refuses NaN
                raise ValueError(f"fraction={f} is out of range: expected 0 <= fraction <= 1")
            n = self.n_synapses
            count = min(n, math.floor(f * n))  # never more than the fraction asked
            removed = int(self._core.prune_count(count, n_threads))
        if removed:
            self._net._invalidate()
        return removed

    def grow(self, n: int, weight: float | None = 0.0, seed: int | None = None) -> int:
        """Add n new synapses at distinct absent (pre, post) pairs, uniformly at random.

        Parameters
        ----------
        n : int
            ``0 <= n <=`` free slots ``(n_pre * n_post - n_synapses)``.
        weight : float or None
            Weight of every new synapse (default 0: the function is unchanged);
            None draws them from the projection's init.
        seed : int or None
            ``0 <= seed < 2**64``; None draws a fresh seed from the network's
            generator.

        Returns
        -------
        n_added : int
            Always n.
        """
        free = self._core.n_pre * self._core.n_post - self.n_synapses
        n = _as_int("n", n, 0)
        if n > free:
            raise ValueError(
                f"n={n} is more than the {free} free synapse slots of {self._label()} "
                f"(n_pre * n_post - n_synapses): expected n <= {free}"
            )
        self._random_edit(self._core.grow, n, weight, seed)
        return n

    def _random_edit(self, edit: Any, n: int, weight: float | None, seed: int | None) -> None:
        """Run a seeded core edit (grow, rewire) of n synapses with weights from `weight`.

        weight None means the projection's init.  With seed None, a seed is drawn
        from the network's generator, whose state is restored if the edit fails,
        so a failed call leaves the network exactly as it was.
        """
        if weight is None:
            kind, a, b = self._init
        else:
            kind, a, b = _core.INIT_CONST, _as_real("weight", weight), 0.0
        if seed is not None:
            seed = _as_seed("seed", seed)
        if n == 0:
            return
        net = self._net
        state = net._rng.bit_generator.state
        if seed is None:
            seed = net._draw_seed()
        try:
            edit(n, kind, a, b, seed, get_num_threads())
        except BaseException:
            net._rng.bit_generator.state = state
            raise
        net._invalidate()

    def rewire(self, fraction: float, *, weight: float | None = None, seed: int | None = None) -> int:
        """Drop the weakest synapses and regrow as many at random, in one pass (SET).

        Removes the ``k = floor(fraction * n_synapses)`` synapses of smallest
        ``|w|`` (exactly the ones ``prune(fraction=fraction)`` would remove) and
        adds ``k`` new synapses at distinct pairs drawn uniformly from the
        slots that were absent before the call, so a synapse just removed is
        never regrown by the same call (``prune`` then ``grow`` may regrow
        one).  The synapse count is unchanged and the result does not depend
        on the thread count.  It costs one pass over the rows instead of two.

        Parameters
        ----------
        fraction : float in [0, 1]
        weight : float or None
            Weight of every new synapse; None (default) draws them from the
            projection's init, as SET does.
        seed : int or None
            ``0 <= seed < 2**64``; None draws one from the network's generator.

        Returns
        -------
        n_rewired : int
            k.
        """
        f = _as_real("fraction", fraction, finite=False)
        if not 0.0 <= f <= 1.0:  # also refuses NaN
            raise ValueError(f"fraction={f} is out of range: expected 0 <= fraction <= 1")
        n = self.n_synapses
        k = min(n, math.floor(f * n))
        free = self._core.n_pre * self._core.n_post - n
        if k > free:
            raise ValueError(
                f"fraction={f} asks to regrow {k} synapses but {self._label()} has only {free} free "
                f"slots (n_pre * n_post - n_synapses): expected fraction <= {free / n if n else 0.0:.6g}"
            )
        self._random_edit(self._core.rewire, k, weight, seed)
        return k

    def _label(self) -> str:
        return f"{self._pre.name!r} -> {self._post.name!r}"

    def __repr__(self) -> str:
        return (
            f"Projection({self._label()}, n_synapses={self.n_synapses}, "
            f"density={self.density:.4g}, init={self._init_desc!r})"
        )


# ---------------------------------------------------------------------- Network
class _Cache:
    """What backward needs from the last forward, and what it leaves behind.

    acts[pop] : (N, B) float32
        What pop fed forward (its activation after dropout; an input's value).
    pre_dropout[pop] : (N, B) float32
        For a population that dropped units in this pass only: its activation
        before dropout, from which pop_backward computes act'(z).
    masks[pop] : (N, B) float32
        For the same populations: the scaled mask (0 or 1 / (1 - p)), so that
        ``acts[pop] == pre_dropout[pop] * masks[pop]``.
    deltas[pop] : (N, B) float32
        Filled by backward: dL/dz of every non-input population (z its
        pre-activation), e.g. for RigL's gradient of absent synapses.
    """

    __slots__ = ("acts", "batch", "deltas", "masks", "pre_dropout", "squeeze")

    def __init__(
        self,
        acts: dict[Population, np.ndarray],
        batch: int,
        squeeze: bool,
        pre_dropout: dict[Population, np.ndarray] | None = None,
        masks: dict[Population, np.ndarray] | None = None,
    ):
        self.acts = acts
        self.batch = batch
        self.squeeze = squeeze
        self.pre_dropout = pre_dropout if pre_dropout is not None else {}
        self.masks = masks if masks is not None else {}
        self.deltas: dict[Population, np.ndarray] = {}


class Network:
    """A sparse neural network: populations joined by projections, a DAG.

    Parameters
    ----------
    seed : int, numpy Generator or None
        Seeds the network's ``numpy.random.Generator``.  Every random
        operation (``connect``, ``grow`` without a seed, ``add_neurons``)
        draws a fresh 64-bit seed from it for the C core, so a network built
        by the same calls from the same seed is identical, whatever the
        number of threads.

    Examples
    --------
    >>> import numpy as np
    >>> import connectome as cx
    >>> net = cx.Network(seed=0)
    >>> inp = net.add_population("input", 64)
    >>> hid = net.add_population("hidden", 256, activation="relu")
    >>> out = net.add_population("output", 10)
    >>> _ = net.connect(inp, hid, fanout=32)
    >>> _ = net.connect(hid, out, fanout=10)
    >>> y = net.forward(np.ones((8, 64)))       # (B, 10) float32
    >>> dx = net.backward(np.ones_like(y))      # (B, 64) float32
    """

    def __init__(self, seed: Any = None):
        if isinstance(seed, (bool, np.bool_, float, np.floating)):
            raise TypeError(f"seed must be an integer, a numpy Generator or None, got {_describe(seed)}")
        try:
            self._rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as e:
            raise type(e)(
                f"seed={seed!r} is invalid: expected a non-negative integer, a numpy Generator or None ({e})"
            ) from None
        self._populations: dict[str, Population] = {}
        self._projections: list[Projection] = []
        self._order: list[Population] | None = None
        self._cache: _Cache | None = None
        self._n_created = 0
        self._training = True

    # -- randomness and bookkeeping
    def _draw_seed(self) -> int:
        return int(self._rng.integers(0, 2**64, dtype=np.uint64))

    def _invalidate(self) -> None:
        """A structural change: the forward cache no longer matches."""
        self._cache = None

    def _topological_order(self) -> list[Population]:
        """Kahn's algorithm; among ready populations, creation order first."""
        if self._order is None:
            indeg = {p: len(p._incoming) for p in self._populations.values()}
            ready = [(p._index, p) for p in self._populations.values() if indeg[p] == 0]
            heapq.heapify(ready)
            order = []
            while ready:
                _, p = heapq.heappop(ready)
                order.append(p)
                for q in p._outgoing:
                    indeg[q.post] -= 1
                    if indeg[q.post] == 0:
                        heapq.heappush(ready, (q.post._index, q.post))
            self._order = order
        return self._order

    def _resolve(self, name: str, pop: Any) -> Population:
        if isinstance(pop, str):
            if pop not in self._populations:
                raise ValueError(
                    f"{name}={pop!r} is not a population of this network: expected one of "
                    f"{list(self._populations)}"
                )
            return self._populations[pop]
        if not isinstance(pop, Population):
            raise TypeError(f"{name} must be a Population or a population name, got {_describe(pop)}")
        if pop._net is not self:
            raise ValueError(f"{name}={pop!r} belongs to another network")
        return pop

    # -- training / evaluation mode
    @property
    def training(self) -> bool:
        """Whether dropout is active (True after construction, as in PyTorch).

        Set by :meth:`train` / :meth:`eval`; assigning a bool is ``train(value)``.
        """
        return self._training

    @training.setter
    def training(self, mode: Any) -> None:
        self.train(mode)

    def train(self, mode: bool = True) -> Network:
        """Switch training mode on (or off with ``mode=False``); returns the network.

        In training mode, forward applies each population's dropout.  Neither
        mode changes anything else.
        """
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {_describe(mode)}")
        self._training = bool(mode)
        return self

    def eval(self) -> Network:
        """Switch training mode off (no dropout); returns the network."""
        return self.train(False)

    # -- building
    def add_population(
        self, name: str, size: int, activation: str = "linear", dropout: float = 0.0
    ) -> Population:
        """Add a population of neurons.

        Parameters
        ----------
        name : str
            Unique, non-empty.
        size : int
            Number of neurons, ``1 <= size < 2**31``.
        activation : str
            "linear" (default), "relu", "tanh" or "sigmoid".  Ignored while
            the population is an input (no incoming projection).
        dropout : float
            Probability ``0 <= p < 1`` of zeroing each output activation in
            training mode (inverted dropout, see :attr:`Population.dropout`).

        Returns
        -------
        Population
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {_describe(name)}")
        if not name:
            raise ValueError("name='' is invalid: expected a non-empty population name")
        if name in self._populations:
            raise ValueError(f"name={name!r} is already a population of this network: expected a new name")
        size = _as_int("size", size, 1, _MAX_NEURONS)
        if not isinstance(activation, str):
            raise TypeError(f"activation must be a str, got {_describe(activation)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is unknown: expected one of {list(_ACTIVATIONS)}")
        p_drop = _as_dropout(dropout)
        pop = Population(self, name, size, activation, self._n_created)
        pop._dropout = p_drop
        self._n_created += 1
        self._populations[name] = pop
        self._order = None
        self._invalidate()
        return pop

    def connect(
        self,
        pre: PopulationLike,
        post: PopulationLike,
        fanout: int,
        init: str | float = "uniform",
        scale: float | None = None,
    ) -> Projection:
        """Connect every neuron of pre to ``fanout`` distinct random neurons of post.

        Parameters
        ----------
        pre, post : Population or str
            Populations of this network.  At most one projection per
            (pre, post) pair; a projection that would close a cycle
            (including pre == post) is refused.
        fanout : int
            Synapses per presynaptic neuron, ``0 <= fanout <= post.size``.
        init : str or float
            Weight distribution, with mean fan-in ``m = fanout * n_pre / n_post``
            (taken as at least 1):

            - "uniform": U(-s, s), ``s = 1 / sqrt(m)`` (PyTorch Linear's default);
            - "normal": N(0, s^2), ``s = sqrt(2 / m)`` (He);
            - "zeros": all 0;
            - a float c: all c.

            The same distribution is used later by ``grow(weight=None)`` and
            for the incoming synapses of new neurons.
        scale : float or None
            Overrides s (bound or standard deviation) for "uniform" / "normal".

        Returns
        -------
        Projection
        """
        pre = self._resolve("pre", pre)
        post = self._resolve("post", post)
        if pre is post:
            raise ValueError(f"pre and post are both {pre.name!r}: self-projections would make a cycle")
        for p in pre._outgoing:
            if p.post is post:
                raise ValueError(
                    f"pre={pre.name!r} is already connected to post={post.name!r}: "
                    "expected one projection per pair"
                )
        if self._reaches(post, pre):
            raise ValueError(
                f"connecting pre={pre.name!r} to post={post.name!r} would make a cycle "
                f"({post.name!r} already reaches {pre.name!r}): expected a DAG"
            )
        fanout = _as_int("fanout", fanout, 0, post.size)
        kind, a, b, desc = self._resolve_init(init, scale, fanout * pre.size / post.size)
        state = self._rng.bit_generator.state
        try:
            core = _core.CoreProjection(pre.size, post.size)
            core.fill_random(fanout, kind, a, b, self._draw_seed(), get_num_threads())
        except BaseException:
            self._rng.bit_generator.state = state
            raise
        proj = Projection(self, pre, post, core, fanout, (kind, a, b), desc)
        self._projections.append(proj)
        pre._outgoing.append(proj)
        post._incoming.append(proj)
        self._order = None
        self._invalidate()
        return proj

    @staticmethod
    def _resolve_init(init: Any, scale: Any, mean_fanin: float) -> tuple[int, float, float, str]:
        if scale is not None:
            scale = _as_real("scale", scale)
            if scale < 0:
                raise ValueError(f"scale={scale} is negative: expected scale >= 0")
        if isinstance(init, str):
            if init not in _INIT_NAMES:
                raise ValueError(f"init={init!r} is unknown: expected one of {list(_INIT_NAMES)} or a float")
            m = max(mean_fanin, 1.0)
            if init == "uniform":
                s = 1.0 / math.sqrt(m) if scale is None else scale
                return _core.INIT_UNIFORM, -s, s, f"uniform(-{s:.4g}, {s:.4g})"
            if init == "normal":
                s = math.sqrt(2.0 / m) if scale is None else scale
                return _core.INIT_NORMAL, 0.0, s, f"normal(0, {s:.4g})"
            if scale is not None:
                raise ValueError("scale applies to init='uniform' or 'normal', not 'zeros'")
            return _core.INIT_CONST, 0.0, 0.0, "zeros"
        if isinstance(init, (bool, np.bool_)) or not isinstance(init, (int, float, np.integer, np.floating)):
            raise TypeError(f"init must be 'uniform', 'normal', 'zeros' or a float, got {_describe(init)}")
        c = _as_real("init", init)
        if scale is not None:
            raise ValueError("scale applies to init='uniform' or 'normal', not to a constant")
        return _core.INIT_CONST, c, 0.0, f"constant({c:.4g})"

    def _reaches(self, src: Population, dst: Population) -> bool:
        """Whether a path of projections leads from src to dst."""
        stack, seen = [src], {src}
        while stack:
            p = stack.pop()
            if p is dst:
                return True
            for q in p._outgoing:
                if q.post not in seen:
                    seen.add(q.post)
                    stack.append(q.post)
        return False

    # -- facts
    @property
    def populations(self) -> dict[str, Population]:
        """Name -> Population, in creation order (a copy)."""
        return dict(self._populations)

    @property
    def projections(self) -> list[Projection]:
        """Every projection, in creation order (a copy)."""
        return list(self._projections)

    @property
    def inputs(self) -> list[Population]:
        """Populations without incoming projections, in topological order."""
        return [p for p in self._topological_order() if not p._incoming]

    @property
    def outputs(self) -> list[Population]:
        """Populations without outgoing projections, in topological order."""
        return [p for p in self._topological_order() if not p._outgoing]

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self._populations.values())

    @property
    def n_synapses(self) -> int:
        return sum(p.n_synapses for p in self._projections)

    @property
    def nbytes(self) -> int:
        """Heap bytes of every projection plus biases."""
        return sum(p.nbytes for p in self._projections) + sum(
            p._bias.nbytes + p._bias_grad.nbytes for p in self._populations.values()
        )

    def __getitem__(self, name: str) -> Population:
        return self._resolve("name", name)

    def __contains__(self, item: object) -> bool:
        """Whether item (a population name, or a Population) belongs to this network."""
        if isinstance(item, Population):
            return item._net is self and self._populations.get(item.name) is item
        return isinstance(item, str) and item in self._populations

    # -- passes
    def _collect(
        self,
        arg: str,
        value: Any,
        pops: list[Population],
        *,
        batch: int | None,
        squeeze: bool | None,
        required: bool,
    ) -> tuple[dict[Population, np.ndarray], int, bool]:
        """Check and convert user arrays (B, N) into fresh (N, B) float32 copies.

        A single population may be given as a bare array; several (or one)
        as a dict keyed by name or Population.  With batch/squeeze given, the
        shapes must match them (backward against the cached forward).
        """
        if isinstance(value, Mapping):
            items: dict[Population, Any] = {}
            for key, v in value.items():
                pop = self._resolve(f"{arg} key", key) if isinstance(key, (str, Population)) else None
                if pop is None:
                    raise TypeError(f"{arg} keys must be population names, got {_describe(key)}")
                if pop not in pops:
                    raise ValueError(f"{arg} has key {pop.name!r}, expected only {[p.name for p in pops]}")
                if pop in items:
                    raise ValueError(f"{arg} gives population {pop.name!r} twice")
                items[pop] = v
            if required:
                missing = [p.name for p in pops if p not in items]
                if missing:
                    raise ValueError(f"{arg} is missing population(s) {missing}")
        else:
            if len(pops) != 1:
                raise TypeError(
                    f"{arg} must be a dict keyed by population name, since the network has "
                    f"{len(pops)} of them: {[p.name for p in pops]}"
                )
            items = {pops[0]: value}
        arrays: dict[Population, np.ndarray] = {}
        for pop, v in items.items():
            label = arg if not isinstance(value, Mapping) else f"{arg}[{pop.name!r}]"
            a = _as_real_array(label, v)
            n = pop.size
            if squeeze is None:
                if a.ndim not in (1, 2) or a.shape[-1] != n:
                    raise ValueError(
                        f"{label} has shape {a.shape}, expected (B, {n}) or ({n},) for population "
                        f"{pop.name!r}"
                    )
                squeeze = a.ndim == 1
                batch = 1 if squeeze else a.shape[0]
            expected = (n,) if squeeze else (batch, n)
            if a.shape != expected:
                what = f"the batch of {arg}'s other entries" if isinstance(value, Mapping) else "forward"
                raise ValueError(
                    f"{label} has shape {a.shape}, expected {expected} for population {pop.name!r} "
                    f"(matching {what})"
                )
            with np.errstate(over="ignore", invalid="ignore"):  # too large -> inf, refused below
                at = np.array(a.reshape(int(batch or 0), n).T, dtype=np.float32, order="C", copy=True)
            _check_finite(label, at, f"{label}[{{1}}, {{0}}]" if not squeeze else f"{label}[{{0}}]")
            arrays[pop] = at
        return arrays, batch or 0, bool(squeeze)

    def forward(self, x: Any) -> Any:
        """Run the network on a batch.

        Populations are computed in topological order: an input takes the
        given values; any other sums its incoming projections (in creation
        order), adds its bias and applies its activation.  Every activation is
        kept for :meth:`backward`.  In training mode (the default, see
        :meth:`train`), a population with ``dropout > 0`` then zeroes each
        value with that probability and scales the others by ``1 / (1 - p)``;
        masks come from the network's generator (so a seeded network repeats
        them).  In eval mode no mask is drawn.

        Parameters
        ----------
        x : (B, N) real array, or (N,) for one sample
            Values of the input population (converted to float32, must be
            finite).  A dict ``{name: array}`` when there are several inputs
            (all with the same batch size).

        Returns
        -------
        y : (B, N) float32, or (N,) if x was 1-D
            Activation of the output population; a dict ``{name: array}``
            when there are several outputs.
        """
        order = self._topological_order()
        if not order:
            raise ValueError("the network has no populations: call add_population first")
        inputs = [p for p in order if not p._incoming]
        xs, batch, squeeze = self._collect("x", x, inputs, batch=None, squeeze=None, required=True)
        n_threads = get_num_threads()
        acts: dict[Population, np.ndarray] = {}
        pre_dropout: dict[Population, np.ndarray] = {}
        masks: dict[Population, np.ndarray] = {}
        drop = self._training
        for pop in order:
            if not pop._incoming:
                a = xs[pop]
            else:
                a = np.zeros((pop.size, batch), dtype=np.float32)
                if batch:
                    for p in pop._incoming:
                        p._core.forward(acts[p.pre], a, n_threads)
                    _core.pop_forward(a, pop._bias, pop._act, n_threads)
            if drop and pop._dropout > 0.0 and batch:
                # Inverted dropout: keep with probability 1 - p, scale by 1 / (1 - p).
                keep = self._rng.random(a.shape, dtype=np.float32) >= np.float32(pop._dropout)
                m = keep * np.float32(1.0 / (1.0 - pop._dropout))
                pre_dropout[pop] = a
                masks[pop] = m
                a = a * m
            acts[pop] = a
        self._cache = _Cache(acts, batch, squeeze, pre_dropout, masks)
        return self._export([p for p in order if not p._outgoing], acts, squeeze)

    @staticmethod
    def _export(pops: list[Population], arrays: dict[Population, np.ndarray], squeeze: bool) -> Any:
        out = {}
        for p in pops:
            a = np.ascontiguousarray(arrays[p].T)
            out[p.name] = a[0] if squeeze else a
        if len(out) == 1:
            return next(iter(out.values()))
        return out

    def backward(self, dy: Any) -> Any:
        """Backpropagate dL/dy through the last forward pass.

        Accumulates dL/dw into every projection's gradient (see
        :meth:`Projection.grad`) and dL/d(bias) into every population's
        ``bias_grad`` until :meth:`zero_grad`.  Dropout masks are the ones the
        forward pass drew.  Afterwards ``_cache.deltas[pop]`` holds dL/dz
        (N, B) of every non-input population.

        Parameters
        ----------
        dy : (B, N) real array, shaped like forward's output
            dL/dy of the output population (finite); a dict ``{name: array}``
            when there are several outputs, where a missing output means a
            zero gradient.

        Returns
        -------
        dx : (B, N) float32 (or (N,) if forward's x was 1-D)
            dL/dx of the input population; a dict ``{name: array}`` when
            there are several inputs.

        Raises
        ------
        RuntimeError
            No forward since the network was built or structurally edited.
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError(
                "backward needs the activations of a forward pass over the current structure "
                "(none since the network was built or last edited): call forward first"
            )
        order = self._topological_order()
        outputs = [p for p in order if not p._outgoing]
        dys, _, _ = self._collect("dy", dy, outputs, batch=cache.batch, squeeze=cache.squeeze, required=False)
        batch, acts, masks = cache.batch, cache.acts, cache.masks
        pre_dropout = cache.pre_dropout
        deltas: dict[Population, np.ndarray] = {}
        n_threads = get_num_threads()
        # The only allocation in C that could fail: do it before accumulating anything.
        for p in self._projections:
            if not p._core.column_enabled(_core.COL_GRAD):
                p._core.enable_column(_core.COL_GRAD)
        grads: dict[Population, np.ndarray] = {}  # dL/da, (N, B)
        for pop in reversed(order):
            d = grads.get(pop)
            g = dys.get(pop)
            if d is None:
                d = g if g is not None else np.zeros((pop.size, batch), dtype=np.float32)
                grads[pop] = d
            elif g is not None:
                d += g
            m = masks.get(pop)
            if m is not None:
                d *= m  # dL/d(dropped) -> dL/da
            if not pop._incoming:
                continue
            deltas[pop] = d
            if not batch:
                continue
            a = pre_dropout.get(pop, acts[pop])  # act'(z) needs the activation before dropout
            _core.pop_backward(a, d, pop._bias_grad, pop._act, n_threads)  # d: dL/dz
            for p in pop._incoming:
                src = p.pre
                ds = grads.get(src)
                if ds is None:
                    ds = grads[src] = np.zeros((src.size, batch), dtype=np.float32)
                p._core.backward(acts[src], d, ds, True, n_threads)
        cache.deltas = deltas
        return self._export([p for p in order if not p._incoming], grads, cache.squeeze)

    def predict(self, x: Any, batch_size: int = 256) -> Any:
        """Outputs for a whole data set, in eval mode (no dropout), batch by batch.

        The network is switched to eval mode for the call and back to its
        previous mode afterwards (even on error); the forward cache that
        :meth:`backward` uses is left as it was.

        Parameters
        ----------
        x : (B, N) real array
            Inputs (finite); a dict ``{name: array}`` with one entry per
            input population (all with the same B) when there are several.
            A 1-D ``(N,)`` sample is run as one forward.
        batch_size : int
            Samples per forward pass, ``>= 1``.  Results do not depend on it.

        Returns
        -------
        y : (B, N) float32
            forward's output for every sample, stacked; a dict
            ``{name: array}`` when there are several outputs.
        """
        batch_size = _as_int("batch_size", batch_size, 1)
        order = self._topological_order()
        if not order:
            raise ValueError("the network has no populations: call add_population first")
        inputs = [p for p in order if not p._incoming]
        if isinstance(x, Mapping):
            arrays = {k: _as_real_array(f"x[{k!r}]", v) for k, v in x.items()}
        else:
            arrays = {None: _as_real_array("x", x)}
        lengths = {k: (a.shape[0] if a.ndim == 2 else None) for k, a in arrays.items()}
        n_set = set(lengths.values())
        if len(n_set) > 1:
            raise ValueError(
                f"x's entries have different numbers of samples {lengths}: expected the same B for "
                f"every input population {[p.name for p in inputs]}"
            )
        n = n_set.pop() if n_set else None

        def fits(key: Any, a: np.ndarray) -> bool:
            """Whether a is finite and as wide as its population: else forward explains on the whole x."""
            if key is None:
                size = inputs[0].size if len(inputs) == 1 else -1
            else:
                try:
                    size = self._resolve("x key", key).size
                except (TypeError, ValueError):
                    return False
            return a.shape[1] == size and (a.dtype.kind not in "f" or bool(np.isfinite(a).all()))

        was_training, cache = self._training, self._cache
        self._training = False
        try:
            if n is None or n <= batch_size or not all(fits(k, a) for k, a in arrays.items()):
                return self.forward(x)  # a 1-D sample, one batch, or an error reported on the whole x
            parts = []
            for start in range(0, n, batch_size):
                if isinstance(x, Mapping):
                    xb: Any = {k: a[start : start + batch_size] for k, a in arrays.items()}
                else:
                    xb = arrays[None][start : start + batch_size]
                parts.append(self.forward(xb))
            if isinstance(parts[0], dict):
                return {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
            return np.concatenate(parts)
        finally:
            self._training = was_training
            self._cache = cache

    def zero_grad(self) -> None:
        """Set every synapse gradient and every bias gradient to 0."""
        n_threads = get_num_threads()
        for p in self._projections:
            if p._core.column_enabled(_core.COL_GRAD):
                p._core.fill_column(_core.COL_GRAD, 0.0, n_threads)
        for pop in self._populations.values():
            pop._bias_grad[...] = 0.0

    def shrink(self, *, training_state: bool = False) -> int:
        """Release memory held beyond the synapses themselves; returns the bytes freed.

        Every row's slack capacity is released (rows then hold exactly their
        synapses: 8 bytes per synapse for index and weight).  With
        ``training_state=True`` the per-synapse gradient and optimiser-state
        columns are freed too, and the per-neuron optimiser state: a trained
        network back to its bare weights.  Gradients then read as 0, and an
        optimiser that steps again starts from zero state, as a new one would.
        Weights, biases and the network's function are unchanged.
        """
        training_state = _as_bool("training_state", training_state)
        before = self.nbytes
        for p in self._projections:
            if training_state:
                for col in (_core.COL_GRAD, _core.COL_STATE0, _core.COL_STATE1):
                    if p._core.column_enabled(col):
                        p._core.disable_column(col)
            p._core.shrink()
        if training_state:
            for pop in self._populations.values():
                pop._neuron_state = {}
                pop._bias_grad[...] = 0.0
        return before - self.nbytes

    # -- reporting
    def summary(self) -> str:
        """A readable table of populations, projections and totals."""
        order = self._topological_order()
        lines = [
            (
                f"Network: {_plural(len(self._populations), 'population')}, "
                f"{_plural(len(self._projections), 'projection')}, "
                f"{_plural(self.n_neurons, 'neuron')}, {_plural(self.n_synapses, 'synapse')}"
            )
        ]
        if order:
            w = max(10, *(len(p.name) for p in order))
            lines.append("")
            lines.append(f"{'population':<{w}}  {'size':>10}  {'activation':<10}  role")
            for p in order:
                role = "input" if p.is_input else ("output" if p.is_output else "hidden")
                if p.is_input and p.is_output:
                    role = "input/output"
                if p.dropout:
                    role += f", dropout {p.dropout:g}"
                lines.append(f"{p.name:<{w}}  {p.size:>10,}  {p.activation:<10}  {role}")
        if self._projections:
            labels = [f"{q.pre.name} -> {q.post.name}" for q in self._projections]
            w = max(10, *(len(s) for s in labels))
            lines.append("")
            lines.append(
                f"{'projection':<{w}}  {'n_synapses':>13}  {'density':>8}  {'fan-out':>8}  "
                f"{'fan-in':>8}  {'bytes/syn':>9}  init"
            )
            for label, q in zip(labels, self._projections):
                n = q.n_synapses
                bps = f"{q.nbytes / n:9.2f}" if n else f"{'-':>9}"
                lines.append(
                    f"{label:<{w}}  {n:>13,}  {q.density:>8.4f}  {n / q.pre.size:>8.1f}  "
                    f"{n / q.post.size:>8.1f}  {bps}  {q.init}"
                )
            total = self.n_synapses
            nbytes = sum(p.nbytes for p in self._projections)
            bps = f"{nbytes / total:9.2f}" if total else f"{'-':>9}"
            lines.append(
                f"{'total':<{w}}  {total:>13,}  {'':>8}  {'':>8}  {'':>8}  {bps}  {_fmt_bytes(nbytes)}"
            )
        # One line per live optimiser of this network (connectome/optim.py registers weak references).
        optimizers = [o for o in (ref() for ref in getattr(self, "_optimizers", ())) if o is not None]
        if optimizers:
            lines.append("")
            lines.extend(o._summary_line() for o in optimizers)
        return "\n".join(lines)

    # -- persistence (io helper's region)
    def save(self, path: Any, optimizer: Any = None) -> None:
        """Write the network (and optionally an optimiser's state) to path, atomically.

        A versioned, checksummed ``.npz`` written at exactly ``path`` (no suffix
        is added); read it back with ``cx.load(path)`` (or ``cx.load(path,
        with_optimizer=True)``) to get bitwise-equal predictions.  The format
        is documented in :mod:`connectome.io`.

        Parameters
        ----------
        path : str or os.PathLike
        optimizer : optimiser or None
            An optimiser of this network whose state (including per-synapse
            and per-neuron state) is saved too.
        """
        from .io import save

        save(self, path, optimizer=optimizer)

    def __repr__(self) -> str:
        return (
            f"Network(populations={len(self._populations)}, projections={len(self._projections)}, "
            f"n_neurons={self.n_neurons}, n_synapses={self.n_synapses})"
        )
