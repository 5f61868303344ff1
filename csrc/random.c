/*
 * random.c -- random construction and growth: fill_random, sample_absent,
 * grow, add_pre, add_post.
 *
 * Determinism: every random draw comes from a stream derived from the
 * caller's seed, a per-operation domain constant (storage.h) and a fixed
 * stream number (a row, a new neuron, or a node of the tree that splits
 * a growth over the rows), never from a thread number.  Results therefore do not depend on
 * n_threads.
 */
#include "storage.h"

/* ======================================================== sorted picking */

/* ====================================================== sorted picking */

/*
 * Sort v[m] (m <= SORT_MAXB, values < 2^bits, uniform): a counting pass
 * on the top log2(~2m) bits into tmp leaves at most one value in most
 * buckets, and an insertion sort back into v finishes with ~no moves.  For sparse
 * picks it beats the bitmap's word scan, whose loop exit mispredicts on
 * almost every set bit.  O(m) expected
 */
#define SORT_MAXB 4096
static void sort_small(cx_index *v, cx_index *tmp, cx_index m, int bits) {
    uint32_t h[2 * SORT_MAXB + 1];
    int lb = cx_bits_for((uint64_t)m) + 1; /* 2^lb >= 2m buckets */
    int sh = bits > lb ? bits - lb : 0;
    size_t B = (size_t)1 << lb;
    memset(h, 0, (B + 1) * sizeof(uint32_t));
    for (cx_index q = 0; q < m; q++)
        h[((uint32_t)v[q] >> sh) + 1]++;
    for (size_t d = 1; d <= B; d++)
        h[d] += h[d - 1];
    for (cx_index q = 0; q < m; q++)
        tmp[h[(uint32_t)v[q] >> sh]++] = v[q];
    for (cx_index q = 0; q < m; q++) {
        cx_index x = tmp[q], p = q;
        for (; p > 0 && v[p - 1] > x; p--)
            v[p] = v[p - 1];
        v[p] = x;
    }
}

/* cx_pick_sorted: see storage.h.  tmp == NULL skips the sort_small path;
 * the picks, and so the output, are the same either way. */
void cx_pick_sorted(uint64_t *s, uint64_t *bits, cx_index n, cx_index k, cx_index *out,
                        cx_index *tmp) {
    if (k <= 0)
        return;
    size_t nw = ((size_t)n + 63) / 64;
    int comp = k > n / 2;
    cx_index m = comp ? n - k : k;
    for (cx_index got = 0; got < m;) {
        uint64_t v = cx_rng_below(s, (uint64_t)n);
        uint64_t bit = 1ull << (v & 63);
        if (!(bits[v >> 6] & bit)) {
            bits[v >> 6] |= bit;
            if (!comp)
                out[got] = (cx_index)v;
            got++;
        }
    }
    if (!comp && (size_t)m * 4 < nw && m <= 64) {
        /* few picks in a wide range: sort them instead of scanning words */
        for (cx_index a = 1; a < m; a++) {
            cx_index v = out[a], b = a;
            for (; b > 0 && out[b - 1] > v; b--)
                out[b] = out[b - 1];
            out[b] = v;
        }
        for (cx_index a = 0; a < m; a++)
            bits[out[a] >> 6] = 0;
        return;
    }
    if (tmp != NULL && !comp && (size_t)m * 2 < nw && m <= SORT_MAXB) {
        /* sparse: sort the picks, clear only their words */
        for (cx_index a = 0; a < m; a++)
            bits[out[a] >> 6] = 0;
        sort_small(out, tmp, m, cx_bits_for((uint64_t)n));
        return;
    }
    /* scan the words in order: emits ascending and clears the bitmap */
    cx_index o = 0;
    for (size_t wi = 0; wi < nw; wi++) {
        uint64_t x = bits[wi];
        bits[wi] = 0;
        if (comp) {
            x = ~x;
            if (wi == nw - 1 && (n & 63))
                x &= (1ull << (n & 63)) - 1; /* no ids past n */
        }
        while (x) {
            out[o++] = (cx_index)(wi * 64 + (size_t)__builtin_ctzll(x));
            x &= x - 1;
        }
    }
}

