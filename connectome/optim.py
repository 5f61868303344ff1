"""Optimisers whose per-synapse state lives in the synapse rows (``cx.optim``).

:class:`SGD` and :class:`Adam` follow ``torch.optim.SGD`` and ``torch.optim.Adam``
(``weight_decay`` is L2 added to the gradient, Adam's bias correction uses the
optimiser's step count), plus an optional L1 penalty applied as a proximal step,
``w = sign(w) * max(|w| - lr * l1, 0)``, which drives weights to exactly 0.0;
exact-zero synapses are then removed from the rows, so L1 shrinks memory, not
just values.  The exact float32 arithmetic is documented in ``csrc/connectome.h``
(``cx_optim``); every step runs in C, GIL released, bitwise identical for any
thread count.

Where the state lives
---------------------
- Per synapse: the projection's ``COL_STATE0`` / ``COL_STATE1`` columns, allocated
  on the first step and only as many as the rule needs (plain SGD: none; SGD with
  momentum: one, 4 B/synapse; Adam: two, 8 B/synapse).  The columns move with
  every structural edit: a surviving synapse keeps its state, a new synapse
  (grow, rewire, add_synapses, add_neurons) starts from zero state, a removed one
  frees its state.
- Per neuron (biases): ``pop._neuron_state`` arrays (``momentum_buffer``;
  ``exp_avg``, ``exp_avg_sq``), extended and shrunk by ``add_neurons`` /
  ``remove_neurons`` together with the biases.

Biases of every non-input population get the same rule, weight decay included
(torch's default param group does the same); L1 and zero-removal apply to
synapses only.  A projection whose gradient column does not exist yet (no
``backward`` since it was created) is skipped, as torch skips a parameter whose
``grad`` is None.  Projections and populations added after the optimiser was
created are found on the network at each step.

Zero removal policy
-------------------
``remove_zeros=None`` (default) removes exact-zero synapses when ``l1 > 0``;
``True`` removes them even without L1; ``False`` never.  Removal runs inside
:meth:`Optimizer.step`, *after* the update, every ``remove_every`` steps.  So a
synapse born at weight 0 (``grow`` / RigL, the outgoing synapses of
``add_neurons``) always receives one update before it can be removed: it survives
if its gradient moved it off zero (with L1: if ``|lr * g| > lr * l1`` in effect),
which is the proximal-gradient optimality condition for a zero weight.  Without
L1, removal is off by default because a weight only lands on exactly 0.0 by
accident, while zero-born synapses with a zero gradient (e.g. from a silent
neuron) would be deleted before they could learn.  Removing zero-weight synapses
does not change the network's function, so it does not invalidate the forward
cache (``net._cache``, which plasticity rules read after ``step``).  Rows whose
slack exceeds a quarter of their capacity after a removal are shrunk, so
``nbytes`` falls.  NaN weights (a diverged run) are removed with the zeros, as
``prune(threshold)`` removes them.

One optimiser per network
-------------------------
Like a fresh ``torch.optim`` optimiser, a new optimiser starts from zero state:
creating one zeroes (and frees, when not needed) the state columns and the
per-neuron state left by an earlier optimiser of the same network, which is then
superseded (its ``step`` raises).  :func:`from_state_dict` (used by
``cx.load(..., with_optimizer=True)``) instead keeps the state found in the rows
and populations.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from . import _core
from ._threads import get_num_threads
from .network import Network, Population, Projection

__all__ = ["SGD", "Adam", "Optimizer", "from_state_dict"]

# Removes exactly the synapses with |w| == 0 (and NaN weights): the core prunes
# |w| < threshold by comparing the bit patterns of |w| and of the threshold, and
# the smallest positive float32 (a subnormal, bit pattern 1) has only 0 below it.
_ZERO_THRESHOLD = float(np.finfo(np.float32).smallest_subnormal)
_STATE_COLUMNS = (_core.COL_STATE0, _core.COL_STATE1)
_STATE_DICT_VERSION = 1
_F32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------- argument checks
def _describe(value: Any) -> str:
    text = repr(value)
    return (text[:57] + "...") if len(text) > 60 else f"{text} ({type(value).__name__})"


def _real(name: str, value: Any, *, lo: float = 0.0, lo_open: bool = False, hi: float | None = None) -> float:
    """A finite real argument in [lo, hi) (or (lo, hi) with lo_open), representable in float32."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or abs(v) > _F32_MAX:
        raise ValueError(f"{name}={v} is not finite in float32: expected a finite real number")
    if v < lo or (lo_open and v == lo) or (hi is not None and v >= hi):
        left = f"{lo} < {name}" if lo_open else f"{lo} <= {name}"
        right = f" < {hi}" if hi is not None else ""
        raise ValueError(f"{name}={v} is out of range: expected {left}{right}")
    if lo_open and not np.float32(v) > 0:
        raise ValueError(f"{name}={v} rounds to 0 in float32: expected a positive float32")
    return v


