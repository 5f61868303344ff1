"""Network forward/backward against the dense float64 oracle, plus finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from reference import DenseNetwork, assert_within
from strategies import build_network, from_api, network_specs, random_dy, random_inputs, seeds, to_api

import connectome as cx


def run_and_check(net, ref: DenseNetwork, x: dict, dy: dict):
    """One forward + backward on net and ref; compare everything."""
    y = from_api(net.forward(to_api(x, ref.inputs)), ref.outputs)
    fw = ref.forward(x)
    for name in ref.outputs:
        assert y[name].dtype == np.float32
        assert_within(y[name], fw.values[name], fw.tol[name], f"forward output {name}")
    dx = from_api(net.backward(to_api(dy, ref.outputs)), ref.inputs)
    bw = ref.backward(dy)
    for name in ref.inputs:
        assert_within(dx[name], bw.dx[name], bw.dx_tol[name], f"dL/dx of input {name}")
    for name, g in bw.bias_grad.items():
        assert_within(net.populations[name].bias_grad, g, bw.bias_grad_tol[name], f"bias_grad of {name}")
    for k, p in enumerate(net.projections):
        pre, post, _ = ref.projs[k][2].to_coo()
        p_pre, p_post, _ = p.to_coo()
        assert np.array_equal(pre, p_pre) and np.array_equal(post, p_post)
        assert p.grad().dtype == np.float32
        assert_within(p.grad(), bw.grad[k], bw.grad_tol[k], f"grad of {p.pre.name}->{p.post.name}")
    return y, dx, fw, bw


@given(network_specs())
def test_forward_backward_match_dense_oracle(spec):
    net = build_network(spec)
    ref = DenseNetwork.from_network(net)
    assert sorted(p.name for p in net.inputs) == sorted(ref.inputs)
    assert sorted(p.name for p in net.outputs) == sorted(ref.outputs)
    rng = np.random.default_rng(spec.seed)
    run_and_check(net, ref, random_inputs(ref, spec.batch, rng), random_dy(ref, spec.batch, rng))


@settings(max_examples=25)
@given(network_specs(max_populations=4, max_size=40, max_batch=16))
def test_forward_backward_match_dense_oracle_larger(spec):
    net = build_network(spec, weight_scale=0.5)
    ref = DenseNetwork.from_network(net)
    rng = np.random.default_rng(spec.seed)
    run_and_check(net, ref, random_inputs(ref, spec.batch, rng), random_dy(ref, spec.batch, rng))


def _chain(seed=0, sizes=(5, 7, 3), acts=("linear", "tanh", "sigmoid"), fanouts=(4, 2)):
    net = cx.Network(seed=seed)
    pops = [net.add_population(f"l{k}", n, activation=a) for k, (n, a) in enumerate(zip(sizes, acts))]
    for k, f in enumerate(fanouts):
        net.connect(pops[k], pops[k + 1], fanout=f)
    rng = np.random.default_rng(seed)
    for p in net.projections:
        p.set_weights(rng.uniform(-1, 1, p.n_synapses).astype(np.float32))
    for pop in pops[1:]:
        pop.bias[:] = rng.uniform(-0.5, 0.5, pop.size).astype(np.float32)
    return net, pops


def test_grads_accumulate_until_zero_grad():
    net, pops = _chain()
    ref = DenseNetwork.from_network(net)
    rng = np.random.default_rng(1)
    x = {"l0": rng.uniform(-1, 1, (4, 5)).astype(np.float32)}
    dy = {"l2": rng.normal(size=(4, 3)).astype(np.float32)}
    run_and_check(net, ref, x, dy)
    g1 = [p.grad().copy() for p in net.projections]
    b1 = [pop.bias_grad.copy() for pop in pops[1:]]
    net.backward(dy["l2"])  # second backward on the same forward: grads add up
    bw = ref.backward(dy)
    for k, p in enumerate(net.projections):
        assert_within(p.grad(), 2 * bw.grad[k], 2 * bw.grad_tol[k], "accumulated grad")
        assert np.any(g1[k] != 0) == np.any(p.grad() != 0)
    for pop, b in zip(pops[1:], b1):
        assert_within(
            pop.bias_grad, 2 * bw.bias_grad[pop.name], 2 * bw.bias_grad_tol[pop.name], "accumulated bias_grad"
        )
        assert np.any(b != 0)
    net.zero_grad()
    for p in net.projections:
        assert np.array_equal(p.grad(), np.zeros(p.n_synapses, np.float32))
    for pop in pops:
        assert np.array_equal(np.asarray(pop.bias_grad), np.zeros(pop.size, np.float32))


def test_input_dtypes_and_one_dimensional_inputs():
    net, _pops = _chain()
    rng = np.random.default_rng(2)
    x32 = rng.uniform(-1, 1, (3, 5)).astype(np.float32)
    y32 = net.forward(x32)
    assert y32.shape == (3, 3) and y32.dtype == np.float32
    # any real dtype: the same values in float64 / Fortran order / int give the float32 answer
    assert np.array_equal(net.forward(x32.astype(np.float64)), y32)
    assert np.array_equal(net.forward(np.asfortranarray(x32)), y32)
    xi = rng.integers(-3, 4, (3, 5))
    assert np.array_equal(net.forward(xi), net.forward(xi.astype(np.float32)))
    # 1-D sample -> 1-D output, equal to the batched row
    y1 = net.forward(x32[1])
    assert y1.shape == (3,)
    assert np.array_equal(y1, y32[1]) or np.allclose(y1, y32[1], rtol=1e-6, atol=1e-7)
    dx1 = net.backward(np.ones(3, np.float32))
    assert dx1.shape == (5,)
    # empty batch
    y0 = net.forward(np.zeros((0, 5), np.float32))
    assert y0.shape == (0, 3) and y0.dtype == np.float32
    dx0 = net.backward(np.zeros((0, 3), np.float32))
    assert dx0.shape == (0, 5)


def test_input_not_modified_and_output_not_aliased():
    net, _pops = _chain()
    x = np.random.default_rng(3).uniform(-1, 1, (2, 5)).astype(np.float32)
    x_copy = x.copy()
    y = net.forward(x)
    assert np.array_equal(x, x_copy)
    y_copy = y.copy()
    y[:] = 123.0  # the caller owns the returned array: scribbling on it changes nothing inside
    dy = np.ones((2, 3), np.float32)
    dx = net.backward(dy)
    net2, _ = _chain()
    net2.forward(x)
    assert np.array_equal(dx, net2.backward(dy))
    assert np.array_equal(net.forward(x), y_copy)


def test_input_population_bias_and_activation_are_ignored():
    net = cx.Network(seed=0)
    a = net.add_population("a", 3, activation="relu")
    b = net.add_population("b", 2)
    net.connect(a, b, fanout=2)
    a.bias[:] = 100.0
    x = -np.ones((1, 3), np.float32)
    ref = DenseNetwork.from_network(net)
    fw = ref.forward({"a": x})
    assert_within(net.forward(x), fw.values["b"], fw.tol["b"], "forward")


def test_several_inputs_and_outputs_use_dicts():
    net = cx.Network(seed=5)
    a = net.add_population("a", 3)
    b = net.add_population("b", 4)
    h = net.add_population("h", 5, activation="tanh")
    o1 = net.add_population("o1", 2)
    o2 = net.add_population("o2", 3, activation="sigmoid")
    net.connect(a, h, fanout=3)
    net.connect(b, h, fanout=2)
    net.connect(h, o1, fanout=2)
    net.connect(h, o2, fanout=3)
    net.connect(a, o2, fanout=1)  # skip connection
    assert {p.name for p in net.inputs} == {"a", "b"}
    assert {p.name for p in net.outputs} == {"o1", "o2"}
    assert net.n_neurons == 3 + 4 + 5 + 2 + 3
    assert (
        net.n_synapses == sum(p.n_synapses for p in net.projections) == 3 * 3 + 4 * 2 + 5 * 2 + 5 * 3 + 3 * 1
    )
    ref = DenseNetwork.from_network(net)
    rng = np.random.default_rng(0)
    run_and_check(net, ref, random_inputs(ref, 4, rng), random_dy(ref, 4, rng))
    assert isinstance(net.summary(), str) and "h" in net.summary()


# ------------------------------------------------------- finite differences
def _loss(net, x, r):
    y = from_api(net.forward(x), sorted(r))
    return float(sum(np.dot(y[n].astype(np.float64).ravel(), r[n].ravel()) for n in r))


def _loss_with_bound(net, x: dict, r: dict):
    """L = sum(y * r) from the engine, and a rigorous bound on its float32 rounding error
    (the oracle's per-output tolerance, weighted by |r|)."""
    ref = DenseNetwork.from_network(net)
    y = from_api(net.forward(to_api(x, ref.inputs)), ref.outputs)
    tol = ref.forward(x).tol
    L = sum(float(np.sum(y[n].astype(np.float64) * r[n])) for n in r)
    bound = sum(float(np.sum(tol[n] * np.abs(r[n]))) for n in r)
    return L, bound


def _unit(rng, shapes):
    v = [rng.normal(size=s) for s in shapes]
    norm = math.sqrt(sum(float(np.sum(a * a)) for a in v)) or 1.0
    return [a / norm for a in v]


@settings(max_examples=30)
@given(network_specs(max_populations=4, max_size=8, max_batch=3, smooth=True), seeds)
def test_directional_derivatives_match_central_differences(spec, seed):
    """L = sum(y * r).  For a random unit direction v in weight / bias / input space, the
    engine's gradient . v must equal (L(theta + eps v) - L(theta - eps v)) / 2 eps, with the
    forwards in float32 and the comparison in float64.  Tolerance: the oracle's bound on the
    float32 rounding of both losses, divided by 2 eps, plus the O(eps^2) truncation of smooth
    activations (tanh, sigmoid, linear).  eps = 1e-2 balances the two."""
    net = build_network(spec, weight_scale=0.7)
    ref = DenseNetwork.from_network(net)
    rng = np.random.default_rng(seed)
    x = random_inputs(ref, spec.batch, rng)
    r = {n: rng.normal(size=(spec.batch, ref.pops[n].size)) for n in ref.outputs}
    net.forward(to_api(x, ref.inputs))
    dx = from_api(
        net.backward(to_api({n: r[n].astype(np.float32) for n in ref.outputs}, ref.outputs)), ref.inputs
    )
    grads = [p.grad().astype(np.float64) for p in net.projections]
    hidden = [n for n in ref.pops if n not in ref.inputs]
    bgrads = {n: np.asarray(net.populations[n].bias_grad, np.float64) for n in hidden}
    scale = sum(float(np.abs(r[n]).sum()) for n in ref.outputs)
    eps = 1e-2

    def check(analytic, plus, minus, what):
        (lp, bp), (lm, bm) = plus, minus
        numeric = (lp - lm) / (2 * eps)
        tol = (bp + bm) / (2 * eps) + 3 * eps**2 * scale + 1e-3 * abs(analytic) + 1e-7
        assert abs(numeric - analytic) <= tol, f"{what}: numeric {numeric} vs analytic {analytic} (tol {tol})"

    # weights of every projection at once
    w0 = [p.to_coo()[2].copy() for p in net.projections]
    vs = _unit(rng, [w.shape for w in w0])
    res = []
    for sgn in (1, -1):
        for p, w, v in zip(net.projections, w0, vs):
            p.set_weights((w + sgn * eps * v).astype(np.float32))
        res.append(_loss_with_bound(net, x, r))
    for p, w in zip(net.projections, w0):
        p.set_weights(w)
    # the step actually taken is the float32-rounded one
    steps = [
        ((w + eps * v).astype(np.float32).astype(np.float64) - (w - eps * v).astype(np.float32)) / (2 * eps)
        for w, v in zip(w0, vs)
    ]
    check(sum(float(g @ s) for g, s in zip(grads, steps)), res[0], res[1], "weights")

    # biases of the non-input populations
    b0 = {n: np.array(net.populations[n].bias, copy=True) for n in hidden}
    vb = dict(zip(hidden, _unit(rng, [b0[n].shape for n in hidden])))
    res = []
    for sgn in (1, -1):
        for n in hidden:
            net.populations[n].bias[:] = (b0[n] + sgn * eps * vb[n]).astype(np.float32)
        res.append(_loss_with_bound(net, x, r))
    for n in hidden:
        net.populations[n].bias[:] = b0[n]
    steps_b = {
        n: (
            (b0[n] + eps * vb[n]).astype(np.float32).astype(np.float64)
            - (b0[n] - eps * vb[n]).astype(np.float32)
        )
        / (2 * eps)
        for n in hidden
    }
    check(sum(float(bgrads[n] @ steps_b[n]) for n in hidden), res[0], res[1], "biases")

    # inputs
    vx = dict(zip(ref.inputs, _unit(rng, [x[n].shape for n in ref.inputs])))
    xp = {n: (x[n] + eps * vx[n]).astype(np.float32) for n in ref.inputs}
    xm = {n: (x[n] - eps * vx[n]).astype(np.float32) for n in ref.inputs}
    steps_x = {n: (xp[n].astype(np.float64) - xm[n]) / (2 * eps) for n in ref.inputs}
    check(
        sum(float(np.sum(dx[n] * steps_x[n])) for n in ref.inputs),
        _loss_with_bound(net, xp, r),
        _loss_with_bound(net, xm, r),
        "inputs",
    )


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "linear"])
def test_single_weight_finite_differences(act):
    """Per-synapse central differences on a small chain (every synapse checked)."""
    net, _pops = _chain(seed=4, sizes=(3, 4, 2), acts=("linear", act, act), fanouts=(3, 2))
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    r = {"l2": rng.normal(size=(2, 2))}
    net.forward(x)
    net.backward(r["l2"].astype(np.float32))
    eps = 1e-2
    for p in net.projections:
        g = p.grad().astype(np.float64)
        w = p.to_coo()[2].copy()
        for s in range(p.n_synapses):
            wp, wm = w.copy(), w.copy()
            wp[s] += np.float32(eps)
            wm[s] -= np.float32(eps)
            p.set_weights(wp)
            lp = _loss(net, x, r)
            p.set_weights(wm)
            lm = _loss(net, x, r)
            p.set_weights(w)
            numeric = (lp - lm) / (float(wp[s]) - float(wm[s]))
            assert abs(numeric - g[s]) <= 2e-3 * (1 + abs(g[s])), (p.pre.name, s, numeric, g[s])


