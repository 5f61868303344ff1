"""cx.fit, History and Network.predict: learning on a tiny problem, the plasticity protocol, errors."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from reference import assert_same_snapshot, snapshot

import connectome as cx
from connectome import losses
from connectome.optim import SGD
from connectome.training import History, fit


def blobs(n=240, n_features=8, n_classes=3, seed=0):
    """Gaussian blobs around well-separated centres: linearly separable in practice."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    X = (centres[y] + rng.normal(size=(n, n_features))).astype(np.float32)
    return X, y


def make_net(seed=0, n_in=8, n_hidden=32, n_out=3, dropout=0.0):
    net = cx.Network(seed=seed)
    net.add_population("in", n_in)
    net.add_population("hid", n_hidden, activation="relu", dropout=dropout)
    net.add_population("out", n_out)
    net.connect("in", "hid", fanout=n_hidden // 2)
    net.connect("hid", "out", fanout=n_out)
    return net


@dataclass
class FakeChanges:
    pruned: int = 0
    grown: int = 0
    neurons_added: int = 0
    neurons_removed: int = 0


class Recorder:
    """A rule following the plasticity protocol that records every call."""

    def __init__(self, every="epoch", changes=None):
        self.every = every
        self.changes = changes
        self.calls = []

    def bind(self, net, optimizer=None, *, epochs=None, steps_per_epoch=None):
        self.calls.append(("bind", net, optimizer, epochs, steps_per_epoch))

    def on_step(self, net, optimizer, *, step, epoch, batch, loss_fn):
        self.calls.append(("step", step, epoch, batch, net.training))
        if self.every != "epoch" and step % self.every == 0:
            return self.changes
        return None

    def on_epoch(self, net, optimizer, *, epoch, logs, batch, loss_fn):
        self.calls.append(("epoch", epoch, dict(logs), batch, loss_fn))
        return self.changes if self.every == "epoch" else FakeChanges()


# ----------------------------------------------------------------- learning
def test_fit_learns_a_separable_problem():
    X, y = blobs()
    net = make_net()
    h = fit(
        net, X, y, epochs=8, batch_size=16, optimizer=SGD(net, lr=0.05, momentum=0.9), progress=False, seed=0
    )
    assert isinstance(h, History) and len(h) == 8
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["accuracy"][-1] > 0.9
    acc = losses.accuracy(net.predict(X), y)
    assert acc > 0.9, f"train accuracy after fit {acc:.3f}, chance is 1/3"


def test_default_optimizer_is_sgd_with_momentum():
    X, y = blobs()
    net = make_net()
    h = fit(net, X, y, epochs=4, batch_size=16, progress=False, seed=1)
    assert h["loss"][-1] < 0.5 * h["loss"][0] and h["accuracy"][-1] > 0.9


def test_fit_mse_regression_and_history_keys():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(128, 8)).astype(np.float32)
    W = rng.normal(size=(8, 2))
    Y = (X @ W * 0.3).astype(np.float32)
    net = make_net(n_out=2)
    opt = SGD(net, lr=0.02)
    Xv, Yv = X[:32], Y[:32]
    h = fit(
        net,
        X,
        Y,
        epochs=6,
        batch_size=32,
        optimizer=opt,
        loss="mse",
        validation_data=(Xv, Yv),
        progress=False,
    )
    assert h["loss"][-1] < h["loss"][0]
    expected = [
        "loss",
        "val_loss",
        "n_synapses",
        "density",
        "neurons_born",
        "neurons_removed",
        "synapses_pruned",
        "synapses_grown",
        "seconds",
    ]
    assert h.keys() == expected and "accuracy" not in h and "val_accuracy" not in h
    for k in expected:
        assert len(h[k]) == 6
    assert h.epoch == [1, 2, 3, 4, 5, 6]
    # the last validation loss is the eval-mode loss of the final network
    assert h["val_loss"][-1] == pytest.approx(losses.mse(net.predict(Xv), Yv)[0], rel=1e-6)