/* The ziggurat's tables (see cx_zig_normal in internal.h). */
void cx_zig_init(cx_zig *z) {
    const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
    double dn = CX_ZIG_R, tn = dn;
    double q = vn / exp(-0.5 * dn * dn);
    z->k[0] = (dn / q) * m1;
    z->k[1] = 0;
    z->w[0] = q / m1;
    z->w[127] = dn / m1;
    z->f[0] = 1.0;
    z->f[127] = exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; i--) {
        dn = sqrt(-2.0 * log(vn / dn + exp(-0.5 * dn * dn)));
        z->k[i + 1] = (dn / tn) * m1;
        tn = dn;
        z->f[i] = exp(-0.5 * dn * dn);
        z->w[i] = dn / m1;
    }
}

/* Weights for k new synapses, in row order (z: tables for NORMAL). */
static void draw_weights(cx_init init, const cx_zig *z, uint64_t *s, cx_real *w,
                         cx_index k) {
    switch (init.kind) {
    case CX_INIT_NORMAL:
        for (cx_index j = 0; j < k; j++)
            w[j] = (cx_real)(init.a + init.b * cx_zig_normal(z, s));
        return;
    case CX_INIT_UNIFORM:
        for (cx_index j = 0; j < k; j++)
            w[j] = (cx_real)(init.a + (init.b - init.a) * cx_rng_unit(s));
        return;
    case CX_INIT_CONST:
    default:
        for (cx_index j = 0; j < k; j++)
            w[j] = init.a;
        return;
    }
}

/* Fill an empty row of capacity >= k with k random targets from stream s. */
static void fill_row(unsigned cols, cx_row *r, cx_index n_post, cx_index k, cx_init init,
                     const cx_zig *z, uint64_t s, uint64_t *bits) {
    cx_pick_sorted(&s, bits, n_post, k, r->post, NULL);
    draw_weights(init, z, &s, r->col[CX_COL_WEIGHT], k);
    for (int c = 1; c < CX_N_COLS; c++)
        if (((cols >> c) & 1u) && k > 0)
            memset(r->col[c], 0, (size_t)k * sizeof(cx_real));
    r->n = k;
}

/*
 * Empty rows [lo, hi) to capacity exactly k, one array kind at a time: all
 * the rows' post[] arrays, then all their arrays of each enabled column.
 * Allocated in that order, consecutive rows' arrays of one kind lie next
 * to each other in the heap, so a pass that reads one kind across the rows
 * (the prune cut reads only the weights) streams through memory; allocated
 * row by row, the kinds alternate and such a pass runs at half the speed
 * (benchmarks/membw.c).  On ENOMEM the rows are still empty and their caps
 * valid lower bounds (min(old cap, k) until every array has k).
 */
static cx_status rows_exact_cap(cx_proj *p, cx_index lo, cx_index hi, cx_index k) {
    cx_row *rows = p->rows;
    if (k == 0) {
        for (cx_index i = lo; i < hi; i++)
            cx_row_free(&rows[i]);
        return CX_OK;
    }
    for (cx_index i = lo; i < hi; i++)
        if (rows[i].cap > k)
            rows[i].cap = k;
    for (int c = -1; c < CX_N_COLS; c++) { /* -1: post[] */
        if (c >= 0 && !CX_COL_ON(p, c))
            continue;
        for (cx_index i = lo; i < hi; i++) {
            if (c < 0) {
                cx_index *v = realloc(rows[i].post, (size_t)k * sizeof(cx_index));
                if (!v)
                    return CX_ENOMEM;
                rows[i].post = v;
            } else {
                cx_real *v = realloc(rows[i].col[c], (size_t)k * sizeof(cx_real));
                if (!v)
                    return CX_ENOMEM;
                rows[i].col[c] = v;
            }
        }
    }
    for (cx_index i = lo; i < hi; i++)
        rows[i].cap = k;
    return CX_OK;
}

