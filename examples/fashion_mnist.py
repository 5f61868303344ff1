"""SET on Fashion-MNIST in the SET tutorial's setting.

2,000 training and 1,000 test images (a random subset of the full sets drawn
with ``--data-seed``, the same for every model seed as in SET's loader; pixels
scaled to [0, 1]), a 784-1000-1000-1000-10 ReLU MLP whose three hidden
projections are Erdos-Renyi sparse with epsilon 13 (density
``13 * (n_pre + n_post) / (n_pre * n_post)``, about 3%), a dense output
projection, dropout 0.2 on the hidden populations, SGD with momentum 0.9,
weight decay 2e-4, batch 40, SET with zeta 0.3 after every epoch.  The SET
authors report 0.826 test accuracy over 5 seeds after 400 epochs.

Needs the Debian package dataset-fashion-mnist (``apt-get install dataset-fashion-mnist``)
or ``--path`` to a folder with the four idx files.

    python examples/fashion_mnist.py --epochs 400 --seeds 5
    python examples/fashion_mnist.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
from _common import mlp, set_density, summarize, train

import connectome as cx


def subset(X, y, n, rng):
    idx = rng.permutation(len(X))[:n]
    return (X[idx] / 255.0).astype(np.float32), y[idx]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=2e-4)
    ap.add_argument("--epsilon", type=float, default=13)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the train/test subsets (default 0)")
    ap.add_argument("--path", default=None, help="folder with the idx files (default: the Debian package's)")
    ap.add_argument(
        "--init", default="xavier", help="see examples/_common.py mlp() (default: xavier, as SET)"
    )
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 10
    (Xtr_all, ytr_all), (Xte_all, yte_all) = cx.datasets.load_fashion_mnist(args.path)
    sizes = (784, 1000, 1000, 1000, 10)
    dens = [set_density(args.epsilon, a, b) for a, b in itertools.pairwise(sizes[:-1])] + [1.0]
    print(
        f"Fashion-MNIST: {args.n_train} train / {args.n_test} test, {sizes}, densities "
        f"{[round(d, 4) for d in dens]}, {args.epochs} epochs"
    )
    runs = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(args.data_seed)  # one subset for every seed, as SET's loader does
        data = (subset(Xtr_all, ytr_all, args.n_train, rng), subset(Xte_all, yte_all, args.n_test, rng))
        net = mlp(sizes, dens, seed=seed, dropout=0.2, init=args.init)
        opt = cx.optim.SGD(net, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
        r = train(
            "SET",
            net,
            data,
            optimizer=opt,
            epochs=args.epochs,
            batch_size=40,
            seed=seed,
            plasticity=[cx.plasticity.SET(fraction=0.3, every="epoch")],
            progress=args.progress,
        )
        va = r.history["val_accuracy"]
        print(
            f"  seed {seed}: test acc {r.test_accuracy:.4f} (best epoch {int(np.argmax(va)) + 1}: "
            f"{max(va):.4f}; last 10 epochs mean {np.mean(va[-10:]):.4f}), {r.seconds:.0f} s",
            flush=True,
        )
        runs.append(r)
    print()
    print(summarize(runs, {"SET": 82.6}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
