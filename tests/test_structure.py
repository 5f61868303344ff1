"""Structural semantics through the Python API: prune, grow, add/remove neurons, grads that
follow their synapses, and the neurogenesis rule of PLAN.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import DenseNetwork, assert_within
from strategies import build_network, from_api, network_specs, random_dy, random_inputs, seeds, to_api

import connectome as cx


def coo_dict(p, with_grad=True):
    pre, post, w = p.to_coo()
    g = p.grad()
    return {
        (int(i), int(j)): ((float(v), float(gv)) if with_grad else float(v))
        for i, j, v, gv in zip(pre, post, w, g)
    }


def two_layer(seed=0, n_in=6, n_hid=9, n_out=4, fan1=4, fan2=3, act="tanh"):
    net = cx.Network(seed=seed)
    a = net.add_population("in", n_in)
    h = net.add_population("hid", n_hid, activation=act)
    o = net.add_population("out", n_out)
    p1 = net.connect(a, h, fanout=fan1)
    p2 = net.connect(h, o, fanout=fan2)
    rng = np.random.default_rng(seed)
    for p in (p1, p2):
        p.set_weights(rng.uniform(-1, 1, p.n_synapses).astype(np.float32))
    h.bias[:] = rng.uniform(-0.5, 0.5, n_hid).astype(np.float32)
    o.bias[:] = rng.uniform(-0.5, 0.5, n_out).astype(np.float32)
    return net, (a, h, o), (p1, p2)


def give_grads(net, rng, batch=3):
    """One forward/backward so every synapse and bias has a (generically nonzero) grad."""
    ref = DenseNetwork.from_network(net)
    x = random_inputs(ref, batch, rng)
    net.forward(to_api(x, ref.inputs))
    net.backward(to_api(random_dy(ref, batch, rng), ref.outputs))


@given(seeds, st.floats(0.0, 1.0), st.data())
def test_prune_threshold_removes_exactly_small_magnitudes(seed, t, data):
    net, _pops, (p1, _p2) = two_layer(seed)
    give_grads(net, np.random.default_rng(seed))
    before = coo_dict(p1)
    # quantise so ties with the threshold occur
    if data.draw(st.booleans()):
        w = p1.to_coo()[2]
        w[::2] = np.float32(t) * np.sign(w[::2])
        p1.set_weights(w)
        before = coo_dict(p1)
    removed = p1.prune(threshold=t)
    expect = {k: v for k, v in before.items() if abs(v[0]) >= np.float32(t)}
    assert removed == len(before) - len(expect)
    assert coo_dict(p1) == expect  # survivors keep weight and accumulated grad
    assert p1.n_synapses == len(p1) == len(expect)


@given(seeds, st.floats(0.0, 1.0), st.booleans())
def test_prune_fraction_removes_floor_f_n_smallest(seed, f, ties):
    net, _pops, (p1, _p2) = two_layer(seed, fan1=5)
    give_grads(net, np.random.default_rng(seed))
    if ties:
        w = p1.to_coo()[2]
        p1.set_weights((np.round(w * 3) / 3).astype(np.float32))
    before = coo_dict(p1)
    n = len(before)
    k = math.floor(f * n)
    order = sorted(before, key=lambda key: (abs(before[key][0]), key))
    expect = {key: before[key] for key in order[k:]}
    removed = p1.prune(fraction=f)
    assert removed == k, f"prune(fraction={f}) of {n} synapses removed {removed}, expected floor(f*n)={k}"
    assert coo_dict(p1) == expect


@given(seeds, st.data())
def test_grow_adds_exactly_n_new_distinct_synapses(seed, data):
    net, _pops, (p1, _p2) = two_layer(seed)
    give_grads(net, np.random.default_rng(seed))
    before = coo_dict(p1)
    free = p1.pre.size * p1.post.size - len(before)
    n = data.draw(st.integers(0, free))
    weight = data.draw(st.sampled_from([0.0, 0.25, -1.5]))
    assert p1.grow(n, weight=weight, seed=data.draw(seeds)) == n
    after = coo_dict(p1)
    assert len(after) == len(before) + n == p1.n_synapses
    for key, v in before.items():
        assert after.pop(key) == v  # old synapses unchanged, grads included
    assert all(v == (np.float32(weight), 0.0) for v in after.values()), "new synapses: weight and zero grad"
    if free and n == free:
        assert p1.density == 1.0


def test_grow_with_init_weights_and_seed_reproducible():
    outs = []
    for _ in range(2):
        _net, _pops, (p1, _p2) = two_layer(3, fan1=2)
        before = set(coo_dict(p1, with_grad=False))
        p1.grow(10, weight=None, seed=42)
        after = coo_dict(p1, with_grad=False)
        new = {k: v for k, v in after.items() if k not in before}
        assert len(new) == 10
        bound = 1 / math.sqrt(max(1.0, 2 * 6 / 9))  # uniform init: U(+-1/sqrt(mean fan-in))
        assert all(abs(v) <= bound + 1e-6 for v in new.values())
        assert len(set(new.values())) > 1
        outs.append(after)
    assert outs[0] == outs[1]


def test_connect_init_distributions():
    net = cx.Network(seed=0)
    a = net.add_population("a", 400)
    b = net.add_population("b", 200)
    c = net.add_population("c", 300)
    d = net.add_population("d", 100)
    pu = net.connect(a, b, fanout=50)  # mean fan-in 100 -> U(-0.1, 0.1)
    w = pu.to_coo()[2]
    assert np.abs(w).max() <= 0.1 + 1e-7 and np.abs(w).max() > 0.09 and abs(w.mean()) < 0.005
    pn = net.connect(a, c, fanout=30, init="normal")  # mean fan-in 40 -> sd sqrt(2/40)
    assert abs(pn.to_coo()[2].std() - math.sqrt(2 / 40)) < 0.01
    pz = net.connect(b, d, fanout=10, init="zeros")
    assert np.all(pz.to_coo()[2] == 0)
    pc = net.connect(c, d, fanout=5, init=0.5)
    assert np.all(pc.to_coo()[2] == np.float32(0.5))
    ps = net.connect(a, d, fanout=5, init="uniform", scale=0.01)
    assert np.abs(ps.to_coo()[2]).max() <= 0.01 + 1e-7
    for p, f in ((pu, 50), (pn, 30), (pz, 10), (pc, 5), (ps, 5)):
        assert np.array_equal(p.fanout(), np.full(p.pre.size, f))
        assert p.fanin().sum() == p.n_synapses == p.pre.size * f
        assert p.density == pytest.approx(f / p.post.size)


@given(network_specs(max_populations=4, max_size=8), st.data())
def test_add_neurons_keeps_output_and_follows_rule(spec, data):
    net = build_network(spec)
    rng = np.random.default_rng(spec.seed)
    give_grads(net, rng)
    name = data.draw(st.sampled_from(spec.names))
    pop = net.populations[name]
    n_new = data.draw(st.integers(0, 4))
    ref_before = DenseNetwork.from_network(net)
    x = random_inputs(ref_before, spec.batch, rng)
    y_before = from_api(net.forward(to_api(x, ref_before.inputs)), ref_before.outputs)
    old = {id(p): (coo_dict(p), p.pre.size, p.post.size) for p in net.projections}
    old_bias = {n: (np.array(q.bias), np.array(q.bias_grad)) for n, q in net.populations.items()}
    size0 = pop.size

    pop.add_neurons(n_new)

    assert pop.size == len(pop) == size0 + n_new
    assert net.n_neurons == sum(q.size for q in net.populations.values())
    assert np.array_equal(pop.bias[:size0], old_bias[name][0])
    assert np.array_equal(pop.bias_grad[:size0], old_bias[name][1])
    assert np.all(np.asarray(pop.bias_grad)[size0:] == 0)
    for p in net.projections:
        before, n_pre0, n_post0 = old[id(p)]
        after = coo_dict(p)
        for key, v in before.items():
            assert after.pop(key) == v, "an existing synapse changed (ids, weight or grad)"
        assert all(g == 0.0 for _, g in after.values()), "new synapses must start with zero grad"
        new_pre = np.array([k[0] for k in after], dtype=np.int64)
        new_post = np.array([k[1] for k in after], dtype=np.int64)
        if p.pre is pop:
            # new presynaptic neurons: min(rule, n_post) targets each, weight 0
            assert np.all(new_pre >= n_pre0)
            counts = np.bincount(new_pre - n_pre0, minlength=n_new) if n_new else np.zeros(0)
            assert np.all(counts == min(p.fanout_rule, p.post.size))
            assert all(w == 0.0 for w, _ in after.values())
        elif p.post is pop:
            assert np.all(new_post >= n_post0)
            x_rule = p.fanout_rule * n_pre0 / n_post0
            allowed = {min(max(math.floor(x_rule + 0.5), 0), n_pre0), min(max(round(x_rule), 0), n_pre0)}
            counts = np.bincount(new_post - n_post0, minlength=n_new) if n_new else np.zeros(0)
            assert all(int(c) in allowed for c in counts), (counts, allowed)
            # incoming weights come from the projection's init: U(+-1/sqrt(mean fan-in at connect))
            fanout = next(
                f for i, j, f in spec.edges if (spec.names[i], spec.names[j]) == (p.pre.name, p.post.name)
            )
            bound = 1 / math.sqrt(max(1.0, fanout * n_pre0 / n_post0))
            assert all(abs(w) <= bound * (1 + 1e-6) for w, _ in after.values()), bound
        else:
            assert not after
    # the network function is unchanged at birth
    ref_after = DenseNetwork.from_network(net)
    x2 = dict(x)
    if name in x2:
        extra = rng.uniform(-1, 1, (spec.batch, n_new)).astype(np.float32)
        x2[name] = np.concatenate([x[name], extra], axis=1)
    y_after = from_api(net.forward(to_api(x2, ref_after.inputs)), ref_after.outputs)
    for out in ref_before.outputs:
        got = y_after[out][:, : ref_before.pops[out].size]
        assert_within(
            got, y_before[out], ref_before.forward(x).tol[out] * 2, f"output {out} after add_neurons"
        )
    # and the new structure still matches the oracle (forward and backward)
    fw = ref_after.forward(x2)
    for out in ref_after.outputs:
        assert_within(y_after[out], fw.values[out], fw.tol[out], f"forward after add_neurons ({out})")


@given(network_specs(max_populations=4, max_size=8), st.data())
def test_remove_neurons_renumbers_like_np_delete(spec, data):
    net = build_network(spec)
    rng = np.random.default_rng(spec.seed)
    give_grads(net, rng)
    candidates = [n for n in spec.names if net.populations[n].size >= 2]
    if not candidates:
        candidates = spec.names
    name = data.draw(st.sampled_from(candidates))
    pop = net.populations[name]
    k = data.draw(st.integers(0, pop.size - 1))
    idx = data.draw(st.permutations(range(pop.size)))[:k]  # any order
    dense = {}
    for p in net.projections:
        M = np.zeros((p.pre.size, p.post.size), bool)
        W = np.zeros(M.shape, np.float32)
        G = np.zeros(M.shape, np.float32)
        pre, post, w = p.to_coo()
        M[pre, post] = True
        W[pre, post] = w
        G[pre, post] = p.grad()
        dense[id(p)] = (M, W, G)
    bias, bgrad = np.array(pop.bias), np.array(pop.bias_grad)

    pop.remove_neurons(np.array(idx, dtype=np.int64))

    srt = np.sort(np.array(idx, dtype=np.int64))
    assert pop.size == len(bias) - k
    assert np.array_equal(pop.bias, np.delete(bias, srt))
    assert np.array_equal(pop.bias_grad, np.delete(bgrad, srt))
    for p in net.projections:
        M, W, G = dense[id(p)]
        axis = [a for a, q in ((0, p.pre), (1, p.post)) if q is pop]
        for ax in axis:
            M, W, G = (np.delete(A, srt, axis=ax) for A in (M, W, G))
        i, j = np.nonzero(M)
        pre, post, w = p.to_coo()
        assert np.array_equal(pre, i) and np.array_equal(post, j)
        assert np.array_equal(w, W[i, j]) and np.array_equal(p.grad(), G[i, j])
        assert np.array_equal(p.fanout(), M.sum(1)) and np.array_equal(p.fanin(), M.sum(0))
    ref = DenseNetwork.from_network(net)
    x = random_inputs(ref, spec.batch, rng)
    fw = ref.forward(x)
    y = from_api(net.forward(to_api(x, ref.inputs)), ref.outputs)
    for out in ref.outputs:
        assert_within(y[out], fw.values[out], fw.tol[out], f"forward after remove_neurons ({out})")


def _add_absent(net, pops, ps):
    p = ps[0]
    have = set(p.synapses(0)[0].tolist())
    j = min(set(range(p.post.size)) - have)
    p.add_synapses([0], [j], [0.0])


def _remove_one(net, pops, ps):
    p = ps[0]
    p.remove_synapses([0], [int(p.synapses(0)[0][0])])


def test_edits_invalidate_the_forward_cache():
    edits = [
        _add_absent,
        _remove_one,
        lambda net, pops, ps: ps[1].prune(threshold=10.0),
        lambda net, pops, ps: ps[1].prune(fraction=1.0),
        lambda net, pops, ps: ps[0].grow(1),
        lambda net, pops, ps: pops[1].add_neurons(1),
        lambda net, pops, ps: pops[1].remove_neurons([0]),
        lambda net, pops, ps: net.connect(pops[0], pops[2], fanout=1),  # new skip projection
        lambda net, pops, ps: net.connect(pops[1], net.add_population("extra", 2), fanout=1),
    ]
    for edit in edits:
        net, pops, ps = two_layer(1)
        x = np.ones((2, 6), np.float32)
        net.forward(x)
        edit(net, pops, ps)
        outs = net.outputs
        dy = {p.name: np.ones((2, p.size), np.float32) for p in outs}
        dy_api = dy if len(outs) > 1 else dy[outs[0].name]
        with pytest.raises(RuntimeError):
            net.backward(dy_api)
        # and after a new forward, backward works again
        net.forward(x)
        net.backward(dy_api)


def test_backward_before_any_forward_raises():
    net, _pops, _ps = two_layer(2)
    with pytest.raises(RuntimeError, match="forward"):
        net.backward(np.ones((2, 4), np.float32))


def test_set_weights_and_synapses_accessors():
    _net, _pops, (p1, _p2) = two_layer(4)
    pre, post, w = p1.to_coo()
    assert np.array_equal(p1.weights, w)
    new = (np.arange(len(w)) / 7).astype(np.float32)
    p1.set_weights(new)
    assert np.array_equal(p1.to_coo()[2], new)
    assert np.array_equal(p1.to_coo()[0], pre) and np.array_equal(p1.to_coo()[1], post)
    for i in range(p1.pre.size):
        targets, weights = p1.synapses(i)
        assert np.array_equal(targets, post[pre == i]) and np.array_equal(weights, new[pre == i])
    # to_coo returns copies
    c = p1.to_coo()
    c[2][:] = 99
    assert not np.any(p1.to_coo()[2] == 99)
    wv = p1.weights
    wv[:] = 99
    assert not np.any(p1.to_coo()[2] == 99)


def test_network_seed_reproducible():
    def build(seed):
        net = cx.Network(seed=seed)
        a = net.add_population("a", 30)
        b = net.add_population("b", 40, activation="relu")
        net.connect(a, b, fanout=7, init="normal")
        b.add_neurons(3)
        net.projections[0].grow(20, weight=None)
        return [v.tobytes() for v in net.projections[0].to_coo()]

    assert build(1) == build(1)
    assert build(1) != build(2)


def test_prune_threshold_extremes():
    net, _pops, (p1, p2) = two_layer(5)
    n = p1.n_synapses
    assert p1.prune(threshold=0.0) == 0 and p1.n_synapses == n
    assert p1.prune(threshold=np.inf) == n and p1.n_synapses == 0
    assert p1.to_coo()[0].shape == (0,) and np.all(p1.fanout() == 0)
    assert p2.prune(fraction=0.0) == 0
    m = p2.n_synapses
    assert p2.prune(fraction=1.0) == m and p2.n_synapses == 0
    # an empty network still runs: output = act(bias) of the output population
    x = np.ones((2, 6), np.float32)
    y = net.forward(x)
    assert np.array_equal(y, np.broadcast_to(net.populations["out"].bias, (2, 4)))
    dx = net.backward(np.ones((2, 4), np.float32))
    assert np.array_equal(dx, np.zeros((2, 6), np.float32))
    assert p1.grow(3) == 3 and p1.n_synapses == 3