def test_history_records_structure_and_validation():
    X, y = blobs(n=100)
    Xv, yv = blobs(n=40, seed=1)
    net = make_net(dropout=0.2)
    h = fit(
        net,
        X,
        y,
        epochs=3,
        batch_size=25,
        optimizer=SGD(net, lr=0.05),
        validation_data=(Xv, yv),
        progress=False,
    )
    assert h.keys() == [
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "n_synapses",
        "density",
        "neurons_born",
        "neurons_removed",
        "synapses_pruned",
        "synapses_grown",
        "seconds",
    ]
    slots = sum(p.pre.size * p.post.size for p in net.projections)
    assert h["n_synapses"] == [net.n_synapses] * 3
    assert h["density"][-1] == pytest.approx(net.n_synapses / slots)
    assert h["synapses_pruned"] == [0, 0, 0] and h["neurons_born"] == [0, 0, 0]
    assert all(s > 0 for s in h["seconds"])
    vl, _ = losses.softmax_cross_entropy(net.predict(Xv), yv)
    assert h["val_loss"][-1] == pytest.approx(vl, rel=1e-6)
    assert h["val_accuracy"][-1] == losses.accuracy(net.predict(Xv), yv)
    assert h.history["loss"] is h["loss"]
    table = h.to_table()
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["epoch", "loss", "accuracy"]
    assert lines[3].split()[0] == "3" and f"{h['n_synapses'][-1]:,}" in lines[3]
    with pytest.raises(KeyError, match="'nope' is not recorded"):
        h["nope"]
    assert "History(epochs=3" in repr(h)


