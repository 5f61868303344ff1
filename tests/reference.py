"""Pure-numpy oracle for connectome (the role of thinc's ``Ops`` and scipy's ``toarray()``).

``DenseReference`` is one projection as a dense float64 matrix ``W[pre, post]`` plus a
boolean ``mask`` of the synapses that exist.  ``DenseNetwork`` composes them into the
directed acyclic graph of populations that ``connectome.Network`` runs, and computes
forward activations, every gradient, and a rigorous-but-loose bound on how far a float32
engine may differ from the float64 oracle (so tolerances adapt to magnitudes, fan-in and
depth instead of being a single guessed rtol).

Nothing here imports connectome except through duck typing in the ``from_*`` helpers, so
the oracle can be checked on its own (tests/test_reference.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")

# Rounding budget per arithmetic stage (a sum of up to a few dozen float32 terms, or one
# libm call): ~84 float32 ulps relative to the magnitude of the terms involved.
C_ROUND = 1e-5
# Absolute floor for comparisons (denormals, exact-zero bookkeeping).
ATOL = 1e-9


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """a = act(z), float64."""
    z = np.asarray(z, dtype=np.float64)
    if name == "linear":
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        # overflow-free logistic
        out = np.empty_like(z)
        pos = z >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
        ez = np.exp(z[~pos])
        out[~pos] = ez / (1.0 + ez)
        return out
    raise ValueError(f"unknown activation {name!r}")


def activation_slope(name: str, a: np.ndarray) -> np.ndarray:
    """act'(z) expressed through a = act(z) (what the engine does)."""
    a = np.asarray(a, dtype=np.float64)
    if name == "linear":
        return np.ones_like(a)
    if name == "relu":
        return (a > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 - a * a
    if name == "sigmoid":
        return a * (1.0 - a)
    raise ValueError(f"unknown activation {name!r}")


class DenseReference:
    """One projection, dense: ``W[pre, post]`` (float64) and ``mask[pre, post]`` (bool).

    forward:  ``x @ W``                 x (B, n_pre) -> (B, n_post)
    backward: ``(dout @ W.T, (x.T @ dout) * mask)``   gradient only where a synapse exists
    """

    def __init__(self, n_pre: int, n_post: int, pre=(), post=(), w=()):
        self.n_pre = int(n_pre)
        self.n_post = int(n_post)
        self.W = np.zeros((self.n_pre, self.n_post), dtype=np.float64)
        self.mask = np.zeros((self.n_pre, self.n_post), dtype=bool)
        pre = np.asarray(pre, dtype=np.intp).reshape(-1)
        post = np.asarray(post, dtype=np.intp).reshape(-1)
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        if not (len(pre) == len(post) == len(w)):
            raise ValueError("pre, post, w lengths differ")
        if len(pre):
            if pre.min() < 0 or pre.max() >= self.n_pre or post.min() < 0 or post.max() >= self.n_post:
                raise IndexError("synapse out of range")
            flat = pre * self.n_post + post
            if len(np.unique(flat)) != len(flat):
                raise ValueError("duplicate synapse")
        self.W[pre, post] = w
        self.mask[pre, post] = True

    @classmethod
    def from_coo(cls, n_pre, n_post, coo):
        pre, post, w = coo
        return cls(n_pre, n_post, pre, post, w)

    @classmethod
    def from_model(cls, n_pre, n_post, synapses: Mapping):
        """From a dict[(pre, post)] -> w."""
        if synapses:
            keys = np.array(sorted(synapses), dtype=np.intp).reshape(-1, 2)
            w = [synapses[(int(i), int(j))] for i, j in keys]
            return cls(n_pre, n_post, keys[:, 0], keys[:, 1], w)
        return cls(n_pre, n_post)

    @property
    def n_synapses(self) -> int:
        return int(self.mask.sum())

    def to_coo(self):
        """(pre int32, post int32, w float32) in (pre, post) order."""
        pre, post = np.nonzero(self.mask)  # row-major == (pre, post) order
        return pre.astype(np.int32), post.astype(np.int32), self.W[pre, post].astype(np.float32)

    def fanout(self) -> np.ndarray:
        return self.mask.sum(axis=1).astype(np.int64)

    def fanin(self) -> np.ndarray:
        return self.mask.sum(axis=0).astype(np.int64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.W

    def backward(self, x: np.ndarray, dout: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        dout = np.asarray(dout, dtype=np.float64)
        return dout @ self.W.T, (x.T @ dout) * self.mask

    def coo_values(self, dense: np.ndarray) -> np.ndarray:
        """Values of a dense (n_pre, n_post) array at the synapses, in to_coo order."""
        pre, post = np.nonzero(self.mask)
        return dense[pre, post]


@dataclass
class _Pop:
    name: str
    size: int
    activation: str
    bias: np.ndarray  # float64 (size,)


@dataclass
class ForwardResult:
    """Activations of every population (B, size), with error bounds of the same shape."""

    values: dict
    tol: dict
    z: dict = field(default_factory=dict)
    ambiguous: dict = field(default_factory=dict)


@dataclass
class BackwardResult:
    dx: dict  # input name -> (B, size)
    dx_tol: dict
    bias_grad: dict  # non-input name -> (size,)
    bias_grad_tol: dict
    grad: list  # per projection, (n_synapses,) in to_coo order
    grad_tol: list


class DenseNetwork:
    """A DAG of populations joined by DenseReference projections, evaluated in float64.

    Semantics (PLAN.md): populations without incoming projections are inputs whose values
    are taken as given (no bias, no activation); every other population computes
    ``a = act(sum over incoming projections of a_pre @ W + bias)``.  Outputs are the
    populations without outgoing projections.
    """

    def __init__(self):
        self.pops: dict[str, _Pop] = {}
        self.projs: list[tuple[str, str, DenseReference]] = []
        self._cache: ForwardResult | None = None

    # ------------------------------------------------------------ building
    def add_population(self, name, size, activation="linear", bias=None):
        if name in self.pops:
            raise ValueError(f"duplicate population {name!r}")
        b = np.zeros(size) if bias is None else np.asarray(bias, dtype=np.float64).copy()
        self.pops[name] = _Pop(name, int(size), activation, b)

    def connect(self, pre: str, post: str, ref: DenseReference):
        assert ref.n_pre == self.pops[pre].size and ref.n_post == self.pops[post].size
        self.projs.append((pre, post, ref))

    @classmethod
    def from_network(cls, net) -> DenseNetwork:
        """Read a connectome.Network's current structure, weights and biases."""
        ref = cls()
        for name, pop in net.populations.items():
            ref.add_population(name, pop.size, pop.activation, np.asarray(pop.bias, dtype=np.float64))
        for p in net.projections:
            ref.connect(p.pre.name, p.post.name, DenseReference.from_coo(p.pre.size, p.post.size, p.to_coo()))
        return ref

    # ------------------------------------------------------------ topology
    def order(self) -> list[str]:
        """Topological order (Kahn; ties broken by insertion order)."""
        indeg = {n: 0 for n in self.pops}
        for _, post, _ in self.projs:
            indeg[post] += 1
        ready = [n for n in self.pops if indeg[n] == 0]
        out = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for pre, post, _ in self.projs:
                if pre == n:
                    indeg[post] -= 1
                    if indeg[post] == 0:
                        ready.append(post)
        if len(out) != len(self.pops):
            raise ValueError("cycle")
        return out

    @property
    def inputs(self) -> list[str]:
        has_in = {post for _, post, _ in self.projs}
        return [n for n in self.order() if n not in has_in]

    @property
    def outputs(self) -> list[str]:
        has_out = {pre for pre, _, _ in self.projs}
        return [n for n in self.order() if n not in has_out]

    # ------------------------------------------------------------- passes
    def forward(self, x: Mapping[str, np.ndarray]) -> ForwardResult:
        """x: input name -> (B, size).  Returns activations of every population."""
        vals, tol, zs, amb = {}, {}, {}, {}
        inputs = set(self.inputs)
        for name in self.order():
            pop = self.pops[name]
            if name in inputs:
                a = np.asarray(x[name], dtype=np.float64)
                assert a.ndim == 2 and a.shape[1] == pop.size, (name, a.shape)
                vals[name] = a
                tol[name] = np.zeros_like(a)
                continue
            B = next(iter(vals.values())).shape[0] if vals else 0
            z = np.zeros((B, pop.size)) + pop.bias
            mag = np.zeros((B, pop.size)) + np.abs(pop.bias)
            err = np.zeros((B, pop.size))
            for pre, post, ref in self.projs:
                if post != name:
                    continue
                absW = np.abs(ref.W)
                z = z + vals[pre] @ ref.W
                mag = mag + np.abs(vals[pre]) @ absW
                err = err + tol[pre] @ absW
            err = err + C_ROUND * mag  # rounding of the sum (and of the bias add)
            a = activate(pop.activation, z)
            # act is 1-Lipschitz for all four; plus the libm call's own rounding
            tol[name] = err + C_ROUND * np.abs(a) + ATOL
            vals[name] = a
            zs[name] = z
            amb[name] = (np.abs(z) <= err + ATOL) if pop.activation == "relu" else np.zeros(z.shape, bool)
        res = ForwardResult(vals, tol, zs, amb)
        self._cache = res
        return res

    def backward(self, dy: Mapping[str, np.ndarray]) -> BackwardResult:
        """dy: output name -> (B, size) = dL/da.  Uses the last forward."""
        fw = self._cache
        if fw is None:
            raise RuntimeError("call forward first")
        inputs = set(self.inputs)
        da = {n: np.zeros_like(fw.values[n]) for n in self.pops}
        m_da = {n: np.zeros_like(fw.values[n]) for n in self.pops}  # magnitude bound of da
        e_da = {n: np.zeros_like(fw.values[n]) for n in self.pops}  # error bound of da
        for name in self.outputs:
            d = np.asarray(dy[name], dtype=np.float64)
            assert d.shape == fw.values[name].shape, (name, d.shape)
            da[name] = da[name] + d
            m_da[name] = m_da[name] + np.abs(d)
        bias_grad, bias_tol = {}, {}
        grad: list[np.ndarray | None] = [None] * len(self.projs)
        grad_tol: list[np.ndarray | None] = [None] * len(self.projs)
        for name in reversed(self.order()):
            if name in inputs:
                continue
            pop = self.pops[name]
            a = fw.values[name]
            g = activation_slope(pop.activation, a)
            # error of the slope: 2 * err(a) for tanh/sigmoid, a whole flip at a relu kink
            e_g = 2.0 * fw.tol[name] + fw.ambiguous[name]
            dz = da[name] * g
            m_dz = m_da[name]  # |g| <= 1 for all four
            e_dz = e_da[name] + m_da[name] * e_g + C_ROUND * m_da[name]
            bias_grad[name] = dz.sum(axis=0)
            bias_tol[name] = e_dz.sum(axis=0) + C_ROUND * m_dz.sum(axis=0) + ATOL
            for k, (pre, post, ref) in enumerate(self.projs):
                if post != name:
                    continue
                absW = np.abs(ref.W)
                a_pre = fw.values[pre]
                d_pre, gW = ref.backward(a_pre, dz)
                da[pre] = da[pre] + d_pre
                m_da[pre] = m_da[pre] + m_dz @ absW.T
                e_da[pre] = e_da[pre] + e_dz @ absW.T + C_ROUND * (m_dz @ absW.T)
                grad[k] = ref.coo_values(gW)
                gt = (
                    np.abs(a_pre).T @ e_dz
                    + fw.tol[pre].T @ (m_dz + e_dz)
                    + C_ROUND * (np.abs(a_pre).T @ m_dz)
                )
                grad_tol[k] = ref.coo_values(gt) + ATOL
        dx = {n: da[n] for n in self.inputs}
        dx_tol = {n: e_da[n] + C_ROUND * m_da[n] + ATOL for n in self.inputs}
        return BackwardResult(dx, dx_tol, bias_grad, bias_tol, grad, grad_tol)


# ---------------------------------------------------------------- assertions
def assert_within(actual, expected, tol, what: str = "value"):
    """|actual - expected| <= tol elementwise (float64), with a helpful message."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    a64 = actual.astype(np.float64)
    assert np.all(np.isfinite(a64)), f"{what}: non-finite values {a64}"
    diff = np.abs(a64 - expected)
    bad = diff > np.asarray(tol)
    if np.any(bad):
        idx = np.argwhere(bad)[:5]
        rows = [
            f"  at {tuple(int(v) for v in i)}: got {a64[tuple(i)]!r}, expected {expected[tuple(i)]!r}, "
            f"tol {np.broadcast_to(tol, expected.shape)[tuple(i)]!r}"
            for i in idx
        ]
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} entries differ\n" + "\n".join(rows))


# ---------------------------------------------------------------- snapshots
def snapshot(net) -> dict:
    """Everything observable about a network's state, copied."""
    pops = {}
    for name, pop in net.populations.items():
        pops[name] = (
            int(pop.size),
            pop.activation,
            np.array(pop.bias, copy=True),
            np.array(pop.bias_grad, copy=True),
        )
    projs = []
    for p in net.projections:
        pre, post, w = p.to_coo()
        projs.append(
            (p.pre.name, p.post.name, np.array(pre), np.array(post), np.array(w), np.array(p.grad()))
        )
    return {
        "pops": pops,
        "pop_order": list(net.populations),
        "projs": projs,
        "n_synapses": int(net.n_synapses),
        "n_neurons": int(net.n_neurons),
    }


def _same_array(a, b) -> bool:
    a = np.asarray(a)
    b = np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_same_snapshot(before: dict, after: dict, what: str = "network"):
    """Bitwise equality of two snapshots (a failed call must change nothing)."""
    assert before["pop_order"] == after["pop_order"], f"{what}: populations changed"
    assert before["n_synapses"] == after["n_synapses"], f"{what}: n_synapses changed"
    assert before["n_neurons"] == after["n_neurons"], f"{what}: n_neurons changed"
    for name, (size, act, bias, bgrad) in before["pops"].items():
        size2, act2, bias2, bgrad2 = after["pops"][name]
        assert size == size2, f"{what}: size of {name!r} changed {size} -> {size2}"
        assert act == act2, f"{what}: activation of {name!r} changed"
        assert _same_array(bias, bias2), f"{what}: bias of {name!r} changed"
        assert _same_array(bgrad, bgrad2), f"{what}: bias_grad of {name!r} changed"
    assert len(before["projs"]) == len(after["projs"]), f"{what}: projections added or removed"
    for p1, p2 in zip(before["projs"], after["projs"]):
        assert p1[:2] == p2[:2], f"{what}: projection order changed"
        for label, x1, x2 in zip(("pre", "post", "w", "grad"), p1[2:], p2[2:]):
            assert _same_array(x1, x2), f"{what}: {label} of projection {p1[0]}->{p1[1]} changed"
