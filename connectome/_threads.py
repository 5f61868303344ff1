"""How many threads the C kernels use.

Every call into the C core takes an explicit ``n_threads``; this module
resolves it once for the whole package.  The default follows scikit-learn's
``_openmp_effective_n_threads``: 1 if the core was built without OpenMP;
else ``OMP_NUM_THREADS`` when it is set; else the CPUs this process may run
on (``os.sched_getaffinity``, capped by a cgroup CPU quota).  Results never
depend on the thread count: the kernels are bitwise deterministic.
"""

from __future__ import annotations

import functools
import math
import operator
import os

import numpy as np

from . import _core

__all__ = ["get_num_threads", "set_num_threads"]

# None: use the default, recomputed on every get (the environment may change).
_requested: int | None = None


@functools.lru_cache(maxsize=1)
def _cpu_count() -> int:
    """CPUs usable by this process: affinity mask, then a cgroup v2 quota (cached)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        # cgroup v2: "max 100000" (no quota) or "<quota_us> <period_us>".
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max" and int(period) > 0:
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _default_num_threads() -> int:
    if not _core.openmp_enabled():
        return 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        # OpenMP accepts a comma-separated list (one entry per nesting level).
        try:
            n = int(env.split(",")[0])
        except ValueError:
            n = 0
        if n >= 1:
            return n
    return _cpu_count()


def get_num_threads() -> int:
    """The number of threads the C kernels use (always >= 1).

    Returns
    -------
    n_threads : int
        What :func:`set_num_threads` set, else the default: 1 without OpenMP,
        ``OMP_NUM_THREADS`` if set, else the number of usable CPUs.
    """
    if not _core.openmp_enabled():
        return 1
    if _requested is None:
        return _default_num_threads()
    return _requested


def set_num_threads(n_threads: int | None) -> int:
    """Set the number of threads the C kernels use.

    Parameters
    ----------
    n_threads : int or None
        ``n >= 1`` uses n threads.  ``None`` restores the default.  A negative
        value counts back from the default, as in scikit-learn: -1 is the
        default, -2 one fewer (never below 1).  Without OpenMP every value is
        accepted and 1 thread is used.

    Returns
    -------
    previous : int
        The value :func:`get_num_threads` returned before the call, so that
        ``set_num_threads(previous)`` restores it.

    Raises
    ------
    TypeError
        If ``n_threads`` is not an integer (``bool`` and ``float`` included).
    ValueError
        If ``n_threads`` is 0.
    """
    global _requested
    previous = get_num_threads()
    if n_threads is None:
        _requested = None
        return previous
    if isinstance(n_threads, (bool, np.bool_)) or not hasattr(n_threads, "__index__"):
        raise TypeError(
            f"n_threads must be an integer or None, got {n_threads!r} ({type(n_threads).__name__})"
        )
    try:
        n = operator.index(n_threads)
    except TypeError:  # e.g. a numpy array of several values
        raise TypeError(f"n_threads must be an integer or None, got {n_threads!r}") from None
    if n == 0:
        raise ValueError("n_threads=0 is invalid: expected n_threads >= 1, None or a negative count")
    if n < 0:
        n = max(1, _default_num_threads() + 1 + n)
    _requested = n
    return previous
