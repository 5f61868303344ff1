/*
 * forward.c -- the scatter kernel: y[post, :] += w * x[pre, :].
 *
 * Threads never share an output element: thread t owns the targets
 * [lo_t, hi_t) and walks its slice of every row, tile by tile, so no
 * atomics are needed and every y[post, b] receives its contributions in
 * row order (pre = 0, 1, ...) whatever the thread count or tile size.
 */
#include "kernels.h"

/* Largest B taking the explicit-vector path (GCC vectorises B = 32, 64 on
 * its own, slightly better; it misses 8 and 16). */
#ifndef FWD_V8_MAX_B
#define FWD_V8_MAX_B 16
#endif

/* y[0..B) += w * x[0..B), element by element (no reassociation). */
static CX_ALWAYS_INLINE void axpy(cx_real *restrict y, cx_real w, const cx_real *restrict x,
                                  cx_index B) {
    for (cx_index b = 0; b < B; b++)
        y[b] += w * x[b];
}

/*
 * One tile for one block of rows: every synapse of rows [i0, i0 + nr)
 * whose target lies in [.., t1), starting at each row's cursor.
 *
 * Input:   rows[i0 .. i0+nr), x[n_pre * B], t1 the tile's end target
 * Output:  y[n_post * B] accumulated; cur[nr], nxt[nr] advanced
 *          (cur[j] = next position in row i0+j, nxt[j] = its target or
 *          CX_INDEX_END when the row is exhausted)
 * Note:    always inlined with a constant B by fwd_tile, so the B loop
 *          unrolls into whole vectors and the x row stays in registers.
 * Complexity: O(nr + synapses in the tile * B)
 */
static CX_ALWAYS_INLINE void fwd_tile_body(const cx_row *rows, cx_index i0, cx_index nr,
                                           cx_index *restrict cur, cx_index *restrict nxt,
                                           cx_index t1, cx_index B, const cx_real *restrict x,
                                           cx_real *restrict y) {
    for (cx_index j = 0; j < nr; j++) {
#if CX_PREFETCH_ROWS > 0
        /* The slices of different rows are far apart in memory, so the
         * hardware prefetcher misses the start of each one: fetch the row
         * CX_PREFETCH_ROWS ahead while this one is processed. */
        if (j + CX_PREFETCH_ROWS < nr && nxt[j + CX_PREFETCH_ROWS] < t1) {
            const cx_row *q = &rows[i0 + j + CX_PREFETCH_ROWS];
            cx_prefetch_slice(q->post + cur[j + CX_PREFETCH_ROWS]);
            cx_prefetch_slice(q->col[CX_COL_WEIGHT] + cur[j + CX_PREFETCH_ROWS]);
        }
#endif
        cx_index t = nxt[j];
        if (t >= t1)
            continue; /* nothing of this row in the tile */
        const cx_row *r = &rows[i0 + j];
        const cx_index *restrict post = r->post;
        const cx_real *restrict w = r->col[CX_COL_WEIGHT];
        const cx_real *restrict xi = x + (cx_size)(i0 + j) * B;
        cx_index k = cur[j], n = r->n;
#ifdef HAVE_V8
        if (B % 8 == 0 && B <= FWD_V8_MAX_B) {
            /* x[pre, :] in registers; y[post, q] = y + w * x, lane-wise. */
            const int nq = (int)(B / 8);
            v8 xv[V8_MAX], yv;
            for (int q = 0; q < nq; q++)
                memcpy(&xv[q], xi + 8 * q, sizeof(v8));
            do {
                cx_real *yt = y + (cx_size)t * B, wk = w[k];
                for (int q = 0; q < nq; q++) {
                    memcpy(&yv, yt + 8 * q, sizeof yv);
                    yv += wk * xv[q];
                    memcpy(yt + 8 * q, &yv, sizeof yv);
                }
                t = ++k < n ? post[k] : CX_INDEX_END;
            } while (t < t1);
        } else
#endif
            do {
                axpy(y + (cx_size)t * B, w[k], xi, B);
                t = ++k < n ? post[k] : CX_INDEX_END;
            } while (t < t1);
        cur[j] = k;
        nxt[j] = t;
    }
}

/*
 * fwd_tile_body with B made a compile-time constant for common batch
 * sizes (multiversioned: the AVX2 clone uses 8-wide vectors).
 * Complexity: O(nr + synapses in the tile * B)
 */
