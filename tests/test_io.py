"""Save / load: exact round trips (structure, weights, biases, RNG, optimiser state), atomic
writes, and clear errors for missing, truncated, corrupted or foreign files."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import types
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import build_network, network_specs, seeds

import connectome as cx
from connectome import _core
from connectome import io as cio

HAS_DROPOUT = hasattr(cx.Population, "dropout")
HAS_OPTIM = importlib.util.find_spec("connectome.optim") is not None


# ------------------------------------------------------------------ helpers
def outputs(net, x):
    """Eval-mode outputs (predict when the network has it) as a dict name -> array."""
    y = net.predict(x) if hasattr(net, "predict") else net.forward(x)
    if isinstance(y, dict):
        return y
    return {"_": y}


def assert_same_network(a, b):
    """Same populations (order, sizes, activations, biases, dropout), same projections (order,
    synapses, weights bitwise, fan-out rule, initialiser), same RNG state and mode."""
    assert list(a.populations) == list(b.populations)
    for pa, pb in zip(a.populations.values(), b.populations.values()):
        assert (pa.name, pa.size, pa.activation) == (pb.name, pb.size, pb.activation)
        assert pa.bias.dtype == pb.bias.dtype == np.float32
        assert pa.bias.tobytes() == pb.bias.tobytes()
        assert getattr(pa, "dropout", 0.0) == getattr(pb, "dropout", 0.0)
    assert len(a.projections) == len(b.projections)
    for qa, qb in zip(a.projections, b.projections):
        assert (qa.pre.name, qa.post.name) == (qb.pre.name, qb.post.name)
        assert qa.fanout_rule == qb.fanout_rule
        assert qa._init == qb._init
        assert qa.init == qb.init
        for u, v in zip(qa.to_coo(), qb.to_coo()):
            assert u.dtype == v.dtype
            assert u.tobytes() == v.tobytes()
    assert [p.name for p in a.inputs] == [p.name for p in b.inputs]
    assert [p.name for p in a.outputs] == [p.name for p in b.outputs]
    assert a._rng.bit_generator.state == b._rng.bit_generator.state
    assert getattr(a, "training", True) == getattr(b, "training", True)


def assert_bitwise_outputs(a, b, x):
    ya, yb = outputs(a, x), outputs(b, x)
    assert ya.keys() == yb.keys()
    for k in ya:
        assert ya[k].dtype == yb[k].dtype
        assert ya[k].tobytes() == yb[k].tobytes(), f"output {k} differs after load"


def mlp(seed=0, acts=("relu", "tanh", "linear"), sizes=(12, 20, 16, 5), fanouts=(6, 5, 3)):
    net = cx.Network(seed=seed)
    pops = [net.add_population("in", sizes[0])]
    for k, (n, act) in enumerate(zip(sizes[1:], acts)):
        pops.append(net.add_population(f"h{k}", n, activation=act))
    inits = ["uniform", "normal", 0.25]
    for k, f in enumerate(fanouts):
        net.connect(pops[k], pops[k + 1], fanout=f, init=inits[k % 3])
    rng = np.random.default_rng(seed + 1)
    for p in pops[1:]:
        p.bias = rng.normal(size=p.size)
    return net


def diamond(seed=3):
    """Two inputs, a skip connection, two outputs, projections created out of topological order."""
    net = cx.Network(seed=seed)
    b = net.add_population("b", 7, activation="sigmoid")
    a = net.add_population("a", 5)
    c = net.add_population("c", 9, activation="relu")
    d = net.add_population("d", 4, activation="tanh")
    e = net.add_population("e", 3)
    z = net.add_population("z", 6)  # second input
    net.connect(c, d, fanout=3, init="normal", scale=0.7)
    net.connect(a, b, fanout=7)
    net.connect(b, c, fanout=4)
    net.connect(a, c, fanout=2, init=-0.5)
    net.connect(z, d, fanout=4, init="zeros")
    net.connect(c, e, fanout=3)
    b.bias = np.linspace(-1, 1, 7)
    c.bias = 0.1
    return net


def input_batch(net, rng, batch=8):
    xs = {p.name: rng.normal(size=(batch, p.size)).astype(np.float32) for p in net.inputs}
    return xs[next(iter(xs))] if len(xs) == 1 else xs


def rewrite(path, mutate, fix_checksum=True):
    """Rewrite the archive at path after mutate(arrays: dict) (header given as a dict)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes().decode())
    mutate(arrays, header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8).copy()
    if fix_checksum:
        arrays["checksum"] = np.frombuffer(cio._digest(arrays).encode(), dtype=np.uint8).copy()
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# --------------------------------------------------------------- round trips
@pytest.mark.parametrize("build", [mlp, diamond, lambda: mlp(5, ("sigmoid", "relu", "tanh"))])
def test_round_trip_bitwise(build, tmp_path):
    net = build()
    path = tmp_path / "model.npz"
    net.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    loaded = cx.io.load(path)
    assert_same_network(net, loaded)
    assert_bitwise_outputs(net, loaded, input_batch(net, np.random.default_rng(0)))
    assert loaded.n_synapses == net.n_synapses


