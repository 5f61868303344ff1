"""Quick check of every connectome._core entry point against dense numpy.

    python tools/smoke_binding.py        # from outside the tree to test an installed wheel

Not a substitute for tests/ (no hypothesis, few sizes); it is the binding owner's
"does every call reach C and come back right" check, and runs in a second.
"""

import numpy as np

from connectome import _core as c


def dense(p):
    pre, post, w = p.to_coo()
    W = np.zeros((p.n_pre, p.n_post), np.float32)
    W[pre, post] = w
    return W


def raises(exc, fn, *args, match=None):
    try:
        fn(*args)
    except exc as e:
        if match is not None and match not in str(e):
            raise AssertionError(f"{exc.__name__} message {str(e)!r} lacks {match!r}") from e
        return str(e)
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


def main():
    rng = np.random.default_rng(0)
    print("openmp_enabled:", c.openmp_enabled())

    # status -> exception
    for code, exc in [
        (-1, MemoryError),
        (-2, IndexError),
        (-3, ValueError),
        (-4, KeyError),
        (-5, ValueError),
        (-6, ValueError),
        (-7, ValueError),
        (-99, RuntimeError),
    ]:
        raises(exc, c._raise_status, code)
    c._raise_status(0)

    p = c.CoreProjection(5, 7)
    assert (p.n_pre, p.n_post, p.n_synapses) == (5, 7, 0) and p.nbytes >= 0
    pre, post, w = p.to_coo()
    assert pre.dtype == np.int32 and w.dtype == np.float32 and len(pre) == 0
    p.fill_random(3, c.INIT_UNIFORM, -1.0, 1.0, 42, 2)
    assert p.n_synapses == 15
    assert (p.fanout() == 3).all() and p.fanin().sum() == 15
    pre, post, w = p.to_coo()
    q = c.CoreProjection(5, 7)
    q.fill_random(3, c.INIT_UNIFORM, -1.0, 1.0, 42, 1)
    assert all((a == b).all() for a, b in zip(p.to_coo(), q.to_coo())), "fill_random depends on n_threads"
    assert ((w >= -1) & (w < 1)).all()
    order = np.lexsort((post, pre))
    assert (order == np.arange(len(pre))).all(), "to_coo not in (pre, post) order"
    t, tw = p.row(2)
    assert (t == post[pre == 2]).all() and (tw == w[pre == 2]).all()
    raises(IndexError, p.row, 5, match="[0, 5)")
    W = dense(p)
    assert np.allclose(W.astype(bool).sum(1), p.fanout())

    # columns
    assert p.column_enabled(c.COL_WEIGHT) and not p.column_enabled(c.COL_GRAD)
    assert (p.get_column(c.COL_GRAD) == 0).all()
    raises(ValueError, p.set_column, c.COL_GRAD, np.ones(15, np.float32), match="enable_column")
    p.enable_column(c.COL_GRAD)
    p.fill_column(c.COL_GRAD, 2.5)
    assert (p.get_column(c.COL_GRAD) == 2.5).all()
    v = np.arange(15, dtype=np.float32)
    v.flags.writeable = False  # read-only inputs are accepted
    p.set_column(c.COL_GRAD, v)
    assert (p.get_column(c.COL_GRAD) == v).all()
    raises(ValueError, p.set_column, c.COL_GRAD, np.ones(3, np.float32), match="values has 3 entries")
    raises(ValueError, p.disable_column, c.COL_WEIGHT)
    raises(ValueError, p.enable_column, 9, match="col")

    # kernels
    B = 4
    x = rng.standard_normal((5, B)).astype(np.float32)
    y = np.ones((7, B), np.float32)
    p.forward(x, y, 2)
    assert np.allclose(y, 1 + W.T @ x, rtol=1e-5, atol=1e-6)
    raises(ValueError, p.forward, x[:4].copy(), y, 1, match="x has shape (4, 4)")
    raises(ValueError, p.forward, x, np.ones((7, 3), np.float32), 1, match="y has shape (7, 3)")
    dy = rng.standard_normal((7, B)).astype(np.float32)
    dx = np.zeros((5, B), np.float32)
    p.fill_column(c.COL_GRAD, 0.0)
    p.backward(x, dy, dx, True, 2)
    assert np.allclose(dx, W @ dy, rtol=1e-5, atol=1e-5)
    assert np.allclose(p.get_column(c.COL_GRAD), (x[pre] * dy[post]).sum(1), rtol=1e-5, atol=1e-5)
    p.backward(x, dy, None, False, 1)  # no-op
    p.disable_column(c.COL_GRAD)
    raises(ValueError, p.backward, x, dy, dx, True, 1, match="COL_GRAD")
    # empty batch, empty projection
    p.forward(np.zeros((5, 0), np.float32), np.zeros((7, 0), np.float32), 1)
    e = c.CoreProjection(0, 0)
    e.forward(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), 1)
    assert len(e.fanout()) == 0 and len(e.to_coo()[0]) == 0 and len(e.get_column(0)) == 0

    # edits
    free = np.argwhere(W == 0)[:3].astype(np.int32)
    p.add(free[:, 0].copy(), free[:, 1].copy(), np.array([0.5, -0.25, 2.0], np.float32))
    W2 = dense(p)
    assert p.n_synapses == 18 and W2[free[0, 0], free[0, 1]] == 0.5
    msg = raises(
        ValueError,
        p.add,
        np.array([pre[4]], np.int32),
        np.array([post[4]], np.int32),
        np.array([1], np.float32),
        match="already exists",
    )
    assert f"(pre={pre[4]}, post={post[4]}) at position 0" in msg, msg
    raises(
        IndexError,
        p.add,
        np.array([0, 9], np.int32),
        np.array([0, 0], np.int32),
        np.array([1, 1], np.float32),
        match="pre=9",
    )
    raises(
        ValueError,
        p.add,
        np.array([0], np.int32),
        np.array([0, 1], np.int32),
        np.array([1], np.float32),
        match="post has 2 entries",
    )
    assert p.n_synapses == 18, "failed add changed the projection"
    p.remove(free[:, 0].copy(), free[:, 1].copy())
    assert (dense(p) == W).all()
    raises(KeyError, p.remove, free[:1, 0].copy(), free[:1, 1].copy(), match="does not exist")
    raises(
        ValueError,
        p.remove,
        np.array([pre[0], pre[0]], np.int32),
        np.array([post[0], post[0]], np.int32),
        match="more than once",
    )
    p.add(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))

    # prune / sample / grow
    n_small = int((np.abs(w) < 0.3).sum())
    assert p.prune_threshold(0.3, 2) == n_small and p.n_synapses == 15 - n_small
    k = p.prune_count(2, 1)
    assert k == 2 and p.n_synapses == 13 - n_small
    raises(ValueError, p.prune_count, 10**6, 1, match="n must be in")
    sp, sq = p.sample_absent(4, 7)
    Wd = dense(p)
    assert len(sp) == 4 and (Wd[sp, sq] == 0).all() and len(set(zip(sp, sq))) == 4
    free_slots = 35 - p.n_synapses
    raises(ValueError, p.sample_absent, free_slots + 1, 0, match="free")
    n0 = p.n_synapses
    p.grow(3, c.INIT_CONST, 0.125, 0.0, 9, 2)
    assert p.n_synapses == n0 + 3 and (p.to_coo()[2] == 0.125).sum() >= 3

    # neurons
    before = dense(p)
    p.add_pre(2, 3, c.INIT_CONST, 0.0, 0.0, 1)
    assert p.n_pre == 7 and (p.fanout()[5:] == 3).all() and (dense(p)[:5] == before).all()
    p.add_post(1, 4, c.INIT_NORMAL, 0.0, 1.0, 1)
    assert p.n_post == 8 and p.fanin()[7] == 4
    before = dense(p)
    p.remove_pre(np.array([1, 3], np.int32))
    assert (dense(p) == np.delete(before, [1, 3], axis=0)).all()
    before = dense(p)
    p.remove_post(np.array([0, 7], np.int32), 2)
    assert (dense(p) == np.delete(before, [0, 7], axis=1)).all()
    raises(ValueError, p.remove_post, np.array([2, 1], np.int32), 1, match="strictly increasing")
    raises(IndexError, p.remove_pre, np.array([99], np.int32), match="idx[0] = 99")
    p.shrink()

    # population kernels
    z = rng.standard_normal((6, B)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    for act, f, fprime in [
        (c.LINEAR, lambda t: t, lambda a: np.ones_like(a)),
        (c.RELU, lambda t: np.maximum(t, 0), lambda a: (a > 0).astype(np.float32)),
        (c.TANH, np.tanh, lambda a: 1 - a * a),
        (c.SIGMOID, lambda t: 1 / (1 + np.exp(-t)), lambda a: a * (1 - a)),
    ]:
        a = z.copy()
        c.pop_forward(a, bias, act, 2)
        assert np.allclose(a, f(z + bias[:, None]), rtol=1e-5, atol=1e-6), act
        d = np.ones_like(a)
        bg = np.zeros(6, np.float32)
        c.pop_backward(a, d, bg, act, 2)
        assert np.allclose(d, fprime(a), rtol=1e-5, atol=1e-6), act
        assert np.allclose(bg, fprime(a).sum(1), rtol=1e-5, atol=1e-5), act
    c.pop_forward(z.copy(), None, c.RELU, 1)
    raises(ValueError, c.pop_forward, z, bias[:3].copy(), c.RELU, 1, match="bias has 3 entries")
    raises(ValueError, c.pop_forward, z, None, 7, 1, match="act")
    raises(ValueError, c.pop_forward, z, None, c.RELU, 0, match="n_threads")
    raises(ValueError, c.CoreProjection, -1, 3, match="n_pre")
    raises(TypeError, p.prune_count, 1.5, 1)
    print("smoke_binding: all checks passed")


if __name__ == "__main__":
    main()
