"""cx.optim against a numpy oracle on the COO arrays.

Two oracles:
- ``Oracle`` re-implements the core's float32 arithmetic (csrc/connectome.h, cx_optim)
  on every synapse and bias, keyed by (pre, post), including zero-removal and the
  state bookkeeping across structural edits.  Weights and state must match bitwise.
- ``torch_rule64`` is torch.optim's textbook rule in float64 (torch's first-step
  ``buf = grad`` included), checked within a float32 tolerance: the semantics.

Gradients come from the engine's own backward (checked elsewhere against
tests/reference.py); what is under test here is what the optimiser does with them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

import connectome as cx
from connectome import _core, optim

F = np.float32
STATE_COLS = (_core.COL_STATE0, _core.COL_STATE1)


# ------------------------------------------------------------------------ the oracle
@dataclass
class Rule:
    kind: str  # "sgd" | "adam"
    lr: float
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    l1: float = 0.0
    remove: bool = False
    remove_every: int = 1

    def make(self, net):
        rz = bool(self.remove)
        if self.kind == "sgd":
            return optim.SGD(
                net, self.lr, momentum=self.momentum, weight_decay=self.weight_decay, l1=self.l1,
                remove_zeros=rz, remove_every=self.remove_every,
            )  # fmt: skip
        return optim.Adam(
            net, self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay, l1=self.l1,
            remove_zeros=rz, remove_every=self.remove_every,
        )  # fmt: skip

    @property
    def n_state(self) -> int:
        return 2 if self.kind == "adam" else int(self.momentum > 0)


def rule32(r: Rule, t: int, w, g, s0, s1, use_l1: bool):
    """The core's float32 step, operation by operation (connectome.h)."""
    w, g, s0, s1 = (np.asarray(a, dtype=F) for a in (w, g, s0, s1))
    wd = F(r.weight_decay)
    if wd > 0:
        g = g + wd * w
    if r.kind == "sgd":
        if F(r.momentum) > 0:
            s0 = F(r.momentum) * s0 + g
            g = s0
        w = w - F(r.lr) * g
    else:
        b1, b2 = r.betas
        s0 = F(b1) * s0 + F(1.0 - b1) * g
        s1 = F(b2) * s1 + F(1.0 - b2) * (g * g)
        step_size = F(r.lr / (1.0 - b1**t))
        bc2_sqrt = F(math.sqrt(1.0 - b2**t))
        w = w - step_size * (s0 / (np.sqrt(s1) / bc2_sqrt + F(r.eps)))
    lam = F(r.lr * r.l1)
    if use_l1 and lam > 0:
        a = np.abs(w) - lam
        w = np.where(a > 0, np.copysign(a, w), F(0)).astype(F)
    return w, s0, s1


def torch_rule64(r: Rule, t: int, w, g, s0, s1):
    """torch.optim.SGD / Adam in float64 (+ the L1 prox), for the semantic check."""
    w, g, s0, s1 = (np.asarray(a, dtype=np.float64) for a in (w, g, s0, s1))
    g = g + r.weight_decay * w
    if r.kind == "sgd":
        if r.momentum > 0:
            s0 = g.copy() if t == 1 else r.momentum * s0 + g  # torch: buf = clone(grad) first
            g = s0
        w = w - r.lr * g
    else:
        b1, b2 = r.betas
        s0 = b1 * s0 + (1 - b1) * g
        s1 = b2 * s1 + (1 - b2) * g * g
        denom = np.sqrt(s1) / math.sqrt(1 - b2**t) + r.eps
        w = w - r.lr / (1 - b1**t) * s0 / denom
    lam = r.lr * r.l1
    if lam > 0:
        w = np.sign(w) * np.maximum(np.abs(w) - lam, 0.0)
    return w, s0, s1


def _keys(pre, post):
    return (np.asarray(pre, dtype=np.int64) << 32) | np.asarray(post, dtype=np.int64)


def _renumber(ids, removed):
    """Drop the ids in removed and renumber the rest as np.delete does: (keep mask, new ids)."""
    keep = ~np.isin(ids, removed)
    return keep, ids - np.searchsorted(removed, ids)


