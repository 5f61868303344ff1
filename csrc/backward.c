/*
 * backward.c -- the gather kernel over the same rows as forward:
 *   dx[pre, :] += sum over the row of w * dy[post, :]
 *   grad[s]    += dot(x[pre, :], dy[post, :])
 *
 * Threads own ranges of rows (every output, dx[pre, :] or grad[s], belongs
 * to one row), so no atomics and no transposed copy are needed.
 */
#include "kernels.h"

/* Which outputs a call produces (both off returns before any work). */
enum { DO_DX = 1, DO_GRAD = 2 };

/*
 * The fixed-order dot product of x[0..B) and d[0..B), B >= 1.
 *
 * Note:    B < 8: r = x0 d0 + x1 d1 + ... left to right.  B >= 8: eight
 *          lane sums s[j] = x[j] d[j] + x[j+8] d[j+8] + ... (increasing b),
 *          then the tree ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)), then the
 *          tail b >= B - B % 8 added left to right.  Every ISA clone and
 *          every thread count computes these exact bits: the lanes are
 *          one 8-wide vector (GNU vector extension, two 4-wide halves on
 *          SSE2) or plain scalars, with the same operations either way.
 */
#ifdef HAVE_V8
/* The lane tree above on a vector: ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)). */
static CX_ALWAYS_INLINE cx_real reduce8(const v8 *s) {
#ifdef HAVE_SHUFFLEVECTOR
    v4 t = SHUF(*s, *s, 0, 1, 2, 3) + SHUF(*s, *s, 4, 5, 6, 7);
    v2 u = SHUF(t, t, 0, 1) + SHUF(t, t, 2, 3);
    return u[0] + u[1];
#else
    return (((*s)[0] + (*s)[4]) + ((*s)[2] + (*s)[6])) +
           (((*s)[1] + (*s)[5]) + ((*s)[3] + (*s)[7]));
#endif
}
#endif

static CX_ALWAYS_INLINE cx_real dot(const cx_real *restrict x, const cx_real *restrict d,
                                    cx_index B) {
    cx_index b;
    cx_real r;
    if (B < 8) {
        r = x[0] * d[0];
        for (b = 1; b < B; b++)
            r += x[b] * d[b];
        return r;
    }
#ifdef HAVE_V8
    v8 s, xv, dv;
    memcpy(&xv, x, sizeof xv);
    memcpy(&dv, d, sizeof dv);
    s = xv * dv;
    for (b = 8; b + 8 <= B; b += 8) {
        memcpy(&xv, x + b, sizeof xv);
        memcpy(&dv, d + b, sizeof dv);
        s += xv * dv;
    }
    r = reduce8(&s);
#else
    cx_real s[8];
    for (int j = 0; j < 8; j++)
        s[j] = x[j] * d[j];
    for (b = 8; b + 8 <= B; b += 8)
        for (int j = 0; j < 8; j++)
            s[j] += x[b + j] * d[b + j];
    r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
#endif
    for (; b < B; b++)
        r += x[b] * d[b];
    return r;
}

/*
 * Synapses [k, e) of one row, any B.
 *
 * Input:   post[e], w[e] of the row; xi[B] = x[pre, :]; dy[n_post * B]
 * Output:  dxi[B] = dx[pre, :] (what & DO_DX), g[k..e) (what & DO_GRAD)
 * Complexity: O((e - k) * B)
 */
static CX_ALWAYS_INLINE void bwd_slice(const cx_index *restrict post, const cx_real *restrict w,
                                       cx_real *restrict g, cx_index k, cx_index e, cx_index B,
                                       const cx_real *restrict xi, const cx_real *restrict dy,
                                       cx_real *restrict dxi, int what) {
    for (; k < e; k++) {
        const cx_real *restrict dyt = dy + (cx_size)post[k] * B;
        if (what & DO_DX) {
            cx_real wk = w[k];
            for (cx_index b = 0; b < B; b++)
                dxi[b] += wk * dyt[b];
        }
        if (what & DO_GRAD)
            g[k] += dot(xi, dyt, B);
    }
}

