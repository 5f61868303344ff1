"""The compiled core (connectome._core) against the dense oracle, below the Python API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import DenseReference, activate, activation_slope
from strategies import arrays_NB, coo_BS, seeds

from connectome import _core  # a missing extension is a failure, not a skip

ACT_CODES = {"linear": _core.LINEAR, "relu": _core.RELU, "tanh": _core.TANH, "sigmoid": _core.SIGMOID}


def make_core(n_pre, n_post, pre, post, w):
    cp = _core.CoreProjection(n_pre, n_post)
    cp.add(np.asarray(pre, np.int32), np.asarray(post, np.int32), np.asarray(w, np.float32))
    return cp


def core_state(cp):
    cols = {}
    for col in (_core.COL_WEIGHT, _core.COL_GRAD, _core.COL_STATE0, _core.COL_STATE1):
        enabled = bool(cp.column_enabled(col))
        cols[col] = (enabled, np.array(cp.get_column(col)).tobytes() if enabled else None)
    pre, post, w = cp.to_coo()
    return (cp.n_pre, cp.n_post, cp.n_synapses, pre.tobytes(), post.tobytes(), w.tobytes(), cols)


def check_structure(cp, ref: DenseReference):
    pre, post, w = cp.to_coo()
    rp, rq, rw = ref.to_coo()
    assert pre.dtype == np.int32 and post.dtype == np.int32 and w.dtype == np.float32
    assert cp.n_pre == ref.n_pre and cp.n_post == ref.n_post
    assert cp.n_synapses == ref.n_synapses == len(pre)
    assert np.array_equal(pre, rp) and np.array_equal(post, rq) and np.array_equal(w, rw)
    assert np.array_equal(cp.fanout(), ref.fanout())
    assert np.array_equal(cp.fanin(), ref.fanin())
    for i in range(ref.n_pre):
        targets, weights = cp.row(i)
        sel = rp == i
        assert np.array_equal(targets, rq[sel]) and np.array_equal(weights, rw[sel])


# ------------------------------------------------------------------ kernels
@given(coo_BS(max_pre=20, max_post=20), st.integers(0, 7), st.sampled_from([1, 2]), seeds)
def test_core_forward_backward_match_dense(coo, batch, n_threads, seed):
    n_pre, n_post, pre, post, w = coo
    rng = np.random.default_rng(seed)
    cp = make_core(n_pre, n_post, pre, post, w)
    ref = DenseReference(n_pre, n_post, pre, post, w)
    check_structure(cp, ref)

    x = arrays_NB(n_pre, batch, rng)
    y0 = arrays_NB(n_post, batch, rng)
    y = y0.copy()
    cp.forward(x, y, n_threads)  # accumulates into y
    expect = y0.astype(np.float64) + ref.forward(x.T.astype(np.float64)).T
    mag = np.abs(y0) + (np.abs(x.T) @ np.abs(ref.W)).T
    assert np.all(np.abs(y - expect) <= 1e-5 * mag + 1e-9)

    dy = arrays_NB(n_post, batch, rng)
    dx0 = arrays_NB(n_pre, batch, rng)
    dx = dx0.copy()
    cp.enable_column(_core.COL_GRAD)
    g0 = rng.uniform(-1, 1, cp.n_synapses).astype(np.float32)
    cp.set_column(_core.COL_GRAD, g0)
    cp.backward(x, dy, dx, True, n_threads)
    edx, egW = ref.backward(x.T, dy.T)
    assert np.all(
        np.abs(dx - (dx0 + edx.T)) <= 1e-5 * (np.abs(dx0) + (np.abs(dy.T) @ np.abs(ref.W.T)).T) + 1e-9
    )
    eg = g0 + ref.coo_values(egW)
    gmag = np.abs(g0) + ref.coo_values(np.abs(x) @ np.abs(dy.T))
    assert np.all(np.abs(cp.get_column(_core.COL_GRAD) - eg) <= 1e-5 * gmag + 1e-9)

    # dx=None and accumulate_grad=False: the grad column is left alone
    before = cp.get_column(_core.COL_GRAD).copy()
    cp.backward(x, dy, None, False, n_threads)
    assert np.array_equal(cp.get_column(_core.COL_GRAD), before)


@given(
    st.integers(0, 10),
    st.integers(0, 6),
    st.sampled_from(list(ACT_CODES)),
    st.booleans(),
    st.sampled_from([1, 2]),
    seeds,
)
def test_core_population_kernels(n, batch, act, with_bias, n_threads, seed):
    rng = np.random.default_rng(seed)
    z = arrays_NB(n, batch, rng, scale=3.0)
    bias = rng.uniform(-1, 1, n).astype(np.float32) if with_bias else None
    a = z.copy()
    _core.pop_forward(a, bias, ACT_CODES[act], n_threads)
    zb = z.astype(np.float64) + (bias[:, None] if with_bias else 0.0)
    expect = activate(act, zb)
    assert np.all(np.abs(a - expect) <= 1e-5 * (np.abs(zb) + np.abs(expect)) + 1e-9)

    d0 = arrays_NB(n, batch, rng)
    d = d0.copy()
    bg0 = rng.uniform(-1, 1, n).astype(np.float32)
    bg = bg0.copy() if with_bias else None
    _core.pop_backward(a, d, bg, ACT_CODES[act], n_threads)
    dz = d0 * activation_slope(act, a.astype(np.float64))
    assert np.all(np.abs(d - dz) <= 1e-5 * np.abs(d0) + 1e-9)
    if with_bias:
        assert np.all(
            np.abs(bg - (bg0 + dz.sum(axis=1))) <= 1e-5 * (np.abs(bg0) + np.abs(d0).sum(axis=1)) + 1e-9
        )


def test_core_backward_needs_grad_column():
    cp = make_core(2, 2, [0], [1], [1.0])
    x = np.ones((2, 1), np.float32)
    dy = np.ones((2, 1), np.float32)
    before = core_state(cp)
    with pytest.raises(ValueError):
        cp.backward(x, dy, None, True, 1)
    assert core_state(cp) == before


@pytest.mark.parametrize(
    "shape_x, shape_y",
    [((3, 2), (5, 2)), ((4, 2), (4, 2)), ((4, 2), (5, 3)), ((4,), (5,))],
)
def test_core_forward_rejects_bad_shapes(shape_x, shape_y):
    cp = make_core(4, 5, [0, 3], [1, 4], [1.0, 2.0])
    x = np.zeros(shape_x, np.float32)
    y = np.zeros(shape_y, np.float32)
    with pytest.raises((ValueError, TypeError)):
        cp.forward(x, y, 1)
    assert np.all(y == 0)


# ------------------------------------------------------------ construction
@given(st.integers(0, 30), st.integers(0, 30), st.data(), seeds)
def test_core_fill_random(n_pre, n_post, data, seed):
    fanout = data.draw(st.integers(0, n_post))
    cp = _core.CoreProjection(n_pre, n_post)
    cp.fill_random(fanout, _core.INIT_UNIFORM, -0.5, 0.25, seed, 1)
    pre, post, w = cp.to_coo()
    assert cp.n_synapses == n_pre * fanout
    assert np.array_equal(cp.fanout(), np.full(n_pre, fanout))
    assert np.all((w >= -0.5) & (w < 0.25))
    key = pre.astype(np.int64) * max(n_post, 1) + post
    assert np.all(np.diff(key) > 0), "not sorted by (pre, post) or duplicated"
    assert cp.fanin().sum() == cp.n_synapses
    # same seed, other thread count: bitwise the same
    cp2 = _core.CoreProjection(n_pre, n_post)
    cp2.fill_random(fanout, _core.INIT_UNIFORM, -0.5, 0.25, seed, 2)
    assert core_state(cp2) == core_state(cp)
    # constant init
    cp3 = _core.CoreProjection(n_pre, n_post)
    cp3.fill_random(fanout, _core.INIT_CONST, 0.75, 0.0, seed, 1)
    assert np.all(cp3.to_coo()[2] == np.float32(0.75))


def test_core_fill_random_statistics():
    cp = _core.CoreProjection(200, 300)
    cp.fill_random(60, _core.INIT_NORMAL, 0.5, 2.0, 7, 2)
    _pre, post, w = cp.to_coo()
    assert abs(w.mean() - 0.5) < 0.1 and abs(w.std() - 2.0) < 0.1
    # targets roughly uniform: every post neuron gets ~40 incoming
    fanin = cp.fanin()
    assert fanin.min() > 10 and fanin.max() < 80
    other = _core.CoreProjection(200, 300)
    other.fill_random(60, _core.INIT_NORMAL, 0.5, 2.0, 8, 2)
    assert not np.array_equal(other.to_coo()[1], post), "seed is ignored"


def test_core_fill_random_errors_leave_projection_unchanged():
    cp = _core.CoreProjection(5, 4)
    for fanout in (-1, 5):
        before = core_state(cp)
        with pytest.raises(ValueError):
            cp.fill_random(fanout, _core.INIT_CONST, 1.0, 0.0, 0, 1)
        assert core_state(cp) == before
    cp.fill_random(2, _core.INIT_CONST, 1.0, 0.0, 0, 1)
    before = core_state(cp)
    with pytest.raises(ValueError):  # not empty
        cp.fill_random(2, _core.INIT_CONST, 1.0, 0.0, 0, 1)
    with pytest.raises(ValueError):  # bad init kind
        _core.CoreProjection(5, 4).fill_random(2, 99, 1.0, 0.0, 0, 1)
    with pytest.raises(ValueError):  # non-finite init parameter
        _core.CoreProjection(5, 4).fill_random(2, _core.INIT_CONST, float("nan"), 0.0, 0, 1)
    assert core_state(cp) == before


# ----------------------------------------------------------------- columns
def test_core_columns_move_with_edits():
    rng = np.random.default_rng(3)
    cp = make_core(6, 7, [0, 0, 2, 5, 5], [1, 6, 3, 0, 2], [0.1, -0.2, 0.3, -0.4, 0.5])
    assert cp.column_enabled(_core.COL_WEIGHT) and not cp.column_enabled(_core.COL_GRAD)
    assert np.array_equal(cp.get_column(_core.COL_GRAD), np.zeros(5, np.float32))  # disabled reads as zeros
    with pytest.raises(ValueError):
        cp.set_column(_core.COL_GRAD, np.ones(5, np.float32))
    with pytest.raises(ValueError):
        cp.disable_column(_core.COL_WEIGHT)
    with pytest.raises(ValueError):
        cp.enable_column(99)
    for col in (_core.COL_GRAD, _core.COL_STATE0, _core.COL_STATE1):
        cp.enable_column(col)
        assert cp.column_enabled(col)
        assert np.all(cp.get_column(col) == 0)
        cp.set_column(col, rng.uniform(-1, 1, 5).astype(np.float32))
    cp.fill_column(_core.COL_STATE1, 2.5, 2)
    assert np.all(cp.get_column(_core.COL_STATE1) == 2.5)

    def as_dict():
        pre, post, _ = cp.to_coo()
        cols = [cp.get_column(c) for c in range(4)]
        return {(int(i), int(j)): tuple(float(c[s]) for c in cols) for s, (i, j) in enumerate(zip(pre, post))}

    model = as_dict()
    cp.add(np.array([3, 0], np.int32), np.array([3, 2], np.int32), np.array([0.7, 0.8], np.float32))
    model[(3, 3)] = (np.float32(0.7), 0.0, 0.0, 0.0)
    model[(0, 2)] = (np.float32(0.8), 0.0, 0.0, 0.0)
    assert as_dict() == model
    cp.remove(np.array([5, 0], np.int32), np.array([0, 6], np.int32))
    del model[(5, 0)], model[(0, 6)]
    assert as_dict() == model
    expect = {k: v for k, v in model.items() if abs(v[0]) >= np.float32(0.25)}
    removed = cp.prune_threshold(0.25, 1)
    assert removed == len(model) - len(expect) == 1
    model = expect
    assert as_dict() == model
    cp.disable_column(_core.COL_STATE0)
    assert not cp.column_enabled(_core.COL_STATE0)
    assert np.all(cp.get_column(_core.COL_STATE0) == 0)
    with pytest.raises(ValueError):
        cp.get_column(17)


# ------------------------------------------------------------------- edits
@given(coo_BS(max_pre=10, max_post=10), seeds)
def test_core_add_remove_errors_are_atomic(coo, seed):
    n_pre, n_post, pre, post, w = coo
    cp = make_core(n_pre, n_post, pre, post, w)
    before = core_state(cp)
    rng = np.random.default_rng(seed)
    i32 = lambda *v: np.array(v, np.int32)
    f32 = lambda *v: np.array(v, np.float32)
    # out of range, both ends, both coordinates
    for bad in ((n_pre, 0), (-1, 0), (0, n_post), (0, -1)):
        with pytest.raises(IndexError):
            cp.add(i32(bad[0]), i32(bad[1]), f32(1.0))
        assert core_state(cp) == before
        with pytest.raises(IndexError):
            cp.remove(i32(bad[0]), i32(bad[1]))
        assert core_state(cp) == before
    if n_pre * n_post > len(pre):
        absent = sorted(set(np.ndindex(n_pre, n_post)) - set(zip(pre.tolist(), post.tolist())))
        a = absent[rng.integers(len(absent))]
        with pytest.raises(ValueError):  # duplicate inside the batch
            cp.add(i32(a[0], a[0]), i32(a[1], a[1]), f32(1.0, 2.0))
        assert core_state(cp) == before
        with pytest.raises((KeyError, ValueError)):  # removing an absent synapse
            cp.remove(i32(a[0]), i32(a[1]))
        assert core_state(cp) == before
        if len(pre):  # a valid new synapse batched with an existing one
            with pytest.raises(ValueError):
                cp.add(i32(a[0], pre[0]), i32(a[1], post[0]), f32(1.0, 2.0))
            assert core_state(cp) == before
            with pytest.raises((KeyError, ValueError)):
                cp.remove(i32(pre[0], a[0]), i32(post[0], a[1]))
            assert core_state(cp) == before
    if len(pre):
        with pytest.raises(ValueError):
            cp.remove(i32(pre[0], pre[0]), i32(post[0], post[0]))
        assert core_state(cp) == before
    with pytest.raises(ValueError):  # length mismatch
        cp.add(i32(0, 0), i32(0), f32(1.0))
    assert core_state(cp) == before


def test_core_add_error_names_the_synapse():
    """Errors name the offending (pre, post) and its position in the batch."""
    import re

    cp = make_core(5, 5, [3], [2], [0.5])

    def numbers(exc):
        return re.findall(r"\d+", str(exc.value))

    i32 = lambda *v: np.array(v, np.int32)
    with pytest.raises(ValueError) as exc:  # existing synapse (3, 2) at position 2
        cp.add(i32(0, 0, 3), i32(0, 1, 2), np.ones(3, np.float32))
    assert {"3", "2"} <= set(numbers(exc)), str(exc.value)
    with pytest.raises(ValueError) as exc:  # (4, 1) twice, positions 1 and 3
        cp.add(i32(0, 4, 0, 4), i32(0, 1, 2, 1), np.ones(4, np.float32))
    assert "4" in numbers(exc) and ({"1", "3"} & set(numbers(exc))), str(exc.value)
    with pytest.raises(IndexError) as exc:
        cp.add(i32(0, 0), i32(0, 7), np.ones(2, np.float32))
    assert "7" in numbers(exc), str(exc.value)
    with pytest.raises(KeyError) as exc:  # (4, 4) absent at position 1
        cp.remove(i32(3, 4), i32(2, 4))
    assert "4" in numbers(exc), str(exc.value)
    assert cp.n_synapses == 1


@given(coo_BS(max_pre=12, max_post=12), st.data())
def test_core_prune_count_removes_smallest(coo, data):
    n_pre, n_post, pre, post, w = coo
    # ties: quantise weights so equal magnitudes (and signs) occur
    w = (np.round(w * 4) / 4).astype(np.float32)
    cp = make_core(n_pre, n_post, pre, post, w)
    k = data.draw(st.integers(0, len(pre)))
    n_threads = data.draw(st.sampled_from([1, 2]))
    rp, rq, rw = DenseReference(n_pre, n_post, pre, post, w).to_coo()
    order = sorted(range(len(rp)), key=lambda s: (abs(float(rw[s])), int(rp[s]), int(rq[s])))
    keep = np.ones(len(rp), bool)
    keep[order[:k]] = False
    assert cp.prune_count(k, n_threads) == k
    p2, q2, w2 = cp.to_coo()
    assert np.array_equal(p2, rp[keep]) and np.array_equal(q2, rq[keep]) and np.array_equal(w2, rw[keep])
    before = core_state(cp)
    with pytest.raises(ValueError):
        cp.prune_count(cp.n_synapses + 1, 1)
    with pytest.raises(ValueError):
        cp.prune_count(-1, 1)
    assert core_state(cp) == before


@given(coo_BS(max_pre=12, max_post=12), st.floats(0, 1.2), st.sampled_from([1, 2]))
def test_core_prune_threshold(coo, t, n_threads):
    n_pre, n_post, pre, post, w = coo
    w = w.copy()
    if len(w):
        w[0] = np.float32(t)  # exactly at the threshold: kept (strict <)
    cp = make_core(n_pre, n_post, pre, post, w)
    rp, rq, rw = DenseReference(n_pre, n_post, pre, post, w).to_coo()
    keep = np.abs(rw) >= np.float32(t)
    assert cp.prune_threshold(t, n_threads) == int((~keep).sum())
    p2, q2, w2 = cp.to_coo()
    assert np.array_equal(p2, rp[keep]) and np.array_equal(q2, rq[keep]) and np.array_equal(w2, rw[keep])


def test_core_prune_threshold_removes_nan():
    cp = make_core(2, 3, [0, 1, 1], [2, 0, 1], [np.nan, 0.5, -0.1])
    assert cp.prune_threshold(0.2, 1) == 2
    assert cp.to_coo()[2].tolist() == [0.5]


@given(coo_BS(max_pre=10, max_post=10), st.data(), seeds)
def test_core_sample_absent_and_grow(coo, data, seed):
    n_pre, n_post, pre, post, w = coo
    cp = make_core(n_pre, n_post, pre, post, w)
    free = n_pre * n_post - len(pre)
    n = data.draw(st.integers(0, free))
    sp, sq = cp.sample_absent(n, seed)
    assert len(sp) == len(sq) == n
    key = sp.astype(np.int64) * max(n_post, 1) + sq
    assert np.all(np.diff(key) > 0), "sample not sorted/distinct"
    existing = set(zip(pre.tolist(), post.tolist()))
    assert not existing & set(zip(sp.tolist(), sq.tolist()))
    before = core_state(cp)
    with pytest.raises(ValueError):
        cp.sample_absent(free + 1, seed)
    with pytest.raises(ValueError):
        cp.grow(free + 1, _core.INIT_CONST, 0.5, 0.0, seed, 1)
    with pytest.raises(ValueError):
        cp.grow(-1, _core.INIT_CONST, 0.5, 0.0, seed, 1)
    assert core_state(cp) == before
    cp.grow(n, _core.INIT_CONST, 0.5, 0.0, seed, data.draw(st.sampled_from([1, 2])))
    p2, q2, w2 = cp.to_coo()
    assert cp.n_synapses == len(pre) + n
    after = dict(zip(zip(p2.tolist(), q2.tolist()), w2.tolist()))
    for i, j, v in zip(pre.tolist(), post.tolist(), w.tolist()):
        assert after.pop((i, j)) == v
    assert len(after) == n and all(v == 0.5 for v in after.values())


# ----------------------------------------------------------------- neurons
@given(coo_BS(max_pre=10, max_post=10), st.data(), seeds)
def test_core_add_pre_add_post(coo, data, seed):
    n_pre, n_post, pre, post, w = coo
    cp = make_core(n_pre, n_post, pre, post, w)
    old = set(zip(pre.tolist(), post.tolist(), w.tolist()))
    k = data.draw(st.integers(0, 4))
    fanout = data.draw(st.integers(0, n_post))
    cp.add_pre(k, fanout, _core.INIT_CONST, 0.0, 0.0, seed)
    assert cp.n_pre == n_pre + k
    fo = cp.fanout()
    assert np.all(fo[n_pre:] == fanout)
    p2, q2, w2 = cp.to_coo()
    assert old <= set(zip(p2.tolist(), q2.tolist(), w2.tolist()))
    assert np.all(w2[p2 >= n_pre] == 0)
    k2 = data.draw(st.integers(0, 4))
    fanin = data.draw(st.integers(0, cp.n_pre))
    cp.add_post(k2, fanin, _core.INIT_UNIFORM, 1.0, 2.0, seed)
    assert cp.n_post == n_post + k2
    fi = cp.fanin()
    assert np.all(fi[n_post:] == fanin)
    p3, q3, w3 = cp.to_coo()
    assert set(zip(p2.tolist(), q2.tolist(), w2.tolist())) <= set(zip(p3.tolist(), q3.tolist(), w3.tolist()))
    assert np.all((w3[q3 >= n_post] >= 1.0) & (w3[q3 >= n_post] < 2.0))
    before = core_state(cp)
    with pytest.raises(ValueError):
        cp.add_pre(1, cp.n_post + 1, _core.INIT_CONST, 0.0, 0.0, seed)
    with pytest.raises(ValueError):
        cp.add_post(1, cp.n_pre + 1, _core.INIT_CONST, 0.0, 0.0, seed)
    with pytest.raises(ValueError):
        cp.add_pre(-1, 0, _core.INIT_CONST, 0.0, 0.0, seed)
    assert core_state(cp) == before


@given(coo_BS(max_pre=10, max_post=10), st.data())
def test_core_remove_pre_post_renumber_like_np_delete(coo, data):
    n_pre, n_post, pre, post, w = coo
    cp = make_core(n_pre, n_post, pre, post, w)
    cp.enable_column(_core.COL_GRAD)
    g = np.arange(len(pre), dtype=np.float32) + 1
    cp.set_column(_core.COL_GRAD, g)
    ref = DenseReference(n_pre, n_post, pre, post, w)
    G = np.zeros((n_pre, n_post))
    G[ref.mask] = g
    ri = np.array(sorted(data.draw(st.sets(st.integers(0, max(n_pre - 1, 0)), max_size=n_pre))), np.int32)
    rj = np.array(sorted(data.draw(st.sets(st.integers(0, max(n_post - 1, 0)), max_size=n_post))), np.int32)
    if n_pre == 0:
        ri = ri[:0]
    if n_post == 0:
        rj = rj[:0]
    cp.remove_pre(ri)
    cp.remove_post(rj, data.draw(st.sampled_from([1, 2])))
    W = np.delete(np.delete(ref.W, ri, axis=0), rj, axis=1)
    M = np.delete(np.delete(ref.mask, ri, axis=0), rj, axis=1)
    G = np.delete(np.delete(G, ri, axis=0), rj, axis=1)
    i, j = np.nonzero(M)
    check_structure(cp, DenseReference(*M.shape, i, j, W[i, j]))
    assert np.array_equal(cp.get_column(_core.COL_GRAD), G[i, j].astype(np.float32))
    before = core_state(cp)
    if cp.n_pre >= 2:
        with pytest.raises(ValueError):  # not strictly increasing
            cp.remove_pre(np.array([1, 0], np.int32))
        with pytest.raises(ValueError):
            cp.remove_pre(np.array([0, 0], np.int32))
    with pytest.raises(IndexError):
        cp.remove_pre(np.array([cp.n_pre], np.int32))
    with pytest.raises(IndexError):
        cp.remove_post(np.array([cp.n_post], np.int32), 1)
    with pytest.raises(IndexError):
        cp.remove_post(np.array([-1], np.int32), 1)
    assert core_state(cp) == before


# ------------------------------------------------------------------ status
STATUS_EXC = {
    -1: MemoryError,
    -2: IndexError,
    -3: ValueError,
    -4: KeyError,
    -5: ValueError,
    -6: ValueError,
    -7: ValueError,
}


@pytest.mark.parametrize("code", sorted(STATUS_EXC))
def test_raise_status_maps_every_status(code):
    with pytest.raises(STATUS_EXC[code]) as exc:
        _core._raise_status(code)
    # exactly that class (KeyError must not surface as a generic LookupError etc.)
    assert isinstance(exc.value, STATUS_EXC[code])
    assert str(exc.value).strip("'\" "), "empty message"


def test_raise_status_messages_are_distinct_and_ok_is_silent():
    assert _core._raise_status(0) is None
    msgs = []
    for code in sorted(STATUS_EXC):
        try:
            _core._raise_status(code)
        except Exception as e:  # noqa: BLE001
            msgs.append(str(e))
    assert len(set(msgs)) == len(STATUS_EXC), msgs
    with pytest.raises(Exception):  # noqa: B017  an unknown status must still raise, not pass silently
        _core._raise_status(-99)


def test_openmp_flag_is_boolean():
    assert _core.openmp_enabled() in (True, False)


def test_core_constructor_rejects_negative_sizes():
    with pytest.raises((ValueError, MemoryError, OverflowError)):
        _core.CoreProjection(-1, 3)
    with pytest.raises((ValueError, MemoryError, OverflowError)):
        _core.CoreProjection(3, -1)


@pytest.mark.parametrize(
    "n_pre, n_post, fanout, batch",
    [
        (300, 20000, 50, 3),
        (2000, 700, 300, 17),
        (50, 70000, 2000, 1),
        (1, 100_000, 100_000, 2),
        (4000, 64, 64, 8),
    ],
)
def test_core_kernels_match_dense_on_large_rows(n_pre, n_post, fanout, batch):
    """Long rows and many targets: every target tile and thread slice boundary is crossed."""
    rng = np.random.default_rng(n_pre + n_post)
    cp = _core.CoreProjection(n_pre, n_post)
    cp.fill_random(fanout, _core.INIT_UNIFORM, -1.0, 1.0, 5, 2)
    pre, post, w = cp.to_coo()
    x = arrays_NB(n_pre, batch, rng)
    dy = arrays_NB(n_post, batch, rng)
    x64, dy64, w64 = x.astype(np.float64), dy.astype(np.float64), w.astype(np.float64)
    # sparse oracle in float64 (np.add.at: exact per-synapse accumulation)
    y_ref = np.zeros((n_post, batch))
    np.add.at(y_ref, post, w64[:, None] * x64[pre])
    y_mag = np.zeros((n_post, batch))
    np.add.at(y_mag, post, np.abs(w64[:, None] * x64[pre]))
    dx_ref = np.zeros((n_pre, batch))
    np.add.at(dx_ref, pre, w64[:, None] * dy64[post])
    dx_mag = np.zeros((n_pre, batch))
    np.add.at(dx_mag, pre, np.abs(w64[:, None] * dy64[post]))
    g_ref = np.einsum("sb,sb->s", x64[pre], dy64[post])
    g_mag = np.einsum("sb,sb->s", np.abs(x64[pre]), np.abs(dy64[post]))
    cp.enable_column(_core.COL_GRAD)
    for t in (1, 2):
        y = np.zeros((n_post, batch), np.float32)
        cp.forward(x, y, t)
        assert np.all(np.abs(y - y_ref) <= 1e-5 * y_mag + 1e-9), f"forward, {t} threads"
        dx = np.zeros((n_pre, batch), np.float32)
        cp.fill_column(_core.COL_GRAD, 0.0, t)
        cp.backward(x, dy, dx, True, t)
        assert np.all(np.abs(dx - dx_ref) <= 1e-5 * dx_mag + 1e-9), f"dx, {t} threads"
        g = cp.get_column(_core.COL_GRAD)
        assert np.all(np.abs(g - g_ref) <= 1e-5 * g_mag + 1e-9), f"grad, {t} threads"


def test_core_shrink_keeps_content():
    cp = _core.CoreProjection(100, 200)
    cp.fill_random(50, _core.INIT_UNIFORM, -1.0, 1.0, 3, 1)
    cp.prune_count(2500, 1)
    before = core_state(cp)
    nb = cp.nbytes
    cp.shrink()
    assert core_state(cp) == before
    assert cp.nbytes <= nb


def _core_model(cp):
    pre, post, _ = cp.to_coo()
    cols = [cp.get_column(c) for c in range(4)]
    return {(int(i), int(j)): tuple(float(c[s]) for c in cols) for s, (i, j) in enumerate(zip(pre, post))}


OPS = [
    "add",
    "remove",
    "prune_threshold",
    "prune_count",
    "grow",
    "add_pre",
    "add_post",
    "remove_pre",
    "remove_post",
    "shrink",
]


@given(coo_BS(max_pre=8, max_post=8), st.lists(st.sampled_from(OPS), min_size=1, max_size=12), st.data())
def test_core_every_column_follows_its_synapse(coo, ops, data):
    """All four columns (weight, grad, state0, state1) move with every structural edit;
    new synapses start at 0 in every column but the weight."""
    n_pre, n_post, pre, post, w = coo
    cp = make_core(n_pre, n_post, pre, post, w)
    rng = np.random.default_rng(len(pre))
    for col in (_core.COL_GRAD, _core.COL_STATE0, _core.COL_STATE1):
        cp.enable_column(col)
        cp.set_column(col, rng.uniform(1, 2, cp.n_synapses).astype(np.float32))
    model = _core_model(cp)
    for op in ops:
        n_pre, n_post = cp.n_pre, cp.n_post
        free = [(i, j) for i in range(n_pre) for j in range(n_post) if (i, j) not in model]
        if op == "add" and free:
            chosen = data.draw(st.lists(st.sampled_from(free), min_size=1, max_size=4, unique=True))
            ws = rng.uniform(-1, 1, len(chosen)).astype(np.float32)
            cp.add(np.array([c[0] for c in chosen], np.int32), np.array([c[1] for c in chosen], np.int32), ws)
            for c, v in zip(chosen, ws):
                model[c] = (float(v), 0.0, 0.0, 0.0)
        elif op == "remove" and model:
            chosen = data.draw(st.lists(st.sampled_from(sorted(model)), min_size=1, max_size=4, unique=True))
            cp.remove(np.array([c[0] for c in chosen], np.int32), np.array([c[1] for c in chosen], np.int32))
            for c in chosen:
                del model[c]
        elif op == "prune_threshold":
            t = data.draw(st.floats(0, 1))
            cp.prune_threshold(t, 2)
            model = {k: v for k, v in model.items() if abs(np.float32(v[0])) >= np.float32(t)}
        elif op == "prune_count":
            k = data.draw(st.integers(0, len(model)))
            cp.prune_count(k, 2)
            for key in sorted(model, key=lambda key: (abs(model[key][0]), key))[:k]:
                del model[key]
        elif op == "grow":
            k = data.draw(st.integers(0, len(free)))
            cp.grow(k, _core.INIT_CONST, 0.5, 0.0, data.draw(seeds), 2)
            after = _core_model(cp)
            new = set(after) - set(model)
            assert len(new) == k and set(model) <= set(after)
            for key in new:
                model[key] = (0.5, 0.0, 0.0, 0.0)
        elif op == "add_pre":
            k = data.draw(st.integers(0, 3))
            cp.add_pre(k, data.draw(st.integers(0, n_post)), _core.INIT_CONST, 0.25, 0.0, data.draw(seeds))
            after = _core_model(cp)
            for key in set(after) - set(model):
                assert key[0] >= n_pre
                model[key] = (0.25, 0.0, 0.0, 0.0)
        elif op == "add_post":
            k = data.draw(st.integers(0, 3))
            cp.add_post(k, data.draw(st.integers(0, n_pre)), _core.INIT_CONST, -0.25, 0.0, data.draw(seeds))
            after = _core_model(cp)
            for key in set(after) - set(model):
                assert key[1] >= n_post
                model[key] = (-0.25, 0.0, 0.0, 0.0)
        elif op in ("remove_pre", "remove_post"):
            n = n_pre if op == "remove_pre" else n_post
            ids = sorted(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)))[: max(n, 0)]
            ids = [i for i in ids if i < n]
            arr = np.array(ids, np.int32)
            if op == "remove_pre":
                cp.remove_pre(arr)
            else:
                cp.remove_post(arr, 2)
            ax = 0 if op == "remove_pre" else 1
            gone = set(ids)
            srt = np.array(ids, np.int64)
            new_model = {}
            for key, v in model.items():
                if key[ax] in gone:
                    continue
                key = list(key)
                key[ax] -= int(np.searchsorted(srt, key[ax]))
                new_model[tuple(key)] = v
            model = new_model
        elif op == "shrink":
            cp.shrink()
        assert _core_model(cp) == model, f"after {op}"
        assert cp.n_synapses == len(model)


def test_core_overlapping_calls_from_threads_are_refused_or_safe():
    """Python threads sharing one projection: a structural edit that overlaps another call
    must raise RuntimeError (never race); afterwards the projection is consistent."""
    import threading
    import time

    cp = _core.CoreProjection(1500, 1500)
    cp.fill_random(100, _core.INIT_UNIFORM, -1.0, 1.0, 0, 1)
    rng = np.random.default_rng(0)
    x = arrays_NB(1500, 16, rng)
    unexpected = []
    done = {"read": 0, "write": 0, "refused": 0}

    def reader():
        for _ in range(40):
            y = np.zeros((1500, 16), np.float32)
            try:
                cp.forward(x, y, 1)
                done["read"] += 1
            except RuntimeError:
                done["refused"] += 1
            except Exception as e:  # noqa: BLE001
                unexpected.append(repr(e))

    def writer():
        for k in range(400):
            if k >= 40 and not any(t.is_alive() for t in threads[:2]):
                break
            try:
                cp.grow(500, _core.INIT_CONST, 0.5, 0.0, k, 1)
                done["write"] += 1
                cp.prune_count(500, 1)
                done["write"] += 1
            except RuntimeError:
                done["refused"] += 1
            except Exception as e:  # noqa: BLE001
                unexpected.append(repr(e))
            # An idle moment with the GIL released: without it the readers mostly got the GIL
            # only while an edit ran (nogil), and now and then all 80 reads were refused.
            time.sleep(1e-4)

    threads = [
        threading.Thread(target=reader),
        threading.Thread(target=reader),
        threading.Thread(target=writer),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not unexpected, unexpected
    assert done["read"] > 0 and done["refused"] + done["write"] > 0
    pre, post, w = cp.to_coo()
    assert len(pre) == cp.n_synapses == int(cp.fanout().sum()) == int(cp.fanin().sum())
    key = pre.astype(np.int64) * 1500 + post
    assert np.all(np.diff(key) > 0)
    y = np.zeros((1500, 16), np.float32)
    cp.forward(x, y, 2)
    y_ref = np.zeros((1500, 16))
    np.add.at(y_ref, post, w.astype(np.float64)[:, None] * x[pre])
    assert np.allclose(y, y_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_core_kernels_after_heavy_churn(seed):
    """Kernels read rows that edits left with slack capacity, renumbered ids and new neurons."""
    rng = np.random.default_rng(seed)
    cp = _core.CoreProjection(300, 9000)
    cp.fill_random(200, _core.INIT_UNIFORM, -1.0, 1.0, seed, 2)
    cp.enable_column(_core.COL_GRAD)
    for step in range(6):
        cp.prune_count(cp.n_synapses // 4, 2)
        cp.grow(9000, _core.INIT_NORMAL, 0.0, 0.5, seed * 100 + step, 2)
        cp.add_post(50, 20, _core.INIT_UNIFORM, -0.5, 0.5, seed + step)
        cp.add_pre(7, 100, _core.INIT_UNIFORM, -0.5, 0.5, seed + step)
        cp.remove_post(np.sort(rng.choice(cp.n_post, 40, replace=False)).astype(np.int32), 2)
        cp.remove_pre(np.sort(rng.choice(cp.n_pre, 5, replace=False)).astype(np.int32))
        pre, post, w = cp.to_coo()
        sel = rng.choice(len(pre), 500, replace=False)
        cp.remove(pre[sel], post[sel])
        cp.prune_threshold(0.05, 2)
    pre, post, w = cp.to_coo()
    assert np.all(np.diff(pre.astype(np.int64) * cp.n_post + post) > 0)
    n_pre, n_post, B = cp.n_pre, cp.n_post, 5
    x = arrays_NB(n_pre, B, rng)
    dy = arrays_NB(n_post, B, rng)
    w64 = w.astype(np.float64)
    y_ref = np.zeros((n_post, B))
    np.add.at(y_ref, post, w64[:, None] * x[pre])
    dx_ref = np.zeros((n_pre, B))
    np.add.at(dx_ref, pre, w64[:, None] * dy[post])
    g_ref = np.einsum("sb,sb->s", x[pre].astype(np.float64), dy[post])
    for t in (1, 2):
        y = np.zeros((n_post, B), np.float32)
        cp.forward(x, y, t)
        assert np.allclose(y, y_ref, rtol=1e-4, atol=1e-4), f"forward after churn, {t} threads"
        dx = np.zeros((n_pre, B), np.float32)
        cp.fill_column(_core.COL_GRAD, 0.0, t)
        cp.backward(x, dy, dx, True, t)
        assert np.allclose(dx, dx_ref, rtol=1e-4, atol=1e-4), f"dx after churn, {t} threads"
        assert np.allclose(cp.get_column(_core.COL_GRAD), g_ref, rtol=1e-4, atol=1e-4)


def _bad_binding_calls():
    f32 = np.float32
    cp_args = (4, 5)

    def new():
        cp = make_core(*cp_args, [0, 3], [1, 4], [1.0, 2.0])
        cp.enable_column(_core.COL_GRAD)
        return cp

    x, y, dy = np.zeros((4, 2), f32), np.zeros((5, 2), f32), np.zeros((5, 2), f32)
    return new, [
        (
            "pop_forward bias length",
            lambda cp: _core.pop_forward(np.zeros((3, 2), f32), np.zeros(4, f32), _core.TANH, 1),
        ),
        ("pop_forward bad activation", lambda cp: _core.pop_forward(np.zeros((3, 2), f32), None, 17, 1)),
        (
            "pop_backward shape mismatch",
            lambda cp: _core.pop_backward(np.zeros((3, 2), f32), np.zeros((3, 3), f32), None, _core.TANH, 1),
        ),
        (
            "pop_backward bias_grad length",
            lambda cp: _core.pop_backward(
                np.zeros((3, 2), f32), np.zeros((3, 2), f32), np.zeros(2, f32), _core.TANH, 1
            ),
        ),
        ("forward batch mismatch", lambda cp: cp.forward(x, np.zeros((5, 3), f32), 1)),
        ("backward dy rows", lambda cp: cp.backward(x, np.zeros((4, 2), f32), None, True, 1)),
        ("backward dx rows", lambda cp: cp.backward(x, dy, np.zeros((5, 2), f32), True, 1)),
        ("backward dx batch", lambda cp: cp.backward(x, dy, np.zeros((4, 3), f32), True, 1)),
        ("set_column length", lambda cp: cp.set_column(_core.COL_GRAD, np.zeros(3, f32))),
        ("add dtype", lambda cp: cp.add(np.array([1], np.int64), np.array([1], np.int32), np.ones(1, f32))),
        ("remove lengths", lambda cp: cp.remove(np.array([0, 3], np.int32), np.array([1], np.int32))),
        ("row out of range", lambda cp: cp.row(4)),
        ("row negative", lambda cp: cp.row(-1)),
        ("fill_column disabled", lambda cp: cp.fill_column(_core.COL_STATE0, 1.0, 1)),
        ("n_threads zero", lambda cp: cp.forward(x, y, 0)),
        ("prune_count too many", lambda cp: cp.prune_count(3, 1)),
        ("sample_absent negative", lambda cp: cp.sample_absent(-1, 0)),
        ("add_post fanin > n_pre", lambda cp: cp.add_post(1, 5, _core.INIT_CONST, 0.0, 0.0, 0)),
        ("negative seed", lambda cp: cp.grow(1, _core.INIT_CONST, 0.0, 0.0, -1, 1)),
    ]


_NEW, _BAD_CALLS = _bad_binding_calls()


@pytest.mark.parametrize("case, call", _BAD_CALLS, ids=[c[0] for c in _BAD_CALLS])
def test_core_binding_rejects_bad_arguments_atomically(case, call):
    cp = _NEW()
    cp.set_column(_core.COL_GRAD, np.array([0.25, -0.5], np.float32))
    before = core_state(cp)
    expected = {
        "row out of range": IndexError,
        "row negative": IndexError,
        "negative seed": (ValueError, OverflowError),
        "add dtype": (ValueError, TypeError),
    }.get(case, ValueError)
    with pytest.raises(expected):
        call(cp)
    assert core_state(cp) == before, case


@given(coo_BS(max_pre=10, max_post=10), st.data(), seeds)
def test_core_grow_inserts_exactly_the_sampled_pairs(coo, data, seed):
    n_pre, n_post, pre, post, w = coo
    cp = make_core(n_pre, n_post, pre, post, w)
    n = data.draw(st.integers(0, n_pre * n_post - len(pre)))
    sp, sq = cp.sample_absent(n, seed)
    old = set(zip(pre.tolist(), post.tolist()))
    cp.grow(n, _core.INIT_CONST, 0.5, 0.0, seed, data.draw(st.sampled_from([1, 2])))
    p2, q2, _ = cp.to_coo()
    assert set(zip(p2.tolist(), q2.tolist())) - old == set(zip(sp.tolist(), sq.tolist()))


def test_core_nan_weights_in_prune():
    cp = make_core(3, 3, [0, 1, 2, 2], [0, 1, 0, 2], [0.1, np.nan, -0.05, 2.0])
    before = core_state(cp)
    with pytest.raises(ValueError):
        cp.prune_threshold(float("nan"), 1)
    assert core_state(cp) == before
    assert cp.prune_count(1, 1) == 1  # the NaN weight goes first
    w = cp.to_coo()[2]
    assert not np.isnan(w).any() and len(w) == 3
    assert cp.prune_count(1, 2) == 1  # then the smallest |w|
    assert cp.to_coo()[2].tolist() == [np.float32(0.1), 2.0]