@settings(max_examples=60)  # each example writes and fsyncs a file
@given(spec=network_specs(max_populations=5, max_size=10), seed=seeds)
def test_round_trip_random_dags(spec, seed):
    net = build_network(spec)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.cx")  # any name: nothing is appended
        net.save(path)
        assert os.listdir(d) == ["m.cx"]
        loaded = cio.load(path)
    assert_same_network(net, loaded)
    rng = np.random.default_rng(seed)
    x = {p.name: rng.uniform(-1, 1, (spec.batch, p.size)).astype(np.float32) for p in net.inputs}
    x = x[net.inputs[0].name] if len(x) == 1 else x
    assert_bitwise_outputs(net, loaded, x)


def test_round_trip_after_structural_edits(tmp_path):
    net = mlp(seed=7)
    h0, h1 = net["h0"], net["h1"]
    p0, p1, p2 = net.projections
    p0.prune(fraction=0.3)
    p1.grow(10, weight=None)
    p2.rewire(0.4)
    h0.add_neurons(4)
    h1.remove_neurons([0, 3, 7])
    h0.remove_neurons([2])
    p0.remove_synapses(*[a[:2] for a in p0.to_coo()[:2]])
    p1.add_synapses(0, np.flatnonzero(~np.isin(np.arange(h1.size), p1.synapses(0)[0]))[:1], 0.75)
    net.save(tmp_path / "m.npz")
    loaded = cio.load(tmp_path / "m.npz")
    assert_same_network(net, loaded)
    assert_bitwise_outputs(net, loaded, input_batch(net, np.random.default_rng(1), batch=5))
    # A projection left with no synapse at all, and an isolated population, also round-trip.
    p2.prune(threshold=1e9)
    net.add_population("alone", 3)
    assert p2.n_synapses == 0
    net.save(tmp_path / "m.npz")
    loaded = cio.load(tmp_path / "m.npz")
    assert_same_network(net, loaded)


def test_empty_network_round_trips(tmp_path):
    net = cx.Network(seed=1)
    net.save(tmp_path / "e.npz")
    loaded = cio.load(tmp_path / "e.npz")
    assert loaded.populations == {} and loaded.projections == []
    assert loaded._draw_seed() == net._draw_seed()


def test_rng_continues_identically(tmp_path):
    """After load, every random operation draws what the original would have drawn."""
    net = mlp(seed=11)
    net._draw_seed()  # advance the generator: the state, not the seed, is saved
    net.save(tmp_path / "m.npz")
    loaded = cio.load(tmp_path / "m.npz")
    for a in (net, loaded):
        a.projections[0].grow(7, weight=None)  # weights from the initialiser
        a.projections[1].rewire(0.5)
        a["h1"].add_neurons(3)  # incoming fan-in from the initialiser, outgoing zeros
        a.projections[2].grow(2, weight=None)
    assert_same_network(net, loaded)
    assert_bitwise_outputs(net, loaded, input_batch(net, np.random.default_rng(2)))
    assert net._draw_seed() == loaded._draw_seed()


def test_other_bit_generators_round_trip(tmp_path):
    """A network seeded with a Generator over MT19937 (array state) or Philox keeps it."""
    for bg in (np.random.MT19937(5), np.random.Philox(6), np.random.SFC64(7)):
        net = cx.Network(seed=np.random.Generator(bg))
        a = net.add_population("a", 4)
        net.connect(a, net.add_population("b", 3), fanout=2)
        net.save(tmp_path / "g.npz")
        loaded = cio.load(tmp_path / "g.npz")
        assert type(loaded._rng.bit_generator) is type(bg)
        assert [net._draw_seed() for _ in range(3)] == [loaded._draw_seed() for _ in range(3)]


