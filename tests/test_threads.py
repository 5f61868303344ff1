"""Thread-count determinism: results and grads bitwise equal for 1 vs 2 threads, and the same
seed builds / grows the same structure whatever the thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from reference import snapshot
from strategies import arrays_NB, build_network, network_specs, seeds

import connectome as cx
from connectome import _core


def _bits(a):
    a = np.asarray(a)
    return a.dtype, a.shape, a.tobytes()


def _big_core(seed, n_pre=3000, n_post=2500, fanout=120):
    cp = _core.CoreProjection(n_pre, n_post)
    cp.fill_random(fanout, _core.INIT_NORMAL, 0.0, 1.0, seed, 2)
    return cp


def test_core_kernels_bitwise_identical_for_1_and_2_threads():
    rng = np.random.default_rng(0)
    cp = _big_core(1)
    cp.enable_column(_core.COL_GRAD)
    B = 8
    x = arrays_NB(cp.n_pre, B, rng)
    dy = arrays_NB(cp.n_post, B, rng)
    out = {}
    for t in (1, 2, 3):
        y = np.zeros((cp.n_post, B), np.float32)
        cp.forward(x, y, t)
        dx = np.zeros((cp.n_pre, B), np.float32)
        cp.fill_column(_core.COL_GRAD, 0.0, t)
        cp.backward(x, dy, dx, True, t)
        z = y.copy()
        _core.pop_forward(z, rng.uniform(-1, 1, cp.n_post).astype(np.float32) * 0 + 0.25, _core.TANH, t)
        d = dy.copy()
        bg = np.zeros(cp.n_post, np.float32)
        _core.pop_backward(z, d, bg, _core.TANH, t)
        out[t] = [_bits(v) for v in (y, dx, cp.get_column(_core.COL_GRAD), z, d, bg)]
    assert out[1] == out[2] == out[3]
    assert np.any(y != 0)  # the kernels did something


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 5])
def test_core_random_structure_independent_of_threads(seed):
    a = _big_core(seed, 500, 700, 40)
    b = _core.CoreProjection(500, 700)
    b.fill_random(40, _core.INIT_NORMAL, 0.0, 1.0, seed, 1)
    assert [_bits(v) for v in a.to_coo()] == [_bits(v) for v in b.to_coo()]
    a.grow(5000, _core.INIT_UNIFORM, -1.0, 1.0, seed + 1, 2)
    b.grow(5000, _core.INIT_UNIFORM, -1.0, 1.0, seed + 1, 1)
    assert [_bits(v) for v in a.to_coo()] == [_bits(v) for v in b.to_coo()]
    assert a.prune_count(3000, 2) == b.prune_count(3000, 1) == 3000
    assert a.prune_threshold(0.5, 2) == b.prune_threshold(0.5, 1)
    a.remove_post(np.arange(0, 700, 3, dtype=np.int32), 2)
    b.remove_post(np.arange(0, 700, 3, dtype=np.int32), 1)
    assert [_bits(v) for v in a.to_coo()] == [_bits(v) for v in b.to_coo()]


def _run(spec, n_threads, x_seed):
    cx.set_num_threads(n_threads)
    assert cx.get_num_threads() == (n_threads if _core.openmp_enabled() else 1)
    net = build_network(spec)
    rng = np.random.default_rng(x_seed)
    ins = [p for p in net.inputs]
    outs = [p for p in net.outputs]
    x = {p.name: rng.uniform(-1, 1, (spec.batch, p.size)).astype(np.float32) for p in ins}
    dy = {p.name: rng.normal(size=(spec.batch, p.size)).astype(np.float32) for p in outs}
    y = net.forward(x if len(ins) > 1 else x[ins[0].name])
    dx = net.backward(dy if len(outs) > 1 else dy[outs[0].name])
    # structural edits with seeds, then another pass
    for k, p in enumerate(net.projections):
        free = p.pre.size * p.post.size - p.n_synapses
        p.grow(free // 2, weight=None, seed=k + 11)
        p.prune(fraction=0.25)
    for pop in net.populations.values():
        pop.add_neurons(2)
    x2 = {p.name: np.concatenate([x[p.name], np.ones((spec.batch, 2), np.float32)], axis=1) for p in ins}
    y2 = net.forward(x2 if len(ins) > 1 else x2[ins[0].name])
    return y, dx, y2, snapshot(net)


def _flat(v):
    if isinstance(v, dict):
        return [(k, _bits(v[k])) for k in sorted(v)]
    return [_bits(v)]


@settings(max_examples=20)
@given(network_specs(max_populations=4, max_size=30, max_batch=8), seeds)
def test_network_bitwise_identical_for_1_and_2_threads(spec, x_seed):
    before = cx.get_num_threads()
    try:
        r1 = _run(spec, 1, x_seed)
        r2 = _run(spec, 2, x_seed)
    finally:
        cx.set_num_threads(before)
    for a, b in zip(r1[:3], r2[:3]):
        assert _flat(a) == _flat(b)
    s1, s2 = r1[3], r2[3]
    assert s1["pop_order"] == s2["pop_order"]
    for name in s1["pops"]:
        assert [_bits(v) for v in s1["pops"][name][2:]] == [_bits(v) for v in s2["pops"][name][2:]]
    for p1, p2 in zip(s1["projs"], s2["projs"]):
        assert [_bits(v) for v in p1[2:]] == [_bits(v) for v in p2[2:]]


def test_large_network_bitwise_identical_for_1_2_and_5_threads(threads):
    res = []
    for t in (1, 2, 5):
        cx.set_num_threads(t)
        net = cx.Network(seed=3)
        a = net.add_population("a", 2000)
        h = net.add_population("h", 3000, activation="relu")
        o = net.add_population("o", 500, activation="sigmoid")
        net.connect(a, h, fanout=100)
        net.connect(h, o, fanout=50)
        net.connect(a, o, fanout=20)
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (16, 2000)).astype(np.float32)
        y = net.forward(x)
        dx = net.backward(rng.normal(size=(16, 500)).astype(np.float32))
        grads = [p.grad() for p in net.projections]
        res.append(
            [_bits(v) for v in (y, dx, *grads, h.bias_grad, o.bias_grad)]
            + [_bits(v) for p in net.projections for v in p.to_coo()]
        )
    assert res[0] == res[1] == res[2]


def test_set_num_threads_validates(threads):
    omp = _core.openmp_enabled()
    cx.set_num_threads(2)
    assert cx.get_num_threads() == (2 if omp else 1)
    cx.set_num_threads(1)
    assert cx.get_num_threads() == 1
    with pytest.raises(ValueError):
        cx.set_num_threads(0)
    with pytest.raises(TypeError):
        cx.set_num_threads(1.5)
    assert cx.get_num_threads() == 1


def _default_threads_in_subprocess(env_threads, affinity):
    import os
    import subprocess
    import sys
    import tempfile

    code = (
        "import os\n"
        f"aff = {affinity!r}\n"
        "if aff is not None: os.sched_setaffinity(0, aff)\n"
        "import connectome as cx\n"
        "print(cx.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_threads is not None:
        env["OMP_NUM_THREADS"] = str(env_threads)
    # run where the test process imported connectome from (installed or in-place build)
    pkg_parent = str(__import__("pathlib").Path(cx.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    # -P and a neutral cwd: never let the source tree shadow the package under test
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_default_thread_count_respects_env_and_affinity():
    import os

    omp = _core.openmp_enabled()
    usable = len(os.sched_getaffinity(0))
    assert _default_threads_in_subprocess(1, None) == 1
    assert _default_threads_in_subprocess(3, None) == (3 if omp else 1)
    if usable >= 2:
        one_cpu = {min(os.sched_getaffinity(0))}
        assert _default_threads_in_subprocess(None, one_cpu) == 1
    assert 1 <= _default_threads_in_subprocess(None, None) <= max(usable, 1)