#ifdef HAVE_V8
/*
 * bwd_slice for a constant B in {8, 16, ..., 64}: x[pre, :] and the dx
 * accumulators live in registers for the whole slice, and the gradient
 * lane trees of 4 consecutive synapses are reduced together with
 * transposing shuffles (the same additions, so the same bits as dot()).
 * Complexity: O((e - k) * B)
 */
static CX_ALWAYS_INLINE void bwd_slice_v8(const cx_index *restrict post,
                                          const cx_real *restrict w, cx_real *restrict g,
                                          cx_index k, cx_index e, cx_index B,
                                          const cx_real *restrict xi, const cx_real *restrict dy,
                                          cx_real *restrict dxi, int what) {
    const int nq = (int)(B / 8);
    v8 xv[V8_MAX], acc[V8_MAX];
    for (int q = 0; q < nq; q++) {
        if (what & DO_GRAD)
            memcpy(&xv[q], xi + 8 * q, sizeof(v8));
        if (what & DO_DX)
            memcpy(&acc[q], dxi + 8 * q, sizeof(v8));
    }
#ifdef HAVE_SHUFFLEVECTOR
    if (what & DO_GRAD) {
        for (; k + 4 <= e; k += 4) {
            v4 t[4];
            for (int u = 0; u < 4; u++) {
                const cx_real *restrict dyt = dy + (cx_size)post[k + u] * B;
                v8 s = {0}, d;
                for (int q = 0; q < nq; q++) {
                    memcpy(&d, dyt + 8 * q, sizeof d);
                    if (what & DO_DX)
                        acc[q] += w[k + u] * d;
                    s = q == 0 ? xv[0] * d : s + xv[q] * d;
                }
                t[u] = SHUF(s, s, 0, 1, 2, 3) + SHUF(s, s, 4, 5, 6, 7);
            }
            /* u01 = [(t0_0+t0_2), (t0_1+t0_3), (t1_0+t1_2), (t1_1+t1_3)], ... */
            v4 u01 = SHUF(t[0], t[1], 0, 1, 4, 5) + SHUF(t[0], t[1], 2, 3, 6, 7);
            v4 u23 = SHUF(t[2], t[3], 0, 1, 4, 5) + SHUF(t[2], t[3], 2, 3, 6, 7);
            v4 r = SHUF(u01, u23, 0, 2, 4, 6) + SHUF(u01, u23, 1, 3, 5, 7), gv;
            memcpy(&gv, g + k, sizeof gv);
            gv += r;
            memcpy(g + k, &gv, sizeof gv);
        }
    }
#endif
    for (; k < e; k++) {
        const cx_real *restrict dyt = dy + (cx_size)post[k] * B;
        v8 s = {0}, d;
        for (int q = 0; q < nq; q++) {
            memcpy(&d, dyt + 8 * q, sizeof d);
            if (what & DO_DX)
                acc[q] += w[k] * d;
            if (what & DO_GRAD)
                s = q == 0 ? xv[0] * d : s + xv[q] * d;
        }
        if (what & DO_GRAD)
            g[k] += reduce8(&s);
    }
    if (what & DO_DX)
        for (int q = 0; q < nq; q++)
            memcpy(dxi + 8 * q, &acc[q], sizeof(v8));
}
#endif

/*
 * One tile for one block of rows: every synapse of rows [i0, i0 + nr)
 * with target < t1, starting at each row's cursor.
 *
 * Input:   rows[i0 .. i0+nr), x[n_pre * B], dy[n_post * B], t1
 * Output:  dx[n_pre * B] (what & DO_DX) and the rows' grad column
 *          (what & DO_GRAD) accumulated; cur[nr], nxt[nr] advanced
 * Note:    dx[pre, :] is loaded once per slice, gathers w * dy[post, :]
 *          synapse by synapse in row order, then is stored: the same
 *          arithmetic as one unblocked pass over the row.
 * Complexity: O(nr + synapses in the tile * B)
 */