def test_dropout_and_training_mode(tmp_path):
    net = mlp(seed=2)
    if HAS_DROPOUT:
        net["h0"].dropout = 0.25
        net["h1"].dropout = 0.5
    if hasattr(net, "eval"):
        net.eval()
    net.save(tmp_path / "d.npz")
    loaded = cio.load(tmp_path / "d.npz")
    assert_same_network(net, loaded)
    with np.load(tmp_path / "d.npz") as z:
        header = json.loads(z["header"].tobytes())
    assert [p["dropout"] for p in header["populations"]] == (
        [0.0, 0.25, 0.5, 0.0] if HAS_DROPOUT else [0.0] * 4
    )
    assert header["training"] is (not hasattr(net, "eval"))
    if HAS_DROPOUT and hasattr(loaded, "train"):
        # In training mode the dropout masks come from the (restored) network generator.
        net.train()
        loaded.train()
        x = input_batch(net, np.random.default_rng(3))
        assert net.forward(x).tobytes() == loaded.forward(x).tobytes()


def test_header_documents_the_network(tmp_path):
    net = diamond()
    net.save(tmp_path / "h.npz")
    with np.load(tmp_path / "h.npz", allow_pickle=False) as z:
        names = set(z.files)
        header = json.loads(z["header"].tobytes().decode("utf-8"))
    assert header["format"] == cio.FORMAT_NAME and header["schema_version"] == cio.SCHEMA_VERSION
    assert header["library_version"] == cx.__version__
    assert [p["name"] for p in header["populations"]] == list(net.populations)
    assert [(q["pre"], q["post"], q["fanout_rule"]) for q in header["projections"]] == [
        (p.pre.name, p.post.name, p.fanout_rule) for p in net.projections
    ]
    assert header["projections"][3]["init"] == {
        "kind": "const",
        "a": -0.5,
        "b": 0.0,
        "description": "constant(-0.5)",
    }
    assert header["optimizer"] is None
    n_pop, n_proj = len(net.populations), len(net.projections)
    expected = {"header", "checksum"} | {f"pop.{i}.bias" for i in range(n_pop)}
    expected |= {f"proj.{j}.{k}" for j in range(n_proj) for k in ("counts", "post", "w")}
    assert names == expected  # PCG64's state is plain ints: no rng arrays
    for j, p in enumerate(net.projections):
        with np.load(tmp_path / "h.npz") as z:
            counts, post, w = z[f"proj.{j}.counts"], z[f"proj.{j}.post"], z[f"proj.{j}.w"]
        pre_c, post_c, w_c = p.to_coo()
        assert np.array_equal(np.repeat(np.arange(p.pre.size), counts), pre_c)
        assert np.array_equal(post, post_c) and np.array_equal(w, w_c)


# ----------------------------------------------------------- optimiser state
class FakeOptimizer:
    """Stands in for cx.optim: state_dict with every kind of value the encoder supports."""

    def __init__(self, net, state=None):
        self.net = net
        self.state = state

    def state_dict(self):
        return self.state


WEIRD_STATE = {
    "kind": "Adam",
    "lr": 0.001,
    "betas": (0.9, 0.999),
    "step_count": 12,
    "flags": [True, None, "x"],
    "nan": float("nan"),
    "big": 2**70,
    "scalar": np.float32(1.5),
    "by_index": {0: np.arange(3, dtype=np.int64), 1: np.zeros((2, 2), np.float32)},
    "nested": {"a": [np.ones(2, np.float64), (1, 2.5)], "__tuple__": "not a tag"},
}


def assert_same_state(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_same_state(u, v)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b) and np.array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def install_fake_optim(monkeypatch, calls):
    fake = types.ModuleType("connectome.optim")

    def from_state_dict(net, d):
        calls.append((net, d))
        return FakeOptimizer(net, d)

    fake.from_state_dict = from_state_dict
    monkeypatch.setitem(sys.modules, "connectome.optim", fake)
    monkeypatch.setattr(cx, "optim", fake, raising=False)