/* =========================================================== construction */

/*
 * Phase 1 gives every (empty) row exactly `fanout` capacity, so a fresh
 * projection costs 8 bytes per synapse plus the headers.  Phase 2, in
 * parallel over rows, picks each row's targets with the row's own stream
 * and a per-thread bitmap (cx_pick_sorted), then its weights from the same
 * stream.  O(n_synapses + n_pre * n_post / 64)
 */
cx_status cx_proj_fill_random(cx_proj *proj, cx_index fanout, cx_init init, uint64_t seed,
                              int n_threads) {
    if (!proj || proj->n_synapses != 0 || fanout < 0 || fanout > proj->n_post ||
        !cx_init_valid(init))
        return CX_EINVAL;
    int nt = cx_storage_threads(n_threads);
    size_t words = ((size_t)proj->n_post + 63) / 64;
    uint64_t *bitmaps = calloc((size_t)nt * words + 1, sizeof(uint64_t));
    if (!bitmaps)
        return CX_ENOMEM;
    /* Phase 1: exact capacity (rows are empty, so a failure changes no
     * content).  Phase 2 cannot fail. */
    if (rows_exact_cap(proj, 0, proj->n_pre, fanout) != CX_OK) {
        free(bitmaps);
        return CX_ENOMEM;
    }
    cx_row *rows = proj->rows;
    unsigned cols = proj->cols;
    cx_index n_post = proj->n_post;
    uint64_t base = seed ^ CX_DOM_FILL;
    cx_zig zt;
    cx_zig_init(&zt);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (cx_index i = 0; i < proj->n_pre; i++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        fill_row(cols, &rows[i], n_post, fanout, init, &zt, cx_rng_stream(base, (uint64_t)i),
                 bitmaps + (size_t)t * words);
    }
    proj->n_synapses = (cx_size)proj->n_pre * fanout;
    free(bitmaps);
    return CX_OK;
}

/* ================================================================ sampling */

/*
 * n absent slots drawn uniformly, row by row: row i's count cnt[i] from
 * the split over the rows' free-slot counts (cx_split_rows), then its
 * free-slot ranks u[off[i], off[i] + cnt[i]), ascending, from the stream
 * (seed, i) (cx_pick_row, per-thread bitmaps), rows in parallel.  Both
 * steps draw from fixed streams, so nothing depends on n_threads.  The
 * result is a uniform n-subset of the absent pairs, as a global draw of
 * n slots would be, without sorting n global slot numbers.
 */
typedef struct {
    cx_index *cnt; /* [n_pre] new slots per row */
    cx_size *off;  /* [n_pre + 1] row i's ranks start at u[off[i]] */
    cx_index *u;   /* [n] free-slot ranks, ascending within each row */
} slots;

static void slots_free(slots *sl) {
    free(sl->cnt);
    free(sl->off);
    free(sl->u);
}