class Oracle:
    """Every synapse (pre, post) -> weight, state; every population -> bias, state."""

    def __init__(self, net, rule: Rule):
        self.rule = rule
        self.t = 0
        self.syn: dict = {}  # Projection -> dict(pre, post, w, s0, s1), in (pre, post) order
        self.pop: dict = {}  # Population -> dict(b, s0, s1)
        self.sync(net)

    def sync(self, net, removed=None):
        """Follow a structural edit: survivors keep weight and state, new entries start at 0.

        removed: {population: sorted removed neuron ids} after remove_neurons.
        Returns (n_survivors, n_new) over all projections.
        """
        removed = removed or {}
        n_surv = n_new = 0
        for p in net.projections:
            pre, post, w = p.to_coo()
            s0, s1 = np.zeros_like(w), np.zeros_like(w)
            old = self.syn.get(p)
            found = np.zeros(w.size, dtype=bool)
            if old is not None:
                opre, opost = old["pre"].copy(), old["post"].copy()
                keep = np.ones(opre.size, dtype=bool)
                if p.pre in removed:
                    k, opre = _renumber(opre, removed[p.pre])
                    keep &= k
                if p.post in removed:
                    k, opost = _renumber(opost, removed[p.post])
                    keep &= k
                okey = _keys(opre[keep], opost[keep])
                key = _keys(pre, post)
                idx = np.searchsorted(key, okey)
                hit = idx < key.size
                hit[hit] = key[idx[hit]] == okey[hit]
                src = np.flatnonzero(keep)[hit]
                dst = idx[hit]
                # an edit never changes a surviving synapse's weight
                np.testing.assert_array_equal(w[dst], old["w"][src])
                s0[dst], s1[dst] = old["s0"][src], old["s1"][src]
                found[dst] = True
            n_surv += int(found.sum())
            n_new += int((~found).sum())
            self.syn[p] = {"pre": pre, "post": post, "w": w.copy(), "s0": s0, "s1": s1}
        for pop in net.populations.values():
            old = self.pop.get(pop)
            b = np.array(pop.bias, dtype=F)
            s0, s1 = np.zeros_like(b), np.zeros_like(b)
            if old is not None:
                os0, os1 = old["s0"], old["s1"]
                if pop in removed:
                    os0, os1 = np.delete(os0, removed[pop]), np.delete(os1, removed[pop])
                n = min(os0.size, b.size)  # new neurons are appended with zero state
                s0[:n], s1[:n] = os0[:n], os1[:n]
            self.pop[pop] = {"b": b, "s0": s0, "s1": s1}
        return n_surv, n_new

    def step(self, net) -> int:
        """The expected effect of opt.step(); returns the expected removal count."""
        r = self.rule
        self.t += 1
        removed = 0
        for p in net.projections:
            if not p._core.column_enabled(_core.COL_GRAD):
                continue
            d = self.syn[p]
            d["w"], d["s0"], d["s1"] = rule32(r, self.t, d["w"], p.grad(), d["s0"], d["s1"], True)
            if r.remove and self.t % r.remove_every == 0:
                keep = d["w"] != 0
                removed += int((~keep).sum())
                for k in d:
                    d[k] = d[k][keep]
        for pop in net.populations.values():
            if pop.is_input:
                continue
            d = self.pop[pop]
            d["b"], d["s0"], d["s1"] = rule32(r, self.t, d["b"], pop.bias_grad, d["s0"], d["s1"], False)
        return removed

    def check(self, net, opt=None):
        """The engine equals the oracle bitwise: synapses, weights, state, biases."""
        r = self.rule
        for p in net.projections:
            d = self.syn[p]
            pre, post, w = p.to_coo()
            np.testing.assert_array_equal(pre, d["pre"])
            np.testing.assert_array_equal(post, d["post"])
            np.testing.assert_array_equal(w, d["w"])
            for k, col in enumerate(STATE_COLS):
                if k < r.n_state:
                    np.testing.assert_array_equal(p._core.get_column(col), d[f"s{k}"])
                elif opt is not None and opt.step_count:
                    assert not p._core.column_enabled(col), "a state column the rule does not need"
        keys = optim.SGD._STATE_KEYS if r.kind == "sgd" else optim.Adam._STATE_KEYS
        for pop in net.populations.values():
            d = self.pop[pop]
            np.testing.assert_array_equal(pop.bias, d["b"])
            if pop.is_input or self.t == 0:
                continue
            for k in range(r.n_state):
                np.testing.assert_array_equal(pop._neuron_state[keys[k]], d[f"s{k}"])