def test_optimizer_state_round_trip_mechanics(tmp_path, monkeypatch):
    """State columns, per-neuron state and an arbitrary state_dict survive (fake optimiser)."""
    net = mlp(seed=4)
    rng = np.random.default_rng(0)
    p0, p1, _ = net.projections
    for col in (_core.COL_STATE0, _core.COL_STATE1):
        p0._core.enable_column(col)
        p0._core.set_column(col, rng.normal(size=p0.n_synapses).astype(np.float32))
    p1._core.enable_column(_core.COL_STATE0)
    p1._core.set_column(_core.COL_STATE0, rng.normal(size=p1.n_synapses).astype(np.float32))
    h0 = net["h0"]
    h0._neuron_state = {"momentum": rng.normal(size=h0.size).astype(np.float32), "m2": np.ones((h0.size, 2))}
    calls = []
    install_fake_optim(monkeypatch, calls)
    net.save(tmp_path / "o.npz", optimizer=FakeOptimizer(net, WEIRD_STATE))

    plain = cio.load(tmp_path / "o.npz")  # optimiser state ignored
    assert_same_network(net, plain)
    assert not plain.projections[0]._core.column_enabled(_core.COL_STATE0)
    assert calls == []

    loaded, opt = cio.load(tmp_path / "o.npz", with_optimizer=True)
    assert_same_network(net, loaded)
    assert len(calls) == 1 and calls[0][0] is loaded and opt.net is loaded
    assert_same_state(WEIRD_STATE, opt.state)
    for qa, qb in zip(net.projections, loaded.projections):
        for col in (_core.COL_STATE0, _core.COL_STATE1):
            assert qa._core.column_enabled(col) == qb._core.column_enabled(col)
            if qa._core.column_enabled(col):
                assert qa._core.get_column(col).tobytes() == qb._core.get_column(col).tobytes()
    assert list(loaded["h0"]._neuron_state) == ["momentum", "m2"]
    for k, v in h0._neuron_state.items():
        got = loaded["h0"]._neuron_state[k]
        assert got.dtype == v.dtype and got.tobytes() == v.tobytes()

    net.save(tmp_path / "none.npz")  # no optimiser: with_optimizer gives None
    loaded, opt = cio.load(tmp_path / "none.npz", with_optimizer=True)
    assert opt is None and not loaded.projections[0]._core.column_enabled(_core.COL_STATE0)


def test_optimizer_argument_errors(tmp_path):
    net = mlp()
    with pytest.raises(TypeError, match="state_dict"):
        net.save(tmp_path / "x.npz", optimizer=object())
    with pytest.raises(ValueError, match="another network"):
        net.save(tmp_path / "x.npz", optimizer=FakeOptimizer(mlp(), {}))
    with pytest.raises(TypeError, match="dict"):
        net.save(tmp_path / "x.npz", optimizer=FakeOptimizer(net, [1, 2]))
    with pytest.raises(TypeError, match=r"optimizer.state_dict\(\)\['f'\] is a function"):
        net.save(tmp_path / "x.npz", optimizer=FakeOptimizer(net, {"f": lambda: 0}))
    with pytest.raises(TypeError, match="dtype"):
        net.save(tmp_path / "x.npz", optimizer=FakeOptimizer(net, {"s": np.array(["a"])}))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_real_optimizer_continues_identically(tmp_path, kind):
    """With cx.optim: train, save with the optimiser, load, edit and train both on: bitwise
    equal.  Without it (before the optim helper lands): loading its state says what is missing."""
    net = mlp(seed=9, acts=("relu", "relu", "linear"))
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 16, 12)).astype(np.float32)
    if HAS_OPTIM:
        from connectome import optim

        def step(n, o, x):
            o.zero_grad()
            y = n.forward(x)
            n.backward(y - 1.0)
            o.step()

        if kind == "SGD":
            opt = optim.SGD(net, lr=0.05, momentum=0.9, weight_decay=1e-3, l1=1e-3)
        else:
            opt = optim.Adam(net, lr=0.01, betas=(0.8, 0.99), weight_decay=1e-3, l1=1e-3)
        for x in X[:3]:
            step(net, opt, x)
        net.save(tmp_path / "t.npz", optimizer=opt)
        loaded, opt2 = cio.load(tmp_path / "t.npz", with_optimizer=True)
        assert type(opt2) is type(opt) and opt2.state_dict() == opt.state_dict()
        for a, o in ((net, opt), (loaded, opt2)):
            step(a, o, X[3])
            a["h0"].add_neurons(2)  # per-neuron state grows, new synapses start from zero state
            a.projections[1].rewire(0.3)
            for x in X[4:]:
                step(a, o, x)
        assert_same_network(net, loaded)
        assert_bitwise_outputs(net, loaded, X[0])
        for qa, qb in zip(net.projections, loaded.projections):
            for col in (_core.COL_STATE0, _core.COL_STATE1):
                assert qa._core.column_enabled(col) == qb._core.column_enabled(col)
                assert qa._core.get_column(col).tobytes() == qb._core.get_column(col).tobytes()
        assert opt.state_dict() == opt2.state_dict()
    else:
        net.save(tmp_path / "t.npz", optimizer=FakeOptimizer(net, {"lr": 0.1}))
        assert isinstance(cio.load(tmp_path / "t.npz"), cx.Network)
        with pytest.raises(cio.FormatError, match="optim"):
            cio.load(tmp_path / "t.npz", with_optimizer=True)