static CX_ALWAYS_INLINE void bwd_tile_body(const cx_row *rows, cx_index i0, cx_index nr,
                                           cx_index *restrict cur, cx_index *restrict nxt,
                                           cx_index t1, cx_index B, const cx_real *restrict x,
                                           const cx_real *restrict dy, cx_real *restrict dx,
                                           int what) {
    for (cx_index j = 0; j < nr; j++) {
#if CX_PREFETCH_ROWS > 0
        /* As in forward: start loading a later row's slice now. */
        if (j + CX_PREFETCH_ROWS < nr && nxt[j + CX_PREFETCH_ROWS] < t1) {
            const cx_row *q = &rows[i0 + j + CX_PREFETCH_ROWS];
            cx_index c = cur[j + CX_PREFETCH_ROWS];
            cx_prefetch_slice(q->post + c);
            if (what & DO_DX)
                cx_prefetch_slice(q->col[CX_COL_WEIGHT] + c);
            if (what & DO_GRAD)
                cx_prefetch_slice(q->col[CX_COL_GRAD] + c);
        }
#endif
        if (nxt[j] >= t1)
            continue;
        const cx_row *r = &rows[i0 + j];
        const cx_index *restrict post = r->post;
        const cx_real *xi = (what & DO_GRAD) ? x + (cx_size)(i0 + j) * B : NULL;
        cx_real *dxi = (what & DO_DX) ? dx + (cx_size)(i0 + j) * B : NULL;
        cx_index k = cur[j], e = k + 1, n = r->n;
        while (e < n && post[e] < t1) /* the slice is [k, e) */
            e++;
#ifdef HAVE_V8
        if (B % 8 == 0 && B <= 8 * V8_MAX)
            bwd_slice_v8(post, r->col[CX_COL_WEIGHT], r->col[CX_COL_GRAD], k, e, B, xi, dy, dxi,
                         what);
        else
#endif
            bwd_slice(post, r->col[CX_COL_WEIGHT], r->col[CX_COL_GRAD], k, e, B, xi, dy, dxi,
                      what);
        cur[j] = e;
        nxt[j] = e < n ? post[e] : CX_INDEX_END;
    }
}

/* bwd_tile_body for one output set, B constant for common batch sizes. */
#define BWD_SWITCH(WHAT)                                                                    \
    switch (B) {                                                                            \
    case 1:                                                                                 \
        bwd_tile_body(rows, i0, nr, cur, nxt, t1, 1, x, dy, dx, WHAT);                      \
        break;                                                                              \
    case 8:                                                                                 \
        bwd_tile_body(rows, i0, nr, cur, nxt, t1, 8, x, dy, dx, WHAT);                      \
        break;                                                                              \
    case 16:                                                                                \
        bwd_tile_body(rows, i0, nr, cur, nxt, t1, 16, x, dy, dx, WHAT);                     \
        break;                                                                              \
    case 32:                                                                                \
        bwd_tile_body(rows, i0, nr, cur, nxt, t1, 32, x, dy, dx, WHAT);                     \
        break;                                                                              \
    case 64:                                                                                \
        bwd_tile_body(rows, i0, nr, cur, nxt, t1, 64, x, dy, dx, WHAT);                     \
        break;                                                                              \
    default:                                                                                \
        bwd_tile_body(rows, i0, nr, cur, nxt, t1, B, x, dy, dx, WHAT);                      \
        break;                                                                              \
    }

/*
 * Dispatch one (block, tile) to a specialised body (multiversioned: the
 * AVX2 clone uses 8-wide vectors).
 * Complexity: O(nr + synapses in the tile * B)
 */
CX_CLONES static void bwd_tile(const cx_row *rows, cx_index i0, cx_index nr, cx_index *cur,
                               cx_index *nxt, cx_index t1, cx_index B, const cx_real *x,
                               const cx_real *dy, cx_real *dx, int what) {
    if (what == (DO_DX | DO_GRAD)) {
        BWD_SWITCH(DO_DX | DO_GRAD)
    } else if (what == DO_DX) {
        BWD_SWITCH(DO_DX)
    } else {
        BWD_SWITCH(DO_GRAD)
    }
}

/*
 * One thread's share: rows [r_lo, r_hi), in blocks of R rows; per block
 * the targets are walked in tiles of T from 0 (the tile grid is the same
 * for every thread count).
 * Complexity: O((r_hi - r_lo) * n_post / T + their synapses * B)
 */