/* Sample n absent slots and bucket them by row.  ENOSPACE / ENOMEM. */
static cx_status slots_sample(const cx_proj *p, cx_size n, uint64_t seed, int nt, slots *sl) {
    memset(sl, 0, sizeof(*sl));
    cx_index n_pre = p->n_pre, n_post = p->n_post;
    if (nt > n_pre)
        nt = n_pre > 0 ? n_pre : 1;
    size_t words = ((size_t)n_post + 63) / 64, sw = (words + 63) / 64;
    cx_size *fp = malloc(((size_t)n_pre + 1) * sizeof(cx_size));
    uint64_t *bits = NULL;
    sl->cnt = malloc(((size_t)n_pre + 1) * sizeof(cx_index));
    sl->off = malloc(((size_t)n_pre + 1) * sizeof(cx_size));
    cx_status st = CX_ENOMEM;
    if (!fp || !sl->cnt || !sl->off || !cx_fits(n, sizeof(cx_index)))
        goto out;
    fp[0] = 0;
    for (cx_index i = 0; i < n_pre; i++)
        fp[i + 1] = fp[i] + (n_post - p->rows[i].n);
    if (n > fp[n_pre]) {
        st = CX_ENOSPACE;
        goto out;
    }
    sl->u = malloc(((size_t)n + 1) * sizeof(cx_index));
    bits = calloc((size_t)nt * (words + 4 * sw) + 1, sizeof(uint64_t));
    if (!sl->u || !bits)
        goto out;
    uint64_t split = seed ^ CX_DOM_SAMPLE;
    cx_split_rows(fp, n_pre, n, split, nt, sl->cnt);
    sl->off[0] = 0;
    for (cx_index i = 0; i < n_pre; i++)
        sl->off[i + 1] = sl->off[i] + sl->cnt[i];
    const cx_row *rows = p->rows;
    const slots *cs = sl;
    int vec = CX_PICK_VEC;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_index lo, hi;
        cx_index_chunk(n_pre, t, nt, &lo, &hi);
        uint64_t *bt = bits + (size_t)t * (words + 4 * sw);
        for (cx_index i = lo; i < hi; i++) {
            uint64_t x = cx_rng_stream(split, (uint64_t)i);
            cx_pick_row(&x, bt, bt + words, sw, n_post - rows[i].n, cs->cnt[i],
                        cs->u + cs->off[i], vec);
        }
    }
    st = CX_OK;
out:
    free(fp);
    free(bits);
    if (st != CX_OK)
        slots_free(sl);
    return st;
}

/*
 * Free-slot ranks q[c] (ascending) of row r -> absent target ids out[c],
 * ascending.  post[t] - t (the number of absent ids below post[t]) is
 * non-decreasing in t, so the q-th absent id is q + t(q) with
 * t(q) = #{t : post[t] - t <= q}, the number of old entries below it.
 * t(q) only grows with q: a linear walk when the samples are dense in the
 * row, else a binary search from the previous t.
 */
static void row_absent_targets(const cx_row *r, const cx_index *q, cx_index c, cx_index *out) {
    const cx_index *P = r->post;
    cx_index n = r->n, t = 0;
    int linear = (int64_t)c * 16 >= n;
    for (cx_index k = 0; k < c; k++) {
        cx_index v = q[k];
        if (linear) {
            while (t < n && P[t] - t <= v)
                t++;
        } else {
            cx_index a = t, b = n;
            while (a < b) {
                cx_index mid = a + (b - a) / 2;
                if (P[mid] - mid <= v)
                    a = mid + 1;
                else
                    b = mid;
            }
            t = a;
        }
        out[k] = v + t;
    }
}

/*
 * Insert c new synapses into row r (capacity already reserved), given as
 * free-slot ranks q[c] (ascending) with weights w[c].  One backward pass:
 * walking k down from c - 1, every old entry with post[t] - t > q[k]
 * moves up by k + 1 (the new entries above it), then the new one lands at
 * t + k with target q[k] + t.  Entries below the first new one never
 * move, and each moved entry moves once.  (Measured: scanning first and
 * then moving each array in 8-wide blocks was no faster; the row is
 * streamed from memory either way.)
 */
static void row_insert_slots(unsigned cols, cx_row *r, const cx_index *q, cx_index c,
                             const cx_real *w) {
    cx_index *P = r->post;
    cx_real *W = r->col[CX_COL_WEIGHT];
    cx_real *x[CX_N_COLS];
    int nx = 0;
    for (int k = 1; k < CX_N_COLS; k++)
        if ((cols >> k) & 1u)
            x[nx++] = r->col[k];
    cx_index t = r->n;
    for (cx_index k = c - 1; k >= 0; k--) {
        cx_index v = q[k];
        if (nx == 0) {
            while (t > 0 && P[t - 1] - (t - 1) > v) {
                t--;
                P[t + k + 1] = P[t];
                W[t + k + 1] = W[t];
            }
        } else {
            while (t > 0 && P[t - 1] - (t - 1) > v) {
                t--;
                P[t + k + 1] = P[t];
                W[t + k + 1] = W[t];
                for (int e = 0; e < nx; e++)
                    x[e][t + k + 1] = x[e][t];
            }
            for (int e = 0; e < nx; e++)
                x[e][t + k] = 0;
        }
        P[t + k] = v + t;
        W[t + k] = w[k];
    }
    r->n += c;
}