# ------------------------------------------------------------------ atomicity
def test_save_replaces_atomically_and_keeps_mode(tmp_path):
    path = tmp_path / "m.npz"
    mlp(seed=1).save(str(path))
    os.chmod(path, 0o640)
    net = mlp(seed=2)
    net.save(path)
    assert os.listdir(tmp_path) == ["m.npz"]
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert_same_network(net, cio.load(path))


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch, where):
    path = tmp_path / "m.npz"
    old = mlp(seed=1)
    old.save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        if where == "savez":  # a partial write, then the crash
            args[0].write(b"PK\x03\x04partial")
        raise OSError(f"simulated failure in {where}")

    if where == "savez":
        monkeypatch.setattr(cio.np, "savez", fail)
    elif where == "fsync":
        monkeypatch.setattr(cio.os, "fsync", fail)
    else:
        monkeypatch.setattr(cio.os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        mlp(seed=2).save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]  # no temp file left
    assert path.read_bytes() == before
    assert_same_network(old, cio.load(path))


def test_interrupted_save_leaves_no_temp_file(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cio.np, "savez", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mlp().save(tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


def test_save_argument_errors(tmp_path):
    net = mlp()
    with pytest.raises(TypeError, match="path"):
        net.save(123)
    with pytest.raises(TypeError, match="bytes"):
        net.save(b"m.npz")
    with pytest.raises(ValueError, match="path=''"):
        net.save("")
    with pytest.raises(TypeError, match="Network"):
        cio.save("not a net", tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "no_such_dir" / "m.npz")
    with pytest.raises(TypeError, match="with_optimizer"):
        cio.load(tmp_path / "x.npz", with_optimizer="yes")


# ------------------------------------------------------------------ corruption
@pytest.fixture
def saved(tmp_path):
    net = diamond()
    path = tmp_path / "m.npz"
    net.save(path)
    return net, path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        cio.load(tmp_path / "nope.npz")


def test_truncated_files(saved):
    _, path = saved
    data = path.read_bytes()
    for cut in sorted({0, 1, 3, 4, 30, len(data) // 3, len(data) // 2, len(data) - 22, len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.raises(cio.FormatError, match=r"m\.npz") as e:
            cio.load(path)
        assert isinstance(e.value, ValueError)


def test_flipped_bytes_never_load_wrong_data(saved):
    """Flip one bit at many positions: either a FormatError, or (a flip in zip metadata that
    nothing depends on, e.g. a timestamp) the exact network."""
    net, path = saved
    data = bytearray(path.read_bytes())
    detected = 0
    for pos in range(0, len(data), max(1, len(data) // 400)):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        path.write_bytes(bytes(bad))
        try:
            loaded = cio.load(path)
        except cio.FormatError as e:
            assert "m.npz" in str(e)
            detected += 1
        else:
            assert_same_network(net, loaded)
    assert detected > 0


def test_checksum_mismatch(saved):
    _, path = saved

    def tamper(arrays, header):
        arrays["proj.0.w"] = arrays["proj.0.w"] * np.float32(2)

    rewrite(path, tamper, fix_checksum=False)
    with pytest.raises(cio.FormatError, match="checksum mismatch"):
        cio.load(path)


def mutation(name):
    def apply(arrays, header):
        if name == "version":
            header["schema_version"] = 2
        elif name == "format":
            header["format"] = "something.else"
        elif name == "missing_array":
            del arrays["proj.1.post"]
        elif name == "missing_field":
            del header["populations"][1]["activation"]
        elif name == "extra_array":
            arrays["stray"] = np.zeros(3)
        elif name == "bad_dtype":
            arrays["proj.0.post"] = arrays["proj.0.post"].astype(np.float32)
        elif name == "bad_shape":
            arrays["pop.0.bias"] = arrays["pop.0.bias"][:-1]
        elif name == "count_sum":
            arrays["proj.0.counts"] = arrays["proj.0.counts"] + 1
        elif name == "out_of_range":
            post = arrays["proj.0.post"].copy()
            post[-1] = 1000
            arrays["proj.0.post"] = post
        elif name == "unsorted":
            post, counts = arrays["proj.1.post"].copy(), arrays["proj.1.counts"]
            k = int(np.flatnonzero(counts >= 2)[0])
            s = int(counts[:k].sum())
            post[s], post[s + 1] = post[s + 1], post[s]
            arrays["proj.1.post"] = post
        elif name == "unknown_pop":
            header["projections"][0]["pre"] = "ghost"
        elif name == "cycle":
            header["projections"][1]["pre"], header["projections"][1]["post"] = "d", "c"
        elif name == "activation":
            header["populations"][0]["activation"] = "swish"
        elif name == "init_kind":
            header["projections"][0]["init"]["kind"] = "xavier"
        elif name == "wrong_type":
            header["populations"][0]["size"] = "7"
        elif name == "rng":
            header["rng"]["bit_generator"] = "os.system"
        elif name == "array_ref":
            header["rng"] = {"__array__": "rng.99"}

    return apply


@pytest.mark.parametrize(
    "name,message",
    [
        ("version", "schema_version=2 is not supported.*newer"),
        ("format", "format is 'something.else'"),
        ("missing_array", "'proj.1.post' is missing"),
        ("missing_field", r"populations\[1\]\.activation is missing"),
        ("extra_array", "unexpected arrays.*stray"),
        ("bad_dtype", "'proj.0.post' has dtype float32, expected int32"),
        ("bad_shape", "'pop.0.bias' has shape"),
        ("count_sum", "counts"),
        ("out_of_range", "outside"),
        ("unsorted", "not strictly increasing"),
        ("unknown_pop", "'ghost' is not a population"),
        ("cycle", "cycle"),
        ("activation", "'swish' is unknown"),
        ("init_kind", "'xavier' is unknown"),
        ("wrong_type", "size='7' has the wrong type"),
        ("rng", "not a numpy bit generator"),
        ("array_ref", "rng.99"),
    ],
)
def test_inconsistent_files_raise_format_error(saved, name, message):
    _, path = saved
    rewrite(path, mutation(name))
    with pytest.raises(cio.FormatError, match=message) as e:
        cio.load(path)
    assert "m.npz" in str(e.value) and isinstance(e.value, ValueError)


def test_header_that_is_not_json(saved):
    _, path = saved
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["header"] = np.frombuffer(b"{not json", dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(cio.FormatError, match="not valid UTF-8 JSON"):
        cio.load(path)


@pytest.mark.parametrize("kind", ["text", "npy", "other_npz", "pickle_npz", "zip"])
def test_foreign_files(tmp_path, kind):
    path = tmp_path / "f.npz"
    if kind == "text":
        path.write_text("hello, I am not a model\n")
        message = "not a zip"
    elif kind == "npy":
        np.save(path, np.arange(3))
        os.replace(str(path) + ".npy", path)
        message = "not a zip"
    elif kind == "other_npz":
        with open(path, "wb") as f:
            np.savez(f, a=np.arange(3))
        message = "'header' array is missing"
    elif kind == "pickle_npz":
        with open(path, "wb") as f:
            np.savez(f, header=np.array([{"x": 1}], dtype=object))
        message = "truncated or corrupt"
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("header.npy", b"garbage")
        message = "'header' is not a .npy array"
    with pytest.raises(cio.FormatError, match=message):
        cio.load(path)


@given(data=st.binary(min_size=0, max_size=200))
def test_random_bytes_after_zip_magic(data):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "r.npz")
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04" + data)
        with pytest.raises(cio.FormatError):
            cio.load(path)


def test_invalid_optimizer_state_is_a_format_error(tmp_path):
    net = mlp()
    net.save(tmp_path / "o.npz", optimizer=FakeOptimizer(net, {"type": "NoSuchOptimizer", "lr": 0.1}))
    assert isinstance(cio.load(tmp_path / "o.npz"), cx.Network)  # the network alone still loads
    message = "optimiser state is invalid" if HAS_OPTIM else "optim is unavailable"
    with pytest.raises(cio.FormatError, match=message):
        cio.load(tmp_path / "o.npz", with_optimizer=True)
