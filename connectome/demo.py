"""Demo: the engine at 10^3-10^4 synapses per neuron, then a network that rewires itself while it learns.

Run ``python -m connectome.demo`` (or the ``connectome-demo`` console script).

Part 1 (the engine) builds input -> hidden1 -> hidden2 -> output with thousands of synapses per
neuron, times forward and backward passes, then edits the structure in place
(prune 10% by magnitude, grow 10% at random, rewire 10% in one pass, add neurons,
remove neurons) and reports, after each step, the synapse count, the bytes per synapse and the
throughput in synaptic ops per second.  A synaptic op is one multiply-add of
one synapse for one sample: a forward pass does ``n_synapses * B`` of them, a
backward pass ``2 * n_synapses * B`` (dL/dx and dL/dw).  It also checks that
adding neurons leaves the network's function unchanged (new outgoing weights
are 0), printing the largest change of the output.

Part 2 (learning) trains a sparse 64-256-256-10 network on scikit-learn's
digits with SET (30% of the synapses of each sparse projection dropped and
regrown every epoch), printing accuracy, density and synapse churn per epoch;
then an L1 run from 25% density, where weights driven to exactly zero are
deleted from the rows as it learns; then a save / load round trip.  It needs
scikit-learn (``pip install "connectome-engine[demo]"``, or ``.[demo]`` in a
source tree); without it, part 2 says so and is skipped.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

import connectome as cx


def _best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` calls (after one warm-up call), in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class _Table:
    header = (
        f"{'step':<22} {'neurons':>8} {'synapses':>12} {'B/syn':>6} {'edit ms':>8} "
        f"{'fwd ms':>8} {'fwd Gop/s':>10} {'bwd ms':>8} {'bwd Gop/s':>10}"
    )

    def __init__(self) -> None:
        print(self.header)
        print("-" * len(self.header))

    def row(
        self, step: str, net: cx.Network, edit_s: float | None, fwd_s: float, bwd_s: float, batch: int
    ) -> None:
        n_syn = net.n_synapses
        nbytes = sum(p.nbytes for p in net.projections)
        ops = n_syn * batch
        edit = f"{edit_s * 1e3:8.1f}" if edit_s is not None else f"{'-':>8}"
        print(
            f"{step:<22} {net.n_neurons:>8,} {n_syn:>12,} {nbytes / max(n_syn, 1):>6.2f} {edit} "
            f"{fwd_s * 1e3:>8.1f} {ops / fwd_s / 1e9:>10.2f} {bwd_s * 1e3:>8.1f} "
            f"{2 * ops / bwd_s / 1e9:>10.2f}",
            flush=True,
        )


def build(n_neurons: int, fanout: int, seed: int) -> cx.Network:
    """input (n/4) -> hidden1 (n, relu) -> hidden2 (n, relu) -> output (n/4)."""
    n_in = max(1, n_neurons // 4)
    n_out = max(1, n_neurons // 4)
    net = cx.Network(seed=seed)
    inp = net.add_population("input", n_in)
    h1 = net.add_population("hidden1", n_neurons, activation="relu")
    h2 = net.add_population("hidden2", n_neurons, activation="relu")
    out = net.add_population("output", n_out)
    net.connect(inp, h1, fanout=min(fanout, n_neurons), init="normal")
    net.connect(h1, h2, fanout=min(fanout, n_neurons), init="normal")
    net.connect(h2, out, fanout=min(fanout // 4 or 1, n_out), init="uniform")
    return net


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="connectome-demo",
        description="Sparse network with thousands of synapses per neuron: passes, prune, grow, "
        "add and remove neurons, in place.",
    )
    parser.add_argument(
        "--neurons", type=int, default=4000, help="neurons per hidden population (default 4000)"
    )
    parser.add_argument("--fanout", type=int, default=2000, help="synapses per hidden neuron (default 2000)")
    parser.add_argument("--batch", type=int, default=64, help="samples per pass (default 64)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all usable CPUs)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per step, best kept (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the network and the data (default 0)")
    parser.add_argument(
        "--part", choices=("all", "engine", "learning"), default="all", help="which part to run (default all)"
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the learning part (default 20)")
    args = parser.parse_args(argv)
    if args.neurons < 1:
        parser.error(f"--neurons={args.neurons}: expected >= 1")
    if args.fanout < 1:
        parser.error(f"--fanout={args.fanout}: expected >= 1")
    if args.batch < 1:
        parser.error(f"--batch={args.batch}: expected >= 1")
    if args.repeat < 1:
        parser.error(f"--repeat={args.repeat}: expected >= 1")
    if args.epochs < 1:
        parser.error(f"--epochs={args.epochs}: expected >= 1")
    if args.threads is not None:
        if args.threads == 0:
            parser.error("--threads=0: expected >= 1 (or negative to count back from all CPUs)")
        cx.set_num_threads(args.threads)
    if args.part in ("all", "engine"):
        engine_demo(args)
    if args.part in ("all", "learning"):
        if args.part == "all":
            print("\n" + "=" * 100 + "\n")
        return learning_demo(args.epochs, args.seed)
    return 0


def engine_demo(args: argparse.Namespace) -> None:
    """Part 1: build, time passes, edit the structure in place, report synapses and throughput."""
    print("Part 1: the engine, thousands of synapses per neuron\n")
    t0 = time.perf_counter()
    net = build(args.neurons, args.fanout, args.seed)
    build_s = time.perf_counter() - t0
    inp, out = net.inputs[0], net.outputs[0]
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, inp.size), dtype=np.float32)
    dy = rng.standard_normal((args.batch, out.size), dtype=np.float32)

    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(
        f"connectome {cx.__version__}: {cx.get_num_threads()} thread(s), batch {args.batch}, "
        f"{n_cpus} CPU(s), load average {load:.1f}"
    )
    if load > n_cpus - 0.5:
        print("note: the machine is busy; timings (multi-threaded ones above all) will be noisy")
    print(f"built in {build_s:.2f} s\n")
    print(net.summary())
    print()

    def passes() -> tuple[float, float]:
        fwd = _best_time(lambda: net.forward(x), args.repeat)
        bwd = _best_time(lambda: net.backward(dy), args.repeat)
        return fwd, bwd

    def edit(fn: Callable[[], object]) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    table = _Table()
    table.row("built", net, build_s, *passes(), args.batch)

    hidden = [p for p in net.populations.values() if not p.is_input and not p.is_output]
    counts: dict[str, int] = {}

    def prune() -> None:
        counts["pruned"] = sum(p.prune(fraction=0.1) for p in net.projections)

    s = edit(prune)
    table.row(f"prune 10% (-{counts['pruned']:,})", net, s, *passes(), args.batch)

    def grow() -> None:
        counts["grown"] = 0
        for p in net.projections:
            free = p.pre.size * p.post.size - p.n_synapses
            counts["grown"] += p.grow(min(free, round(0.1 * p.n_synapses)), weight=None)

    s = edit(grow)
    table.row(f"grow 10% (+{counts['grown']:,})", net, s, *passes(), args.batch)

    def rewire() -> None:
        counts["rewired"] = sum(p.rewire(0.1) for p in net.projections)

    s = edit(rewire)
    table.row(f"rewire 10% ({counts['rewired']:,})", net, s, *passes(), args.batch)

    y_before = net.forward(x)
    n_new = max(1, args.neurons // 10)
    s = edit(lambda: [pop.add_neurons(n_new) for pop in hidden])
    y_after = net.forward(x)
    change = float(np.max(np.abs(y_after - y_before)))
    table.row(f"add {n_new:,} neurons x{len(hidden)}", net, s, *passes(), args.batch)

    n_del = max(1, min(args.neurons // 20, hidden[0].size - 1))
    doomed = rng.choice(hidden[0].size, n_del, replace=False)
    s = edit(lambda: hidden[0].remove_neurons(doomed))
    table.row(f"remove {n_del:,} neurons", net, s, *passes(), args.batch)

    print(
        "\nB/syn: heap bytes of all projections per synapse (target id + weight, the gradient column\n"
        "once backward has run, and row slack).  Gop/s: 10^9 synaptic ops (multiply-adds) per second;\n"
        "backward counts two per synapse and sample (dL/dx and dL/dw).  Times: best of "
        f"{args.repeat} after a warm-up."
    )
    print(f"function unchanged by add_neurons: max |dy| = {change:.3g}" + (" (ok)" if change == 0 else ""))
    print()
    print(net.summary())


def _digits_net(density: tuple[float, float, float], seed: int, gain: float) -> cx.Network:
    """64-256-256-10 ReLU; weights from U(+-gain/sqrt(n_pre)), a bound on the dense shape.

    gain sqrt(6) is Kaiming's uniform for ReLU (examples/digits.py, SET), 1 is
    nn.Linear's default (examples/digits_l1.py).
    """
    net = cx.Network(seed=seed)
    sizes = (64, 256, 256, 10)
    pops = [net.add_population("input", 64)]
    pops += [net.add_population(f"hidden{i}", 256, activation="relu") for i in (1, 2)]
    pops.append(net.add_population("output", 10))
    for pre, post, d, n_pre in zip(pops[:-1], pops[1:], density, sizes, strict=False):
        fanout = max(1, round(d * post.size))
        net.connect(pre, post, fanout=fanout, init="uniform", scale=gain / float(np.sqrt(n_pre)))
    return net


def _epoch_table(history: cx.History) -> None:
    h = history.history
    print(
        f"{'epoch':>5} {'loss':>7} {'train acc':>9} {'test acc':>8} {'synapses':>9} {'density':>8} "
        f"{'pruned':>7} {'grown':>7} {'ms':>6}"
    )
    for i in range(len(history)):
        print(
            f"{i + 1:>5} {h['loss'][i]:>7.4f} {h['accuracy'][i]:>9.4f} {h['val_accuracy'][i]:>8.4f} "
            f"{h['n_synapses'][i]:>9,} {h['density'][i]:>8.4f} {h['synapses_pruned'][i]:>7,} "
            f"{h['synapses_grown'][i]:>7,} {h['seconds'][i] * 1e3:>6.0f}"
        )


def learning_demo(epochs: int, seed: int) -> int:
    """Part 2: SET and L1 on scikit-learn's digits, then save / load."""
    import tempfile

    print("Part 2: a connectome that rewires itself while it learns (scikit-learn's digits)\n")
    try:
        (X_train, y_train), (X_test, y_test) = cx.datasets.load_digits(test_size=0.3, random_state=0)
    except ImportError as e:
        print(f"skipped: {e}")
        return 0
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0)
    sd[sd == 0] = 1.0
    X_train, X_test = (X_train - mu) / sd, (X_test - mu) / sd
    print(f"{len(X_train)} training / {len(X_test)} test images of 8x8 pixels, 10 classes\n")

    net = _digits_net((0.076, 0.031, 1.0), seed, gain=float(np.sqrt(6.0)))
    print(
        "SET: 64-256-256-10 ReLU, hidden projections at 7.4% and 3.1% density, SGD momentum 0.9, "
        f"lr 0.01;\n30% of each sparse projection's synapses dropped and regrown after every epoch, "
        f"{epochs} epochs\n"
    )
    opt = cx.optim.SGD(net, lr=0.01, momentum=0.9, weight_decay=1e-4)
    history = cx.fit(
        net,
        X_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        optimizer=opt,
        plasticity=[cx.plasticity.SET(fraction=0.3)],
        validation_data=(X_test, y_test),
        progress=False,
        seed=seed,
    )
    _epoch_table(history)
    acc = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    print(
        f"\nSET: test accuracy {acc:.4f} with {net.n_synapses:,} synapses; "
        f"{sum(history['synapses_grown']):,} synapses were born and as many died along the way\n"
    )

    net = _digits_net((0.25, 0.25, 0.25), seed, gain=1.0)
    start = (net.n_synapses, net.nbytes)
    print(f"L1: the same network at 25% density, SGD with an L1 proximal step (l1=3e-3), {epochs} epochs;")
    print("weights that reach exactly 0.0 are deleted from the synapse rows as training goes\n")
    opt = cx.optim.SGD(net, lr=0.01, momentum=0.9, l1=3e-3)
    history = cx.fit(
        net,
        X_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        optimizer=opt,
        validation_data=(X_test, y_test),
        progress=False,
        seed=seed,
    )
    _epoch_table(history)
    acc = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    print(f"\nL1: test accuracy {acc:.4f}; synapses {start[0]:,} -> {net.n_synapses:,}\n")
    print(net.summary())
    training = net.nbytes
    net.shrink(training_state=True)
    print(
        f"\nmemory: {start[1]:,} bytes at the start; {training:,} while training (gradient and momentum "
        f"columns);\n{net.nbytes:,} at rest after net.shrink(training_state=True)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/digits-l1.npz"
        net.save(path, optimizer=opt)
        loaded = cx.load(path)
        same = np.array_equal(loaded.predict(X_test), net.predict(X_test))
        size = os.path.getsize(path)
    print(f"\nsaved and loaded ({size:,} bytes): predictions bitwise equal: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
