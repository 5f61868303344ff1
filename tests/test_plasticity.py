"""cx.plasticity: SET, RigL, Neurogenesis and RemoveDead against numpy models of what they must do,
driven by hand and by a tiny local training loop (no fit())."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import DenseNetwork

import connectome as cx
from connectome.plasticity import (
    SET,
    Changes,
    Neurogenesis,
    RemoveDead,
    RigL,
    Rule,
    gradient_top_k,
    remove_dead_neurons,
)


# ---------------------------------------------------------------------- helpers
def coo_dict(p):
    pre, post, w = p.to_coo()
    return {(int(i), int(j)): float(v) for i, j, v in zip(pre, post, w)}


def keys_of(p):
    pre, post, _ = p.to_coo()
    return pre.astype(np.int64) * p.post.size + post


def mse(pred, y):
    """Sum of squares / 2 over the batch mean, and its gradient (pred - y) / B."""
    d = (np.asarray(pred, dtype=np.float64) - y) / len(y)
    return float(0.5 * np.sum(d * (np.asarray(pred) - y))), d.astype(np.float32)


def mlp(seed=0, sizes=(12, 20, 6), fanouts=(5, 3), activation="tanh"):
    net = cx.Network(seed=seed)
    pops = [net.add_population("in", sizes[0])]
    for i, n in enumerate(sizes[1:-1]):
        pops.append(net.add_population(f"h{i}", n, activation=activation))
    pops.append(net.add_population("out", sizes[-1]))
    for a, b, f in zip(pops, pops[1:], fanouts):
        net.connect(a, b, fanout=f)
    return net


def batch_for(net, seed=0, b=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, net["in"].size)).astype(np.float32)
    y = rng.standard_normal((b, net["out"].size)).astype(np.float32)
    return x, y


def sgd_step(net, batch, lr=0.05):
    """A plain gradient step (no optimiser module): returns the loss."""
    x, y = batch
    net.zero_grad()
    loss, g = mse(net.forward(x), y)
    net.backward(g)
    for p in net.projections:
        p.set_weights(p.weights - lr * p.grad())
    for pop in net.populations.values():
        if not pop.is_input:
            pop.bias = pop.bias - lr * pop.bias_grad
    return loss


# ---------------------------------------------------------------------- Changes
def test_changes_add_and_type():
    c = Changes(1, 2, 3, 4) + Changes(10, 20, 30, 40)
    assert c == Changes(pruned=11, grown=22, neurons_added=33, neurons_removed=44)
    with pytest.raises(TypeError):
        Changes() + 1


# ------------------------------------------------------------------------- SET
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_set_drops_exactly_the_smallest_and_keeps_counts(seed, fraction):
    net = mlp(seed % 1000, sizes=(15, 25, 7), fanouts=(6, 4))
    before = {(p.pre.name, p.post.name): coo_dict(p) for p in net.projections}
    counts = [p.n_synapses for p in net.projections]
    ch = SET(fraction).apply(net)
    k_total = 0
    for p, n in zip(net.projections, counts):
        assert p.n_synapses == n
        old = before[(p.pre.name, p.post.name)]
        # numpy model of the drop: stable argsort of |w| in (pre, post) order
        items = sorted(old.items())
        k = math.floor(fraction * n)
        order = np.argsort(np.abs(np.array([v for _, v in items], dtype=np.float32)), kind="stable")
        dropped = {items[i][0] for i in order[:k]}
        after = coo_dict(p)
        fused = k <= p.pre.size * p.post.size - n  # else the prune + grow fallback may regrow a slot
        for key, v in old.items():
            if key not in dropped:
                assert after[key] == v, "survivors keep their weights"
            elif fused:
                assert key not in after, "a dropped synapse is not regrown by the same call"
        new = {key for key in after if key not in old or key in dropped}
        assert len(new) == k
        bound = 1.0 / math.sqrt(max(p.fanout_rule * p.pre.size / p.post.size, 1.0))
        assert all(abs(after[key]) <= bound * (1 + 1e-6) for key in new)
        k_total += k
    assert ch == Changes(pruned=k_total, grown=k_total)


def test_set_is_deterministic_given_the_seed_and_skips_full_projections():
    nets = []
    for _ in range(2):
        net = mlp(3, sizes=(10, 12, 4), fanouts=(5, 4))  # h0 -> out is fully connected
        SET(0.5).apply(net)
        SET(0.5).apply(net)
        nets.append(net)
    for p, q in zip(*(n.projections for n in nets)):
        assert coo_dict(p) == coo_dict(q)
    full = nets[0].projections[1]
    assert full.density == 1.0
    fresh = mlp(3, sizes=(10, 12, 4), fanouts=(5, 4))
    assert coo_dict(full) == coo_dict(fresh.projections[1]), "a fully connected projection is left alone"
    other = mlp(4, sizes=(10, 12, 4), fanouts=(5, 4))
    SET(0.5).apply(other)
    assert coo_dict(other.projections[0]) != coo_dict(nets[0].projections[0])


def test_set_schedule_skips_the_end_of_the_run():
    net = mlp(6)
    by_epoch, by_step = SET(0.3), SET(0.3, every=2)
    by_epoch.bind(net, None, epochs=3, steps_per_epoch=2)
    by_step.bind(net, None, epochs=3, steps_per_epoch=2)
    fired = []
    for epoch in (1, 2, 3):
        for step in (2 * epoch - 1, 2 * epoch):
            if by_step.on_step(net, None, step=step, epoch=epoch).pruned:
                fired.append(("step", step))
            assert by_epoch.on_step(net, None, step=step, epoch=epoch) == Changes()
        if by_epoch.on_epoch(net, None, epoch=epoch, logs={"loss": 1.0}).pruned:
            fired.append(("epoch", epoch))
        assert by_step.on_epoch(net, None, epoch=epoch, logs={"loss": 1.0}) == Changes()
    assert fired == [("step", 2), ("epoch", 1), ("step", 4), ("epoch", 2)]
    assert by_epoch.apply(net).pruned > 0


def test_set_selected_projections_and_dense_fallback():
    net = mlp(1, sizes=(10, 12, 6), fanouts=(11, 3))  # in -> h0 at 11/12 density: fewer free slots than k
    p_in, p_out = net.projections
    before_out = coo_dict(p_out)
    n = p_in.n_synapses
    ch = SET(0.5, projections=[("in", "h0")]).apply(net)
    k = math.floor(0.5 * n)
    assert k > p_in.pre.size * p_in.post.size - n
    assert ch == Changes(k, k) and p_in.n_synapses == n
    assert coo_dict(p_out) == before_out
    ch = SET(0.25, projections=[p_out]).apply(net)
    assert ch.pruned == math.floor(0.25 * p_out.n_synapses) and p_out.n_synapses == len(before_out)


def test_set_argument_errors():
    with pytest.raises(ValueError, match="fraction=1.5"):
        SET(1.5)
    with pytest.raises(TypeError, match="fraction"):
        SET("0.3")
    with pytest.raises(ValueError, match="every=0"):
        SET(every=0)
    with pytest.raises(ValueError, match="every='step'"):
        SET(every="step")
    with pytest.raises(TypeError, match="every"):
        SET(every=2.5)
    with pytest.raises(TypeError, match=r"projections\[0\]"):
        SET(projections=[("in",)])
    with pytest.raises(TypeError, match="projections"):
        SET(projections="in")
    net = mlp()
    with pytest.raises(ValueError, match=r"projections\[0\]=\('in', 'out'\)"):
        SET(projections=[("in", "out")]).apply(net)
    with pytest.raises(ValueError, match="nope"):
        SET(projections=[("in", "nope")]).apply(net)
    with pytest.raises(ValueError, match="not a projection of this network"):
        SET(projections=[mlp(1).projections[0]]).apply(net)
    with pytest.raises(TypeError, match="net"):
        SET().apply("net")


# ------------------------------------------------------------- gradient top-k
def dense_top_k(A, D, excl_pre, excl_post, k):
    """Oracle: the whole |A @ D.T| (float64, rounded to float32), excluded masked, sorted."""
    S = np.abs(A.astype(np.float64) @ D.astype(np.float64).T).astype(np.float32)
    S[excl_pre, excl_post] = -np.inf
    flat = S.ravel()
    idx = np.arange(flat.size)
    order = np.lexsort((idx, -flat))[:k]
    n_post = D.shape[0]
    return order // n_post, order % n_post, flat[order]


@st.composite
def topk_cases(draw):
    n_pre = draw(st.integers(1, 9))
    n_post = draw(st.integers(1, 9))
    b = draw(st.integers(1, 4))
    # Small quantised values: every sum is exact, so ties are real and frequent.
    vals = st.integers(-2, 2).map(lambda v: v * 0.5)
    A = np.array(draw(st.lists(vals, min_size=n_pre * b, max_size=n_pre * b)), dtype=np.float32)
    D = np.array(draw(st.lists(vals, min_size=n_post * b, max_size=n_post * b)), dtype=np.float32)
    mask = np.array(draw(st.lists(st.booleans(), min_size=n_pre * n_post, max_size=n_pre * n_post)))
    excl = np.flatnonzero(mask)
    k = draw(st.integers(0, n_pre * n_post - excl.size))
    return A.reshape(n_pre, b), D.reshape(n_post, b), excl // n_post, excl % n_post, k


@given(topk_cases(), st.integers(1, 10))
def test_gradient_top_k_matches_the_dense_oracle_for_any_block(case, block):
    A, D, ep, eq, k = case
    want = dense_top_k(A, D, ep, eq, k)
    for rows in (1, block, A.shape[0], None):
        pre, post, score = gradient_top_k(A, D, ep, eq, k, rows)
        assert pre.dtype == np.int32 and post.dtype == np.int32
        np.testing.assert_array_equal(pre, want[0])
        np.testing.assert_array_equal(post, want[1])
        np.testing.assert_array_equal(score, want[2])
        keys = pre.astype(np.int64) * D.shape[0] + post
        assert np.unique(keys).size == k
        assert not np.isin(keys, ep * D.shape[0] + eq).any()


def test_gradient_top_k_random_floats_block_independent():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((57, 16)).astype(np.float32)
    D = rng.standard_normal((43, 16)).astype(np.float32)
    excl = np.sort(rng.choice(57 * 43, 500, replace=False))
    ep, eq = excl // 43, excl % 43
    want = dense_top_k(A, D, ep, eq, 300)
    for rows in (1, 5, 16, 57, None):
        pre, post, _ = gradient_top_k(A, D, ep, eq, 300, rows)
        np.testing.assert_array_equal(pre, want[0])
        np.testing.assert_array_equal(post, want[1])
    with pytest.raises(ValueError, match="k="):
        gradient_top_k(A, D, ep, eq, 57 * 43 - 499)


# ------------------------------------------------------------------------ RigL
def quantised_net(seed):
    """in(10) -> out(8) linear, weights and inputs in multiples of 1/4: every float is exact."""
    net = cx.Network(seed=seed)
    net.add_population("in", 10)
    net.add_population("out", 8)
    p = net.connect("in", "out", fanout=3)
    rng = np.random.default_rng(seed)
    p.set_weights(rng.integers(-4, 5, p.n_synapses) / 4)
    x = (rng.integers(-3, 4, (6, 10)) / 2).astype(np.float32)
    y = (rng.integers(-3, 4, (6, 8)) / 2).astype(np.float32)
    return net, p, (x, y)


def half_sq(pred, y):
    """0.5 * sum (pred - y)^2: gradient pred - y, exact for quantised values."""
    d = np.asarray(pred, dtype=np.float32) - y
    return float(0.5 * np.sum(d * d)), d


@given(st.integers(0, 2**32 - 1), st.sampled_from([0.1, 0.34, 0.5, 1.0]), st.sampled_from([1, 3, None]))
def test_rigl_grows_where_the_dense_gradient_is_largest(seed, fraction, block):
    net, p, (x, y) = quantised_net(seed % 10_000)
    pre, post, w = p.to_coo()
    keys = pre.astype(np.int64) * 8 + post
    n = keys.size
    k = math.floor(fraction * n)
    # numpy model: drop the k smallest |w| (stable: (pre, post) order) ...
    drop = np.argsort(np.abs(w), kind="stable")[:k]
    dropped = set(keys[drop].tolist())
    kept = np.setdiff1d(keys, keys[drop])
    # ... and grow the k largest |X.T @ (pred - y)| among everything not kept.
    W = np.zeros((10, 8))
    W[pre, post] = w
    G = np.abs(x.astype(np.float64).T @ (x @ W - y))
    G.ravel()[kept] = -np.inf
    flat = G.ravel()
    grow = np.lexsort((np.arange(flat.size), -flat))[:k]
    ch = RigL(fraction, schedule="constant", block_rows=block).apply(net, batch=(x, y), loss_fn=half_sq)
    after = coo_dict(p)
    assert p.n_synapses == n
    after_keys = {i * 8 + j for i, j in after}
    assert after_keys == set(kept.tolist()) | set(grow.tolist())
    regrown = set(grow.tolist()) & dropped
    for key in after_keys:
        i, j = divmod(key, 8)
        if key in regrown:
            assert after[(i, j)] == W[i, j], "a dropped synapse chosen again keeps its weight"
        elif key in set(grow.tolist()):
            assert after[(i, j)] == 0.0, "new synapses start at 0"
        else:
            assert after[(i, j)] == W[i, j]
    assert ch == Changes(pruned=k - len(regrown), grown=k - len(regrown))
    k2 = keys_of(p)
    assert np.all(np.diff(k2) > 0), "no duplicates"


def test_rigl_hidden_layer_against_the_float64_oracle_and_restores_grads():
    net = mlp(5, sizes=(12, 30, 5), fanouts=(6, 3), activation="relu")
    x, y = batch_for(net, 1, b=16)
    net.forward(x)
    net.backward(np.ones((16, 5), dtype=np.float32))
    grads = [p.grad() for p in net.projections]
    bias_grads = {n: pop.bias_grad.copy() for n, pop in net.populations.items()}
    ref = DenseNetwork.from_network(net)
    fw = ref.forward({"in": x.astype(np.float64)})
    # deltas: dL/dz of h0 and out for loss mse (float64)
    d_out = (fw.values["out"] - y) / len(y)
    W2 = ref.projs[1][2].W
    d_h = (d_out @ W2.T) * (fw.values["h0"] > 0)
    p_in = net.projections[0]
    old = {tuple(k): v for k, v in coo_dict(p_in).items()}
    old_p2 = coo_dict(net.projections[1])
    n = p_in.n_synapses
    k = math.floor(0.2 * n)
    ch = RigL(0.2, schedule="constant", projections=[p_in]).apply(net, batch=(x, y), loss_fn=mse)
    assert p_in.n_synapses == n and ch.pruned == ch.grown
    # only p_in changed; what was kept keeps its gradient, new synapses have 0
    assert coo_dict(net.projections[1]) == old_p2
    np.testing.assert_array_equal(net.projections[1].grad(), grads[1])
    for name, pop in net.populations.items():
        np.testing.assert_array_equal(pop.bias_grad, bias_grads[name])
    g_after = dict(zip(coo_dict(p_in), p_in.grad()))
    g_before = dict(zip(old, grads[0]))
    for key, g in g_after.items():
        assert g == (g_before[key] if key in old else 0.0)
    # growth: the chosen set's float64 scores dominate the unchosen candidates' (up to rounding)
    S = np.abs(x.astype(np.float64).T @ d_h)
    w_old = np.array(list(old.values()), dtype=np.float32)
    keys_old = list(old)
    dropped = {keys_old[i] for i in np.argsort(np.abs(w_old), kind="stable")[:k]}
    kept = set(old) - dropped
    cand = [(i, j) for i in range(12) for j in range(30) if (i, j) not in kept]
    grown = [key for key in coo_dict(p_in) if key not in kept]
    assert len(grown) == k
    chosen = {key: S[key] for key in grown}
    rest = [S[key] for key in cand if key not in chosen]
    tol = 1e-5 * S.max()
    assert min(chosen.values()) >= max(rest) - tol


def test_rigl_block_size_does_not_change_the_result():
    results = []
    for block in (1, 4, 10**6):
        net = mlp(9, sizes=(14, 22, 6), fanouts=(5, 4))
        batch = batch_for(net, 2)
        for step in range(1, 7):
            sgd_step(net, batch)
            RigL(0.3, every=2, schedule="constant", block_rows=block).on_step(
                net, None, step=step, epoch=1, batch=batch, loss_fn=mse
            )
        results.append([coo_dict(p) for p in net.projections])
    assert results[0] == results[1] == results[2]


def test_rigl_schedule():
    rule = RigL(0.4, every=3, schedule="cosine", end=0.5)
    net = mlp(2, sizes=(10, 16, 4), fanouts=(4, 2))
    rule.bind(net, None, epochs=4, steps_per_epoch=10)  # T_end = 20
    assert rule.end_step == 20
    for t in (0, 3, 10, 19):
        assert rule.fraction_at(t) == pytest.approx(0.2 * (1 + math.cos(math.pi * t / 20)))
    assert rule.fraction_at(20) == 0.0 and rule.fraction_at(39) == 0.0
    batch = batch_for(net, 3)
    fired = []
    for step in range(1, 41):
        sgd_step(net, batch)
        n0 = [p.n_synapses for p in net.projections]
        ch = rule.on_step(net, None, step=step, epoch=(step - 1) // 10 + 1, batch=batch, loss_fn=mse)
        assert [p.n_synapses for p in net.projections] == n0
        expect = sum(math.floor(rule.fraction_at(step) * n) for n in n0) if step % 3 == 0 else 0
        if ch.pruned:
            fired.append(step)
        assert ch.pruned <= expect  # equal unless dropped synapses were chosen again
        if step % 3 or step >= 20:
            assert ch == Changes()
        assert rule.on_epoch(net, None, epoch=1, logs={"loss": 1.0}) == Changes()  # every is steps
    assert fired and set(fired) <= {3, 6, 9, 12, 15, 18}
    const = RigL(0.3, every=5, schedule="constant")
    assert const.fraction_at(10**6) == 0.3  # no bind: a constant schedule never ends
    with pytest.raises(RuntimeError, match="bind"):
        RigL(0.3).fraction_at(5)
    with pytest.raises(RuntimeError, match="bind"):
        RigL(0.3, every=2).on_step(net, None, step=2, epoch=1, batch=batch, loss_fn=mse)


def test_rigl_on_epoch_and_argument_errors():
    net = mlp(4)
    batch = batch_for(net)
    rule = RigL(0.3, every="epoch", schedule="constant")
    rule.bind(net, None, epochs=3, steps_per_epoch=5)
    n0 = net.n_synapses
    ch = rule.on_epoch(net, None, epoch=1, logs={"loss": 1.0}, batch=batch, loss_fn=mse)
    assert ch.pruned > 0 and net.n_synapses == n0
    assert rule.on_epoch(net, None, epoch=3, logs={}, batch=batch, loss_fn=mse) == Changes()  # 15 >= T_end
    assert rule.on_step(net, None, step=5, epoch=1, batch=batch, loss_fn=mse) == Changes()
    with pytest.raises(ValueError, match="batch"):
        RigL(0.3).apply(net)
    with pytest.raises(TypeError, match="batch"):
        RigL(0.3).apply(net, batch=np.zeros((2, 12)), loss_fn=mse)
    with pytest.raises(TypeError, match="loss_fn"):
        RigL(0.3).apply(net, batch=batch, loss_fn="mse")
    with pytest.raises(ValueError, match="schedule='linear'"):
        RigL(schedule="linear")
    with pytest.raises(ValueError, match="end=0"):
        RigL(end=0)
    with pytest.raises(ValueError, match="fraction=-0.1"):
        RigL(-0.1)
    with pytest.raises(ValueError, match="block_rows=0"):
        RigL(block_rows=0)
    with pytest.raises(ValueError, match="epochs=0"):
        RigL().bind(net, epochs=0, steps_per_epoch=3)
    snap = [coo_dict(p) for p in net.projections]
    with pytest.raises(ValueError, match="dy"):  # a loss with the wrong shape: nothing changes
        RigL(0.3).apply(net, batch=batch, loss_fn=lambda p, y: (0.0, np.zeros((3, 3))))
    assert [coo_dict(p) for p in net.projections] == snap


def test_rigl_failure_puts_the_synapses_back(monkeypatch):
    net = mlp(8, sizes=(10, 16, 6), fanouts=(4, 3))
    batch = batch_for(net, 8)
    before = [coo_dict(p) for p in net.projections]

    p1 = net.projections[1]
    real_add = p1.add_synapses
    calls = []

    def fail_once(*args, **kwargs):  # the growth fails; the rollback's re-add works
        calls.append(args)
        if len(calls) == 1:
            raise MemoryError("test: no memory for new synapses")
        real_add(*args, **kwargs)

    monkeypatch.setattr(p1, "add_synapses", fail_once)
    with pytest.raises(MemoryError, match="test"):
        RigL(0.5, schedule="constant").apply(net, batch=batch, loss_fn=mse)
    assert [coo_dict(p) for p in net.projections] == before
    assert len(calls) == 2


# ---------------------------------------------------------------- Neurogenesis
def test_neurogenesis_fires_on_plateau_only():
    net = mlp(0)
    rule = Neurogenesis("h0", n=4, patience=2, min_delta=0.01)
    rule.bind(net, None, epochs=10, steps_per_epoch=1)
    sizes = []
    # 1.0 best; 0.995 (< min_delta better) wait 1; 0.99 wait 2 -> birth; 0.5 improves;
    # 0.6 wait 1; 0.55 wait 2 -> birth; 0.4 improves.
    for epoch, loss in enumerate([1.0, 0.995, 0.99, 0.5, 0.6, 0.55, 0.4], start=1):
        n0 = net.n_synapses
        ch = rule.on_epoch(net, None, epoch=epoch, logs={"loss": loss})
        sizes.append(net["h0"].size)
        assert ch.neurons_added in (0, 4) and ch.grown == net.n_synapses - n0
    assert sizes == [20, 20, 24, 24, 24, 28, 28]
    assert [b[:2] for b in rule.births] == [(3, 4), (6, 4)]
    # val_loss takes precedence over loss: improving val_loss, flat loss -> no birth
    rule2 = Neurogenesis("h0", n=1, patience=1)
    for epoch in range(1, 6):
        assert (
            rule2.on_epoch(net, None, epoch=epoch, logs={"loss": 1.0, "val_loss": 1.0 / epoch}) == Changes()
        )
    # an explicit monitor; steps never fire a plateau rule
    rule3 = Neurogenesis("h0", n=1, patience=1, monitor="loss")
    rule3.on_epoch(net, None, epoch=1, logs={"loss": 1.0, "val_loss": 1.0})
    assert rule3.on_epoch(net, None, epoch=2, logs={"loss": 1.0, "val_loss": 0.5}).neurons_added == 1
    assert rule3.on_step(net, None, step=1, epoch=1) == Changes()
    # relative threshold: 2% better is progress, 0.5% is a plateau
    rule4 = Neurogenesis("h0", n=2, patience=1, min_delta=0.01, threshold_mode="rel")
    got = [
        rule4.on_epoch(net, None, epoch=e, logs={"loss": v}).neurons_added
        for e, v in enumerate([2.0, 1.96, 1.95], 1)
    ]
    assert got == [0, 0, 2]


def test_neurogenesis_max_size_schedule_mode_and_unchanged_output():
    net = mlp(1, sizes=(12, 20, 6), fanouts=(5, 3))
    x, _ = batch_for(net, 4)
    rule = Neurogenesis(net["h0"], n=8, every=2, patience=None, max_size=30)
    y0 = net.forward(x)
    sizes = []
    for step in range(1, 9):
        ch = rule.on_step(net, None, step=step, epoch=1)
        sizes.append(net["h0"].size)
        np.testing.assert_array_equal(net.forward(x), y0)  # outgoing weights start at 0
        assert ch.neurons_added == sizes[-1] - (sizes[-2] if len(sizes) > 1 else 20)
    assert sizes == [20, 28, 28, 30, 30, 30, 30, 30]
    p_out = net.projections[1]
    pre, _, w = p_out.to_coo()
    assert np.all(w[pre >= 20] == 0.0) and np.any(pre >= 20)
    assert net.projections[0].fanin()[20:].min() > 0, "newborn neurons get a fan-in"
    assert rule.apply(net) == Changes()  # at the cap
    # after a few training steps the newborns learn: the output changes
    batch = batch_for(net, 4)
    for _ in range(3):
        sgd_step(net, batch)
    assert np.any(p_out.weights[p_out.to_coo()[0] >= 20] != 0.0)


def test_neurogenesis_errors():
    net = mlp()
    with pytest.raises(ValueError, match="every=5 with patience=3"):
        Neurogenesis("h0", every=5)
    with pytest.raises(ValueError, match="n=0"):
        Neurogenesis("h0", n=0)
    with pytest.raises(ValueError, match="min_delta=-1"):
        Neurogenesis("h0", min_delta=-1)
    with pytest.raises(ValueError, match="patience=0"):
        Neurogenesis("h0", patience=0)
    with pytest.raises(TypeError, match="population"):
        Neurogenesis(3)
    with pytest.raises(ValueError, match="threshold_mode='max'"):
        Neurogenesis("h0", threshold_mode="max")
    with pytest.raises(ValueError, match="min_delta=1.0 with threshold_mode='rel'"):
        Neurogenesis("h0", min_delta=1.0, threshold_mode="rel")
    with pytest.raises(ValueError, match="population='out' is an output"):
        Neurogenesis("out").apply(net)
    with pytest.raises(ValueError, match="population='in' is an input"):
        Neurogenesis("in").bind(net)
    with pytest.raises(ValueError, match="monitor='acc'"):
        r = Neurogenesis("h0", monitor="acc")
        r.on_epoch(net, None, epoch=1, logs={"loss": 1.0})


# ------------------------------------------------------------------ RemoveDead
def dead_model(net, names):
    """numpy model: repeatedly drop neurons with zero total fan-in or fan-out (keep >= 1)."""
    masks = {}
    for p in net.projections:
        m = np.zeros((p.pre.size, p.post.size), dtype=bool)
        pre, post, _ = p.to_coo()
        m[pre, post] = True
        masks[(p.pre.name, p.post.name)] = m
    alive = {n: np.ones(pop.size, dtype=bool) for n, pop in net.populations.items()}
    changed = True
    while changed:
        changed = False
        for name in names:
            fin = sum(m[alive[a]][:, alive[b]].sum(0) for (a, b), m in masks.items() if b == name)
            fout = sum(m[alive[a]][:, alive[b]].sum(1) for (a, b), m in masks.items() if a == name)
            dead = (fin == 0) | (fout == 0)
            idx = np.flatnonzero(alive[name])[dead]
            if idx.size == alive[name].sum():
                idx = idx[1:]
            if idx.size:
                alive[name][idx] = False
                changed = True
    return alive


def test_remove_dead_matches_the_model_and_keeps_the_function():
    net = cx.Network(seed=11)
    net.add_population("in", 8)
    net.add_population("h0", 10, activation="sigmoid")  # act(0) != 0: folding matters
    net.add_population("h1", 9, activation="tanh")
    net.add_population("out", 4)
    net.connect("in", "h0", fanout=3)
    net.connect("h0", "h1", fanout=2)
    net.connect("h1", "out", fanout=2)
    rng = np.random.default_rng(0)
    for pop in ("h0", "h1", "out"):
        net[pop].bias = rng.uniform(-1, 1, net[pop].size)
    p0, p1, _ = net.projections
    # kill: fan-in of h0[2], h0[5]; fan-out of h0[7]; fan-in of h1[0] (via removing its sources)
    for j in (2, 5):
        pre, post, _ = p0.to_coo()
        sel = post == j
        p0.remove_synapses(pre[sel], post[sel])
    targets, _ = p1.synapses(7)
    p1.remove_synapses(7, targets)
    pre, post, _ = p1.to_coo()
    p1.remove_synapses(pre[post == 0], post[post == 0])
    # a backward cascade: h0[3]'s only target is h1[t], and h1[t] has no fan-out, so h0[3] dies
    # only once h1[t] is gone (a second sweep)
    p2 = net.projections[2]
    targets, _ = p1.synapses(3)
    t = int(targets[-1])
    p1.remove_synapses(3, targets[:-1])
    out_t, _ = p2.synapses(t)
    p2.remove_synapses(t, out_t)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    alive = dead_model(net, ["h0", "h1"])
    expect = sum(int((~a).sum()) for a in alive.values())
    assert expect >= 6 and not alive["h0"][3] and not alive["h1"][t]
    kept = {}
    for p in net.projections:
        pre, post, w = p.to_coo()
        a, b = alive[p.pre.name], alive[p.post.name]
        sel = a[pre] & b[post]
        remap_a, remap_b = np.cumsum(a) - 1, np.cumsum(b) - 1
        kept[(p.pre.name, p.post.name)] = {
            (int(remap_a[i]), int(remap_b[j])): float(v) for i, j, v in zip(pre[sel], post[sel], w[sel])
        }
    y0 = net.forward(x)
    n0 = net.n_synapses
    ch = RemoveDead().apply(net)
    assert ch.neurons_removed == expect and ch.pruned == n0 - net.n_synapses
    for name in ("h0", "h1"):
        assert net[name].size == alive[name].sum()
    for p in net.projections:
        assert coo_dict(p) == kept[(p.pre.name, p.post.name)]
    np.testing.assert_allclose(net.forward(x), y0, rtol=1e-5, atol=1e-6)
    assert remove_dead_neurons(net) == 0


def test_remove_dead_keeps_one_neuron_and_validates():
    net = mlp(2, sizes=(4, 5, 3), fanouts=(2, 2))
    p0 = net.projections[0]
    pre, post, _ = p0.to_coo()
    p0.remove_synapses(pre, post)  # every h0 neuron loses its fan-in
    assert remove_dead_neurons(net, ["h0"]) == 4
    assert net["h0"].size == 1
    with pytest.raises(ValueError, match=r"populations\[0\]='in' is an input"):
        remove_dead_neurons(net, ["in"])
    with pytest.raises(ValueError, match=r"populations\[0\]='out' is an output"):
        RemoveDead(populations=["out"]).apply(net)
    with pytest.raises(TypeError, match="populations"):
        RemoveDead(populations="h0")
    with pytest.raises(TypeError, match=r"populations\[0\]"):
        RemoveDead(populations=[1])


# ------------------------------------------------------------- scheduling
class Counter(Rule):
    def __init__(self, every):
        super().__init__(every)
        self.calls = []

    def _fire(self, net, optimizer, *, step, epoch, batch, loss_fn, logs):
        self.calls.append((step, epoch))
        return Changes(grown=1)


def test_rule_scheduling():
    net = mlp()
    by_step, by_epoch = Counter(3), Counter("epoch")
    by_epoch.bind(net, None, epochs=2, steps_per_epoch=4)
    for epoch in (1, 2):
        for s in range(1, 5):
            step = (epoch - 1) * 4 + s
            for r in (by_step, by_epoch):
                r.on_step(net, None, step=step, epoch=epoch, batch=None, loss_fn=None)
        for r in (by_step, by_epoch):
            r.on_epoch(net, None, epoch=epoch, logs={"loss": 1.0})
    assert by_step.calls == [(3, 1), (6, 2)]
    assert by_epoch.calls == [(4, 1), (8, 2)]
    assert by_step.apply(net) == Changes(grown=1) and by_step.calls[-1] == (None, None)
    with pytest.raises(ValueError, match="step=0"):
        by_step.on_step(net, None, step=0, epoch=1)
    with pytest.raises(TypeError, match="steps_per_epoch"):
        by_step.bind(net, None, epochs=1, steps_per_epoch=1.5)


def test_local_training_loop_with_rules():
    """A small driver: plain SGD steps, RigL by steps, SET, neurogenesis and dead-neuron removal by epoch."""
    net = mlp(21, sizes=(8, 16, 3), fanouts=(4, 2), activation="tanh")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    Y = np.tanh(X @ rng.standard_normal((8, 3))).astype(np.float32)
    epochs, bs = 6, 16
    rules = [
        RigL(0.3, every=2, schedule="cosine", end=0.75),
        SET(0.2),
        Neurogenesis("h0", n=4, patience=None, max_size=24),
        RemoveDead(),
    ]
    for r in rules:
        r.bind(net, None, epochs=epochs, steps_per_epoch=len(X) // bs)
    total = Changes()
    losses = []
    step = 0
    for epoch in range(1, epochs + 1):
        for i in range(0, len(X), bs):
            step += 1
            batch = (X[i : i + bs], Y[i : i + bs])
            sgd_step(net, batch, lr=0.1)
            for r in rules:
                total += r.on_step(net, None, step=step, epoch=epoch, batch=batch, loss_fn=mse)
        n0 = net.n_synapses
        epoch_changes = Changes()
        for r in rules:
            epoch_changes += r.on_epoch(net, None, epoch=epoch, logs={"loss": 0.0}, batch=batch, loss_fn=mse)
        assert net.n_synapses - n0 == epoch_changes.grown - epoch_changes.pruned
        total += epoch_changes
        losses.append(mse(net.forward(X), Y)[0])
    assert net["h0"].size == 16 + total.neurons_added - total.neurons_removed <= 24
    assert total.neurons_added >= 8
    assert total.pruned > 0 and total.grown > 0
    assert losses[-1] < losses[0]


def test_rules_with_an_optimiser_start_new_state_at_zero():
    from connectome import _core, optim

    net = mlp(13, sizes=(10, 14, 4), fanouts=(4, 3), activation="relu")
    opt = optim.SGD(net, lr=0.05, momentum=0.9)
    batch = batch_for(net, 6)

    def train(steps):
        for _ in range(steps):
            opt.zero_grad()
            _loss, g = mse(net.forward(batch[0]), batch[1])
            net.backward(g)
            opt.step()

    def state(p):
        return dict(zip(coo_dict(p), p._core.get_column(_core.COL_STATE0)))

    train(3)
    p0 = net.projections[0]
    before = state(p0)
    assert any(v != 0.0 for v in before.values())
    RigL(0.3, schedule="constant", projections=[p0]).apply(net, opt, batch=batch, loss_fn=mse)
    after = state(p0)
    for key, v in after.items():
        assert v == before.get(key, 0.0), "survivors keep their momentum, new synapses start at 0"
    h = net["h0"]
    mom = h._neuron_state["momentum_buffer"].copy()
    Neurogenesis("h0", n=3, patience=None).apply(net, opt)
    np.testing.assert_array_equal(h._neuron_state["momentum_buffer"], np.concatenate([mom, np.zeros(3)]))
    train(2)  # the optimiser keeps working on the grown network
    assert h._neuron_state["momentum_buffer"].shape == (17,)
