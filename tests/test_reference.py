"""The oracle itself must be right before it can judge the engine (float64, no connectome)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from reference import DenseNetwork, DenseReference, activate, activation_slope
from strategies import coo_BS, seeds


@given(coo_BS(max_pre=8, max_post=8), st.integers(1, 4), seeds)
def test_dense_reference_backward_is_the_adjoint(coo, batch, seed):
    n_pre, n_post, pre, post, w = coo
    ref = DenseReference(n_pre, n_post, pre, post, w)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n_pre))
    dout = rng.normal(size=(batch, n_post))
    dx, gW = ref.backward(x, dout)
    # <dout, f(x)> is bilinear: its derivatives are exact adjoints
    y = ref.forward(x)
    assert np.allclose(np.sum(dx * x), np.sum(dout * y))
    # gradient only on existing synapses, equal to sum_b x[b, i] dout[b, j]
    expect = np.zeros((n_pre, n_post))
    for i, j in zip(pre, post):
        expect[i, j] = np.dot(x[:, i], dout[:, j])
    assert np.allclose(gW, expect)
    assert np.all(gW[~ref.mask] == 0)
    p2, q2, w2 = ref.to_coo()
    order = np.lexsort((post, pre))
    assert np.array_equal(p2, pre[order]) and np.array_equal(q2, post[order])
    assert np.array_equal(w2, w[order])


def test_dense_network_matches_hand_composition():
    rng = np.random.default_rng(0)
    net = DenseNetwork()
    net.add_population("a", 3)
    net.add_population("b", 4, "tanh", rng.normal(size=4))
    net.add_population("c", 2, "sigmoid", rng.normal(size=2))
    W1 = rng.normal(size=(3, 4)) * (rng.random((3, 4)) < 0.7)
    W2 = rng.normal(size=(4, 2)) * (rng.random((4, 2)) < 0.7)
    W3 = rng.normal(size=(3, 2))
    for pre, post, W in (("a", "b", W1), ("b", "c", W2), ("a", "c", W3)):
        i, j = np.nonzero(W)
        net.connect(pre, post, DenseReference(*W.shape, i, j, W[i, j]))
    assert net.inputs == ["a"] and net.outputs == ["c"]
    x = rng.normal(size=(5, 3))
    out = net.forward({"a": x}).values
    hb = np.tanh(x @ W1 + net.pops["b"].bias)
    hc = 1 / (1 + np.exp(-(hb @ W2 + x @ W3 + net.pops["c"].bias)))
    assert np.allclose(out["c"], hc)


def _loss(net, x, r):
    return float(np.sum(net.forward(x).values[net.outputs[0]] * r))


def test_dense_network_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    net = DenseNetwork()
    net.add_population("x", 4)
    net.add_population("h", 5, "tanh", rng.normal(size=5))
    net.add_population("y", 3, "sigmoid", rng.normal(size=3))
    for pre, post in (("x", "h"), ("h", "y"), ("x", "y")):
        n, m = net.pops[pre].size, net.pops[post].size
        i, j = np.nonzero(rng.random((n, m)) < 0.6)
        net.connect(pre, post, DenseReference(n, m, i, j, rng.normal(size=len(i))))
    x = {"x": rng.normal(size=(3, 4))}
    r = rng.normal(size=(3, 3))
    net.forward(x)
    g = net.backward({"y": r})
    eps = 1e-6
    for k, (_, _, ref) in enumerate(net.projs):
        pre, post = np.nonzero(ref.mask)
        for s in range(len(pre)):
            old = ref.W[pre[s], post[s]]
            ref.W[pre[s], post[s]] = old + eps
            lp = _loss(net, x, r)
            ref.W[pre[s], post[s]] = old - eps
            lm = _loss(net, x, r)
            ref.W[pre[s], post[s]] = old
            assert abs((lp - lm) / (2 * eps) - g.grad[k][s]) < 1e-6
    for name in ("h", "y"):
        for i in range(net.pops[name].size):
            net.pops[name].bias[i] += eps
            lp = _loss(net, x, r)
            net.pops[name].bias[i] -= 2 * eps
            lm = _loss(net, x, r)
            net.pops[name].bias[i] += eps
            assert abs((lp - lm) / (2 * eps) - g.bias_grad[name][i]) < 1e-6
    xx = x["x"]
    for b in range(3):
        for i in range(4):
            xx[b, i] += eps
            lp = _loss(net, x, r)
            xx[b, i] -= 2 * eps
            lm = _loss(net, x, r)
            xx[b, i] += eps
            assert abs((lp - lm) / (2 * eps) - g.dx["x"][b, i]) < 1e-6


def test_activation_slopes_match_derivatives():
    z = np.linspace(-4, 4, 81) + 0.013
    eps = 1e-6
    for name in ("linear", "relu", "tanh", "sigmoid"):
        numeric = (activate(name, z + eps) - activate(name, z - eps)) / (2 * eps)
        assert np.allclose(activation_slope(name, activate(name, z)), numeric, atol=1e-6), name
