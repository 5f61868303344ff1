"""Shared helpers for the connectome benchmark scripts (not a test module).

Everything here uses the public API (``connectome.Network``) so the figures are
what a user gets; scipy is imported lazily because it is an optional extra.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import subprocess
import time

import numpy as np

SCIPY_MISSING = (
    "scipy is not installed: the scipy.sparse comparison is skipped.\n"
    "  Install it with `pip install scipy` or `pip install connectome-engine[bench]`."
)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def import_connectome():
    """Import connectome: the installed package, else the repo's in-place build.

    `python benchmarks/bench_x.py` puts benchmarks/ (not the repo root) on sys.path,
    so after `python setup.py build_clib build_ext --inplace` without an install
    the package is found by adding the repo root."""
    import importlib
    import sys

    try:
        return importlib.import_module("connectome")
    except ImportError:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if root in sys.path:
            raise
        sys.path.insert(0, root)
        sys.modules.pop("connectome", None)
        return importlib.import_module("connectome")


def import_scipy_sparse():
    """Return scipy.sparse, or None (with a printed hint) when scipy is missing."""
    try:
        import scipy.sparse as sp
    except ImportError:
        return None
    return sp


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def malloc_trim() -> bool:
    """Ask glibc to hand freed heap pages back to the OS (so RSS shows live memory)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def best_of(fn, repeats: int, setup=None) -> float:
    """Best wall time (seconds) of ``repeats`` calls of fn(); setup() runs untimed before each."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def build_network(n_pre: int, n_post: int, fanout: int, seed: int = 0, init="uniform"):
    """input(n_pre) -> output(n_post, linear) with one projection; returns (net, inp, out, proj)."""
    cx = import_connectome()

    net = cx.Network(seed=seed)
    inp = net.add_population("input", n_pre)
    out = net.add_population("output", n_post, activation="linear")
    proj = net.connect(inp, out, fanout=fanout, init=init)
    return net, inp, out, proj


def measure_build(n_pre: int, n_post: int, fanout: int, seed: int = 0, init: str = "uniform") -> dict:
    """Build one projection, timing it and measuring RSS growth (call in a fresh process
    for a clean RSS figure)."""
    gc.collect()
    malloc_trim()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    net, inp, out, proj = build_network(n_pre, n_post, fanout, seed=seed, init=init)
    seconds = time.perf_counter() - t0
    rss1 = rss_bytes()
    malloc_trim()
    rss2 = rss_bytes()
    n_syn = int(proj.n_synapses)
    return {
        "net": net,
        "inp": inp,
        "out": out,
        "proj": proj,
        "n_synapses": n_syn,
        "seconds": seconds,
        "nbytes": int(proj.nbytes),
        "rss_growth": rss1 - rss0,
        "rss_growth_trimmed": rss2 - rss0,
    }


def scipy_csr_pair(sp, pre, post, w, n_pre, n_post):
    """The same weights as scipy CSR: W (n_pre x n_post) and W^T (n_post x n_pre)."""
    W = sp.csr_matrix((w, (pre, post)), shape=(n_pre, n_post), dtype=np.float32)
    Wt = sp.csr_matrix((w, (post, pre)), shape=(n_post, n_pre), dtype=np.float32)
    W.sort_indices()
    Wt.sort_indices()
    return W, Wt


def csr_nbytes(M) -> int:
    return int(M.data.nbytes + M.indices.nbytes + M.indptr.nbytes)


def csr_row_ids(M) -> np.ndarray:
    """Row index of every stored entry of a CSR matrix (its COO rows)."""
    return np.repeat(np.arange(M.shape[0], dtype=np.int32), np.diff(M.indptr))


def scipy_sddmm(X, DY, rows, cols, out, chunk=1 << 20):
    """Per-synapse gradient on W's structure: out[s] = sum_b X[rows[s], b] * DY[cols[s], b].

    Chunked gather + einsum (a sampled dense-dense product); X is (n_pre, B),
    DY is (n_post, B), both neuron-major, like the core."""
    n = rows.shape[0]
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        np.einsum("ij,ij->i", X[rows[s:e]], DY[cols[s:e]], out=out[s:e])
    return out


def scipy_prune_grow(sp, W, fraction: float, rng: np.random.Generator):
    """SET-style structural update on a CSR matrix, by rebuilding it.

    As SET's reference code does: to COO, drop the `fraction` smallest |w|,
    draw as many new random (pre, post) pairs that are not already present
    (looping until enough distinct ones are found), concatenate, back to CSR.
    Returns the new CSR matrix."""
    n_rows, n_cols = W.shape
    coo = W.tocoo()
    rows, cols, vals = coo.row, coo.col, coo.data
    nnz = vals.shape[0]
    k = int(fraction * nnz)
    drop = np.argpartition(np.abs(vals), k)[:k]
    keep = np.ones(nnz, dtype=bool)
    keep[drop] = False
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    # present keys, sorted (CSR order is row-major with sorted column indices)
    keys = rows.astype(np.int64) * n_cols + cols
    new_keys = np.empty(0, dtype=np.int64)
    need = k
    while need > 0:
        cand = rng.integers(0, n_rows * n_cols, size=need + need // 8 + 16, dtype=np.int64)
        cand.sort()  # dedupe by sort + mask: np.unique is far slower here (numpy 2.4)
        cand = cand[np.concatenate(([True], cand[1:] != cand[:-1]))]
        pos = np.searchsorted(keys, cand)
        pos[pos == keys.shape[0]] = 0
        cand = cand[keys[pos] != cand]
        if new_keys.size:
            cand = cand[~np.isin(cand, new_keys, assume_unique=True)]
        cand = rng.permutation(cand)[:need]
        new_keys = np.concatenate([new_keys, cand])
        need = k - new_keys.shape[0]
    bound = float(np.abs(vals).max()) if vals.size else 0.1
    new_vals = rng.uniform(-bound, bound, size=k).astype(np.float32)
    rows = np.concatenate([rows, (new_keys // n_cols).astype(np.int32)])
    cols = np.concatenate([cols, (new_keys % n_cols).astype(np.int32)])
    vals = np.concatenate([vals, new_vals])
    return sp.coo_matrix((vals, (rows, cols)), shape=(n_rows, n_cols)).tocsr()


def machine_info() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return f"{os.cpu_count()} CPUs ({cpu}), load average {load}"


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        rev = out.stdout.strip() or "uncommitted"
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.3f} s"


def fmt_rate(r: float | None) -> str:
    if r is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if r >= scale:
            return f"{r / scale:.2f} {unit}/s"
    return f"{r:.1f} /s"


def print_table(header, rows) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
