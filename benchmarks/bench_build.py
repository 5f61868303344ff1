#!/usr/bin/env python
"""Time building large projections and measure their memory at rest.

    python benchmarks/bench_build.py                 # the default cases below
    python benchmarks/bench_build.py --case 20000 20000 1000

Each case runs in a fresh Python process, so the RSS growth it reports is the
projection's alone: RSS (from /proc/self/statm) is read after `import connectome`
and again once net.connect() has returned.  Reported: wall seconds for
Network + add_population x2 + connect (random fan-out, uniform init), synapses/s,
p.nbytes / synapse and RSS growth / synapse (raw, and after glibc malloc_trim so
freed temporaries don't count).

Also a pytest-benchmark test (small size only): pytest benchmarks/bench_build.py --benchmark-only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, machine_info, measure_build, print_table

# (n_pre, n_post, fanout, note)
DEFAULT_CASES = [
    (20_000, 20_000, 1_000, "2e7 synapses, density 5%"),
    (10_000, 100_000, 10_000, "1e8 synapses, density 10%"),
    (10_000, 10_000, 10_000, "1e8 synapses, all-to-all (fan-out = n_post)"),
]


def one_case(n_pre, n_post, fanout, seed, threads) -> dict:
    from _common import import_connectome

    cx = import_connectome()

    if threads:
        cx.set_num_threads(threads)
    b = measure_build(n_pre, n_post, fanout, seed=seed)
    S = b["n_synapses"]
    return {
        "n_pre": n_pre,
        "n_post": n_post,
        "fanout": fanout,
        "threads": cx.get_num_threads(),
        "n_synapses": S,
        "seconds": b["seconds"],
        "nbytes_per_syn": b["nbytes"] / S,
        "rss_per_syn": b["rss_growth"] / S,
        "rss_trimmed_per_syn": b["rss_growth_trimmed"] / S,
    }


def run_subprocess(n_pre, n_post, fanout, seed, threads, repeats) -> dict:
    """Best time of `repeats` fresh processes; memory from the first."""
    best = None
    for _ in range(max(1, repeats)):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--json",
            "--seed",
            str(seed),
            "--case",
            str(n_pre),
            str(n_post),
            str(fanout),
        ]
        if threads:
            cmd += ["--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"case {n_pre}x{n_post} fanout {fanout} failed:\n{out.stderr}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None:
            best = r
        else:
            best["seconds"] = min(best["seconds"], r["seconds"])
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="time building large projections")
    ap.add_argument(
        "--case",
        nargs=3,
        type=int,
        metavar=("N_PRE", "N_POST", "FANOUT"),
        action="append",
        help="a case to run (repeatable); default: the issue's cases",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many fresh processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="run the single --case here, print JSON")
    args = ap.parse_args(argv)

    if args.json:
        ((n_pre, n_post, fanout),) = args.case
        print(json.dumps(one_case(n_pre, n_post, fanout, args.seed, args.threads)))
        return 0

    cases = [(a, b, c, "") for a, b, c in args.case] if args.case else DEFAULT_CASES
    print(f"connectome bench_build  commit {git_commit()}")
    print(f"machine: {machine_info()}")
    rows, misses = [], []
    for n_pre, n_post, fanout, note in cases:
        r = run_subprocess(n_pre, n_post, fanout, args.seed, args.threads, args.repeats)
        rows.append(
            [
                f"{n_pre:,} -> {n_post:,}",
                f"{fanout:,}",
                f"{r['n_synapses']:,}",
                r["threads"],
                f"{r['seconds']:.2f} s",
                f"{r['n_synapses'] / r['seconds'] / 1e6:.0f} M/s",
                f"{r['nbytes_per_syn']:.2f}",
                f"{r['rss_per_syn']:.2f}",
                f"{r['rss_trimmed_per_syn']:.2f}",
                note,
            ]
        )
        if r["n_synapses"] >= 2 * 10**7 and r["rss_per_syn"] > 10:
            misses.append(f"{n_pre}x{fanout}: {r['rss_per_syn']:.2f} B/synapse by RSS > 10")
    print()
    print_table(
        [
            "projection",
            "fan-out",
            "synapses",
            "threads",
            f"build (best of {args.repeats})",
            "synapses/s",
            "nbytes B/syn",
            "RSS B/syn",
            "RSS B/syn trimmed",
            "note",
        ],
        rows,
    )
    print()
    print(
        "<= 10 B/synapse at rest (RSS growth, >= 2e7 synapses): "
        + ("PASS" if not misses else "MISS: " + "; ".join(misses))
    )
    return 0


try:
    import pytest
except ImportError:
    pytest = None

if pytest is not None:

    @pytest.mark.parametrize("n,fanout", [(2_000, 200), (10_000, 100)])
    def test_build(benchmark, n, fanout):
        from _common import build_network

        benchmark.group = "build"
        benchmark.pedantic(build_network, args=(n, n, fanout), rounds=5, iterations=1)


if __name__ == "__main__":
    sys.exit(main())