def test_fit_is_reproducible_from_the_network_seed():
    X, y = blobs(n=64)
    runs = []
    for _ in range(2):
        net = make_net(seed=3, dropout=0.3)
        h = fit(net, X, y, epochs=2, batch_size=8, optimizer=SGD(net, lr=0.05), progress=False)
        runs.append((h["loss"], [p.weights for p in net.projections]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert np.array_equal(a, b)
    net = make_net(seed=3, dropout=0.3)
    h = fit(net, X, y, epochs=2, batch_size=8, optimizer=SGD(net, lr=0.05), progress=False, seed=99)
    assert h["loss"] != runs[0][0]


def test_shuffle_false_keeps_the_order_and_last_batch_is_partial():
    X, y = blobs(n=10)
    seen = []

    def loss_fn(pred, yb):
        seen.append(np.array(yb))
        return losses.softmax_cross_entropy(pred, yb)

    net = make_net()
    fit(
        net,
        X,
        y,
        epochs=1,
        batch_size=4,
        optimizer=SGD(net, lr=0.01),
        loss=loss_fn,
        shuffle=False,
        progress=False,
    )
    assert [len(b) for b in seen] == [4, 4, 2]
    assert np.array_equal(np.concatenate(seen), y)
    seen.clear()
    fit(net, X, y, epochs=1, batch_size=4, optimizer=SGD(net, lr=0.01), loss=loss_fn, progress=False, seed=0)
    assert sorted(np.concatenate(seen)) == sorted(y) and not np.array_equal(np.concatenate(seen), y)


def test_callable_loss_and_dict_inputs():
    rng = np.random.default_rng(0)
    net = cx.Network(seed=1)
    net.add_population("a", 3)
    net.add_population("b", 2)
    net.add_population("out", 2)
    net.connect("a", "out", fanout=2)
    net.connect("b", "out", fanout=2)
    X = {"a": rng.normal(size=(20, 3)), "b": rng.normal(size=(20, 2))}
    Y = rng.normal(size=(20, 2))
    calls = []

    def half_mse(pred, yb):
        calls.append(pred.shape)
        loss, grad = losses.mse(pred, yb)
        return loss / 2, grad / 2

    h = fit(net, X, Y, epochs=2, batch_size=8, optimizer=SGD(net, lr=0.05), loss=half_mse, progress=False)
    assert calls[:3] == [(8, 2), (8, 2), (4, 2)] and len(calls) == 6
    assert "accuracy" not in h and len(h["loss"]) == 2


# ---------------------------------------------------------------- plasticity
def test_plasticity_protocol_is_called_at_the_right_times():
    X, y = blobs(n=30)
    Xv, yv = blobs(n=10, seed=2)
    net = make_net()
    opt = SGD(net, lr=0.01)
    per_epoch = Recorder("epoch", FakeChanges(pruned=2, grown=3, neurons_added=1, neurons_removed=4))
    per_step = Recorder(4, FakeChanges(pruned=1, grown=1))
    h = fit(
        net,
        X,
        y,
        epochs=3,
        batch_size=8,
        optimizer=opt,
        plasticity=[per_epoch, per_step],
        validation_data=(Xv, yv),
        progress=False,
    )
    for rule in (per_epoch, per_step):
        kind, bnet, bopt, epochs, steps = rule.calls[0]
        assert (kind, bnet, bopt, epochs, steps) == ("bind", net, opt, 3, 4)
        assert [c[0] for c in rule.calls[1:]] == (["step"] * 4 + ["epoch"]) * 3
        steps_seen = [c for c in rule.calls if c[0] == "step"]
        assert [c[1] for c in steps_seen] == list(range(1, 13))
        assert [c[2] for c in steps_seen] == [1] * 4 + [2] * 4 + [3] * 4
        assert all(c[4] is True for c in steps_seen), "rules must run in training mode"
        xb, yb = steps_seen[3][3]
        assert xb.shape == (6, 8) and yb.shape == (6,)  # 30 = 8 + 8 + 8 + 6
        epochs_seen = [c for c in rule.calls if c[0] == "epoch"]
        assert [c[1] for c in epochs_seen] == [1, 2, 3]
        for c, loss in zip(epochs_seen, h["loss"]):
            assert set(c[2]) == {"loss", "accuracy", "val_loss", "val_accuracy"} and c[2]["loss"] == loss
            assert c[3][0].shape == (6, 8)  # the epoch's last batch
            assert c[4] is losses.softmax_cross_entropy
    # per_epoch's changes once per epoch; per_step's at steps 4, 8, 12 (one per epoch)
    assert h["synapses_pruned"] == [3, 3, 3] and h["synapses_grown"] == [4, 4, 4]
    assert h["neurons_born"] == [1, 1, 1] and h["neurons_removed"] == [4, 4, 4]


def test_rules_that_edit_the_structure_are_reflected():
    class PruneTenPercent(Recorder):
        def on_epoch(self, net, optimizer, *, epoch, logs, batch, loss_fn):
            n = net.projections[0].prune(fraction=0.1)
            return FakeChanges(pruned=n)

    X, y = blobs(n=40)
    net = make_net()
    before = net.n_synapses
    h = fit(
        net,
        X,
        y,
        epochs=2,
        batch_size=10,
        optimizer=SGD(net, lr=0.01),
        plasticity=PruneTenPercent(),
        progress=False,
    )
    assert h["n_synapses"][-1] == net.n_synapses < before
    assert sum(h["synapses_pruned"]) == before - net.n_synapses


def test_real_plasticity_rules_run_in_fit():
    from connectome import plasticity

    X, y = blobs(n=60)
    net = make_net()
    before = net.n_synapses
    h = fit(
        net,
        X,
        y,
        epochs=2,
        batch_size=10,
        optimizer=SGD(net, lr=0.05),
        plasticity=plasticity.SET(0.2),
        progress=False,
    )
    assert h["synapses_pruned"] == h["synapses_grown"] and h["synapses_grown"][0] > 0
    assert net.n_synapses == before


def test_optimizer_removals_count_as_pruned():
    class Removing(SGD):
        def step(self):
            super().step()
            return 5

    X, y = blobs(n=20)
    net = make_net()
    h = fit(net, X, y, epochs=2, batch_size=8, optimizer=Removing(net, lr=0.01), progress=False)
    assert h["synapses_pruned"] == [15, 15]


# ---------------------------------------------------------------- modes and errors
def test_fit_restores_the_mode_even_on_error():
    X, y = blobs(n=20)
    net = make_net(dropout=0.5).eval()
    fit(net, X, y, epochs=1, optimizer=SGD(net, lr=0.01), progress=False)
    assert net.training is False
    net.train()

    def broken(pred, yb):
        raise RuntimeError("boom")

    net.eval()
    with pytest.raises(RuntimeError, match="boom"):
        fit(net, X, y, epochs=1, optimizer=SGD(net, lr=0.01), loss=broken, progress=False)
    assert net.training is False


def test_diverging_loss_raises_floating_point_error():
    X, y = blobs(n=20)
    net = make_net()

    def nan_loss(pred, yb):
        return float("nan"), np.zeros_like(pred)

    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1, step 1"):
        fit(net, X, y, epochs=1, optimizer=SGD(net, lr=0.01), loss=nan_loss, progress=False)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"X": np.zeros((10, 7))}, ValueError, r"X has shape \(10, 7\), expected \(n_samples, 8\)"),
        ({"X": np.zeros(8)}, ValueError, r"X has shape \(8,\)"),
        ({"X": np.zeros((0, 8)), "y": np.zeros(0, int)}, ValueError, "X has no samples"),
        ({"X": np.full((10, 8), np.nan)}, ValueError, r"X\[0, 0\]=nan is not finite"),
        ({"X": np.full((10, 8), "a")}, TypeError, "X has dtype"),
        ({"X": {"in": np.zeros((10, 8)), "hid": np.zeros((10, 32))}}, ValueError, "only input populations"),
        ({"y": np.zeros(9, int)}, ValueError, "y has shape .*expected 10 samples"),
        ({"y": np.full(10, 3)}, ValueError, r"y\[0\]=3 is out of range"),
        ({"y": np.zeros(10)}, TypeError, "y has shape .*integer class ids"),
        ({"y": np.zeros((10, 3)), "loss": "mse"}, None, None),
        ({"y": np.zeros((10, 2)), "loss": "mse"}, ValueError, r"y has shape \(10, 2\), expected \(10, 3\)"),
        ({"epochs": 0}, ValueError, "epochs=0 is out of range"),
        ({"epochs": 1.5}, TypeError, "epochs must be an integer"),
        ({"batch_size": 0}, ValueError, "batch_size=0 is out of range"),
        ({"batch_size": None}, TypeError, "batch_size must be an integer"),
        ({"loss": "hinge"}, ValueError, "loss='hinge' is unknown"),
        ({"loss": 3}, TypeError, "loss must be a name"),
        ({"optimizer": object()}, TypeError, r"has no method zero_grad\(\)"),
        ({"plasticity": [object()]}, TypeError, r"plasticity\[0\]=.*has no method bind\(\)"),
        ({"plasticity": 3}, TypeError, "plasticity must be a rule or a sequence"),
        ({"validation_data": np.zeros((2, 8))}, TypeError, "validation_data must be a pair"),
        (
            {"validation_data": (np.zeros((2, 8)), np.zeros(3, int))},
            ValueError,
            r"validation_data\[1\] has shape",
        ),
        (
            {"validation_data": (np.zeros((2, 5)), np.zeros(2, int))},
            ValueError,
            r"validation_data\[0\] has shape",
        ),
        ({"progress": "yes"}, TypeError, "progress must be a bool"),
        ({"shuffle": 1}, TypeError, "shuffle must be a bool"),
        ({"seed": -1}, ValueError, "seed=-1 is out of range"),
        ({"seed": 1.0}, TypeError, "seed must be an integer"),
        ({"lr_schedule": 0.1}, TypeError, "lr_schedule must be a callable"),
        ({"drop_last": 1}, TypeError, "drop_last must be a bool"),
    ],
)
def test_bad_arguments_leave_the_network_unchanged(kwargs, exc, match):
    net = make_net(dropout=0.2).eval()
    opt = SGD(net, lr=0.1)
    args = {"X": np.zeros((10, 8)), "y": np.zeros(10, int), "optimizer": opt, "progress": False}
    args.update(kwargs)
    if exc is None:  # the base case is valid: the parametrisation really exercises fit
        fit(net, **args)
        return
    before = snapshot(net)
    state = net._rng.bit_generator.state
    with pytest.raises(exc, match=match):
        fit(net, **args)
    assert_same_snapshot(before, snapshot(net))
    assert net._rng.bit_generator.state == state and net.training is False