CX_CLONES static void fwd_tile(const cx_row *rows, cx_index i0, cx_index nr, cx_index *cur,
                               cx_index *nxt, cx_index t1, cx_index B, const cx_real *x,
                               cx_real *y) {
    switch (B) {
    case 1:
        fwd_tile_body(rows, i0, nr, cur, nxt, t1, 1, x, y);
        break;
    case 8:
        fwd_tile_body(rows, i0, nr, cur, nxt, t1, 8, x, y);
        break;
    case 16:
        fwd_tile_body(rows, i0, nr, cur, nxt, t1, 16, x, y);
        break;
    case 32:
        fwd_tile_body(rows, i0, nr, cur, nxt, t1, 32, x, y);
        break;
    case 64:
        fwd_tile_body(rows, i0, nr, cur, nxt, t1, 64, x, y);
        break;
    default:
        fwd_tile_body(rows, i0, nr, cur, nxt, t1, B, x, y);
        break;
    }
}

/*
 * One thread's share: every synapse whose target is in [lo, hi).
 *
 * Input:   p, x[n_pre * B], the target range [lo, hi), tile T, block R
 * Output:  y[lo * B .. hi * B) accumulated (no other element touched)
 * Note:    per block of rows, the cursors start at lower_bound(lo) and
 *          advance tile by tile, so each synapse is visited once.
 * Complexity: O(n_pre * (log fanout + (hi - lo) / T) + synapses in range * B)
 */
static void fwd_range(const cx_proj *p, cx_index lo, cx_index hi, cx_index T, cx_index R,
                      cx_index B, const cx_real *x, cx_real *y) {
    cx_index cur[CX_BLOCK_MAX], nxt[CX_BLOCK_MAX];
    if (lo >= hi)
        return;
    for (cx_index i0 = 0; i0 < p->n_pre; i0 += R) {
        cx_index nr = p->n_pre - i0 < R ? p->n_pre - i0 : R;
        cx_index live = 0; /* rows of the block with a target in [lo, hi) */
        for (cx_index j = 0; j < nr; j++) {
            const cx_row *r = &p->rows[i0 + j];
            cx_index k = lo == 0 ? 0 : cx_lower_bound(r->post, r->n, lo);
            cur[j] = k;
            nxt[j] = k < r->n ? r->post[k] : CX_INDEX_END;
            live += nxt[j] < hi;
        }
        if (live == 0)
            continue;
        for (cx_index t0 = lo; t0 < hi; t0 += T) {
            cx_index t1 = hi - t0 < T ? hi : t0 + T;
            fwd_tile(p->rows, i0, nr, cur, nxt, t1, B, x, y);
        }
    }
}

/*
 * y[post, :] += w * x[pre, :] for every synapse (see connectome.h).
 *
 * Input:   x[n_pre * B]    neuron-major, read-only
 * Output:  y[n_post * B]   accumulated
 * Threads: thread t of n owns targets [n_post * t / n, n_post * (t+1) / n);
 *          each y element is summed in row order: bitwise identical for
 *          any n_threads (and any tile or block size).
 * Note:    EINVAL for a NULL proj, B < 0, or NULL x / y with work to do.
 *          B == 0 is a no-op.  Never allocates (cursors live on the stack).
 * Complexity: O(n_synapses * B + n_pre * (log fanout + n_post / T)) time,
 *          O(1) extra space
 */
cx_status cx_proj_forward(const cx_proj *p, cx_index B, const cx_real *x, cx_real *y,
                          int n_threads) {
    if (p == NULL || B < 0)
        return CX_EINVAL;
    if (B == 0 || p->n_synapses == 0)
        return CX_OK;
    if (x == NULL || y == NULL)
        return CX_EINVAL;
    cx_index T, R;
    cx_blocking(p, B, &T, &R);
    int nt = cx_kernel_threads(n_threads, p->n_synapses * B);
    if (nt > p->n_post)
        nt = p->n_post;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* The team may be smaller than asked: split by its real size. */
        cx_index lo, hi;
        cx_split(p->n_post, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
        fwd_range(p, lo, hi, T, R, B, x, y);
    }
#else
    (void)nt;
    fwd_range(p, 0, p->n_post, T, R, B, x, y);
#endif
    return CX_OK;
}
