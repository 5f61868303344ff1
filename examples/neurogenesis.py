"""Neurogenesis: a too-small hidden population that grows when the training loss plateaus.

Digits (same split and scaling as examples/digits.py), a 64-H-10 ReLU MLP with
fully connected projections and H = 4 at the start: too small for the task.
``Neurogenesis`` adds 8 neurons to the hidden population whenever the
training loss has not improved by 1% for 2 epochs, up to 64.  New neurons get
incoming synapses from the projection's rule and initialiser, and outgoing
weights of exactly 0, so the function is unchanged at birth; the optimiser
gives them zero momentum.  The same run without growth (H stays 4) is the
baseline; a network born at 64 is shown for reference.  The rule watches the
loss on a validation set held out from the training set (15%, stratified), so
the test set plays no part in when neurons are born.

    python examples/neurogenesis.py --seeds 5
    python examples/neurogenesis.py --quick
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import Run, accuracy, density, mlp, standardize, summarize

import connectome as cx


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--start", type=int, default=4, help="initial hidden size")
    ap.add_argument("--max-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="1 seed, 15 epochs")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 15
    (Xtr, ytr), (Xte, yte) = cx.datasets.load_digits(test_size=0.3, random_state=0)
    Xtr, Xte = standardize(Xtr, Xte)
    (Xfit, yfit), (Xval, yval) = cx.datasets.stratified_split(Xtr, ytr, test_size=0.15, random_state=0)
    runs = []
    for label, size, grow in (
        (f"grown from {args.start}", args.start, True),
        (f"fixed at {args.start}", args.start, False),
        (f"born at {args.max_size}", args.max_size, False),
    ):
        for seed in range(args.seeds):
            net = mlp((64, size, 10), (1.0, 1.0), seed=seed, init="dense-uniform")
            opt = cx.optim.SGD(net, lr=0.01, momentum=0.9, weight_decay=1e-4)
            rules = []
            if grow:
                rules = [
                    cx.plasticity.Neurogenesis(
                        "hidden1",
                        n=8,
                        patience=2,
                        min_delta=0.01,
                        threshold_mode="rel",
                        max_size=args.max_size,
                        monitor="val_loss",
                    )
                ]
            t0 = time.perf_counter()
            history = cx.fit(
                net,
                Xfit,
                yfit,
                epochs=args.epochs,
                batch_size=32,
                optimizer=opt,
                plasticity=rules,
                validation_data=(Xval, yval),
                progress=False,
                seed=seed,
            )
            seconds = time.perf_counter() - t0
            r = Run(label, seed, accuracy(net, Xte, yte), history, seconds, net.n_synapses, density(net))
            born = int(np.sum(r.history["neurons_born"]))
            births = [e + 1 for e, b in enumerate(r.history["neurons_born"]) if b]
            print(
                f"  {label:<14} seed {seed}: test acc {r.test_accuracy:.4f}, hidden size "
                f"{net['hidden1'].size} (born {born}, at epochs {births}), {r.seconds:.1f} s",
                flush=True,
            )
            runs.append(r)
    print()
    print(summarize(runs))
    grown = np.mean([r.test_accuracy for r in runs if r.label.startswith("grown")])
    fixed = np.mean([r.test_accuracy for r in runs if r.label.startswith("fixed")])
    print(f"grown beats fixed: {'PASS' if grown > fixed else 'MISS'} ({grown:.4f} vs {fixed:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
