"""The digits protocol of digits.py in plain numpy: masked dense matrices, no connectome engine.

A cross-check of examples/digits.py.  Each projection is a dense (n_pre, n_post)
weight matrix times a boolean mask; SET, static sparsity and dense training
follow the same protocol as digits.py (64-256-256-10 ReLU, fan-out 19 and 8
of 256 then fully connected, U(+-sqrt(6 / n_pre)) weights (``--init
dense-uniform``: U(+-1/sqrt(n_pre))), zero biases, softmax
cross-entropy averaged over the batch, SGD as torch.optim.SGD with momentum
0.9, lr 0.01 and weight decay 1e-4 on weights and biases, batch 32, 100
epochs, SET dropping the 30% smallest |w| of each sparse projection after
every epoch but the last and regrowing as many at slots that were absent,
with initialiser weights and zero momentum).  The random streams differ from
the engine's, so single runs differ; means over many seeds should agree
within their standard errors.

    python examples/digits_reference.py                 # 5 seeds x {SET, static, dense}
    python examples/digits_reference.py --seeds 20 --modes SET,static
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import FAN_IN_GAINS, standardize

import connectome as cx

SIZES = (64, 256, 256, 10)
FANOUT = (19, 8, 10)  # digits.py's fan-outs: 7.4% and 3.1% density, then dense
LR, MOMENTUM, WEIGHT_DECAY, BATCH, FRACTION = 0.01, 0.9, 1e-4, 32, 0.3


class MaskedMLP:
    """ReLU MLP over masked dense weights, trained by SGD with momentum (torch's rule)."""

    def __init__(self, fanouts: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype, gain: float):
        self.rng, self.gain = rng, gain
        self.W, self.M, self.b = [], [], []
        for n_pre, n_post, f in zip(SIZES[:-1], SIZES[1:], fanouts):
            mask = np.zeros((n_pre, n_post), bool)
            for i in range(n_pre):  # f distinct random targets per presynaptic neuron
                mask[i, rng.choice(n_post, f, replace=False)] = True
            self.M.append(mask)
            self.W.append((self.init(n_pre, (n_pre, n_post)) * mask).astype(dtype))
            self.b.append(np.zeros(n_post, dtype))
        self.vW: list[np.ndarray | None] = [None] * len(self.W)
        self.vb: list[np.ndarray | None] = [None] * len(self.W)

    def init(self, n_pre: int, shape) -> np.ndarray:
        bound = self.gain / np.sqrt(n_pre)
        return self.rng.uniform(-bound, bound, shape)

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x]
        for k, (W, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0) if k < len(self.W) - 1 else z)
        return acts

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        acts = self.forward(x)
        z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        g = np.exp(z)
        g /= g.sum(axis=1, keepdims=True)
        g[np.arange(len(y)), y] -= 1.0
        g /= len(y)  # d mean-loss / d logits
        for k in reversed(range(len(self.W))):
            gW, gb = acts[k].T @ g, g.sum(axis=0)
            if k:
                g = (g @ self.W[k].T) * (acts[k] > 0)
            gW = (gW + WEIGHT_DECAY * self.W[k]) * self.M[k]  # L2 added to the gradient, absent stay 0
            gb = gb + WEIGHT_DECAY * self.b[k]
            self.vW[k] = gW if self.vW[k] is None else MOMENTUM * self.vW[k] + gW  # torch: buf = g first
            self.vb[k] = gb if self.vb[k] is None else MOMENTUM * self.vb[k] + gb
            self.W[k] -= LR * self.vW[k]
            self.b[k] -= LR * self.vb[k]

    def set_rewire(self, k_layer: int) -> None:
        """Drop the FRACTION smallest |w| of a layer, regrow as many at slots absent before."""
        W, M, v = (a.reshape(-1) for a in (self.W[k_layer], self.M[k_layer], self.vW[k_layer]))
        present = np.flatnonzero(M)
        n = int(FRACTION * present.size)
        drop = present[np.argsort(np.abs(W[present]), kind="stable")[:n]]
        new = self.rng.choice(np.flatnonzero(~M), n, replace=False)
        M[drop], W[drop], v[drop] = False, 0.0, 0.0
        M[new], W[new], v[new] = True, self.init(SIZES[k_layer], n), 0.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.forward(x)[-1], axis=1)


def run_one(mode: str, seed: int, data, epochs: int, dtype: np.dtype, gain: float) -> float:
    (Xtr, ytr), (Xte, yte) = data
    rng = np.random.default_rng(seed)
    fanouts = tuple(SIZES[1:]) if mode == "dense" else FANOUT
    net = MaskedMLP(fanouts, rng, dtype, gain)
    sparse = [k for k, f in enumerate(fanouts) if f < SIZES[k + 1]]
    for epoch in range(epochs):
        order = rng.permutation(len(Xtr))
        for s in range(0, len(Xtr), BATCH):
            idx = order[s : s + BATCH]
            net.step(Xtr[idx], ytr[idx])
        if mode == "SET" and epoch < epochs - 1:
            for k in sparse:
                net.set_rewire(k)
    return float(np.mean(net.predict(Xte) == yte))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--modes", default="SET,static,dense", help="comma-separated subset of SET,static,dense")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--init", default="he-uniform", choices=tuple(FAN_IN_GAINS), help="as digits.py's --init")
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 10
    (Xtr, ytr), (Xte, yte) = cx.datasets.load_digits(test_size=0.3, random_state=0)
    Xtr, Xte = standardize(Xtr, Xte)
    dtype = np.dtype(args.dtype)
    data = ((Xtr.astype(dtype), ytr), (Xte.astype(dtype), yte))
    print(
        f"digits, numpy masked-dense reference: {SIZES}, init {args.init}, {args.epochs} epochs, "
        f"seeds 0..{args.seeds - 1}"
    )
    header = f"{'run':<8} {'seeds':>5} {'test acc mean':>13} {'std':>6} {'s.e.':>6} {'min':>6} {'max':>6} {'s/run':>6}"
    rows = []
    for mode in args.modes.split(","):
        accs, t0 = [], time.perf_counter()
        for seed in range(args.seeds):
            accs.append(100 * run_one(mode, seed, data, args.epochs, dtype, FAN_IN_GAINS[args.init]))
            print(f"  {mode:<7} seed {seed}: test acc {accs[-1] / 100:.4f}", flush=True)
        a = np.array(accs)
        sd = a.std(ddof=1) if a.size > 1 else 0.0
        rows.append(
            f"{mode:<8} {a.size:>5} {a.mean():>12.2f}% {sd:>6.2f} {sd / np.sqrt(a.size):>6.2f} "
            f"{a.min():>6.2f} {a.max():>6.2f} {(time.perf_counter() - t0) / a.size:>6.1f}"
        )
    print()
    print("\n".join([header, "-" * len(header), *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
