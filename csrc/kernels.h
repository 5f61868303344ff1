/*
 * kernels.h -- blocking parameters and small inline helpers shared by
 * forward.c and backward.c only (owner: kernels).  Not part of the API.
 *
 * Blocking scheme (both kernels):
 *   rows are walked in blocks of R presynaptic neurons; for each block,
 *   targets are walked in tiles of T postsynaptic neurons.  Per row of the
 *   block, a cursor (on the stack, no allocation) remembers where the next
 *   tile's slice starts, so every synapse is visited exactly once and each
 *   row needs one binary search per thread at most.
 *   - the (T, B) tile of y (forward) or dy (backward) is sized to stay in
 *     L2 (CX_TILE_BYTES) while every row of the block hits it;
 *   - the (R, B) block of x (and dx) stays in L2 across the tiles.
 *   A target's contributions are still summed in row order, and a row's in
 *   target order: tiling changes the memory traffic, never the arithmetic.
 */
#ifndef CONNECTOME_KERNELS_H
#define CONNECTOME_KERNELS_H

#include "internal.h"

#ifndef CX_TILE_BYTES
#define CX_TILE_BYTES (128 * 1024) /* y / dy tile: 1/8 of the 1 MiB L2 (measured: 128 KiB is 5-10% faster than 64 or 256) */
#endif
#define CX_TILE_MIN 16               /* targets per tile, at least */
#ifndef CX_BLOCK_BYTES
#define CX_BLOCK_BYTES (128 * 1024)  /* x (and dx) row block */
#endif
#define CX_BLOCK_MIN 64              /* rows per block, at least */
#ifndef CX_BLOCK_MAX
#define CX_BLOCK_MAX 2048 /* rows per block, at most (stack cursors) */
#endif
#define CX_SERIAL_OPS ((cx_size)1 << 18) /* below this many synaptic ops, 1 thread */
#define CX_INDEX_END INT32_MAX       /* "no further target" cursor sentinel */

#if defined(__GNUC__)
#define CX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define CX_ALWAYS_INLINE inline
#endif

/*
 * Function multiversioning for the hot, non-OpenMP helpers: an AVX2 clone
 * next to the baseline x86-64 (SSE2) one, chosen once at load time by the
 * ifunc resolver.  GCC only (clang's target_clones differs), x86-64 only,
 * and off when the build already targets a wider ISA (-march=native) or
 * when CONNECTOME_NO_CLONES is defined.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__) && \
    !defined(CONNECTOME_NO_CLONES)
#ifndef CX_CLONE_LIST
#define CX_CLONE_LIST "avx2", "default"
#endif
#define CX_CLONES __attribute__((target_clones(CX_CLONE_LIST)))
#else
#define CX_CLONES
#endif

/* Rows ahead whose next slice is prefetched (0: off). */
#ifndef CX_PREFETCH_ROWS
#define CX_PREFETCH_ROWS 8
#endif
#ifndef CX_PREFETCH_LINES
#define CX_PREFETCH_LINES 4
#endif

/* Start fetching the first CX_PREFETCH_LINES cache lines at p (4-byte elements). */
static inline void cx_prefetch_slice(const void *p) {
#if defined(__GNUC__)
    for (int l = 0; l < CX_PREFETCH_LINES; l++)
        __builtin_prefetch((const char *)p + 64 * l, 0, 3);
#else
    (void)p;
#endif
}

/* Targets per tile: the (T, B) float tile fills CX_TILE_BYTES. */
static inline cx_index cx_tile_targets(cx_index B) {
    cx_size t = CX_TILE_BYTES / ((cx_size)B * (cx_size)sizeof(cx_real));
    return t < CX_TILE_MIN ? CX_TILE_MIN : (cx_index)t;
}

/* Rows per block: the (R, B) block of x fills CX_BLOCK_BYTES, clamped. */
static inline cx_index cx_block_rows(cx_index B) {
    cx_size r = CX_BLOCK_BYTES / ((cx_size)B * (cx_size)sizeof(cx_real));
    if (r < CX_BLOCK_MIN)
        r = CX_BLOCK_MIN;
    if (r > CX_BLOCK_MAX)
        r = CX_BLOCK_MAX;
    return (cx_index)r;
}

/* Threads worth starting for `ops` synaptic ops (results never depend on
 * it; this only avoids waking a team for tiny calls). */
static inline int cx_kernel_threads(int n_threads, cx_size ops) {
    int nt = cx_clamp_threads(n_threads);
#ifdef _OPENMP
    if (ops < CX_SERIAL_OPS)
        nt = 1;
#else
    (void)ops;
    nt = 1;
#endif
    return nt;
}

/* First position k in post[0..n) with post[k] >= t (n if none). */
static inline cx_index cx_lower_bound(const cx_index *post, cx_index n, cx_index t) {
    cx_index lo = 0, hi = n;
    while (lo < hi) {
        cx_index mid = lo + (hi - lo) / 2;
        if (post[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Part `part` of `parts` equal slices of [0, n): [*lo, *hi). */
static inline void cx_split(cx_index n, int parts, int part, cx_index *lo, cx_index *hi) {
    *lo = (cx_index)((cx_size)n * part / parts);
    *hi = (cx_index)((cx_size)n * (part + 1) / parts);
}

#endif /* CONNECTOME_KERNELS_H */