def test_drop_last_trains_on_full_batches_only():
    X, y = blobs(n=50)
    net = make_net()
    rec = Recorder(every=1)
    h = fit(
        net,
        X,
        y,
        epochs=2,
        batch_size=16,
        optimizer=SGD(net, lr=0.01),
        plasticity=[rec],
        progress=False,
        seed=0,
        drop_last=True,
    )
    steps = [c for c in rec.calls if c[0] == "step"]
    assert [c[1] for c in steps] == list(range(1, 7))  # 50 // 16 = 3 steps per epoch
    assert all(len(c[3][0]) == 16 for c in steps)  # every batch full
    assert len(h) == 2 and np.isfinite(h["loss"]).all() and all(0 <= a <= 1 for a in h["accuracy"])
    before = snapshot(net)
    with pytest.raises(ValueError, match="drop_last=True with batch_size=64 > 50 samples"):
        fit(net, X, y, batch_size=64, optimizer=SGD(net, lr=0.01), progress=False, drop_last=True)
    assert_same_snapshot(before, snapshot(net))


def test_lr_schedule_sets_the_learning_rate_each_epoch():
    X, y = blobs(n=64)
    seen = []

    def schedule(epoch):
        seen.append(epoch)
        return 0.1 * 0.5 ** (epoch - 1)

    net = make_net()
    opt = SGD(net, lr=1.0, momentum=0.9)
    fit(
        net, X, y, epochs=3, batch_size=16, optimizer=opt, progress=False, shuffle=False, lr_schedule=schedule
    )
    assert seen == [1, 2, 3] and opt.lr == 0.025
    # equal to three one-epoch fits with the learning rate set by hand (no shuffling: same batches)
    twin = make_net()
    topt = SGD(twin, lr=1.0, momentum=0.9)
    for lr in (0.1, 0.05, 0.025):
        topt.lr = lr
        fit(twin, X, y, epochs=1, batch_size=16, optimizer=topt, progress=False, shuffle=False)
    for p, q in zip(net.projections, twin.projections):
        assert np.array_equal(p.weights, q.weights)
    # and not equal to a run at a constant rate: the schedule did change something
    const = make_net()
    fit(
        const,
        X,
        y,
        epochs=3,
        batch_size=16,
        optimizer=SGD(const, lr=0.1, momentum=0.9),
        progress=False,
        shuffle=False,
    )
    assert not np.array_equal(const.projections[0].weights, net.projections[0].weights)


