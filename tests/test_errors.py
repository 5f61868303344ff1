"""Every error path: the right exception, and the network exactly unchanged afterwards
(every projection's to_coo and grad, every population's size / bias / bias_grad, and the
forward cache: a backward after the failed call equals one on an untouched twin)."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_same_snapshot, snapshot

import connectome as cx


def make_net(seed=0):
    """in(5) -> hid(6, tanh) -> out(3); in -> out skip; a second input in2(2) -> hid."""
    net = cx.Network(seed=seed)
    a = net.add_population("in", 5)
    a2 = net.add_population("in2", 2)
    h = net.add_population("hid", 6, activation="tanh")
    o = net.add_population("out", 3, activation="sigmoid")
    net.connect(a, h, fanout=3)
    net.connect(a2, h, fanout=6)
    net.connect(h, o, fanout=2)
    net.connect(a, o, fanout=1)
    rng = np.random.default_rng(seed)
    for p in net.projections:
        p.set_weights(rng.uniform(-1, 1, p.n_synapses).astype(np.float32))
    for pop in (h, o):
        pop.bias[:] = rng.uniform(-0.5, 0.5, pop.size).astype(np.float32)
    # some accumulated gradient, so that grad columns are part of the state
    x = inputs(rng)
    net.forward(x)
    net.backward(rng.normal(size=(4, 3)).astype(np.float32))
    return net


def inputs(rng=None, batch=4):
    rng = rng or np.random.default_rng(7)
    return {
        "in": rng.uniform(-1, 1, (batch, 5)).astype(np.float32),
        "in2": rng.uniform(-1, 1, (batch, 2)).astype(np.float32),
    }


X = inputs()
DY = np.random.default_rng(8).normal(size=(4, 3)).astype(np.float32)


def absent_pair(p):
    pre, post, _ = p.to_coo()
    have = set(zip(pre.tolist(), post.tolist()))
    for i in range(p.pre.size):
        for j in range(p.post.size):
            if (i, j) not in have:
                return i, j
    raise AssertionError("projection is full")


def existing_pair(p):
    pre, post, _ = p.to_coo()
    return int(pre[0]), int(post[0])


def P(net, pre, post):
    for p in net.projections:
        if p.pre.name == pre and p.post.name == post:
            return p
    raise KeyError((pre, post))


# (id, callable(net), expected exception types)
CASES = [
    # ------------------------------------------------------------ forward
    (
        "forward wrong n_in",
        lambda n: n.forward({"in": np.zeros((4, 6), np.float32), "in2": X["in2"]}),
        (ValueError,),
    ),
    (
        "forward batch mismatch",
        lambda n: n.forward({"in": X["in"], "in2": np.zeros((3, 2), np.float32)}),
        (ValueError,),
    ),
    ("forward 3-D", lambda n: n.forward({"in": X["in"][None], "in2": X["in2"][None]}), (ValueError,)),
    ("forward missing input", lambda n: n.forward({"in": X["in"]}), (ValueError, KeyError)),
    (
        "forward unknown input",
        lambda n: n.forward({**X, "hid": np.zeros((4, 6), np.float32)}),
        (ValueError, KeyError),
    ),
    ("forward array for two inputs", lambda n: n.forward(X["in"]), (ValueError, TypeError)),
    (
        "forward complex dtype",
        lambda n: n.forward({"in": X["in"].astype(np.complex64), "in2": X["in2"]}),
        (TypeError, ValueError),
    ),
    (
        "forward string dtype",
        lambda n: n.forward({"in": np.full((4, 5), "a"), "in2": X["in2"]}),
        (TypeError, ValueError),
    ),
    (
        "forward object dtype",
        lambda n: n.forward({"in": np.full((4, 5), None), "in2": X["in2"]}),
        (TypeError, ValueError),
    ),
    (
        "forward NaN",
        lambda n: n.forward({"in": np.where(np.eye(4, 5) > 0, np.nan, X["in"]), "in2": X["in2"]}),
        (ValueError,),
    ),
    ("forward inf", lambda n: n.forward({"in": X["in"], "in2": np.full((4, 2), np.inf)}), (ValueError,)),
    (
        "forward float64 overflow to inf",
        lambda n: n.forward({"in": np.full((4, 5), 1e300), "in2": X["in2"]}),
        (ValueError,),
    ),
    # ----------------------------------------------------------- backward
    ("backward wrong shape", lambda n: n.backward(np.zeros((4, 4), np.float32)), (ValueError,)),
    ("backward wrong batch", lambda n: n.backward(np.zeros((5, 3), np.float32)), (ValueError,)),
    ("backward NaN", lambda n: n.backward(np.full((4, 3), np.nan, np.float32)), (ValueError,)),
    ("backward complex", lambda n: n.backward(DY.astype(np.complex64)), (TypeError, ValueError)),
    # ------------------------------------------------------------ connect
    ("connect fanout < 0", lambda n: n.connect("in2", "out", fanout=-1), (ValueError,)),
    ("connect fanout > n_post", lambda n: n.connect("in2", "out", fanout=4), (ValueError,)),
    ("connect cycle", lambda n: n.connect("out", "in", fanout=1), (ValueError,)),
    ("connect long cycle", lambda n: n.connect("out", "in2", fanout=1), (ValueError,)),
    ("connect self", lambda n: n.connect("hid", "hid", fanout=1), (ValueError,)),
    ("connect duplicate pair", lambda n: n.connect("in", "hid", fanout=1), (ValueError,)),
    ("connect unknown name", lambda n: n.connect("nope", "out", fanout=1), (ValueError, KeyError)),
    ("connect bad init", lambda n: n.connect("in2", "out", fanout=1, init="xavier"), (ValueError,)),
    (
        "connect other network",
        lambda n: n.connect(cx.Network().add_population("in2", 2), n.populations["out"], fanout=1),
        (ValueError,),
    ),
    (
        "connect other network post",
        lambda n: n.connect(n.populations["in2"], make_net(1).populations["out"], fanout=1),
        (ValueError,),
    ),
    # --------------------------------------------------------- population
    ("add_population size 0", lambda n: n.add_population("new", 0), (ValueError,)),
    ("add_population size -3", lambda n: n.add_population("new", -3), (ValueError,)),
    (
        "add_population bad activation",
        lambda n: n.add_population("new", 3, activation="softmax"),
        (ValueError,),
    ),
    ("add_population duplicate name", lambda n: n.add_population("hid", 3), (ValueError,)),
    ("add_neurons negative", lambda n: n.populations["hid"].add_neurons(-1), (ValueError,)),
    ("remove_neurons out of range", lambda n: n.populations["hid"].remove_neurons([0, 6]), (IndexError,)),
    ("remove_neurons negative id", lambda n: n.populations["hid"].remove_neurons([-1]), (IndexError,)),
    ("remove_neurons duplicate id", lambda n: n.populations["hid"].remove_neurons([2, 2]), (ValueError,)),
    ("remove_neurons all", lambda n: n.populations["out"].remove_neurons([0, 1, 2]), (ValueError,)),
    ("bias wrong shape", lambda n: setattr(n.populations["hid"], "bias", np.zeros(5)), (ValueError,)),
    # ---------------------------------------------------------- synapses
    (
        "add_synapses pre out of range",
        lambda n: n.projections[0].add_synapses([5], [0], [1.0]),
        (IndexError,),
    ),
    (
        "add_synapses post out of range",
        lambda n: n.projections[0].add_synapses([0], [6], [1.0]),
        (IndexError,),
    ),
    ("add_synapses negative id", lambda n: n.projections[0].add_synapses([-1], [0], [1.0]), (IndexError,)),
    (
        "add_synapses valid + out of range",
        lambda n: n.projections[0].add_synapses(
            [absent_pair(n.projections[0])[0], 0], [absent_pair(n.projections[0])[1], 99], [1.0, 1.0]
        ),
        (IndexError,),
    ),
    (
        "add_synapses duplicate in batch",
        lambda n: n.projections[0].add_synapses(
            [absent_pair(n.projections[0])[0]] * 2, [absent_pair(n.projections[0])[1]] * 2, [1.0, 2.0]
        ),
        (ValueError,),
    ),
    (
        "add_synapses existing",
        lambda n: n.projections[0].add_synapses(
            [absent_pair(n.projections[0])[0], existing_pair(n.projections[0])[0]],
            [absent_pair(n.projections[0])[1], existing_pair(n.projections[0])[1]],
            [1.0, 1.0],
        ),
        (ValueError,),
    ),
    (
        "add_synapses length mismatch",
        lambda n: n.projections[0].add_synapses([0, 1], [0], [1.0, 1.0]),
        (ValueError,),
    ),
    (
        "add_synapses NaN weight",
        lambda n: n.projections[0].add_synapses(
            [absent_pair(n.projections[0])[0]], [absent_pair(n.projections[0])[1]], [np.nan]
        ),
        (ValueError,),
    ),
    (
        "add_synapses float ids",
        lambda n: n.projections[0].add_synapses([0.0], [1.0], [1.0]),
        (TypeError, ValueError),
    ),
    (
        "remove_synapses absent",
        lambda n: n.projections[0].remove_synapses(*[[v] for v in absent_pair(n.projections[0])]),
        (KeyError, ValueError),
    ),
    (
        "remove_synapses existing + absent",
        lambda n: n.projections[0].remove_synapses(
            [existing_pair(n.projections[0])[0], absent_pair(n.projections[0])[0]],
            [existing_pair(n.projections[0])[1], absent_pair(n.projections[0])[1]],
        ),
        (KeyError, ValueError),
    ),
    (
        "remove_synapses duplicate",
        lambda n: n.projections[0].remove_synapses(*[[v, v] for v in existing_pair(n.projections[0])]),
        (ValueError,),
    ),
    ("remove_synapses out of range", lambda n: n.projections[0].remove_synapses([0], [6]), (IndexError,)),
    # ------------------------------------------------------- prune / grow
    ("prune fraction > 1", lambda n: n.projections[0].prune(fraction=1.5), (ValueError,)),
    ("prune fraction < 0", lambda n: n.projections[0].prune(fraction=-0.1), (ValueError,)),
    ("prune fraction NaN", lambda n: n.projections[0].prune(fraction=float("nan")), (ValueError,)),
    ("prune neither", lambda n: n.projections[0].prune(), (ValueError, TypeError)),
    ("prune both", lambda n: n.projections[0].prune(threshold=0.1, fraction=0.1), (ValueError, TypeError)),
    ("prune threshold NaN", lambda n: n.projections[0].prune(threshold=float("nan")), (ValueError,)),
    ("grow more than free", lambda n: n.projections[0].grow(5 * 6 - 15 + 1), (ValueError,)),
    ("grow full projection", lambda n: P(n, "in2", "hid").grow(1), (ValueError,)),
    ("grow negative", lambda n: n.projections[0].grow(-1), (ValueError,)),
    (
        "set_weights wrong length",
        lambda n: n.projections[0].set_weights(np.zeros(14, np.float32)),
        (ValueError,),
    ),
    (
        "set_weights NaN",
        lambda n: n.projections[0].set_weights(np.full(15, np.nan, np.float32)),
        (ValueError,),
    ),
    ("synapses out of range", lambda n: n.projections[0].synapses(5), (IndexError,)),
]


@pytest.mark.parametrize("case, call, exc", CASES, ids=[c[0] for c in CASES])
def test_error_leaves_network_unchanged(case, call, exc):
    net = make_net()
    assert net.projections[0].n_synapses == 15  # CASES hard-code this projection's shape
    net.forward(X)
    before = snapshot(net)
    with pytest.raises(exc):
        call(net)
    assert_same_snapshot(before, snapshot(net), case)
    # the forward cache survived too: backward now equals backward on an untouched twin
    twin = make_net()
    twin.forward(X)
    dx = net.backward(DY)
    dx_twin = twin.backward(DY)
    for k in dx_twin:
        assert np.array_equal(dx[k], dx_twin[k]), f"{case}: dx of {k} differs from an untouched network"
    assert_same_snapshot(snapshot(twin), snapshot(net), f"{case} (after backward)")


@pytest.mark.parametrize(
    "dy",
    [np.zeros((4, 3), np.float32), np.zeros((3,), np.float32)],
    ids=["batch", "single"],
)
def test_backward_before_forward_changes_nothing(dy):
    net = make_net()
    net.projections[0].prune(threshold=0.0)  # no-op prune, cache state irrelevant
    net.populations["hid"].add_neurons(1)  # invalidates the cache
    before = snapshot(net)
    with pytest.raises(RuntimeError):
        net.backward(dy)
    assert_same_snapshot(before, snapshot(net))


def test_fresh_network_backward_raises():
    net = cx.Network()
    a = net.add_population("a", 2)
    b = net.add_population("b", 2)
    net.connect(a, b, fanout=1)
    with pytest.raises(RuntimeError):
        net.backward(np.zeros((1, 2), np.float32))


def test_error_messages_name_the_argument():
    net = make_net()
    with pytest.raises(ValueError, match="fanout"):
        net.connect("in2", "out", fanout=4)
    with pytest.raises(ValueError, match="fraction"):
        net.projections[0].prune(fraction=2.0)
    with pytest.raises(ValueError, match="softmax"):
        net.add_population("z", 3, activation="softmax")
    with pytest.raises(IndexError, match="99"):
        net.projections[0].add_synapses([0], [99], [1.0])


def make_chain():
    net = cx.Network(seed=1)
    a = net.add_population("a", 4)
    b = net.add_population("b", 3, activation="relu")
    net.connect(a, b, fanout=2)
    return net


SINGLE_CASES = [
    ("forward (B, n+1)", lambda n: n.forward(np.zeros((2, 5), np.float32)), (ValueError,)),
    ("forward (B, n-1)", lambda n: n.forward(np.zeros((2, 3), np.float32)), (ValueError,)),
    ("forward 1-D wrong length", lambda n: n.forward(np.zeros(5, np.float32)), (ValueError,)),
    ("forward 0-D", lambda n: n.forward(np.float32(1.0)), (ValueError,)),
    ("forward 3-D", lambda n: n.forward(np.zeros((1, 2, 4), np.float32)), (ValueError,)),
    ("forward ragged list", lambda n: n.forward([[1.0, 2.0, 3.0, 4.0], [1.0]]), (ValueError,)),
    ("forward NaN", lambda n: n.forward(np.array([[0, 0, np.nan, 0]], np.float32)), (ValueError,)),
    ("forward -inf", lambda n: n.forward(np.array([[0, 0, -np.inf, 0]])), (ValueError,)),
    ("backward (B, n+1)", lambda n: n.backward(np.zeros((2, 4), np.float32)), (ValueError,)),
    ("backward 1-D after 2-D forward", lambda n: n.backward(np.zeros(3, np.float32)), (ValueError,)),
    ("backward inf", lambda n: n.backward(np.full((2, 3), np.inf)), (ValueError,)),
    ("add_population float size", lambda n: n.add_population("c", 3.0), (TypeError, ValueError)),
    ("add_neurons float", lambda n: n.populations["b"].add_neurons(1.5), (TypeError, ValueError)),
    ("grow float", lambda n: n.projections[0].grow(1.5), (TypeError, ValueError)),
    ("connect float fanout", None, (TypeError, ValueError)),  # special-cased below
]


@pytest.mark.parametrize("case, call, exc", SINGLE_CASES, ids=[c[0] for c in SINGLE_CASES])
def test_single_input_errors_leave_network_unchanged(case, call, exc):
    net = make_chain()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32)
    net.forward(x)
    net.backward(np.ones((2, 3), np.float32))
    net.forward(x)
    before = snapshot(net)
    if case == "connect float fanout":  # the new population is part of the call
        net.add_population("c", 3)
        before = snapshot(net)
        with pytest.raises(exc):
            net.connect("a", "c", fanout=1.0)
    else:
        with pytest.raises(exc):
            call(net)
    assert_same_snapshot(before, snapshot(net), case)