static void bwd_range(cx_proj *p, cx_index r_lo, cx_index r_hi, cx_index T, cx_index R,
                      cx_index B, const cx_real *x, const cx_real *dy, cx_real *dx, int what) {
    cx_index cur[CX_BLOCK_MAX], nxt[CX_BLOCK_MAX];
    for (cx_index i0 = r_lo; i0 < r_hi; i0 += R) {
        cx_index nr = r_hi - i0 < R ? r_hi - i0 : R;
        cx_index first = CX_INDEX_END, last = -1; /* targets the block touches */
        for (cx_index j = 0; j < nr; j++) {
            const cx_row *r = &p->rows[i0 + j];
            cur[j] = 0;
            nxt[j] = r->n > 0 ? r->post[0] : CX_INDEX_END;
            if (r->n > 0) {
                first = r->post[0] < first ? r->post[0] : first;
                last = r->post[r->n - 1] > last ? r->post[r->n - 1] : last;
            }
        }
        /* Skip the tiles before the block's first target and stop after
         * its last; still on the global grid t0 = multiple of T. */
        for (cx_index t0 = last < 0 ? p->n_post : first / T * T; t0 <= last; t0 += T) {
            cx_index t1 = p->n_post - t0 < T ? p->n_post : t0 + T;
            bwd_tile(p->rows, i0, nr, cur, nxt, t1, B, x, dy, dx, what);
        }
    }
}

#ifdef _OPENMP
/*
 * First row of part `part` of `parts`, balancing synapses: the first row i
 * whose prefix synapse count reaches n_synapses * part / parts.
 * Complexity: O(n_pre)
 */
static cx_index row_split(const cx_proj *p, int parts, int part) {
    if (part <= 0)
        return 0;
    if (part >= parts)
        return p->n_pre;
    cx_size goal = p->n_synapses * part / parts, sum = 0;
    cx_index i = 0;
    while (i < p->n_pre && sum < goal)
        sum += p->rows[i++].n;
    return i;
}
#endif

/*
 * dx[pre, :] += sum_s w[s] * dy[post, :] and grad[s] += dot(x[pre, :],
 * dy[post, :]), in one pass over the rows (see connectome.h).
 *
 * Input:   x[n_pre * B] (needed when accumulate_grad), dy[n_post * B]
 * Output:  dx[n_pre * B] accumulated (NULL: skipped); the CX_COL_GRAD
 *          column accumulated when accumulate_grad
 * Threads: thread t owns a contiguous range of rows holding about
 *          n_synapses / n of the synapses; every output belongs to one row
 *          and is summed in row order: bitwise identical for any n_threads.
 * Note:    EINVAL for a NULL proj, B < 0, accumulate_grad with the grad
 *          column disabled, or NULL x / dy with work to do.  B == 0 and
 *          (dx == NULL and !accumulate_grad) are no-ops.  Never allocates.
 * Complexity: O(n_synapses * B + n_pre * n_post / T) time, O(1) extra space
 */
cx_status cx_proj_backward(cx_proj *p, cx_index B, const cx_real *x, const cx_real *dy,
                           cx_real *dx, int accumulate_grad, int n_threads) {
    if (p == NULL || B < 0)
        return CX_EINVAL;
    if (accumulate_grad && !CX_COL_ON(p, CX_COL_GRAD))
        return CX_EINVAL;
    int what = (dx != NULL ? DO_DX : 0) | (accumulate_grad ? DO_GRAD : 0);
    if (B == 0 || p->n_synapses == 0 || what == 0)
        return CX_OK;
    if (dy == NULL || ((what & DO_GRAD) && x == NULL))
        return CX_EINVAL;
    cx_index T, R;
    cx_blocking(p, B, &T, &R);
    int nt = cx_kernel_threads(n_threads, p->n_synapses * B);
    if (nt > p->n_pre)
        nt = p->n_pre;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int nth = omp_get_num_threads(), tid = omp_get_thread_num();
        bwd_range(p, row_split(p, nth, tid), row_split(p, nth, tid + 1), T, R, B, x, dy, dx,
                  what);
    }
#else
    (void)nt;
    bwd_range(p, 0, p->n_pre, T, R, B, x, dy, dx, what);
#endif
    return CX_OK;
}