@pytest.mark.parametrize(
    "value, exc, match",
    [
        (0.0, ValueError, "returned 0.0: expected a positive"),
        (float("nan"), ValueError, "returned nan"),
        ("fast", TypeError, "returned 'fast'"),
    ],
)
def test_lr_schedule_bad_value_raises_before_the_epoch(value, exc, match):
    X, y = blobs(n=32)
    net = make_net()
    before = snapshot(net)
    opt = SGD(net, lr=0.1)
    with pytest.raises(exc, match=match):
        fit(net, X, y, epochs=2, optimizer=opt, progress=False, lr_schedule=lambda e: value)
    assert_same_snapshot(before, snapshot(net))
    assert opt.lr == 0.1


def test_bad_net_and_optimizer_for_another_network():
    with pytest.raises(TypeError, match="net must be a connectome Network"):
        fit("net", np.zeros((2, 8)), np.zeros(2, int))
    empty = cx.Network()
    empty.add_population("a", 3)
    with pytest.raises(ValueError, match="no projections"):
        fit(empty, np.zeros((2, 3)), np.zeros(2, int))
    net, other = make_net(), make_net()
    opt = SGD(other, lr=0.1)
    with pytest.raises(ValueError, match="another network"):
        fit(net, np.zeros((2, 8)), np.zeros(2, int), optimizer=opt, progress=False)


