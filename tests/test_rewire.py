"""Projection.rewire: SET's drop-and-regrow in one pass, checked against prune(fraction) on a twin
network and against a dict model of the synapses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import DenseNetwork, assert_same_snapshot, assert_within, snapshot
from strategies import random_dy, random_inputs, to_api

import connectome as cx


def coo(p):
    pre, post, w = p.to_coo()
    g = p.grad()
    return {(int(i), int(j)): (float(v), float(gv)) for i, j, v, gv in zip(pre, post, w, g)}


def build(seed, n_pre=30, n_post=40, fanout=12, ties=False):
    net = cx.Network(seed=seed)
    a = net.add_population("a", n_pre)
    b = net.add_population("b", n_post, activation="tanh")
    p = net.connect(a, b, fanout=fanout)
    if ties:  # quantised weights: many |w| ties around any cut
        w = p.weights
        p.set_weights(np.round(w * 4) / 4)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, n_pre)).astype(np.float32)
    net.forward(x)
    net.backward(rng.standard_normal((3, n_post)).astype(np.float32))  # nonzero grads to follow
    return net, p


@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.booleans(), st.sampled_from([None, 0.0, 0.25]))
def test_rewire_drops_what_prune_drops_and_regrows_absent_slots(seed, fraction, ties, weight):
    _net, p = build(seed, ties=ties)
    _twin, q = build(seed, ties=ties)
    before = coo(p)
    n = p.n_synapses
    k = p.rewire(fraction, weight=weight, seed=seed)
    assert k == math.floor(fraction * n)
    assert p.n_synapses == n
    assert q.prune(fraction=fraction) == k
    survivors = coo(q)  # exactly prune(fraction)'s survivors, grads included
    after = coo(p)
    for key, val in survivors.items():
        assert after[key] == val
    new = set(after) - set(survivors)
    assert len(new) == k
    assert not (new & set(before)), "a regrown synapse must have been absent before the call"
    for key in new:
        w, g = after[key]
        assert g == 0.0
        if weight is not None:
            assert w == np.float32(weight)
    pre, post, _ = p.to_coo()
    assert np.all(np.diff(pre.astype(np.int64) * 1000 + post) > 0), "rows sorted, no duplicates"


def test_rewire_uses_the_projection_init_and_keeps_forward_exact():
    net, p = build(5, n_pre=60, n_post=80, fanout=20)
    p.rewire(0.3, seed=11)
    _pre, _post, w = p.to_coo()
    bound = 1.0 / math.sqrt(20 * 60 / 80)  # the default init: U(+-1/sqrt(mean fan-in))
    assert np.all(np.abs(w) <= bound * (1 + 1e-6))  # new weights drawn from the projection's init
    assert np.unique(w).size > p.n_synapses // 2  # drawn, not constant
    ref = DenseNetwork.from_network(net)
    rng = np.random.default_rng(0)
    x = random_inputs(ref, 4, rng)
    y = net.forward(to_api(x, ref.inputs))
    fw = ref.forward(x)
    (out,) = ref.outputs
    assert_within(y, fw.values[out], fw.tol[out], "forward after rewire")
    dy = random_dy(ref, 4, rng)
    net.zero_grad()
    net.backward(to_api(dy, ref.outputs))
    bw = ref.backward(dy)
    assert_within(p.grad(), bw.grad[0], bw.grad_tol[0], "synapse grads after rewire")


def test_rewire_draws_normal_init_weights_with_its_moments():
    """init="normal": the regrown weights are N(0, s^2) (mean, std, tails of 1.5e5 draws)."""
    net = cx.Network(seed=2)
    p = net.connect(net.add_population("a", 500), net.add_population("b", 1000), fanout=300, init="normal")
    s = math.sqrt(2.0 / (300 * 500 / 1000))  # He: sqrt(2 / mean fan-in)
    p.set_weights(np.full(p.n_synapses, 10.0 * s, dtype=np.float32))  # old ones stand out
    k = p.rewire(1.0, seed=5)
    w = p.to_coo()[2].astype(np.float64)
    assert k == w.size == 150_000 and np.all(np.abs(w) < 7 * s)  # every synapse new
    assert abs(w.mean()) < 4 * s / math.sqrt(k)
    assert abs(w.std() / s - 1.0) < 0.01
    assert abs(np.mean(np.abs(w) > 2 * s) - 0.0455) < 0.003  # two-sided tail beyond 2 sigma


@pytest.mark.parametrize("init", ["uniform", "normal"])
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_rewire_is_bitwise_independent_of_threads(fraction, init):
    # 3e5 synapses: above the size under which rewire runs on one thread
    results = []
    for n_threads in (1, 2):
        old = cx.set_num_threads(n_threads)
        try:
            net = cx.Network(seed=3)
            a = net.add_population("a", 600)
            b = net.add_population("b", 1000)
            p = net.connect(a, b, fanout=500, init=init)
            p.rewire(fraction, seed=123)
            results.append(p.to_coo())
        finally:
            cx.set_num_threads(old)
    for u, v in zip(*results):
        assert np.array_equal(u, v)


def test_rewire_spreads_new_synapses_over_rows_and_columns():
    net = cx.Network(seed=0)
    a = net.add_population("a", 200)
    b = net.add_population("b", 200)
    p = net.connect(a, b, fanout=20, init="zeros")
    p.set_weights(np.ones(p.n_synapses, dtype=np.float32))
    k = p.rewire(0.5, weight=0.0, seed=9)  # weight 0 marks the new synapses
    pre, post, w = p.to_coo()
    new_pre, new_post = pre[w == 0.0], post[w == 0.0]
    assert new_pre.size == k
    # 2000 new synapses over 200 rows/columns: every quarter gets its share (+-20%)
    for ids in (new_pre, new_post):
        counts = np.bincount(ids // 50, minlength=4)
        assert np.all(np.abs(counts - k / 4) < 0.2 * k / 4), counts


def chi_square(counts, expected):
    return float(np.sum((counts - expected) ** 2 / expected))


def test_rewire_draws_new_slots_uniformly_from_the_absent_ones():
    """Rows with few free slots get few new synapses: over many calls the new
    synapses per row follow each row's share of the absent slots, and within a
    row they spread evenly over its free columns (chi-square, fixed seeds, bounds
    at p ~ 1e-5, so a skewed sampler fails and a correct one passes)."""
    degree = np.array([60, 48, 32, 16, 8, 4, 0, 63, 20, 40])  # present synapses per row
    n_post, reps = 64, 120
    free = n_post - degree
    per_row = np.zeros(degree.size)
    empty_row = np.zeros(n_post)  # row 6 starts empty: every column free
    for r in range(reps):
        net = cx.Network(seed=r)
        p = net.connect(net.add_population("a", degree.size), net.add_population("b", n_post), fanout=0)
        rng = np.random.default_rng(r)
        pre = np.repeat(np.arange(degree.size), degree)
        post = np.concatenate([rng.choice(n_post, d, replace=False) for d in degree])
        p.add_synapses(pre, post, 1.0 + rng.random(pre.size))  # weight 0 marks the new ones below
        before = set(zip(pre.tolist(), post.tolist()))
        p.rewire(0.3, weight=0.0, seed=r)
        P, Q, W = p.to_coo()
        new = W == 0.0
        assert not before & set(zip(P[new].tolist(), Q[new].tolist()))  # only slots absent before
        per_row += np.bincount(P[new], minlength=degree.size)
        empty_row += np.bincount(Q[new & (P == 6)], minlength=n_post)
    assert chi_square(per_row, per_row.sum() * free / free.sum()) < 40.0  # 9 dof
    assert chi_square(empty_row, np.full(n_post, empty_row.sum() / n_post)) < 120.0  # 63 dof


def test_rewire_errors_leave_the_network_unchanged():
    net, p = build(1, n_pre=4, n_post=5, fanout=4)  # 16 of 20 slots used: 4 free
    before = snapshot(net)
    for bad, exc in [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError), ("x", TypeError)]:
        with pytest.raises(exc, match="fraction"):
            p.rewire(bad)
        assert_same_snapshot(before, snapshot(net))
    with pytest.raises(ValueError, match="free"):
        p.rewire(0.5)  # 8 to regrow, 4 free
    assert_same_snapshot(before, snapshot(net))
    with pytest.raises(ValueError, match="weight"):
        p.rewire(0.1, weight=float("inf"))
    assert_same_snapshot(before, snapshot(net))
    assert p.rewire(0.25, seed=0) == 4 and p.n_synapses == 16
