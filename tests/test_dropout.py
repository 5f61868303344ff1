"""Dropout per population: train/eval modes, mask statistics, exact gradients with the cached masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from reference import activate, activation_slope, assert_same_snapshot, snapshot
from strategies import build_network, from_api, network_specs, to_api

import connectome as cx


# ------------------------------------------------------------- a masked oracle
def _dense(p) -> np.ndarray:
    pre, post, w = p.to_coo()
    W = np.zeros((p.pre.size, p.post.size))
    W[pre, post] = w
    return W


def oracle(net, x: dict, masks: dict, dy: dict) -> dict:
    """Forward and backward in float64 with the given (B, N) scaled masks (name -> mask).

    Returns fed (what each population passes on), dx, bias_grad, deltas (dL/dz) and
    grad (per projection, in to_coo order).
    """
    order = net._topological_order()
    Ws = {p: _dense(p) for p in net.projections}
    pre_act: dict[str, np.ndarray] = {}
    fed: dict[str, np.ndarray] = {}
    for pop in order:
        if pop.is_input:
            a = np.asarray(x[pop.name], dtype=np.float64)
        else:
            z = sum(fed[p.pre.name] @ Ws[p] for p in pop.incoming) + pop.bias.astype(np.float64)
            a = activate(pop.activation, z)
        pre_act[pop.name] = a
        fed[pop.name] = a * masks[pop.name] if pop.name in masks else a
    d_fed = {pop.name: np.zeros_like(fed[pop.name]) for pop in order}
    for name, g in dy.items():
        d_fed[name] += g
    dx, bias_grad, deltas, grad = {}, {}, {}, {}
    for pop in reversed(order):
        da = d_fed[pop.name] * masks[pop.name] if pop.name in masks else d_fed[pop.name]
        if pop.is_input:
            dx[pop.name] = da
            continue
        dz = da * activation_slope(pop.activation, pre_act[pop.name])
        deltas[pop.name] = dz
        bias_grad[pop.name] = dz.sum(axis=0)
        for p in pop.incoming:
            pre, post, _ = p.to_coo()
            grad[p] = (fed[p.pre.name].T @ dz)[pre, post]
            d_fed[p.pre.name] += dz @ Ws[p].T
    return {"fed": fed, "dx": dx, "bias_grad": bias_grad, "deltas": deltas, "grad": grad}


def close(actual, expected, what):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=what)


def _chain(seed=0, dropouts=(0.2, 0.3, 0.5, 0.0), acts=("linear", "tanh", "sigmoid", "linear")):
    """in(6) -> h1(9) -> h2(8) -> out(4), plus a skip in -> h2."""
    net = cx.Network(seed=seed)
    sizes = (6, 9, 8, 4)
    names = ("in", "h1", "h2", "out")
    for name, n, a, p in zip(names, sizes, acts, dropouts):
        net.add_population(name, n, activation=a, dropout=p)
    net.connect("in", "h1", fanout=5)
    net.connect("h1", "h2", fanout=4)
    net.connect("h2", "out", fanout=3)
    net.connect("in", "h2", fanout=3)
    rng = np.random.default_rng(seed + 1)
    for p in net.projections:
        p.set_weights(rng.uniform(-1, 1, p.n_synapses))
    for pop in net.populations.values():
        pop.bias = rng.uniform(-0.5, 0.5, pop.size)
    return net


# ------------------------------------------------------------------ modes
def test_training_mode_defaults_and_switches():
    net = cx.Network(seed=0)
    assert net.training is True
    assert net.eval() is net and net.training is False
    assert net.train() is net and net.training is True
    assert net.train(False) is net and net.training is False
    net.training = True
    assert net.training is True
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="mode must be a bool"):
            net.train(bad)
    assert net.training is True


def test_dropout_argument_and_property_are_checked():
    net = cx.Network(seed=0)
    pop = net.add_population("a", 3, dropout=0.25)
    assert pop.dropout == 0.25
    assert net.add_population("b", 3).dropout == 0.0
    for bad in (1.0, -0.1, float("nan"), 2):
        with pytest.raises(ValueError, match="dropout"):
            net.add_population("c", 3, dropout=bad)
        with pytest.raises(ValueError, match="dropout"):
            pop.dropout = bad
    for bad in ("0.5", None, True):
        with pytest.raises(TypeError, match="dropout"):
            net.add_population("c", 3, dropout=bad)
        with pytest.raises(TypeError, match="dropout"):
            pop.dropout = bad
    assert "c" not in net and list(net.populations) == ["a", "b"]
    assert pop.dropout == 0.25
    assert "dropout=0.25" in repr(pop) and "dropout" not in repr(net["b"])
    net.connect("a", "b", fanout=2)
    rows = {line.split()[0]: line for line in net.summary().splitlines()[3:5]}
    assert "dropout 0.25" in rows["a"] and "dropout" not in rows["b"]
    pop.dropout = 0
    assert pop.dropout == 0.0 and isinstance(pop.dropout, float)


def test_eval_mode_is_identity_and_draws_nothing():
    net = _chain()
    x = np.random.default_rng(3).uniform(-1, 1, (5, 6)).astype(np.float32)
    plain = _chain(dropouts=(0.0, 0.0, 0.0, 0.0))
    y_plain = plain.forward(x)
    net.eval()
    state = net._rng.bit_generator.state
    y = net.forward(x)
    assert np.array_equal(y, y_plain)
    assert net._rng.bit_generator.state == state, "eval mode drew random numbers"
    assert net._cache.masks == {} and net._cache.pre_dropout == {}
    dy = np.ones_like(y)
    assert np.array_equal(net.backward(dy), plain.backward(dy))
    for p, q in zip(net.projections, plain.projections):
        assert np.array_equal(p.grad(), q.grad())


def test_training_mode_masks_have_the_rate_and_scale():
    p = 0.3
    net = cx.Network(seed=7)
    net.add_population("in", 300, dropout=p)
    net.add_population("hid", 200, activation="relu", dropout=p)
    net.connect("in", "hid", fanout=20, init=0.05)
    x = np.ones((64, 300), dtype=np.float32)
    y = net.forward(x)
    cache = net._cache
    scale = np.float32(1.0 / (1.0 - p))
    for pop in net.populations.values():
        m = cache.masks[pop]
        assert m.shape == (pop.size, 64) and m.dtype == np.float32
        assert set(np.unique(m)) <= {np.float32(0.0), scale}
        rate = float(np.mean(m == 0))
        n = m.size
        assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / n), f"{pop.name}: dropped {rate:.4f}, expected {p}"
        assert np.array_equal(cache.acts[pop], cache.pre_dropout[pop] * m)
    inp = net["in"]
    assert np.array_equal(cache.pre_dropout[inp], x.T)
    # the output returned is what the output population fed forward: dropped and scaled
    assert np.array_equal(y, cache.acts[net["hid"]].T)
    # masks differ between populations and between calls
    net.forward(x)
    assert not np.array_equal(net._cache.masks[inp], cache.masks[inp])


def test_same_seed_same_masks_other_seed_other_masks():
    x = np.random.default_rng(0).uniform(-1, 1, (8, 6)).astype(np.float32)
    a, b, c = _chain(seed=5), _chain(seed=5), _chain(seed=5)
    c._rng = np.random.default_rng(6)
    ya, yb, yc = a.forward(x), b.forward(x), c.forward(x)
    assert np.array_equal(ya, yb)
    for pop_a, pop_b in zip(a._cache.masks, b._cache.masks):
        assert np.array_equal(a._cache.masks[pop_a], b._cache.masks[pop_b])
    assert not np.array_equal(ya, yc)


@pytest.mark.parametrize(
    "acts", [("linear", "tanh", "sigmoid", "linear"), ("linear", "relu", "tanh", "sigmoid")]
)
def test_gradients_match_the_masked_oracle(acts):
    net = _chain(seed=11, dropouts=(0.2, 0.3, 0.5, 0.25), acts=acts)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (7, 6)).astype(np.float32)
    dy = rng.normal(size=(7, 4)).astype(np.float32)
    y = net.forward(x)
    cache = net._cache
    masks = {pop.name: m.T.astype(np.float64) for pop, m in cache.masks.items()}
    assert set(masks) == {"in", "h1", "h2", "out"}
    dx = net.backward(dy)
    ref = oracle(net, {"in": x}, masks, {"out": dy})
    close(y, ref["fed"]["out"], "forward output")
    close(dx, ref["dx"]["in"], "dL/dx")
    for pop in net.populations.values():
        close(cache.acts[pop].T, ref["fed"][pop.name], f"acts[{pop.name}] (fed forward)")
        if pop.is_input:
            assert pop not in cache.deltas
            continue
        d = cache.deltas[pop]
        assert d.shape == (pop.size, 7) and d.dtype == np.float32
        close(d.T, ref["deltas"][pop.name], f"deltas[{pop.name}]")
        close(pop.bias_grad, ref["bias_grad"][pop.name], f"bias_grad of {pop.name}")
    for p in net.projections:
        close(p.grad(), ref["grad"][p], f"grad of {p.pre.name}->{p.post.name}")


@given(network_specs(max_populations=4, max_size=10, max_batch=5))
def test_gradients_match_the_masked_oracle_on_random_dags(spec):
    net = build_network(spec, weight_scale=0.7)
    rng = np.random.default_rng(spec.seed)
    for pop in net.populations.values():
        pop.dropout = float(rng.choice([0.0, 0.2, 0.6]))
    inputs = [p.name for p in net.inputs]
    outputs = [p.name for p in net.outputs]
    x = {n: rng.uniform(-1, 1, (spec.batch, net[n].size)).astype(np.float32) for n in inputs}
    dy = {n: rng.normal(size=(spec.batch, net[n].size)).astype(np.float32) for n in outputs}
    y = from_api(net.forward(to_api(x, inputs)), outputs)
    masks = {pop.name: m.T.astype(np.float64) for pop, m in net._cache.masks.items()}
    assert set(masks) == {p.name for p in net.populations.values() if p.dropout > 0}
    dx = from_api(net.backward(to_api(dy, outputs)), inputs)
    ref = oracle(net, x, masks, dy)
    for n in outputs:
        close(y[n], ref["fed"][n], f"output {n}")
    for n in inputs:
        close(dx[n], ref["dx"][n], f"dL/dx of {n}")
    for pop in net.populations.values():
        if not pop.is_input:
            close(net._cache.deltas[pop].T, ref["deltas"][pop.name], f"deltas[{pop.name}]")
            close(pop.bias_grad, ref["bias_grad"][pop.name], f"bias_grad of {pop.name}")
    for p in net.projections:
        close(p.grad(), ref["grad"][p], f"grad of {p.pre.name}->{p.post.name}")


def test_finite_differences_with_a_fixed_mask():
    """Re-seeding the generator before each forward repeats the masks: L(w) is then smooth."""
    net = _chain(seed=4, dropouts=(0.2, 0.3, 0.4, 0.0), acts=("linear", "tanh", "sigmoid", "linear"))
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (5, 6)).astype(np.float32)
    r = rng.normal(size=(5, 4))
    state = net._rng.bit_generator.state

    def loss() -> float:
        net._rng.bit_generator.state = state
        return float((net.forward(x).astype(np.float64) * r).sum())

    loss()
    net.zero_grad()
    net.backward(r.astype(np.float32))
    eps = 1e-2
    checked = 0
    for p in net.projections:
        g = p.grad()
        w0 = p.weights
        for k in range(0, p.n_synapses, 3):
            w = w0.copy()
            w[k] = w0[k] + eps
            p.set_weights(w)
            up = loss()
            w[k] = w0[k] - eps
            p.set_weights(w)
            down = loss()
            p.set_weights(w0)
            fd = (up - down) / (2 * eps)
            assert abs(fd - g[k]) <= 2e-3 * max(1.0, abs(fd)), f"{p.pre.name}->{p.post.name}[{k}]"
            checked += 1
    for pop in net.populations.values():
        if pop.is_input:
            continue
        g = pop.bias_grad.copy()
        b0 = pop.bias.copy()
        for k in range(pop.size):
            pop.bias[k] = b0[k] + eps
            up = loss()
            pop.bias[k] = b0[k] - eps
            down = loss()
            pop.bias[:] = b0
            assert abs((up - down) / (2 * eps) - g[k]) <= 2e-3 * max(1.0, abs(g[k])), f"bias {pop.name}[{k}]"
    assert checked > 10


def test_one_and_two_threads_agree_bitwise(threads):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (16, 6)).astype(np.float32)
    dy = rng.normal(size=(16, 4)).astype(np.float32)
    results = []
    for n_threads in (1, 2):
        threads.set_num_threads(n_threads)
        net = _chain(seed=3, dropouts=(0.2, 0.3, 0.5, 0.1))
        y = net.forward(x)
        dx = net.backward(dy)
        masks = [m.copy() for m in net._cache.masks.values()]
        grads = [p.grad() for p in net.projections] + [
            pop.bias_grad.copy() for pop in net.populations.values()
        ]
        deltas = [d.copy() for d in net._cache.deltas.values()]
        results.append((y, dx, masks, grads, deltas))
    (y1, dx1, m1, g1, d1), (y2, dx2, m2, g2, d2) = results
    assert np.array_equal(y1, y2) and np.array_equal(dx1, dx2)
    for a, b in zip(m1 + g1 + d1, m2 + g2 + d2):
        assert np.array_equal(a, b)


def test_deltas_without_dropout_are_dl_dz():
    net = _chain(seed=2, dropouts=(0.0, 0.0, 0.0, 0.0))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6)).astype(np.float32)
    dy = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    net.forward(x)
    net.backward(dy)
    ref = oracle(net, {"in": x}, {}, {"out": dy})
    assert {p.name for p in net._cache.deltas} == {"h1", "h2", "out"}
    for pop, d in net._cache.deltas.items():
        close(d.T, ref["deltas"][pop.name], f"deltas[{pop.name}]")
    # with no dropout, acts holds the activation itself, and nothing extra is cached
    assert net._cache.masks == {} and net._cache.pre_dropout == {}


def test_changing_dropout_after_forward_keeps_backward_consistent():
    net = _chain(seed=8)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 6)).astype(np.float32)
    dy = np.ones((4, 4), dtype=np.float32)
    net.forward(x)
    masks = {pop.name: m.T.astype(np.float64) for pop, m in net._cache.masks.items()}
    for pop in net.populations.values():
        pop.dropout = 0.0
    net.eval()
    dx = net.backward(dy)
    close(dx, oracle(net, {"in": x}, masks, {"out": dy})["dx"]["in"], "dL/dx with the cached masks")


def test_bad_dropout_leaves_the_network_unchanged():
    net = _chain(seed=1)
    before = snapshot(net)
    pop = net["h1"]
    with pytest.raises(ValueError, match=r"dropout=1\.0 is out of range"):
        pop.dropout = 1.0
    with pytest.raises(ValueError, match="dropout"):
        net.add_population("extra", 2, dropout=-1)
    assert pop.dropout == 0.3 and "extra" not in net
    assert_same_snapshot(before, snapshot(net))
