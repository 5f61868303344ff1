"""scipy baseline for tests/c/bench_kernels.c (same shape, same kind of weights).

    python3 tests/c/bench_scipy.py [n_pre n_post fanout B reps]   (defaults 20000 20000 1000 32 7)

Times W @ X with W the (n_post, n_pre) float32 CSR matrix (fanout distinct
random targets per presynaptic neuron) and X a C-contiguous (n_pre, B)
float32 array, plus W.T @ dY (the backward's dx, via CSR of the transpose),
and prints the best of `reps` as synaptic ops/s (nnz * B / seconds).
"""

import sys
import time

import numpy as np
import scipy.sparse as sp


def main() -> None:
    a = [int(v) for v in sys.argv[1:]]
    n_pre, n_post, fanout, B, reps = a + [20000, 20000, 1000, 32, 7][len(a) :]
    rng = np.random.default_rng(0)
    pre = np.repeat(np.arange(n_pre, dtype=np.int32), fanout)
    post = np.concatenate([rng.choice(n_post, fanout, replace=False) for _ in range(n_pre)])
    w = rng.uniform(-1, 1, pre.size).astype(np.float32)
    W = sp.csr_matrix((w, (post, pre)), shape=(n_post, n_pre))
    W.sort_indices()
    WT = W.T.tocsr()
    X = rng.standard_normal((n_pre, B)).astype(np.float32)
    dY = rng.standard_normal((n_post, B)).astype(np.float32)
    for name, f in (("W @ X", lambda: W @ X), ("W.T @ dY (csr)", lambda: WT @ dY)):
        best = min(_time(f) for _ in range(reps))
        print(f"scipy {name:16s}: best {best * 1e3:8.2f} ms  {W.nnz * B / best * 1e-9:6.2f} G synaptic ops/s")


def _time(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