# -------------------------------------------------------------------------- helpers
def make_net(seed=0, n_in=10, n_hid=16, n_out=4):
    net = cx.Network(seed=seed)
    x = net.add_population("x", n_in)
    h = net.add_population("h", n_hid, activation="relu")
    y = net.add_population("y", n_out)
    net.connect(x, h, fanout=6)
    net.connect(h, y, fanout=3)
    net.connect(x, y, fanout=2)
    for pop in (h, y):  # non-zero biases, so weight decay on them shows
        pop.bias = np.linspace(-0.2, 0.2, pop.size)
    return net


def backprop(net, rng, batch=8):
    """zero_grad, forward on random inputs, backward of random dL/dy."""
    net.zero_grad()
    x = rng.standard_normal((batch, net["x"].size))
    y = net.forward(x)
    net.backward(rng.standard_normal(y.shape))


def train_and_check(net, opt, oracle, rng, steps):
    for _ in range(steps):
        backprop(net, rng)
        expected = oracle.step(net)
        assert opt.step() == expected
        oracle.check(net, opt)


def snapshot(net):
    """Everything an optimiser may touch, for 'the network is unchanged' checks."""
    snap = []
    for p in net.projections:
        snap.append(p.to_coo())
        snap.append([p._core.column_enabled(c) for c in range(_core.N_COLS)])
        snap.append([p._core.get_column(c) for c in STATE_COLS])
    for pop in net.populations.values():
        snap.append((pop.bias.copy(), dict(pop._neuron_state)))
    return snap


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                np.testing.assert_array_equal(x[k], y[k])
        elif isinstance(x, (tuple, list)):
            assert_same(list(x), list(y))
        else:
            np.testing.assert_array_equal(x, y)


