/*
 * storage.h -- helpers shared by the storage files only (proj.c, edit.c,
 * random.c).  Not part of the public API and not used by the kernels.
 *
 * Invariants the storage code relies on (see also internal.h):
 *   - a row with cap > 0 has post != NULL and col[c] != NULL exactly for
 *     the enabled columns c; a row with cap == 0 has no usable array (its
 *     pointers are NULL, or blocks left by a failed growth, which the row
 *     still owns and cx_row_free releases);
 *   - the directory headers rows[n_pre .. rows_cap) are all zero, so
 *     growing n_pre inside the capacity finds empty rows;
 *   - n_synapses == sum of rows[i].n.
 */
#ifndef CONNECTOME_STORAGE_H
#define CONNECTOME_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Seed "domains": each random operation mixes its own constant into the
 * caller's seed, so e.g. fill_random and grow with the same seed do not
 * draw correlated streams. */
#define CX_DOM_FILL 0x0ull
#define CX_DOM_ADDPRE 0x6A09E667F3BCC908ull
#define CX_DOM_ADDPOST 0xBB67AE8584CAA73Bull
#define CX_DOM_SAMPLE 0x3C6EF372FE94F82Bull
#define CX_DOM_GROWW 0xA54FF53A5F1D36F1ull

/* Thread count for the storage code: cx_clamp_threads, capped so that
 * per-thread scratch (512 KiB of histograms in prune_count, an n_post-bit
 * bitmap in fill_random) stays bounded whatever the caller passes.
 * Results never depend on it. */
#define CX_STORAGE_MAX_THREADS 64
static inline int cx_storage_threads(int n_threads) {
    int nt = cx_clamp_threads(n_threads);
    return nt > CX_STORAGE_MAX_THREADS ? CX_STORAGE_MAX_THREADS : nt;
}

/* Run-time CPU probe for the x86-64 vector paths of edit.c and rewire.c
 * (the build stays baseline x86-64; the vector functions carry target
 * attributes).  0 off x86-64, and in the CX_STORAGE_TEST_ALT test build,
 * which exercises the portable paths.  feature: a string literal, e.g.
 * "avx2" or "avx512f". */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(CX_STORAGE_TEST_ALT)
#define CX_CPU_HAS(feature) (__builtin_cpu_init(), __builtin_cpu_supports(feature))
#else
#define CX_CPU_HAS(feature) 0
#endif

/* Lane permutations of the 8-lane vector compactions: idx[m] lists the
 * lanes set in mask m in order, then zeros (the lanes past the kept ones
 * are don't-cares). */
typedef struct {
    uint32_t idx[256][8];
} cx_perm8;

static inline void cx_perm8_init(cx_perm8 *pt) {
    for (int m = 0; m < 256; m++) {
        int o = 0;
        for (int l = 0; l < 8; l++)
            if ((m >> l) & 1)
                pt->idx[m][o++] = (uint32_t)l;
        while (o < 8)
            pt->idx[m][o++] = 0;
    }
}

/* 1 if n elements of elem bytes (plus one spare) have a representable
 * size: guards every malloc(n * elem) against size_t wrap-around. */
static inline int cx_fits(cx_size n, size_t elem) {
    return n >= 0 && (uint64_t)n < (uint64_t)(PTRDIFF_MAX / elem) - 1;
}

/* Number of bits needed to represent every value in [0, n), n >= 0. */
static inline int cx_bits_for(uint64_t n) {
    int b = 0;
    while (b < 64 && n > 1 && ((n - 1) >> b) != 0)
        b++;
    return b;
}