/*
 * Uniform n-subset of the absent pairs, in (pre, post) order: per-row
 * counts and free-slot ranks (slots_sample), mapped row by row to target
 * ids.  grow with the same seed inserts exactly these pairs.
 * O(n + n_pre + sum of touched row lengths + n_pre * n_post / 4096)
 */
cx_status cx_proj_sample_absent(const cx_proj *proj, cx_size n, uint64_t seed, cx_index *pre,
                                cx_index *post) {
    if (!proj || n < 0 || (n > 0 && (!pre || !post)))
        return CX_EINVAL;
    if (n == 0)
        return CX_OK;
    slots sl;
    cx_status st = slots_sample(proj, n, seed, 1, &sl);
    if (st != CX_OK)
        return st;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        cx_size a = sl.off[i];
        for (cx_index k = 0; k < sl.cnt[i]; k++)
            pre[a + k] = i;
        row_absent_targets(&proj->rows[i], sl.u + a, sl.cnt[i], post + a);
    }
    slots_free(&sl);
    return CX_OK;
}

/*
 * Random growth (SET): sample as cx_proj_sample_absent, reserve every
 * touched row, then per row (in parallel over fixed chunks) draw the
 * weights from stream (seed, row) and insert (cx_row_merge_new2 on two
 * touched rows at a time when it has its vector path, else
 * row_insert_slots).  Every draw comes from a per-row or per-node
 * stream, so the result is the same for any n_threads.  Atomic.
 */