# ---------------------------------------------------------------- progress
def test_progress_output(capsys, monkeypatch):
    X, y = blobs(n=20)
    net = make_net()
    fit(net, X, y, epochs=2, optimizer=SGD(net, lr=0.01), progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm missing: plain lines
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    h = fit(net, X, y, epochs=2, optimizer=SGD(net, lr=0.01), progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  loss ") and "density" in lines[1]
    assert f"{h['loss'][1]:.4f}" in lines[1]


class _FakeBar:
    """tqdm's interface as fit uses it, recording what it is told."""

    made: ClassVar[list[_FakeBar]] = []

    def __init__(self, total, desc, leave):
        self.total, self.desc, self.n, self.postfix, self.closed = total, desc, 0, "", False
        _FakeBar.made.append(self)

    def update(self, k):
        self.n += k

    def set_postfix_str(self, s, refresh=True):
        self.postfix = s

    def close(self):
        self.closed = True


def test_progress_bar_with_tqdm(capsys, monkeypatch):
    X, y = blobs(n=20)
    net = make_net()
    if importlib.util.find_spec("tqdm") is not None:  # the real bar, when the extra is installed
        fit(net, X, y, epochs=2, optimizer=SGD(net, lr=0.01), progress=True)
        err = capsys.readouterr().err
        assert "epoch 1/2" in err and "epoch 2/2" in err and "density" in err
    # the bar protocol itself, with a stand-in module (whether or not tqdm is installed)
    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = _FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    _FakeBar.made.clear()
    fit(net, X, y, epochs=2, batch_size=8, optimizer=SGD(net, lr=0.01), progress=True)
    assert capsys.readouterr().out == ""  # no plain lines when there is a bar
    assert [(b.desc, b.total, b.n, b.closed) for b in _FakeBar.made] == [
        ("epoch 1/2", 3, 3, True),
        ("epoch 2/2", 3, 3, True),
    ]
    assert all("loss" in b.postfix and "density" in b.postfix for b in _FakeBar.made)


# ---------------------------------------------------------------- predict
def test_predict_equals_forward_in_eval_mode_and_restores_state():
    X, _ = blobs(n=23)
    net = make_net(dropout=0.5)
    assert net.training
    xb = X[:4]
    net.forward(xb)  # a training forward whose cache predict must not disturb
    cache = net._cache
    state_before = net._rng.bit_generator.state
    y = net.predict(X, batch_size=5)
    assert net.training and net._cache is cache
    assert net._rng.bit_generator.state == state_before, "predict drew dropout masks"
    assert y.shape == (23, 3) and y.dtype == np.float32
    ref = net.eval().forward(X)
    net.train()
    cache = net._cache
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-7)
    assert np.array_equal(net.predict(X, batch_size=100), ref)
    assert np.array_equal(net.predict(X[0]), ref[0])
    # errors: batch_size checked, mode restored when forward fails
    with pytest.raises(ValueError, match="batch_size=0 is out of range"):
        net.predict(X, batch_size=0)
    with pytest.raises(ValueError, match=r"x has shape \(23, 5\)"):
        net.predict(X[:, :5], batch_size=4)
    bad = np.zeros((10, 8))
    bad[7, 2] = np.inf
    with pytest.raises(ValueError, match=r"x\[7, 2\]=inf is not finite"):
        net.predict(bad, batch_size=4)
    assert net.training and net._cache is cache


def test_predict_with_several_inputs_and_outputs():
    net = cx.Network(seed=2)
    for name, n in (("a", 3), ("b", 2), ("o1", 4), ("o2", 1)):
        net.add_population(name, n)
    net.connect("a", "o1", fanout=3)
    net.connect("b", "o1", fanout=2)
    net.connect("a", "o2", fanout=1)
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(11, 3)), "b": rng.normal(size=(11, 2))}
    y = net.predict(X, batch_size=4)
    ref = net.forward(X)
    assert set(y) == {"o1", "o2"} and y["o1"].shape == (11, 4) and y["o2"].shape == (11, 1)
    for k in y:
        np.testing.assert_allclose(y[k], ref[k], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="different numbers of samples"):
        net.predict({"a": X["a"], "b": X["b"][:5]}, batch_size=4)