def _int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    v = int(value.__index__())
    if v < lo:
        raise ValueError(f"{name}={v} is out of range: expected {name} >= {lo}")
    return v


def _check_net(net: Any) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"net must be a connectome Network, got {_describe(net)}")


def _remove_zeros(value: Any) -> bool | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise TypeError(f"remove_zeros must be True, False or None, got {_describe(value)}")


# ---------------------------------------------------------------------- Optimizer
class Optimizer:
    """Base class: the bookkeeping shared by :class:`SGD` and :class:`Adam`.

    Subclasses set ``_KIND`` (the core's rule), ``_STATE_KEYS`` (the per-neuron
    state arrays) and :meth:`_hyper` (the core's parameters).
    """

    _KIND: ClassVar[int]
    _STATE_KEYS: ClassVar[tuple[str, ...]]
    _HYPER_KEYS: ClassVar[tuple[str, ...]]

    _net: Network
    _lr: float
    _weight_decay: float
    _l1: float
    _remove_zeros: bool | None
    _remove_every: int
    _step_count: int
    _total_removed: int

    def _configure(
        self, net: Any, lr: Any, weight_decay: Any, l1: Any, remove_zeros: Any, remove_every: Any
    ) -> None:
        """Check the shared arguments (nothing is stored until all are valid)."""
        _check_net(net)
        lr_v = _real("lr", lr, lo_open=True)
        wd = _real("weight_decay", weight_decay)
        l1_v = _real("l1", l1)
        if not lr_v * l1_v <= _F32_MAX:
            raise ValueError(f"lr * l1 = {lr_v * l1_v} overflows float32: expected a smaller l1")
        rz = _remove_zeros(remove_zeros)
        every = _int("remove_every", remove_every, 1)
        self._net = net
        self._lr, self._weight_decay, self._l1 = lr_v, wd, l1_v
        self._remove_zeros, self._remove_every = rz, every
        self._step_count = 0
        self._total_removed = 0

    def _attach(self, reset: bool) -> None:
        """Become the network's optimiser; with reset, start from zero state (see module doc)."""
        net = self._net
        n_state = self._n_state
        if reset:
            for p in net._projections:
                for k, col in enumerate(_STATE_COLUMNS):
                    if not p._core.column_enabled(col):
                        continue
                    if k < n_state:
                        p._core.fill_column(col, 0.0, get_num_threads())
                    else:
                        p._core.disable_column(col)
            for pop in net._populations.values():
                pop._neuron_state = {}
        net._optimizers = [weakref.ref(self)]  # type: ignore[attr-defined]

    # -- facts
    @property
    def net(self) -> Network:
        """The network this optimiser updates."""
        return self._net

    @property
    def lr(self) -> float:
        """Learning rate, > 0; settable between steps (schedules)."""
        return self._lr

    @lr.setter
    def lr(self, value: Any) -> None:
        lr = _real("lr", value, lo_open=True)
        if not lr * self._l1 <= _F32_MAX:
            raise ValueError(f"lr * l1 = {lr * self._l1} overflows float32: expected a smaller lr")
        self._lr = lr

    @property
    def weight_decay(self) -> float:
        return self._weight_decay

    @property
    def l1(self) -> float:
        return self._l1

    @property
    def remove_zeros(self) -> bool:
        """Whether step() removes exact-zero synapses (None was resolved: True iff l1 > 0)."""
        return self._l1 > 0 if self._remove_zeros is None else self._remove_zeros

    @property
    def remove_every(self) -> int:
        return self._remove_every

    @property
    def step_count(self) -> int:
        """Steps taken so far (Adam's t of the last step)."""
        return self._step_count

    @property
    def total_removed(self) -> int:
        """Synapses removed by zero-removal over every step."""
        return self._total_removed

    @property
    def _n_state(self) -> int:
        return int(_core.optim_n_state(self._KIND, *self._hyper(), 1))

    @property
    def state_bytes_per_synapse(self) -> float:
        """Bytes of optimiser state per synapse: 0 (plain SGD), 4 (momentum) or 8 (Adam)."""
        return 4.0 * self._n_state

    def _hyper(self) -> tuple[float, float, float, float, float, float, float]:
        """(lr, momentum, beta1, beta2, eps, weight_decay, l1) for the core."""
        raise NotImplementedError

    # -- the step
    def zero_grad(self) -> None:
        """Set every synapse and bias gradient of the network to 0 (``net.zero_grad()``)."""
        self._net.zero_grad()

    def _check_current(self) -> None:
        refs = getattr(self._net, "_optimizers", None) or []
        if not refs or refs[-1]() is not self:
            raise RuntimeError(
                f"this {type(self).__name__} was superseded by an optimiser created later on the same "
                "network (which reset the optimiser state): step with the newer one"
            )

    def _bias_state(self, pop: Population) -> list[np.ndarray]:
        """The population's per-neuron state arrays for this rule, created at zero if missing."""
        out = []
        for key in self._STATE_KEYS[: self._n_state]:
            a = pop._neuron_state.get(key)
            if a is None:
                a = np.zeros(pop.size, dtype=np.float32)
            elif a.shape != (pop.size,):
                raise RuntimeError(
                    f"population {pop.name!r}: _neuron_state[{key!r}] has shape {a.shape}, "
                    f"expected ({pop.size},)"
                )
            elif a.dtype != np.float32 or not a.flags.c_contiguous or not a.flags.writeable:
                a = np.array(a, dtype=np.float32, order="C")
            out.append(a)
        return out

    def step(self) -> int:
        """Apply one update to every synapse and bias from its accumulated gradient.

        Order: allocate what is missing (state columns, per-neuron state), then
        update every projection that has a gradient column and every non-input
        population's biases, then (every ``remove_every`` steps, when
        :attr:`remove_zeros`) remove the synapses whose weight is exactly 0.

        Returns
        -------
        n_removed : int
            Synapses removed by zero-removal in this call.
        """
        self._check_current()
        net = self._net
        t = self._step_count + 1
        hyper = self._hyper()
        n_state = self._n_state
        n_threads = get_num_threads()
        projs: list[Projection] = [p for p in net._projections if p._core.column_enabled(_core.COL_GRAD)]
        pops = [pop for pop in net._populations.values() if pop._incoming]
        # Every allocation first: a MemoryError here leaves weights and state untouched.
        for p in projs:
            for col in _STATE_COLUMNS[:n_state]:
                if not p._core.column_enabled(col):
                    p._core.enable_column(col)
        bias_states = [self._bias_state(pop) for pop in pops]
        for pop, arrays in zip(pops, bias_states):
            pop._neuron_state.update(zip(self._STATE_KEYS, arrays))
        zeros = [int(p._core.optim_step(self._KIND, *hyper, t, n_threads)) for p in projs]
        lr, mom, b1, b2, eps, wd, _ = hyper
        for pop, arrays in zip(pops, bias_states):
            s0 = arrays[0] if n_state >= 1 else None
            s1 = arrays[1] if n_state >= 2 else None
            # Biases: same rule, no L1 (only synapses are removable).
            _core.optim_update(
                pop._bias, pop._bias_grad, s0, s1, self._KIND, lr, mom, b1, b2, eps, wd, 0.0, t
            )
        self._step_count = t
        removed = 0
        if self.remove_zeros and t % self._remove_every == 0:
            for p, nz in zip(projs, zeros):
                if nz:
                    removed += self._remove_zero_synapses(p, n_threads)
        self._total_removed += removed
        return removed

    @staticmethod
    def _remove_zero_synapses(p: Projection, n_threads: int) -> int:
        """Prune |w| == 0 and give back the memory once slack passes a quarter of the capacity.

        No cache invalidation: a zero-weight synapse contributes nothing, so the
        forward activations kept for backward / plasticity stay exact.
        """
        core = p._core
        n = int(core.prune_threshold(_ZERO_THRESHOLD, n_threads))
        if n and 4 * (core.capacity - core.n_synapses) > core.capacity:
            core.shrink()
        return n

    # -- state
    def _hyper_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's scalars (JSON-able): type, hyper-parameters, step count, removals.

        Per-synapse state stays in the rows' ``COL_STATE0/1`` columns and per-neuron
        state in ``pop._neuron_state``; ``net.save(path, optimizer=opt)`` saves both.
        """
        return {
            "type": type(self).__name__,
            "version": _STATE_DICT_VERSION,
            **self._hyper_dict(),
            "weight_decay": self._weight_decay,
            "l1": self._l1,
            "remove_zeros": self._remove_zeros,
            "remove_every": self._remove_every,
            "step_count": self._step_count,
            "total_removed": self._total_removed,
        }

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (checked in full before anything changes).

        The per-synapse and per-neuron state is not part of ``d``: it is whatever the
        network's rows and populations hold.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"d must be a dict from state_dict(), got {_describe(d)}")
        name = type(self).__name__
        if d.get("type") != name:
            raise ValueError(f"d['type']={d.get('type')!r}: expected {name!r} (a {name}.state_dict())")
        if d.get("version") != _STATE_DICT_VERSION:
            raise ValueError(f"d['version']={d.get('version')!r}: expected {_STATE_DICT_VERSION}")
        keys = {"type", "version", *self._HYPER_KEYS, "weight_decay", "l1", "remove_zeros", "remove_every"}
        keys |= {"step_count", "total_removed"}
        missing = sorted(keys - set(d))
        if missing:
            raise KeyError(f"d is missing {missing}")
        unknown = sorted(set(d) - keys)
        if unknown:
            raise ValueError(f"d has unknown keys {unknown}")
        probe = type(self).__new__(type(self))
        probe._configure_from(self._net, d)
        probe._step_count = _int("d['step_count']", d["step_count"], 0)
        probe._total_removed = _int("d['total_removed']", d["total_removed"], 0)
        self.__dict__.update({k: v for k, v in probe.__dict__.items() if k != "_net"})

    def _configure_from(self, net: Network, d: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # -- reporting
    def _summary_line(self) -> str:
        """The line net.summary() prints: bytes per synapse of index + weight + this state.

        Measured from each projection's capacity (slack included), not counting the
        gradient column or columns this optimiser does not use.
        """
        state = self.state_bytes_per_synapse
        total, n = 0.0, 0
        for p in self._net._projections:
            core = p._core
            cap = int(core.capacity)
            extra = sum(core.column_enabled(c) for c in (_core.COL_GRAD, *_STATE_COLUMNS))
            overhead = int(core.nbytes) - cap * (8 + 4 * extra)
            total += overhead + cap * (8 + state)
            n += int(core.n_synapses)
        all_s = f"{total / n:.1f} B/synapse in all (index + weight + state)" if n else "no synapses"
        return f"optimizer: {self!r}, state {state:g} B/synapse, {all_s}"

    def __repr__(self) -> str:
        parts = [f"lr={self._lr:g}"]
        for key, value in self._hyper_dict().items():
            if key != "lr" and value != self._DEFAULTS.get(key):
                parts.append(f"{key}={tuple(value) if isinstance(value, list) else value!r}")
        if self._weight_decay:
            parts.append(f"weight_decay={self._weight_decay:g}")
        if self._l1:
            parts.append(f"l1={self._l1:g}")
        return f"{type(self).__name__}({', '.join(parts)})"

    _DEFAULTS: ClassVar[dict[str, Any]] = {}


# ---------------------------------------------------------------------------- SGD
class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``, plus L1.

    Per synapse and bias, with ``g`` the accumulated gradient::

        g = g + weight_decay * w
        b = momentum * b + g;  g = b          (when momentum > 0; b starts at 0)
        w = w - lr * g
        w = sign(w) * max(|w| - lr * l1, 0)   (synapses, when l1 > 0)

    (torch's dampening=0, nesterov=False.)  State: one float32 per synapse
    (``COL_STATE0``) with momentum, none without.

    Parameters
    ----------
    net : Network
    lr : float
        Learning rate, finite, > 0.
    momentum : float
        ``>= 0``.
    weight_decay : float
        L2 coefficient added to the gradient, ``>= 0``.
    l1 : float
        L1 coefficient of the proximal step, ``>= 0``.
    remove_zeros : bool or None
        Remove exact-zero synapses during :meth:`step`: None (default) when
        ``l1 > 0``, True always, False never (see the module docstring).
    remove_every : int
        Remove zeros every this many steps, ``>= 1``.

    Examples
    --------
    >>> import numpy as np, connectome as cx
    >>> net = cx.Network(seed=0)
    >>> _ = net.connect(net.add_population("x", 8), net.add_population("y", 2), fanout=2)
    >>> opt = cx.optim.SGD(net, lr=0.1, momentum=0.9, l1=1e-3)
    >>> opt.zero_grad(); _ = net.forward(np.ones((4, 8))); _ = net.backward(np.ones((4, 2)))
    >>> n_removed = opt.step()
    """

    _KIND = _core.OPTIM_SGD
    _STATE_KEYS = ("momentum_buffer",)
    _HYPER_KEYS = ("lr", "momentum")
    _DEFAULTS: ClassVar[dict[str, Any]] = {"momentum": 0.0}

    def __init__(
        self,
        net: Network,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        l1: float = 0.0,
        remove_zeros: bool | None = None,
        remove_every: int = 1,
    ):
        _check_net(net)
        mom = _real("momentum", momentum)
        self._configure(net, lr, weight_decay, l1, remove_zeros, remove_every)
        self._momentum = mom
        self._attach(reset=True)

    @property
    def momentum(self) -> float:
        return self._momentum

    def _hyper(self) -> tuple[float, float, float, float, float, float, float]:
        return (self._lr, self._momentum, 0.0, 0.0, 1.0, self._weight_decay, self._l1)

    def _hyper_dict(self) -> dict[str, Any]:
        return {"lr": self._lr, "momentum": self._momentum}

    def _configure_from(self, net: Network, d: Mapping[str, Any]) -> None:
        mom = _real("momentum", d["momentum"])
        self._configure(net, d["lr"], d["weight_decay"], d["l1"], d["remove_zeros"], d["remove_every"])
        self._momentum = mom


