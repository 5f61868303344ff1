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
 *   - the (R, B) block of x (and dx) stays in L2 across the tiles;
 *   - sparse projections get larger T and R (cx_blocking).
 * The sizes are #ifndef-guarded so a benchmark can override them with -D.
 * Measured (AMD EPYC Zen 4, 20000 x 20000, fanout 1000, B 32, 1 thread):
 * 128 KiB tiles ~5% faster than 64 or 256 KiB; prefetching 8 rows ahead
 * ~15%; the AVX2 clone ~20% over the SSE2 baseline; an AVX-512 clone gained
 * nothing (so it is not built).
 *   A target's contributions are still summed in row order, and a row's in
 *   target order: tiling changes the memory traffic, never the arithmetic.
 */
#ifndef CONNECTOME_KERNELS_H
#define CONNECTOME_KERNELS_H

#include "internal.h"

#ifndef CX_TILE_BYTES
#define CX_TILE_BYTES (128 * 1024) /* y / dy tile: 1/8 of the 1 MiB L2 */
#endif
#define CX_TILE_MIN 16               /* targets per tile, at least */
#ifndef CX_BLOCK_BYTES
#define CX_BLOCK_BYTES (128 * 1024)  /* x (and dx) row block */
#endif
#define CX_BLOCK_MIN 64              /* rows per block, at least */
#ifndef CX_BLOCK_MAX
#define CX_BLOCK_MAX 8192 /* rows per block, at most (64 KiB of stack cursors) */
#endif
#define CX_MIN_PER_VISIT 4 /* wanted synapses per (row, tile) visit */
#define CX_MIN_PER_PASS 16 /* wanted synapses per target per (block, tile) pass */
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

/*
 * GNU vector extension types for the B % 8 == 0 paths: elementwise
 * operations with exactly the scalar semantics (so every clone computes
 * the same bits), lowered to one AVX2 or two SSE2 registers per v8.
 * GCC's own SLP vectoriser misses the fully unrolled B = 8 and 16 loops.
 */
#if defined(__GNUC__) && !defined(CONNECTOME_NO_VECTOR_EXT)
#define HAVE_V8 1
#define V8_MAX 8 /* vector paths for B <= 64 */
typedef cx_real v8 __attribute__((vector_size(8 * sizeof(cx_real))));
typedef cx_real v4 __attribute__((vector_size(4 * sizeof(cx_real))));
typedef cx_real v2 __attribute__((vector_size(2 * sizeof(cx_real))));
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define HAVE_SHUFFLEVECTOR 1
#define SHUF __builtin_shufflevector
#endif
#endif
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

/*
 * Tile and block sizes for projection p at batch B.
 *
 * Output:  *T targets per tile, *R rows per block
 * Note:    by default the (T, B) tile of y / dy fills CX_TILE_BYTES (L2) and
 *          the (R, B) block of x fills CX_BLOCK_BYTES.  A sparse projection
 *          (density d = n_synapses / (n_pre n_post)) would then visit each
 *          row's slice of a tile for about d T synapses, and pass over each
 *          target about d R times per block: too little work per visit or
 *          per pass of y.  So T grows to CX_MIN_PER_VISIT / d (the tile then
 *          lives in L3) and R to CX_MIN_PER_PASS / d, up to CX_BLOCK_MAX.
 *          Measured at 20000 x 10^6, fanout 1000, B 32: 2.5x faster forward
 *          than the fixed sizes.  Never changes results, only speed.
 */
static inline void cx_blocking(const cx_proj *p, cx_index B, cx_index *T, cx_index *R) {
    cx_size row_bytes = (cx_size)B * (cx_size)sizeof(cx_real);
    cx_size t = CX_TILE_BYTES / row_bytes, r = CX_BLOCK_BYTES / row_bytes;
    double d = (double)p->n_synapses / ((double)p->n_pre * (double)p->n_post + 1.0);
    if (d > 0 && (double)t * d < CX_MIN_PER_VISIT)
        t = (cx_size)(CX_MIN_PER_VISIT / d) + 1;
    if (d > 0 && (double)r * d < CX_MIN_PER_PASS)
        r = (cx_size)(CX_MIN_PER_PASS / d) + 1;
    if (t < CX_TILE_MIN)
        t = CX_TILE_MIN;
    if (t > p->n_post)
        t = p->n_post > CX_TILE_MIN ? p->n_post : CX_TILE_MIN;
    if (r < CX_BLOCK_MIN)
        r = CX_BLOCK_MIN;
    if (r > CX_BLOCK_MAX)
        r = CX_BLOCK_MAX;
    *T = (cx_index)t;
    *R = (cx_index)r;
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
