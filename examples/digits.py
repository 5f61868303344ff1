"""SET on scikit-learn's digits: sparse evolutionary training vs the same sparsity kept static vs dense.

Protocol (from the issue that asked for this result): load_digits with a 70/30
stratified split (random_state=0), inputs standardised with the training
statistics, a 64-256-256-10 ReLU MLP, SGD with momentum 0.9, lr 0.01, weight
decay 1e-4, batch 32, 100 epochs.  The two hidden projections are sparse at
about 7.6% (fan-out 19 of 256 = 7.4%) and 3.1% (fan-out 8 of 256); the output
projection is fully connected.  SET drops the 30% smallest-magnitude synapses
of each sparse projection after every epoch and regrows as many at random,
with weights from the projection's initialiser.  Weights start (and regrow)
from U(+-sqrt(6 / n_pre)), Kaiming's uniform for ReLU on the dense shape (and
the bound SET's own code uses).  The protocol leaves the initialiser open; this
one was chosen on a validation split, never on the test set: ``--validation``
trains on 75% of the training split and scores the other 25% (cx.datasets.stratified_split,
random_state=1), and over seeds 100-119 SET scored 97.90% with it against 96.89%
with PyTorch nn.Linear's U(+-1/sqrt(n_pre)) (``--init dense-uniform``), 97.57%
with Xavier and 97.51% with connect()'s sparse fan-in scaling (``--init uniform``).

    python examples/digits.py                      # 5 seeds x {SET, static, dense}, 100 epochs
    python examples/digits.py --quick              # 1 seed, 10 epochs
    python examples/digits.py --validation --seeds 20 --first-seed 100 --modes SET --init dense-uniform
"""

from __future__ import annotations

import argparse
import sys

from _common import Run, mlp, standardize, summarize, train

import connectome as cx

SIZES = (64, 256, 256, 10)
SPARSE = (0.076, 0.031, 1.0)
TARGETS = {"SET": 97.0}


def run_one(mode: str, seed: int, data, epochs: int, progress: bool, init: str) -> Run:
    densities = (1.0, 1.0, 1.0) if mode == "dense" else SPARSE
    net = mlp(SIZES, densities, seed=seed, init=init)
    opt = cx.optim.SGD(net, lr=0.01, momentum=0.9, weight_decay=1e-4)
    rules = [cx.plasticity.SET(fraction=0.3, every="epoch")] if mode == "SET" else []
    return train(
        mode,
        net,
        data,
        optimizer=opt,
        epochs=epochs,
        batch_size=32,
        seed=seed,
        plasticity=rules,
        progress=progress,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1"
    )
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--modes", default="SET,static,dense", help="comma-separated subset of SET,static,dense")
    ap.add_argument(
        "--init",
        default="he-uniform",
        help="he-uniform (default: U(+-sqrt(6/n_pre))), dense-uniform (U(+-1/sqrt(n_pre)), nn.Linear's), "
        "xavier, uniform or normal",
    )
    ap.add_argument(
        "--validation",
        action="store_true",
        help="train on 75%% of the training split and report accuracy on the other 25%% (for model "
        "selection; the test set is not touched)",
    )
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 10
    (Xtr, ytr), (Xte, yte) = cx.datasets.load_digits(test_size=0.3, random_state=0)
    if args.validation:
        (Xtr, ytr), (Xte, yte) = cx.datasets.stratified_split(Xtr, ytr, test_size=0.25, random_state=1)
    Xtr, Xte = standardize(Xtr, Xte)
    data = ((Xtr, ytr), (Xte, yte))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(
        f"digits: {len(Xtr)} train / {len(Xte)} {'validation' if args.validation else 'test'}, {SIZES}, "
        f"init {args.init}, {args.epochs} epochs, seeds {seeds[0]}..{seeds[-1]}"
    )
    runs = []
    for mode in args.modes.split(","):
        for seed in seeds:
            r = run_one(mode, seed, data, args.epochs, args.progress, args.init)
            h = r.history
            print(
                f"  {mode:<7} seed {seed}: test acc {r.test_accuracy:.4f}, synapses {r.n_synapses:,}, "
                f"pruned/grown {sum(h['synapses_pruned']):,}/{sum(h['synapses_grown']):,}, "
                f"{r.seconds:.1f} s",
                flush=True,
            )
            runs.append(r)
    print()
    print(summarize(runs, {} if args.validation else TARGETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