# --------------------------------------------------------------------------- Adam
class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (not AdamW; amsgrad=False), plus L1.

    Per synapse and bias, at step ``t`` (this optimiser's :attr:`step_count`)::

        g = g + weight_decay * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
        w = sign(w) * max(|w| - lr * l1, 0)   (synapses, when l1 > 0)

    State: two float32 per synapse (``COL_STATE0`` = m, ``COL_STATE1`` = v).  A
    synapse created later starts at m = v = 0 but shares the optimiser's t.

    Parameters
    ----------
    net : Network
    lr : float
        Finite, > 0.
    betas : (float, float)
        Each in ``[0, 1)``.
    eps : float
        Finite, > 0.
    weight_decay, l1, remove_zeros, remove_every
        As for :class:`SGD`.
    """

    _KIND = _core.OPTIM_ADAM
    _STATE_KEYS = ("exp_avg", "exp_avg_sq")
    _HYPER_KEYS = ("lr", "betas", "eps")
    _DEFAULTS: ClassVar[dict[str, Any]] = {"betas": [0.9, 0.999], "eps": 1e-8}

    def __init__(
        self,
        net: Network,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        l1: float = 0.0,
        remove_zeros: bool | None = None,
        remove_every: int = 1,
    ):
        _check_net(net)
        b1, b2 = self._betas(betas)
        e = _real("eps", eps, lo_open=True)
        self._configure(net, lr, weight_decay, l1, remove_zeros, remove_every)
        self._beta1, self._beta2, self._eps = b1, b2, e
        self._attach(reset=True)

    @staticmethod
    def _betas(betas: Any) -> tuple[float, float]:
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {_describe(betas)}")
        return _real("betas[0]", betas[0], hi=1.0), _real("betas[1]", betas[1], hi=1.0)

    @property
    def betas(self) -> tuple[float, float]:
        return (self._beta1, self._beta2)

    @property
    def eps(self) -> float:
        return self._eps

    def _hyper(self) -> tuple[float, float, float, float, float, float, float]:
        return (self._lr, 0.0, self._beta1, self._beta2, self._eps, self._weight_decay, self._l1)

    def _hyper_dict(self) -> dict[str, Any]:
        return {"lr": self._lr, "betas": [self._beta1, self._beta2], "eps": self._eps}

    def _configure_from(self, net: Network, d: Mapping[str, Any]) -> None:
        b1, b2 = self._betas(d["betas"])
        e = _real("eps", d["eps"], lo_open=True)
        self._configure(net, d["lr"], d["weight_decay"], d["l1"], d["remove_zeros"], d["remove_every"])
        self._beta1, self._beta2, self._eps = b1, b2, e


_CLASSES: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam}


def from_state_dict(net: Network, d: Mapping[str, Any]) -> Optimizer:
    """An optimiser of net rebuilt from ``state_dict()``, keeping the network's state.

    Unlike the constructors, it does not reset the per-synapse columns or the
    per-neuron state: they are taken as they are in ``net`` (as ``cx.load`` restored
    them), and the step count continues, so Adam's bias correction does too.

    Raises
    ------
    TypeError, KeyError, ValueError
        d is not a valid state dict (nothing changes then).
    """
    _check_net(net)
    if not isinstance(d, Mapping):
        raise TypeError(f"d must be a dict from state_dict(), got {_describe(d)}")
    cls = _CLASSES.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"d['type']={d.get('type')!r}: expected one of {list(_CLASSES)}")
    opt = cls.__new__(cls)
    opt._net = net
    opt.load_state_dict(d)
    opt._net = net
    opt._attach(reset=False)
    return opt