/* First position in a[lo, hi) with a[pos] >= x (a ascending). */
static inline cx_index cx_lower_bound_index(const cx_index *a, cx_index lo, cx_index hi,
                                            cx_index x) {
    while (lo < hi) {
        cx_index mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * out[k] = k distinct values drawn uniformly from [0, n), ascending
 * (random.c; used by fill_random, add_post and rewire).
 * bits[(n + 63) / 64] is a scratch bitmap, all zero on entry and on exit;
 * when k > n / 2 the n - k values to leave out are drawn instead.
 * tmp[k] (may be NULL) lets sparse picks be sorted by a small counting
 * sort instead of a word scan: faster, same output.  O(k + n / 64)
 */
void cx_pick_sorted(uint64_t *s, uint64_t *bits, cx_index n, cx_index k, cx_index *out,
                    cx_index *tmp);

/*
 * cnt[i] = how many of n new synapses row i gets when n absent slots are
 * drawn uniformly: an exact multivariate hypergeometric split over the
 * rows' free-slot counts, given as prefix sums fp[n_pre + 1] (rewire.c).
 * Each node of a fixed binary tree over the rows draws from its own
 * stream of seed, so the result does not depend on nt.  Requires
 * 0 <= n <= fp[n_pre].  Never allocates.  O(n_pre) draws
 */
void cx_split_rows(const cx_size *fp, cx_index n_pre, cx_size n, uint64_t seed, int nt,
                   cx_index *cnt);

/*
 * The same split, row by row: cx_split_next(it, i) = cnt[i] of
 * cx_split_rows, for rows i asked in ascending order from any first row
 * (each call descends the tree to leaf i, drawing only the nodes that
 * contain rows >= i: a chunk of rows computes its own counts, the nodes
 * above it twice, so a pass over the rows can draw them as it goes).
 * Bitwise the same as cx_split_rows.  Never allocates.
 */
typedef struct {
    cx_index lo, hi;
    cx_size m;
    uint64_t node;
} cx_split_node;
typedef struct {
    const cx_size *fp;
    uint64_t seed;
    int sp;                /* stack height */
    cx_split_node st[72]; /* <= one pending sibling per level, < 33 levels */
} cx_split_iter;
void cx_split_iter_init(cx_split_iter *it, const cx_size *fp, cx_index n_pre, cx_size n,
                        uint64_t seed);
cx_index cx_split_next(cx_split_iter *it, cx_index i);

/* A split for cx_prune_cut to draw during its pass over the rows:
 * cnt[i] = cx_split_rows(fp, n_pre, n, seed)[i]; done = 1 when it did. */
typedef struct {
    const cx_size *fp;
    cx_size n;
    uint64_t seed;
    cx_index *cnt;
    int done;
} cx_split_job;

/*
 * u[k] = k distinct values drawn uniformly from [0, n), ascending, from
 * the counter-based (splitmix64) stream *x (rewire.c).  bits[(n + 63) / 64]
 * and sum[4 * sw], sw = (n + 4095) / 4096, are scratch, zero on entry and
 * on exit.  vec: CX_PICK_VEC, probed once by the caller (the same u and
 * *x either way).  O(k + n / 4096) (dense picks, 2k > n:
 * cx_pick_sorted)
 */
void cx_pick_row(uint64_t *x, uint64_t *bits, uint64_t *sum, size_t sw, cx_index n, cx_index k,
                 cx_index *u, int vec);
/* The CPU has what cx_pick_row's vector paths need (AVX-512 F, BW, DQ and
 * VBMI2). */
#define CX_PICK_VEC                                                                               \
    (CX_CPU_HAS("avx512f") && CX_CPU_HAS("avx512bw") && CX_CPU_HAS("avx512dq") &&                 \
     CX_CPU_HAS("avx512vbmi2"))

/*
 * Row r plus c new synapses -- the u[k]-th absent ids, u ascending, with
 * u[c] == INT32_MAX, weights wn[c], 0 in the other columns -- written to
 * dst (every enabled column, room for r->n + c + 16 entries; not r).
 * Returns the new length, r->n + c.  The AVX-512 merge of rewire.c:
 * callable only when cx_row_merge_new_fast() is 1.
 */
int cx_row_merge_new_fast(void);
cx_index cx_row_merge_new(unsigned cols, const cx_row *r, cx_row *dst, const cx_index *u,
                          cx_index c, const cx_real *wn);
/* The same for rows r[0] and r[1] at once (their work overlaps): into
 * dst[q] from u[q], c[q], wn[q]; lengths in o[q].  next[q] (or NULL
 * pointers): the rows merged after them, prefetched along. */
void cx_row_merge_new2(unsigned cols, const cx_row *const *r, cx_row *const *dst,
                       cx_index *const *u, const cx_index *c, cx_real *const *wn, cx_index *o,
                       const cx_row *const *next);

/*
 * Stable LSD radix sort of key[n] ascending, carrying val[n] along
 * (val may be NULL).  Only the low `bits` bits of each key may be set.
 * scratch[n] is used if given (else allocated).  Each pass uses
 * per-chunk histograms over fixed chunks; since the sort is stable the
 * output never depends on n_threads.
 * Errors: ENOMEM (the input is then unchanged).
 */
cx_status cx_radix_sort(uint64_t *key, uint32_t *val, cx_size n, int bits, int n_threads,
                        uint64_t *scratch);

/*
 * Insert c new synapses into row r: post[c] strictly increasing and absent
 * from the row, weights w[c] (NULL: 0), at[c] = the number of old entries
 * below post[k] (non-decreasing).  Every other enabled column of the new
 * synapses is 0.  Requires r->cap >= r->n + c; cannot fail.
 */
void cx_row_insert_sorted(unsigned cols, cx_row *r, const cx_index *post, const cx_real *w,
                          const cx_index *at, cx_index c);

/* Rows [lo, hi) of chunk t of nt: the fixed row chunks of the storage
 * passes (the same as edit.c's chunk_rows). */
static inline void cx_index_chunk(cx_index n_pre, int t, int nt, cx_index *lo, cx_index *hi) {
    *lo = (cx_index)((int64_t)n_pre * t / nt);
    *hi = (cx_index)((int64_t)n_pre * (t + 1) / nt);
}

/*
 * The cut of cx_proj_prune_count(n), read-only (edit.c): with the chunks
 * of chunk t of nt = rows [n_pre*t/nt, n_pre*(t+1)/nt), the n synapses to
 * drop are every one with cx_wkey(w) < *T plus, among those with
 * cx_wkey(w) == *T, the first *r_ties in (pre, post) order; tb[t] gets the
 * number of keys == *T in the chunks before t (all 0 when *r_ties == 0).
 * low[n_pre] (may be NULL) gets a lower bound of each row's drops (the
 * keys below the sampled bracket, or 0).
 * sj (may be NULL): a row split drawn during the read pass (a little
 * cheaper than drawing it after; the loads hide few of the draws);
 * sj->done says whether it was (not on the histogram fallback).
 * Requires 0 < n < n_synapses and 1 <= nt <= max(n_pre, 1); tb[nt].
 * Errors: ENOMEM (nothing changed).
 */
cx_status cx_prune_cut(const cx_proj *proj, cx_size n, int nt, uint32_t *T, cx_size *r_ties,
                       cx_size *tb, cx_index *low, cx_split_job *sj);

/* The pruning key of a weight (edit.c's order): NaN -> 0, else the bits
 * of |w| plus one, so cx_wkey(a) < cx_wkey(b) <=> |a| < |b|. */
static inline uint32_t cx_wkey(cx_real w) {
    uint32_t u;
    memcpy(&u, &w, sizeof(u));
    u &= 0x7fffffffu;
    return u > 0x7f800000u ? 0u : u + 1u;
}

#endif /* CONNECTOME_STORAGE_H */