cx_status cx_proj_grow(cx_proj *proj, cx_size n, cx_init init, uint64_t seed, int n_threads) {
    if (!proj || n < 0 || !cx_init_valid(init))
        return CX_EINVAL;
    if (n == 0)
        return CX_OK;
    int nt = cx_storage_threads(n_threads);
    slots sl;
    cx_status st = slots_sample(proj, n, seed, nt, &sl);
    if (st != CX_OK)
        return st;
    /* per-thread buffers for one row's new weights (fresh per-call arrays
     * of size n would cost page faults, which are slow in a VM), and for
     * the vector merge a copy of its ranks (+ sentinel) and a scratch row */
    unsigned cols = proj->cols;
    cx_index maxc = 0, maxo = 0;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        if (sl.cnt[i] > maxc)
            maxc = sl.cnt[i];
        if (sl.cnt[i] > 0 && proj->rows[i].n + sl.cnt[i] > maxo)
            maxo = proj->rows[i].n + sl.cnt[i];
    }
    int fast = cx_row_merge_new_fast();
    size_t nw = (size_t)maxc + 17, ncol = fast ? (size_t)maxo + 17 : 0;
    cx_real *wbuf = malloc((size_t)nt * 2 * nw * sizeof(cx_real));
    cx_index *ubuf = malloc((size_t)nt * 2 * (nw + ncol) * sizeof(cx_index));
    cx_real *sbuf = malloc(((size_t)nt * 2 * ncol * CX_N_COLS + 1) * sizeof(cx_real));
    if (!wbuf || !ubuf || !sbuf)
        st = CX_ENOMEM;
    /* reserve every touched row (content unchanged on failure) */
    for (cx_index i = 0; st == CX_OK && i < proj->n_pre; i++) {
        cx_index c = sl.cnt[i];
        if (c > 0)
            st = cx_row_reserve(proj, &proj->rows[i], proj->rows[i].n + c);
    }
    if (st == CX_OK) {
        /* commit: per row, draw the weights, then insert: with the vector
         * merge (two touched rows at a time) into scratch rows and back,
         * else in one backward pass (row_insert_slots) */
        cx_row *rows = proj->rows;
        uint64_t wbase = seed ^ CX_DOM_GROWW;
        cx_zig zt;
        cx_zig_init(&zt);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int t = 0; t < nt; t++) {
            cx_index lo, hi;
            cx_index_chunk(proj->n_pre, t, nt, &lo, &hi);
            cx_real *w[2];
            cx_index *u[2], c[2], o[2];
            cx_row scr[2], *rp[2], *sp[2];
            memset(scr, 0, sizeof(scr));
            for (int q = 0; q < 2; q++) {
                size_t b = (size_t)t * 2 + (size_t)q;
                w[q] = wbuf + b * nw;
                u[q] = ubuf + b * (nw + ncol);
                scr[q].post = u[q] + nw;
                for (int a = 0; a < CX_N_COLS; a++)
                    scr[q].col[a] = sbuf + (b * CX_N_COLS + (size_t)a) * ncol;
                sp[q] = &scr[q];
            }
            int m = 0; /* touched rows held for the pair merge */
            for (cx_index i = lo; i < hi; i++) {
                if (sl.cnt[i] == 0 && !(i + 1 == hi && m == 1))
                    continue;
                if (sl.cnt[i] > 0) {
                    cx_row *r = &rows[i];
                    cx_index ci = sl.cnt[i];
                    uint64_t s = cx_rng_stream(wbase, (uint64_t)i);
                    draw_weights(init, &zt, &s, w[m], ci);
                    if (!fast) {
                        row_insert_slots(cols, r, sl.u + sl.off[i], ci, w[m]);
                        continue;
                    }
                    memcpy(u[m], sl.u + sl.off[i], (size_t)ci * sizeof(cx_index));
                    u[m][ci] = INT32_MAX;
                    rp[m] = r;
                    c[m++] = ci;
                }
                if (m == 2) {
                    /* the next two rows (grow touches most rows), prefetched */
                    const cx_row *nx[2] = {i + 1 < hi ? &rows[i + 1] : NULL,
                                           i + 2 < hi ? &rows[i + 2] : NULL};
                    cx_row_merge_new2(cols, (const cx_row *const *)rp, sp, u, c, w, o, nx);
                } else if (m == 1 && i + 1 == hi) {
                    o[0] = cx_row_merge_new(cols, rp[0], sp[0], u[0], c[0], w[0]);
                } else {
                    continue;
                }
                for (int q = 0; q < m; q++) { /* back into the reserved row */
                    memcpy(rp[q]->post, scr[q].post, (size_t)o[q] * sizeof(cx_index));
                    for (int a = 0; a < CX_N_COLS; a++)
                        if ((cols >> a) & 1u)
                            memcpy(rp[q]->col[a], scr[q].col[a], (size_t)o[q] * sizeof(cx_real));
                    rp[q]->n = o[q];
                }
                m = 0;
            }
        }
        proj->n_synapses += n;
    }
    free(ubuf);
    free(sbuf);
    free(wbuf);
    slots_free(&sl);
    return st;
}

/* ================================================================ neurons */

/*
 * New rows n_pre .. n_pre + n_new - 1, filled as fill_random fills a row
 * (stream (seed, row id), exact capacity).  All allocation happens before
 * n_pre changes; on ENOMEM the new headers are freed back to zero.
 */