RULES = {
    "sgd": Rule("sgd", lr=0.1),
    "sgd-momentum": Rule("sgd", lr=0.05, momentum=0.9),
    "sgd-momentum-wd": Rule("sgd", lr=0.05, momentum=0.9, weight_decay=0.01),
    "sgd-wd-l1": Rule("sgd", lr=0.05, weight_decay=1e-3, l1=0.5, remove=True),
    "sgd-momentum-wd-l1": Rule("sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, l1=0.3, remove=True),
    "adam": Rule("adam", lr=0.01),
    "adam-wd": Rule("adam", lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
    "adam-wd-l1": Rule("adam", lr=0.01, weight_decay=1e-2, l1=1.5, remove=True),
    "adam-l1-every3": Rule("adam", lr=0.02, l1=1.0, remove=True, remove_every=3),
}


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", list(RULES))
def test_matches_float32_oracle(name):
    rule = RULES[name]
    net = make_net()
    rng = np.random.default_rng(1)
    opt = rule.make(net)
    oracle = Oracle(net, rule)
    n0 = net.n_synapses
    train_and_check(net, opt, oracle, rng, steps=6)
    assert opt.step_count == 6
    assert opt.state_bytes_per_synapse == 4.0 * rule.n_state
    if rule.remove:
        assert opt.total_removed > 0
        assert net.n_synapses == n0 - opt.total_removed


@pytest.mark.parametrize("name", ["sgd-momentum-wd", "adam-wd", "sgd-wd-l1", "adam-wd-l1"])
def test_torch_semantics_float64(name):
    """Three steps on a fixed structure agree with torch's rules in float64 (float32 tolerance)."""
    rule = RULES[name]
    rule = Rule(**{**rule.__dict__, "remove": False})
    net = make_net(seed=3)
    rng = np.random.default_rng(2)
    opt = rule.make(net)
    ref = {}
    for p in net.projections:
        _, _, w = p.to_coo()
        ref[p] = [w.astype(np.float64), np.zeros(w.size), np.zeros(w.size)]
    for t in range(1, 4):
        backprop(net, rng)
        for p in net.projections:
            w, s0, s1 = ref[p]
            ref[p] = list(torch_rule64(rule, t, w, p.grad().astype(np.float64), s0, s1))
        opt.step()
        for p in net.projections:
            w64 = ref[p][0]
            np.testing.assert_allclose(p.weights, w64, rtol=1e-5, atol=1e-6)
            if rule.n_state:
                np.testing.assert_allclose(
                    p._core.get_column(_core.COL_STATE0), ref[p][1], rtol=1e-5, atol=1e-7
                )


def _edit_prune(net, rng):
    assert net.projections[1].prune(fraction=0.3) > 0


def _edit_grow(net, rng):
    net.projections[0].grow(12, weight=0.0)  # zero-born, as RigL grows
    net.projections[1].grow(5, weight=None, seed=7)


def _edit_add_synapses(net, rng):
    p = net.projections[0]
    pre, post = p._core.sample_absent(4, 11)
    p.add_synapses(pre, post, w=np.array([0.1, -0.2, 0.0, 0.3]))


def _edit_remove_synapses(net, rng):
    p = net.projections[0]
    pre, post, _ = p.to_coo()
    pick = np.array([0, 3, 7, pre.size - 1])
    p.remove_synapses(pre[pick], post[pick])


def _edit_add_neurons(net, rng):
    assert net["h"].add_neurons(3).size == 3


def _edit_remove_neurons(net, rng):
    net["h"].remove_neurons([5, 1])
    return {net["h"]: np.array([1, 5])}


def _edit_rewire(net, rng):
    assert net.projections[0].rewire(0.3, seed=5) > 0


EDITS = {
    "prune": _edit_prune,
    "grow": _edit_grow,
    "add_synapses": _edit_add_synapses,
    "remove_synapses": _edit_remove_synapses,
    "add_neurons": _edit_add_neurons,
    "remove_neurons": _edit_remove_neurons,
    "rewire": _edit_rewire,
}


@pytest.mark.parametrize("rule_name", ["sgd-momentum-wd-l1", "adam-wd-l1"])
@pytest.mark.parametrize("edit", list(EDITS))
def test_state_follows_structural_edits(edit, rule_name):
    rule = RULES[rule_name]
    net = make_net(seed=4)
    rng = np.random.default_rng(5)
    opt = rule.make(net)
    oracle = Oracle(net, rule)
    train_and_check(net, opt, oracle, rng, steps=2)
    assert any(np.any(p._core.get_column(_core.COL_STATE0) != 0) for p in net.projections)
    removed = EDITS[edit](net, rng)
    n_surv, n_new = oracle.sync(net, removed)  # asserts survivors kept their weights
    assert n_surv > 0
    if edit in ("grow", "add_synapses", "add_neurons", "rewire"):
        assert n_new > 0
    # survivors kept their state and new synapses / neurons start from zero state
    oracle.check(net, opt)
    train_and_check(net, opt, oracle, rng, steps=2)


def test_projection_and_population_added_after_the_optimizer():
    rule = RULES["adam-wd-l1"]
    net = make_net(seed=6)
    rng = np.random.default_rng(6)
    opt = rule.make(net)
    oracle = Oracle(net, rule)
    train_and_check(net, opt, oracle, rng, steps=2)
    z = net.add_population("z", 5, activation="tanh")
    net.connect(net["h"], z, fanout=2)
    net.connect(z, net["y"], fanout=4)
    oracle.sync(net)
    # the new projections have no gradient column until a backward: skipped, like grad=None
    expected = oracle.step(net)
    assert opt.step() == expected
    oracle.check(net, opt)
    train_and_check(net, opt, oracle, rng, steps=2)
    assert np.any(net.projections[-1]._core.get_column(_core.COL_STATE1) != 0)
    assert np.any(z._neuron_state["exp_avg"] != 0)


def test_l1_reaches_exact_zeros_and_frees_memory():
    net = cx.Network(seed=8)
    x = net.add_population("x", 40)
    y = net.add_population("y", 30)
    p = net.connect(x, y, fanout=20)
    rng = np.random.default_rng(8)
    opt = optim.SGD(net, lr=0.1, l1=2.0)  # remove_zeros=None: on, since l1 > 0
    assert opt.remove_zeros
    n0, bytes0 = net.n_synapses, p.nbytes
    total = 0
    for _ in range(4):
        backprop(net, rng)
        total += opt.step()
        assert np.count_nonzero(p.weights == 0) == 0  # every zero removed in the same step
        # removing zero weights keeps the forward cache (plasticity rules read it after step)
        assert net._cache is not None
    assert total == opt.total_removed == n0 - net.n_synapses
    assert net.n_synapses < 0.7 * n0
    assert p.nbytes < bytes0
    assert p._core.capacity <= 1.25 * net.n_synapses + 1  # slack given back


def test_remove_every_defers_removal():
    net = make_net(seed=9)
    rng = np.random.default_rng(9)
    rule = RULES["adam-l1-every3"]
    opt = rule.make(net)
    oracle = Oracle(net, rule)
    zeros_seen = []
    for t in range(1, 7):
        backprop(net, rng)
        expected = oracle.step(net)
        n = opt.step()
        assert n == expected
        zeros = sum(int(np.count_nonzero(p.weights == 0)) for p in net.projections)
        zeros_seen.append(zeros)
        if t % 3 == 0:
            assert zeros == 0
        else:
            assert n == 0
        oracle.check(net, opt)
    assert max(zeros_seen) > 0  # zeros do wait for the removal step


def test_zero_removal_policy():
    """Default: only with L1; explicit True: also without; False: never.  Zero-born
    synapses always get one update before they can be removed."""
    rng = np.random.default_rng(10)

    def setup(**kw):
        net = make_net(seed=10)
        opt = optim.SGD(net, lr=0.05, **kw)
        backprop(net, rng)
        opt.step()
        p = net.projections[0]
        p.grow(15, weight=0.0)
        return net, opt, p

    # no L1, default: a zero-born synapse with zero gradient survives (a silent neuron)
    net, opt, p = setup()
    assert not opt.remove_zeros
    net.zero_grad()  # zero inputs: the new synapses (from x) get a zero gradient
    net.forward(np.zeros((4, 10)))
    net.backward(np.ones((4, 4)))
    n = net.n_synapses
    assert opt.step() == 0 and net.n_synapses == n
    assert np.count_nonzero(p.weights == 0) >= 15

    # no L1, remove_zeros=True: the same synapses go, after their update
    net, opt, p = setup(remove_zeros=True)
    assert opt.remove_zeros
    net.zero_grad()
    net.forward(np.zeros((4, 10)))
    net.backward(np.ones((4, 4)))
    zeros = np.count_nonzero(p.weights == 0)
    assert zeros >= 15
    assert opt.step() >= zeros

    # L1 but remove_zeros=False: exact zeros stay in the rows
    net, opt, p = setup(l1=50.0, remove_zeros=False)
    backprop(net, rng)
    assert opt.step() == 0
    assert np.count_nonzero(p.weights == 0) > 15

    # L1: a zero-born synapse whose gradient beats the threshold survives its first step
    net, opt, p = setup(l1=1e-3)
    pre, post, w = p.to_coo()
    born = w == 0
    backprop(net, rng)
    g = p.grad()
    strong = born & (np.abs(0.05 * g) > 0.05 * 1e-3 * 1.01)
    assert strong.any()
    opt.step()
    kept = set(zip(*[a.tolist() for a in p.to_coo()[:2]]))
    assert all((a, b) in kept for a, b in zip(pre[strong].tolist(), post[strong].tolist()))


def test_threads_bitwise(threads):
    def run(n_threads):
        threads.set_num_threads(n_threads)
        net = cx.Network(seed=12)
        x = net.add_population("x", 220)
        y = net.add_population("y", 200, activation="tanh")
        net.connect(x, y, fanout=190)  # 41,800 synapses: above the kernel's parallel threshold
        opt = optim.Adam(net, lr=0.01, weight_decay=1e-3, l1=0.3)
        rng = np.random.default_rng(12)
        removed = [(backprop(net, rng), opt.step())[1] for _ in range(3)]
        p = net.projections[0]
        return removed, p.to_coo(), [p._core.get_column(c) for c in STATE_COLS], y.bias.copy()

    a, b = run(1), run(2)
    assert a[0] == b[0] and sum(a[0]) > 0
    assert_same(list(a[1:]), list(b[1:]))


BAD = [
    (optim.SGD, {"lr": 0.0}, ValueError, "lr=0.0"),
    (optim.SGD, {"lr": -1}, ValueError, "lr=-1"),
    (optim.SGD, {"lr": float("nan")}, ValueError, "lr=nan"),
    (optim.SGD, {"lr": float("inf")}, ValueError, "lr=inf"),
    (optim.SGD, {"lr": 1e-60}, ValueError, "rounds to 0"),
    (optim.SGD, {"lr": "0.1"}, TypeError, "lr must be a real number"),
    (optim.SGD, {"lr": True}, TypeError, "lr must be a real number"),
    (optim.SGD, {"lr": 0.1, "momentum": -0.1}, ValueError, "momentum=-0.1"),
    (optim.SGD, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, "weight_decay=-0.0001"),
    (optim.SGD, {"lr": 0.1, "l1": -1}, ValueError, "l1=-1"),
    (optim.SGD, {"lr": 0.1, "l1": float("nan")}, ValueError, "l1=nan"),
    (optim.SGD, {"lr": 100.0, "l1": 1e37}, ValueError, "overflows float32"),
    (optim.SGD, {"lr": 0.1, "remove_every": 0}, ValueError, "remove_every=0"),
    (optim.SGD, {"lr": 0.1, "remove_every": 2.0}, TypeError, "remove_every must be an integer"),
    (optim.SGD, {"lr": 0.1, "remove_zeros": "yes"}, TypeError, "remove_zeros"),
    (optim.Adam, {"lr": 0.1, "betas": (1.0, 0.999)}, ValueError, r"betas\[0\]=1.0"),
    (optim.Adam, {"lr": 0.1, "betas": (0.9, -0.1)}, ValueError, r"betas\[1\]=-0.1"),
    (optim.Adam, {"lr": 0.1, "betas": 0.9}, TypeError, "betas must be a pair"),
    (optim.Adam, {"lr": 0.1, "betas": (0.9, 0.99, 0.9)}, TypeError, "betas must be a pair"),
    (optim.Adam, {"lr": 0.1, "eps": 0.0}, ValueError, "eps=0.0"),
    (optim.Adam, {"lr": 0.1, "eps": -1e-8}, ValueError, "eps=-1e-08"),
    (optim.Adam, {"lr": 0.1, "l1": -0.5}, ValueError, "l1=-0.5"),
]


@pytest.mark.parametrize("cls,kwargs,exc,match", BAD, ids=[f"{c.__name__}-{m}" for c, _, _, m in BAD])
def test_bad_arguments_leave_the_network_unchanged(cls, kwargs, exc, match):
    net = make_net(seed=13)
    rng = np.random.default_rng(13)
    first = optim.Adam(net, lr=0.01)
    backprop(net, rng)
    first.step()
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        cls(net, **kwargs)
    assert_same(snapshot(net), before)
    assert net._optimizers[-1]() is first  # still the network's optimiser
    with pytest.raises(TypeError, match="net must be a connectome Network"):
        cls("net", **kwargs)


def test_lr_setter():
    net = make_net()
    opt = optim.SGD(net, lr=0.1)
    opt.lr = 0.05
    assert opt.lr == 0.05
    for bad, exc in ((0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("x", TypeError)):
        with pytest.raises(exc, match="lr"):
            opt.lr = bad
        assert opt.lr == 0.05
    # a changed lr is used by the next step (schedules)
    rule = Rule("sgd", lr=0.05)
    oracle = Oracle(net, rule)
    rng = np.random.default_rng(0)
    train_and_check(net, opt, oracle, rng, steps=1)
    opt.lr = rule.lr = 0.2
    train_and_check(net, opt, oracle, rng, steps=1)


def test_biases_and_neuron_state_follow_neurons():
    net = make_net(seed=14)
    rng = np.random.default_rng(14)
    opt = optim.SGD(net, lr=0.1, momentum=0.9, weight_decay=0.1)
    backprop(net, rng)
    opt.step()
    h = net["h"]
    buf = h._neuron_state["momentum_buffer"].copy()
    assert np.all(buf != 0)
    h.add_neurons(2)
    np.testing.assert_array_equal(h._neuron_state["momentum_buffer"], np.r_[buf, 0, 0])
    h.remove_neurons([0, 3])
    np.testing.assert_array_equal(h._neuron_state["momentum_buffer"], np.delete(np.r_[buf, 0, 0], [0, 3]))
    assert "momentum_buffer" not in net["x"]._neuron_state  # inputs have no bias to train


def test_state_dict_round_trip():
    rule = RULES["adam-wd-l1"]
    a, b = make_net(seed=15), make_net(seed=15)
    ra, rb = np.random.default_rng(15), np.random.default_rng(15)
    opt_a, opt_b = rule.make(a), rule.make(b)
    for _ in range(3):
        backprop(a, ra), opt_a.step()
        backprop(b, rb), opt_b.step()
    d = opt_b.state_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-able scalars
    assert d["type"] == "Adam" and d["step_count"] == 3 and d["total_removed"] == opt_b.total_removed
    resumed = optim.from_state_dict(b, d)  # keeps the state in the rows and populations
    assert isinstance(resumed, optim.Adam) and resumed.betas == opt_b.betas
    assert resumed.step_count == 3 and resumed.total_removed == opt_b.total_removed
    for _ in range(2):
        backprop(a, ra), opt_a.step()
        backprop(b, rb), resumed.step()
    assert_same(snapshot(a), snapshot(b))
    assert resumed.total_removed == opt_a.total_removed

    # load_state_dict: checked in full, the optimiser unchanged on error
    sgd = optim.SGD(b, lr=0.3, momentum=0.5)
    d_sgd = sgd.state_dict()
    for bad, exc in (
        ({**d_sgd, "type": "Adam"}, ValueError),
        ({**d_sgd, "lr": -1.0}, ValueError),
        ({**d_sgd, "momentum": "x"}, TypeError),
        ({k: v for k, v in d_sgd.items() if k != "momentum"}, KeyError),
        ({**d_sgd, "extra": 1}, ValueError),
        ({**d_sgd, "step_count": -1}, ValueError),
        ([], TypeError),
    ):
        with pytest.raises(exc):
            sgd.load_state_dict(bad)
        assert sgd.state_dict() == d_sgd
    with pytest.raises(ValueError, match="expected one of"):
        optim.from_state_dict(b, {**d_sgd, "type": "RMSprop"})
    sgd.load_state_dict({**d_sgd, "lr": 0.01, "step_count": 9})
    assert sgd.lr == 0.01 and sgd.step_count == 9


def test_new_optimizer_starts_from_zero_state_and_supersedes():
    net = make_net(seed=16)
    rng = np.random.default_rng(16)
    adam = optim.Adam(net, lr=0.01)
    backprop(net, rng)
    adam.step()
    p = net.projections[0]
    assert p._core.column_enabled(_core.COL_STATE1)
    sgd = optim.SGD(net, lr=0.1, momentum=0.9)
    assert not p._core.column_enabled(_core.COL_STATE1)  # freed: SGD keeps one column
    assert not np.any(p._core.get_column(_core.COL_STATE0))
    assert all(not pop._neuron_state for pop in net.populations.values())
    with pytest.raises(RuntimeError, match="superseded"):
        adam.step()
    oracle = Oracle(net, Rule("sgd", lr=0.1, momentum=0.9))
    train_and_check(net, sgd, oracle, rng, steps=2)  # torch's first step: buf = grad


def test_summary_reports_bytes_per_synapse():
    net = make_net(seed=17)
    rng = np.random.default_rng(17)
    opt = optim.Adam(net, lr=0.001)
    backprop(net, rng)
    opt.step()
    for p in net.projections:
        p._core.shrink()  # capacity == n_synapses: the expected figure is exact
    line = net.summary().splitlines()[-1]
    overhead = sum(p.nbytes - p.n_synapses * 20 for p in net.projections)  # index, w, grad, m, v
    expected = (overhead + 16 * net.n_synapses) / net.n_synapses
    tail = "B/synapse in all (index + weight + state)"
    assert line == f"optimizer: Adam(lr=0.001), state 8 B/synapse, {expected:.1f} {tail}"
    plain = optim.SGD(net, lr=0.1, l1=0.01)
    line = net.summary().splitlines()[-1]
    assert line.startswith("optimizer: SGD(lr=0.1, l1=0.01), state 0 B/synapse, ")
    del plain
    assert "optimizer:" not in net.summary()  # weak references: a dropped optimiser is not listed


def test_core_binding_checks():
    net = make_net()
    p = net.projections[0]
    with pytest.raises(ValueError, match="COL_GRAD"):
        p._core.optim_step(_core.OPTIM_SGD, 0.1, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1, 1)
    p._core.enable_column(_core.COL_GRAD)
    with pytest.raises(ValueError, match="COL_STATE0"):
        p._core.optim_step(_core.OPTIM_ADAM, 0.1, 0.0, 0.9, 0.99, 1e-8, 0.0, 0.0, 1, 1)
    with pytest.raises(ValueError, match="step must be >= 1"):
        p._core.optim_step(_core.OPTIM_ADAM, 0.1, 0.0, 0.9, 0.99, 1e-8, 0.0, 0.0, 0, 1)
    with pytest.raises(ValueError, match="kind"):
        p._core.optim_step(7, 0.1, 0.0, 0.9, 0.99, 1e-8, 0.0, 0.0, 1, 1)
    w = np.ones(3, dtype=F)
    with pytest.raises(ValueError, match="grad has 2 entries"):
        _core.optim_update(w, np.ones(2, dtype=F), None, None, _core.OPTIM_SGD, 0.1, 0, 0, 0, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="s0 is None"):
        _core.optim_update(w, np.ones(3, dtype=F), None, None, _core.OPTIM_SGD, 0.1, 0.9, 0, 0, 1, 0, 0, 1)
    np.testing.assert_array_equal(w, 1)
    assert _core.optim_n_state(_core.OPTIM_SGD, 0.1, 0.0, 0, 0, 1, 0, 0, 1) == 0
    assert _core.optim_n_state(_core.OPTIM_SGD, 0.1, 0.5, 0, 0, 1, 0, 0, 1) == 1
    assert _core.optim_n_state(_core.OPTIM_ADAM, 0.1, 0.0, 0.9, 0.99, 1e-8, 0, 0, 1) == 2
    # the L1 prox reaches exact +0 and counts it; +-0 both count
    w = np.array([0.3, -0.05, 0.01, -0.0], dtype=F)
    n = _core.optim_update(w, np.zeros(4, dtype=F), None, None, _core.OPTIM_SGD, 0.1, 0, 0, 0, 1, 0, 0.5, 1)
    assert n == 3
    np.testing.assert_array_equal(
        w, rule32(Rule("sgd", lr=0.1, l1=0.5), 1, [0.3, -0.05, 0.01, 0], 0, 0, 0, True)[0]
    )