@pytest.mark.parametrize("batch", [1, 9, 130])
def test_large_network_matches_dense_oracle(batch):
    """Sizes where the kernels tile targets and split work across threads."""
    net = cx.Network(seed=11)
    a = net.add_population("a", 1500)
    b = net.add_population("b", 300)
    h = net.add_population("h", 3000, activation="relu")
    o = net.add_population("o", 700, activation="sigmoid")
    net.connect(a, h, fanout=120)
    net.connect(b, h, fanout=40, init="normal")
    net.connect(h, o, fanout=30)
    net.connect(a, o, fanout=5)
    rng = np.random.default_rng(batch)
    h.bias[:] = rng.uniform(-0.1, 0.1, h.size).astype(np.float32)
    o.bias[:] = rng.uniform(-0.1, 0.1, o.size).astype(np.float32)
    ref = DenseNetwork.from_network(net)
    run_and_check(net, ref, random_inputs(ref, batch, rng), random_dy(ref, batch, rng))


def test_isolated_population_is_both_input_and_output():
    net = cx.Network(seed=0)
    a = net.add_population("a", 3)
    b = net.add_population("b", 2, activation="tanh")
    net.add_population("c", 2, activation="relu")  # no projections: input and output
    net.connect(a, b, fanout=2)
    ref = DenseNetwork.from_network(net)
    assert sorted(ref.inputs) == ["a", "c"] and sorted(ref.outputs) == ["b", "c"]
    rng = np.random.default_rng(0)
    x = random_inputs(ref, 3, rng)
    x["c"] = -np.abs(x["c"])  # given as is: relu is not applied to an input
    y, _, _, _ = run_and_check(net, ref, x, random_dy(ref, 3, rng))
    assert np.array_equal(y["c"], x["c"])
