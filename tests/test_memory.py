"""Bytes per synapse: the adjacency lists store (int32 target, float32 weight) plus bounded slack."""

from __future__ import annotations

import numpy as np
import pytest

import connectome as cx
from connectome import _core


@pytest.mark.parametrize(
    "n_pre, n_post, fanout",
    [(1000, 1000, 100), (5000, 20000, 64), (20000, 500, 50), (300, 100_000, 1000)],
)
def test_fresh_projection_uses_at_most_10_bytes_per_synapse(n_pre, n_post, fanout):
    net = cx.Network(seed=0)
    a = net.add_population("a", n_pre)
    b = net.add_population("b", n_post)
    p = net.connect(a, b, fanout=fanout)
    assert p.n_synapses == n_pre * fanout
    bps = p.nbytes / p.n_synapses
    assert 8 <= bps <= 10, f"{bps:.2f} bytes per synapse"


def test_nbytes_counts_the_heap_honestly():
    """nbytes grows with enabled columns (grad adds ~4 B/synapse) and with synapses."""
    cp = _core.CoreProjection(2000, 3000)
    cp.fill_random(50, _core.INIT_UNIFORM, -1.0, 1.0, 0, 2)
    base = cp.nbytes
    assert base >= 8 * cp.n_synapses
    cp.enable_column(_core.COL_GRAD)
    assert cp.nbytes >= base + 4 * cp.n_synapses
    cp.disable_column(_core.COL_GRAD)
    assert cp.nbytes == base


def test_bytes_per_synapse_after_churn_and_shrink():
    cp = _core.CoreProjection(3000, 3000)
    cp.fill_random(60, _core.INIT_UNIFORM, -1.0, 1.0, 1, 2)
    n0 = cp.n_synapses
    for k in range(5):  # SET-style churn: drop 20%, regrow as many
        removed = cp.prune_count(n0 // 5, 2)
        cp.grow(removed, _core.INIT_UNIFORM, -1.0, 1.0, 100 + k, 2)
    assert cp.n_synapses == n0
    assert cp.nbytes / cp.n_synapses <= 10.5, cp.nbytes / cp.n_synapses  # PLAN: <= ~9 B/synapse + directory
    cp.shrink()
    assert cp.n_synapses == n0
    assert cp.nbytes / cp.n_synapses <= 10.0


def test_network_nbytes_is_sum_of_projections():
    net = cx.Network(seed=0)
    a = net.add_population("a", 500)
    b = net.add_population("b", 400)
    c = net.add_population("c", 300)
    net.connect(a, b, fanout=20)
    net.connect(b, c, fanout=30)
    total = sum(p.nbytes for p in net.projections)
    assert net.nbytes >= total
    assert net.n_synapses == 500 * 20 + 400 * 30
    assert np.isclose(net.projections[0].density, 20 / 400)


def test_network_shrink_releases_training_state_and_keeps_the_function():
    """After training with L1 (synapses removed) and Adam (two state columns), shrink gives 8 B/synapse back."""
    from connectome.optim import Adam

    rng = np.random.default_rng(0)
    net = cx.Network(seed=0)
    a = net.add_population("a", 40)
    h = net.add_population("h", 60, activation="relu")
    o = net.add_population("o", 5)
    net.connect(a, h, fanout=30)
    net.connect(h, o, fanout=5)
    opt = Adam(net, lr=0.05, l1=0.05)
    x = rng.standard_normal((16, 40))
    for _ in range(5):
        opt.zero_grad()
        net.forward(x)
        net.backward(rng.standard_normal((16, 5)))
        opt.step()
    assert opt.total_removed > 0 and all(p._core.column_enabled(_core.COL_STATE1) for p in net.projections)
    y = net.forward(x)
    coo = [p.to_coo() for p in net.projections]
    with_state = net.nbytes
    with pytest.raises(TypeError, match="training_state must be a bool"):
        net.shrink(training_state=1)
    assert net.nbytes == with_state
    freed = net.shrink(training_state=True)
    assert freed == with_state - net.nbytes > 0
    for p, (pre, post, w) in zip(net.projections, coo):  # as small as the same synapses built afresh
        twin = _core.CoreProjection(p.pre.size, p.post.size)
        twin.add(pre, post, w)
        twin.shrink()
        assert p.nbytes == twin.nbytes < 8 * p.n_synapses + 64 * p.pre.size
    for p, before in zip(net.projections, coo):
        assert not any(
            p._core.column_enabled(c) for c in (_core.COL_GRAD, _core.COL_STATE0, _core.COL_STATE1)
        )
        assert all(np.array_equal(u, v) for u, v in zip(p.to_coo(), before))
        assert np.all(p.grad() == 0)
    assert np.array_equal(net.forward(x), y)
    assert all(pop._neuron_state == {} for pop in net.populations.values())
    # a later step starts from zero state, as a new optimiser would, and training goes on
    opt.zero_grad()
    net.forward(x)
    net.backward(rng.standard_normal((16, 5)))
    opt.step()
    assert all(p._core.column_enabled(_core.COL_STATE1) for p in net.projections)
    assert net.shrink() >= 0  # slack only: keeps the state columns
    assert all(p._core.column_enabled(_core.COL_STATE1) for p in net.projections)
