"""L1 that learns sparsity: digits from 25% density to under 5%, synapses deleted as they reach zero.

Same data and model as examples/digits.py (64-256-256-10 ReLU, SGD momentum 0.9,
lr 0.01, batch 32, 100 epochs), but every projection starts at 25% density and
the optimiser adds an L1 proximal step (soft threshold by lr * l1): weights
that reach exactly 0.0 are removed from the synapse rows, so the network's
memory shrinks as it learns.  No other pruning.

    python examples/digits_l1.py --l1 3e-3 --seeds 5
    python examples/digits_l1.py --quick
"""

from __future__ import annotations

import argparse
import sys

from _common import density, mlp, standardize, summarize, train

import connectome as cx

SIZES = (64, 256, 256, 10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--l1", type=float, default=3e-3)
    ap.add_argument("--start", type=float, default=0.25, help="initial density of every projection")
    ap.add_argument("--init", default="dense-uniform", help="see examples/_common.py mlp()")
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 10
    (Xtr, ytr), (Xte, yte) = cx.datasets.load_digits(test_size=0.3, random_state=0)
    Xtr, Xte = standardize(Xtr, Xte)
    data = ((Xtr, ytr), (Xte, yte))
    runs = []
    for seed in range(args.seeds):
        net = mlp(SIZES, (args.start,) * 3, seed=seed, init=args.init)
        d0, n0, b0 = density(net), net.n_synapses, net.nbytes
        opt = cx.optim.SGD(net, lr=0.01, momentum=0.9, l1=args.l1)
        r = train(
            f"L1 {args.l1:g}",
            net,
            data,
            optimizer=opt,
            epochs=args.epochs,
            batch_size=32,
            seed=seed,
            progress=args.progress,
        )
        h = r.history
        print(
            f"  seed {seed}: test acc {r.test_accuracy:.4f}; density {d0:.4f} -> {r.density:.4f}; "
            f"synapses {n0:,} -> {r.n_synapses:,}; bytes {b0:,} -> {net.nbytes:,}; "
            f"removed by L1 {sum(h['synapses_pruned']):,}; {r.seconds:.1f} s",
            flush=True,
        )
        if seed == 0:
            for e in (0, 4, 9, 19, 49, args.epochs - 1):
                if e < len(h):
                    print(
                        f"    epoch {e + 1:>3}: density {h['density'][e]:.4f}, val acc {h['val_accuracy'][e]:.4f}"
                    )
        runs.append(r)
    print()
    print(summarize(runs, {f"L1 {args.l1:g}": 96.5}))
    ok = all(r.density < 0.05 for r in runs)
    print(
        f"final density below 5% on every seed: {'PASS' if ok else 'MISS'} "
        f"(max {max(r.density for r in runs):.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