cx_status cx_proj_add_pre(cx_proj *proj, cx_index n_new, cx_index fanout, cx_init init,
                          uint64_t seed) {
    if (!proj || n_new < 0 || fanout < 0 || fanout > proj->n_post || !cx_init_valid(init) ||
        (int64_t)proj->n_pre + n_new > INT32_MAX)
        return CX_EINVAL;
    if (n_new == 0)
        return CX_OK;
    cx_index n0 = proj->n_pre;
    cx_status st = cx_proj_reserve_rows(proj, n0 + n_new);
    if (st != CX_OK)
        return st; /* a larger directory alone changes nothing visible */
    size_t words = ((size_t)proj->n_post + 63) / 64;
    uint64_t *bits = calloc(words + 1, sizeof(uint64_t));
    if (!bits)
        return CX_ENOMEM;
    /* rows[n0 ..) are zero headers (invariant); allocate them all first,
     * and on failure zero them again */
    if (rows_exact_cap(proj, n0, n0 + n_new, fanout) != CX_OK) {
        for (cx_index j = 0; j < n_new; j++)
            cx_row_free(&proj->rows[n0 + j]);
        free(bits);
        return CX_ENOMEM;
    }
    uint64_t base = seed ^ CX_DOM_ADDPRE;
    cx_zig zt;
    cx_zig_init(&zt);
    for (cx_index j = 0; j < n_new; j++)
        fill_row(proj->cols, &proj->rows[n0 + j], proj->n_post, fanout, init, &zt,
                 cx_rng_stream(base, (uint64_t)(n0 + j)), bits);
    free(bits);
    proj->n_pre = n0 + n_new;
    proj->n_synapses += (cx_size)n_new * fanout;
    return CX_OK;
}

/*
 * New post neuron n_post + j draws its fanin presynaptic neurons and their
 * weights from stream (seed, n_post + j); each chosen row then gets the
 * synapse appended (the new ids are the largest, so rows stay sorted).
 */
cx_status cx_proj_add_post(cx_proj *proj, cx_index n_new, cx_index fanin, cx_init init,
                           uint64_t seed) {
    if (!proj || n_new < 0 || fanin < 0 || fanin > proj->n_pre || !cx_init_valid(init) ||
        (int64_t)proj->n_post + n_new > INT32_MAX)
        return CX_EINVAL;
    if (n_new == 0)
        return CX_OK;
    cx_index n_pre = proj->n_pre, p0 = proj->n_post;
    cx_size total = (cx_size)n_new * fanin;
    cx_index *sel = malloc(((size_t)total + 1) * sizeof(cx_index));
    cx_real *selw = malloc(((size_t)total + 1) * sizeof(cx_real));
    cx_index *cnt = calloc((size_t)n_pre + 1, sizeof(cx_index));
    uint64_t *bits = calloc(((size_t)n_pre + 63) / 64 + 1, sizeof(uint64_t));
    cx_status st = (sel && selw && cnt && bits) ? CX_OK : CX_ENOMEM;
    if (st == CX_OK) {
        uint64_t base = seed ^ CX_DOM_ADDPOST;
        cx_zig zt;
        cx_zig_init(&zt);
        for (cx_index j = 0; j < n_new; j++) {
            uint64_t s = cx_rng_stream(base, (uint64_t)(p0 + j));
            cx_index *pj = sel + (size_t)j * fanin;
            cx_pick_sorted(&s, bits, n_pre, fanin, pj, NULL);
            draw_weights(init, &zt, &s, selw + (size_t)j * fanin, fanin);
            for (cx_index k = 0; k < fanin; k++)
                cnt[pj[k]]++;
        }
        for (cx_index i = 0; st == CX_OK && i < n_pre; i++)
            if (cnt[i] > 0)
                st = cx_row_reserve(proj, &proj->rows[i], proj->rows[i].n + cnt[i]);
    }
    if (st == CX_OK) {
        /* commit: appends in increasing new id keep every row sorted */
        unsigned cols = proj->cols;
        for (cx_index j = 0; j < n_new; j++) {
            const cx_index *pj = sel + (size_t)j * fanin;
            const cx_real *wj = selw + (size_t)j * fanin;
            for (cx_index k = 0; k < fanin; k++) {
                cx_row *r = &proj->rows[pj[k]];
                cx_index o = r->n++;
                r->post[o] = p0 + j;
                r->col[CX_COL_WEIGHT][o] = wj[k];
                for (int c = 1; c < CX_N_COLS; c++)
                    if ((cols >> c) & 1u)
                        r->col[c][o] = 0;
            }
        }
        proj->n_post = p0 + n_new;
        proj->n_synapses += total;
    }
    free(sel);
    free(selw);
    free(cnt);
    free(bits);
    return st;
}
