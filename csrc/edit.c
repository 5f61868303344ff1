/*
 * edit.c -- structural edits: batched add / remove, pruning, and removal
 * of neurons (with np.delete renumbering).
 *
 * Every call validates and reserves first, then commits with code that
 * cannot fail, so a failed call leaves the projection exactly as it was.
 */
#include "storage.h"

/* ============================================================ radix sort */

#define RADIX_MAX_DIGIT 11         /* <= 2048 buckets: a histogram fits in L1 */
#define RADIX_PAR_MIN (1 << 16)    /* below this, one thread sorts */

cx_status cx_radix_sort(uint64_t *key, uint32_t *val, cx_size n, int bits, int n_threads,
                        uint64_t *scratch) {
    if (n <= 1 || bits <= 0)
        return CX_OK;
    int passes = (bits + RADIX_MAX_DIGIT - 1) / RADIX_MAX_DIGIT;
    int dbits = (bits + passes - 1) / passes; /* balanced digit width */
    size_t nb = (size_t)1 << dbits;
    uint64_t mask = nb - 1;
    int nt = n < RADIX_PAR_MIN ? 1 : cx_storage_threads(n_threads);

    uint64_t *tk = scratch ? scratch : malloc((size_t)n * sizeof(uint64_t));
    uint32_t *tv = val ? malloc((size_t)n * sizeof(uint32_t)) : NULL;
    cx_size *hist = malloc((size_t)nt * nb * sizeof(cx_size));
    if (!tk || (val && !tv) || !hist) {
        if (!scratch)
            free(tk);
        free(tv);
        free(hist);
        return CX_ENOMEM;
    }
    uint64_t *sk = key, *dk = tk;
    uint32_t *sv = val, *dv = tv;
    for (int p = 0; p < passes; p++) {
        int shift = p * dbits;
        /* 1. per-chunk histograms (chunks are fixed by nt, not by the
         *    runtime's thread count, so offsets below stay consistent). */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int t = 0; t < nt; t++) {
            cx_size lo = n * t / nt, hi = n * (t + 1) / nt;
            cx_size *h = hist + (size_t)t * nb;
            memset(h, 0, nb * sizeof(cx_size));
            for (cx_size i = lo; i < hi; i++)
                h[(sk[i] >> shift) & mask]++;
        }
        /* 2. a pass where every key has the same digit changes nothing */
        int trivial = 0;
        for (size_t d = 0; d < nb && !trivial; d++) {
            cx_size tot = 0;
            for (int t = 0; t < nt; t++)
                tot += hist[(size_t)t * nb + d];
            if (tot == n)
                trivial = 1;
            else if (tot != 0)
                break;
        }
        if (trivial)
            continue;
        /* 3. exclusive offsets in (digit, chunk) order: stable */
        cx_size sum = 0;
        for (size_t d = 0; d < nb; d++)
            for (int t = 0; t < nt; t++) {
                cx_size c = hist[(size_t)t * nb + d];
                hist[(size_t)t * nb + d] = sum;
                sum += c;
            }
        /* 4. scatter */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int t = 0; t < nt; t++) {
            cx_size lo = n * t / nt, hi = n * (t + 1) / nt;
            cx_size *h = hist + (size_t)t * nb;
            if (sv) {
                for (cx_size i = lo; i < hi; i++) {
                    cx_size o = h[(sk[i] >> shift) & mask]++;
                    dk[o] = sk[i];
                    dv[o] = sv[i];
                }
            } else {
                for (cx_size i = lo; i < hi; i++)
                    dk[h[(sk[i] >> shift) & mask]++] = sk[i];
            }
        }
        uint64_t *xk = sk;
        sk = dk;
        dk = xk;
        uint32_t *xv = sv;
        sv = dv;
        dv = xv;
    }
    if (sk != key) {
        memcpy(key, sk, (size_t)n * sizeof(uint64_t));
        if (val)
            memcpy(val, sv, (size_t)n * sizeof(uint32_t));
    }
    if (!scratch)
        free(tk);
    free(tv);
    free(hist);
    return CX_OK;
}

/* ============================================================ row helpers */

/* Pointers to the enabled columns other than the weight; returns how many. */
static int extra_cols(unsigned cols, cx_row *r, cx_real **x) {
    int nx = 0;
    for (int c = 1; c < CX_N_COLS; c++)
        if ((cols >> c) & 1u)
            x[nx++] = r->col[c];
    return nx;
}

void cx_row_insert_sorted(unsigned cols, cx_row *r, const cx_index *post, const cx_real *w,
                          const cx_index *at, cx_index c) {
    if (c <= 0)
        return;
    /* New synapse k lands at at[k] + k; the old block [at[k], at[k+1])
     * moves up by k + 1.  Array by array, from the back, so each old entry
     * moves once and entries below at[0] do not move. */
    cx_index *P = r->post;
    cx_index hi = r->n;
    for (cx_index k = c - 1; k >= 0; k--) {
        cx_index lo = at[k];
        for (cx_index j = hi - 1; j >= lo; j--)
            P[j + k + 1] = P[j];
        P[lo + k] = post[k];
        hi = lo;
    }
    for (int a = 0; a < CX_N_COLS; a++) {
        if (!((cols >> a) & 1u))
            continue;
        cx_real *A = r->col[a];
        hi = r->n;
        for (cx_index k = c - 1; k >= 0; k--) {
            cx_index lo = at[k];
            for (cx_index j = hi - 1; j >= lo; j--)
                A[j + k + 1] = A[j];
            A[lo + k] = (a == CX_COL_WEIGHT && w) ? w[k] : 0;
            hi = lo;
        }
    }
    r->n += c;
}

/* Remove the entries at positions pos[c] (strictly increasing) from r,
 * one memmove per surviving segment and array. */
static void row_remove_positions(unsigned cols, cx_row *r, const cx_index *pos, cx_index c) {
    if (c <= 0)
        return;
    char *arr[CX_N_COLS + 1];
    int na = 0;
    arr[na++] = (char *)r->post;
    for (int k = 0; k < CX_N_COLS; k++)
        if ((cols >> k) & 1u)
            arr[na++] = (char *)r->col[k];
    /* cx_index and cx_real have the same size, so one offset serves all */
    const size_t es = sizeof(cx_index);
    for (int a = 0; a < na; a++) {
        char *A = arr[a];
        cx_index o = pos[0];
        for (cx_index k = 0; k < c; k++) {
            cx_index s = pos[k] + 1, e = k + 1 < c ? pos[k + 1] : r->n;
            if (e > s)
                memmove(A + (size_t)o * es, A + (size_t)s * es, (size_t)(e - s) * es);
            o += e - s;
        }
    }
    r->n -= c;
}

/*
 * |w| as an order-preserving integer key for pruning: NaN -> 0 (removed
 * first), otherwise the IEEE bits of |w| plus one.  Non-negative floats
 * compare like their bit patterns, so key(a) < key(b) <=> |a| < |b|.
 * The largest key is that of +inf, 0x7f800001.
 */
static inline uint32_t wkey(cx_real w) {
    uint32_t u;
    memcpy(&u, &w, sizeof(u));
    u &= 0x7fffffffu;
    return u > 0x7f800000u ? 0u : u + 1u;
}

/*
 * Compact row r, dropping every synapse with wkey < T and, among those with
 * wkey == T, the ones whose running tie number (*ties, counted over the
 * caller's rows in (pre, post) order) is below r_ties.  Returns the count
 * dropped.  Never allocates.
 */
static cx_index row_prune(unsigned cols, cx_row *r, uint32_t T, cx_size *ties, cx_size r_ties) {
    cx_index n = r->n;
    cx_index *P = r->post;
    cx_real *W = r->col[CX_COL_WEIGHT];
    cx_size tie = *ties;
    cx_index j = 0;
    /* fast scan to the first dropped synapse: the prefix stays in place */
    for (; j < n; j++) {
        uint32_t k = wkey(W[j]);
        if (k < T)
            break;
        if (k == T && tie++ < r_ties)
            break;
    }
    if (j == n) {
        *ties = tie;
        return 0;
    }
    cx_real *x[CX_N_COLS];
    int nx = extra_cols(cols, r, x);
    cx_index o = j; /* entry j is dropped */
    /* Branch-free compaction: always copy down (o <= j), advance o only
     * for a kept synapse.  Drops are data-dependent, so a branch would
     * mispredict on a good fraction of them. */
    if (nx == 0) {
        for (j = j + 1; j < n; j++) {
            cx_real w = W[j];
            cx_index p = P[j];
            uint32_t k = wkey(w);
            int eq = k == T;
            int drop = (k < T) | (eq & (tie < r_ties));
            tie += eq;
            P[o] = p;
            W[o] = w;
            o += !drop;
        }
    } else {
        for (j = j + 1; j < n; j++) {
            cx_real w = W[j];
            uint32_t k = wkey(w);
            int eq = k == T;
            int drop = (k < T) | (eq & (tie < r_ties));
            tie += eq;
            P[o] = P[j];
            W[o] = w;
            for (int c = 0; c < nx; c++)
                x[c][o] = x[c][j];
            o += !drop;
        }
    }
    *ties = tie;
    r->n = o;
    return n - o;
}

/* ========================================================= batched edits */

/*
 * A validated, sorted batch.  Each entry is one 64-bit key
 * (pre << bpost | post) << bpos | position when that fits in 64 bits
 * (val == NULL), else the key without position plus val[] = position.
 */
typedef struct {
    cx_size n;
    uint64_t *key;
    uint32_t *val;
    int bpos, bpost;
} batch;

static inline cx_index b_pre(const batch *b, cx_size k) {
    return (cx_index)(b->key[k] >> (b->bpos + b->bpost));
}
static inline cx_index b_post(const batch *b, cx_size k) {
    return (cx_index)((b->key[k] >> b->bpos) & ((1ull << b->bpost) - 1));
}
static inline cx_size b_pos(const batch *b, cx_size k) {
    return b->val ? (cx_size)b->val[k] : (cx_size)(b->key[k] & ((1ull << b->bpos) - 1));
}
static void batch_free(batch *b) {
    free(b->key);
    free(b->val);
}

/*
 * Check ids and sort a batch.  On EINDEX *err_at is the input position of
 * the smallest out-of-range (pre, post) (ties: earliest position).
 */
static cx_status batch_build(const cx_proj *p, cx_size n, const cx_index *pre,
                             const cx_index *post, batch *b, cx_size *err_at) {
    memset(b, 0, sizeof(*b));
    cx_size bad = -1;
    for (cx_size k = 0; k < n; k++) {
        cx_index i = pre[k], j = post[k];
        if (i >= 0 && i < p->n_pre && j >= 0 && j < p->n_post)
            continue;
        if (bad < 0 || i < pre[bad] || (i == pre[bad] && j < post[bad]))
            bad = k;
    }
    if (bad >= 0) {
        *err_at = bad;
        return CX_EINDEX;
    }
    if (!cx_fits(n, sizeof(uint64_t)))
        return CX_ENOMEM;
    int bpre = cx_bits_for((uint64_t)p->n_pre), bpost = cx_bits_for((uint64_t)p->n_post);
    int bpos = cx_bits_for((uint64_t)n);
    int pack = bpre + bpost + bpos <= 64;
#ifdef CX_STORAGE_TEST_ALT
    pack = 0; /* test hook: exercise the separate-payload path */
#endif
    if (!pack && (uint64_t)n > UINT32_MAX)
        return CX_ENOMEM; /* > 4e9 entries would not fit in memory anyway */
    b->n = n;
    b->bpost = bpost;
    b->bpos = pack ? bpos : 0;
    b->key = malloc((size_t)n * sizeof(uint64_t));
    b->val = pack ? NULL : malloc((size_t)n * sizeof(uint32_t));
    if (!b->key || (!pack && !b->val)) {
        batch_free(b);
        return CX_ENOMEM;
    }
    for (cx_size k = 0; k < n; k++) {
        uint64_t key = ((uint64_t)pre[k] << bpost) | (uint64_t)post[k];
        if (pack)
            b->key[k] = (key << bpos) | (uint64_t)k;
        else {
            b->key[k] = key;
            b->val[k] = (uint32_t)k;
        }
    }
    cx_status st = cx_radix_sort(b->key, b->val, n, bpre + bpost + b->bpos, 1, NULL);
    if (st != CX_OK)
        batch_free(b);
    return st;
}

/*
 * Walk the sorted batch row by row, looking each entry up in its row;
 * pos_out[k] gets its lower bound in the row (remove: the synapse's
 * position; add: the number of old entries below it).
 * want_present = 0 (add): an existing synapse is EEXIST;
 * want_present = 1 (remove): a missing one is ENOENT.  A repeated (pre, post) is EDUP at
 * its second occurrence in input order.  The first fault in (pre, post)
 * order wins; *err_at is its input position.
 */
static cx_status batch_check(const cx_proj *p, const batch *b, int want_present,
                             cx_index *pos_out, cx_size *err_at) {
    cx_size k = 0;
    while (k < b->n) {
        cx_index i = b_pre(b, k);
        const cx_row *r = &p->rows[i];
        cx_index lb = 0, prev = -1;
        for (; k < b->n && b_pre(b, k) == i; k++) {
            cx_index j = b_post(b, k);
            if (j == prev) {
                *err_at = b_pos(b, k);
                return CX_EDUP;
            }
            prev = j;
            lb = cx_lower_bound_index(r->post, lb, r->n, j); /* j ascends: lb too */
            int present = lb < r->n && r->post[lb] == j;
            if (present != want_present) {
                *err_at = b_pos(b, k);
                return want_present ? CX_ENOENT : CX_EEXIST;
            }
            if (pos_out)
                pos_out[k] = lb;
        }
    }
    return CX_OK;
}

/*
 * Batched add.  Phases:
 *   1. ids in range (EINDEX), sort by (pre, post) (batch_build);
 *   2. per touched row, look every entry up (EDUP / EEXIST) and remember
 *      its insertion point (batch_check);
 *   3. reserve every touched row (the only step that can hit ENOMEM after
 *      validation; rows may grow but keep their contents);
 *   4. commit: one backward merge per touched row (cx_row_insert_sorted).
 * Error priority: EINVAL, then EINDEX over the whole batch, then the
 * first EDUP / EEXIST in (pre, post) order.
 */
cx_status cx_proj_add(cx_proj *proj, cx_size n, const cx_index *pre, const cx_index *post,
                      const cx_real *w, cx_size *err_at) {
    cx_size dummy;
    if (!err_at)
        err_at = &dummy;
    *err_at = -1;
    if (!proj || n < 0 || (n > 0 && (!pre || !post || !w)))
        return CX_EINVAL;
    if (n == 0)
        return CX_OK;
    batch b;
    cx_status st = batch_build(proj, n, pre, post, &b, err_at);
    if (st != CX_OK)
        return st;
    cx_index *np = malloc((size_t)n * sizeof(cx_index));
    cx_index *at = malloc((size_t)n * sizeof(cx_index));
    cx_real *nw = malloc((size_t)n * sizeof(cx_real));
    if (!np || !at || !nw)
        st = CX_ENOMEM;
    else
        st = batch_check(proj, &b, 0, at, err_at);
    /* Reserve every touched row.  A failure here leaves some rows with
     * more capacity but identical contents. */
    for (cx_size k = 0; st == CX_OK && k < n;) {
        cx_index i = b_pre(&b, k);
        cx_size e = k;
        while (e < n && b_pre(&b, e) == i)
            e++;
        /* distinct and absent, so the new length is at most n_post */
        st = cx_row_reserve(proj, &proj->rows[i], proj->rows[i].n + (cx_index)(e - k));
        k = e;
    }
    if (st == CX_OK) {
        /* commit: cannot fail from here on */
        for (cx_size k = 0; k < n; k++) {
            np[k] = b_post(&b, k);
            nw[k] = w[b_pos(&b, k)];
        }
        for (cx_size k = 0; k < n;) {
            cx_index i = b_pre(&b, k);
            cx_size e = k;
            while (e < n && b_pre(&b, e) == i)
                e++;
            cx_row_insert_sorted(proj->cols, &proj->rows[i], np + k, nw + k, at + k,
                                 (cx_index)(e - k));
            k = e;
        }
        proj->n_synapses += n;
    }
    free(np);
    free(at);
    free(nw);
    batch_free(&b);
    return st;
}

/*
 * Batched remove: same validation as add (ENOENT instead of EEXIST); the
 * positions found while checking are all the commit needs, so once the
 * batch is valid nothing can fail: one segment-wise compaction per
 * touched row (row_remove_positions).
 */
cx_status cx_proj_remove(cx_proj *proj, cx_size n, const cx_index *pre, const cx_index *post,
                         cx_size *err_at) {
    cx_size dummy;
    if (!err_at)
        err_at = &dummy;
    *err_at = -1;
    if (!proj || n < 0 || (n > 0 && (!pre || !post)))
        return CX_EINVAL;
    if (n == 0)
        return CX_OK;
    if (!cx_fits(n, sizeof(uint64_t)))
        return CX_ENOMEM;
    cx_index *pos = malloc((size_t)n * sizeof(cx_index));
    if (!pos)
        return CX_ENOMEM;
    batch b;
    cx_status st = batch_build(proj, n, pre, post, &b, err_at);
    if (st != CX_OK) {
        free(pos);
        return st;
    }
    st = batch_check(proj, &b, 1, pos, err_at);
    if (st == CX_OK) {
        for (cx_size k = 0; k < n;) {
            cx_index i = b_pre(&b, k);
            cx_size e = k;
            while (e < n && b_pre(&b, e) == i)
                e++;
            row_remove_positions(proj->cols, &proj->rows[i], pos + k, (cx_index)(e - k));
            k = e;
        }
        proj->n_synapses -= n;
    }
    batch_free(&b);
    free(pos);
    return st;
}

/* ================================================================ pruning */

/* The key below which |w| < threshold: NaN weights (key 0) always go. */
static uint32_t threshold_key(cx_real threshold) {
    if (!(threshold > 0))
        return 1u; /* nothing has |w| < threshold <= 0, except NaN */
    uint32_t u;
    memcpy(&u, &threshold, sizeof(u));
    return u + 1u; /* threshold > 0 and not NaN: u <= 0x7f800000 */
}

/*
 * Threshold pruning as a key comparison: |w| < threshold <=> wkey(w) <
 * threshold_key(threshold), and NaN weights (key 0) always go.  A NaN
 * threshold is EINVAL.  Rows are independent: parallel over rows, the
 * count is an integer reduction (exact for any n_threads).  Never
 * allocates.  O(n_synapses)
 */
cx_status cx_proj_prune_threshold(cx_proj *proj, cx_real threshold, int n_threads,
                                  cx_size *n_removed) {
    if (n_removed)
        *n_removed = 0;
    if (!proj || isnan(threshold))
        return CX_EINVAL;
    uint32_t T = threshold_key(threshold);
    int nt = cx_storage_threads(n_threads);
    (void)nt;
    cx_size removed = 0;
    cx_row *rows = proj->rows;
    unsigned cols = proj->cols;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : removed)
#endif
    for (cx_index i = 0; i < proj->n_pre; i++) {
        cx_size ties = 0;
        removed += row_prune(cols, &rows[i], T, &ties, 0);
    }
    proj->n_synapses -= removed;
    if (n_removed)
        *n_removed = removed;
    return CX_OK;
}

#define SEL_BINS 65536 /* 16-bit digits: two passes cover the 32-bit key */

/* Per-chunk row range for chunk t of nt (chunks fixed by nt). */
static inline void chunk_rows(cx_index n_pre, int t, int nt, cx_index *lo, cx_index *hi) {
    *lo = (cx_index)((int64_t)n_pre * t / nt);
    *hi = (cx_index)((int64_t)n_pre * (t + 1) / nt);
}

/*
 * Like row_prune with r_ties = 0 and T = H << 16, but every synapse whose
 * key has high half H (the undecided bin) is kept and recorded as a
 * candidate: row i, its position after compaction, the key's low half.
 */
static cx_index row_prune_record(unsigned cols, cx_row *r, cx_index i, uint32_t H,
                                 cx_index *c_row, cx_index *c_pos, uint16_t *c_low,
                                 cx_size *ci) {
    cx_index n = r->n;
    cx_index *P = r->post;
    cx_real *W = r->col[CX_COL_WEIGHT];
    const uint32_t T = H << 16;
    cx_size q = *ci;
    cx_index j = 0;
    /* prefix up to the first dropped synapse: record, do not move */
    for (; j < n; j++) {
        uint32_t k = wkey(W[j]);
        if ((k >> 16) == H) {
            c_row[q] = i;
            c_pos[q] = j;
            c_low[q] = (uint16_t)(k & 0xffffu);
            q++;
        } else if (k < T) {
            break;
        }
    }
    if (j == n) {
        *ci = q;
        return 0;
    }
    cx_real *x[CX_N_COLS];
    int nx = extra_cols(cols, r, x);
    cx_index o = j; /* entry j is dropped */
    for (j = j + 1; j < n; j++) {
        cx_real w = W[j];
        uint32_t k = wkey(w);
        if ((k >> 16) == H) { /* rare: the bin holds a small fraction */
            c_row[q] = i;
            c_pos[q] = o;
            c_low[q] = (uint16_t)(k & 0xffffu);
            q++;
        }
        P[o] = P[j];
        W[o] = w;
        for (int c = 0; c < nx; c++)
            x[c][o] = x[c][j];
        o += k >= T;
    }
    *ci = q;
    r->n = o;
    return n - o;
}

/* Bins over all chunks: tot[d] = sum over t of hist[t][d]. */
static cx_size bin_total(const cx_size *hist, int nt, uint32_t d) {
    cx_size tot = 0;
    for (int t = 0; t < nt; t++)
        tot += hist[(size_t)t * SEL_BINS + d];
    return tot;
}

/*
 * Exact count pruning by radix select over wkey (the n smallest |w|, ties
 * in (pre, post) order).  Pass 1 histograms the high 16 bits per chunk of
 * rows and finds the bin H holding the n-th smallest key.
 *   - Usual case (bin H is small): one compaction pass drops every key
 *     with high half < H and records bin-H synapses as candidates; the
 *     low-half histogram of the candidates then fixes the exact cut, and
 *     the chosen candidates are removed from their rows.  Two passes over
 *     the weights in all.
 *   - Bin H large (e.g. many equal weights): pass 2 histograms the low
 *     16 bits inside bin H, giving the exact key T and the number r_ties
 *     of ties to drop; each chunk counts its ties first so that exactly
 *     the first r_ties in (pre, post) order go.
 * Chunks are fixed row ranges and every tie decision uses the global
 * (pre, post) order, so the result does not depend on n_threads.
 */
cx_status cx_proj_prune_count(cx_proj *proj, cx_size n, int n_threads, cx_size *n_removed) {
    if (n_removed)
        *n_removed = 0;
    if (!proj || n < 0 || n > proj->n_synapses)
        return CX_EINVAL;
    if (n == 0)
        return CX_OK;
    cx_row *rows = proj->rows;
    cx_index n_pre = proj->n_pre;
    unsigned cols = proj->cols;
    if (n == proj->n_synapses) { /* everything goes: keep capacity */
        for (cx_index i = 0; i < n_pre; i++)
            rows[i].n = 0;
        proj->n_synapses = 0;
        if (n_removed)
            *n_removed = n;
        return CX_OK;
    }
    int nt = cx_storage_threads(n_threads);
    if (nt > n_pre)
        nt = n_pre > 0 ? n_pre : 1;
    cx_size *hist = malloc((size_t)nt * SEL_BINS * sizeof(cx_size));
    cx_size *tb = calloc((size_t)nt + 1, sizeof(cx_size));
    if (!hist || !tb) {
        free(hist);
        free(tb);
        return CX_ENOMEM;
    }
    /* pass 1: high 16 bits */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_size *h = hist + (size_t)t * SEL_BINS;
        memset(h, 0, SEL_BINS * sizeof(cx_size));
        cx_index lo, hi;
        chunk_rows(n_pre, t, nt, &lo, &hi);
        for (cx_index i = lo; i < hi; i++) {
            const cx_real *W = rows[i].col[CX_COL_WEIGHT];
            for (cx_index j = 0; j < rows[i].n; j++)
                h[wkey(W[j]) >> 16]++;
        }
    }
    cx_size below = 0, n_h = 0;
    uint32_t H = 0;
    for (uint32_t d = 0; d < SEL_BINS; d++) {
        cx_size tot = bin_total(hist, nt, d);
        if (below + tot >= n) {
            H = d;
            n_h = tot;
            break;
        }
        below += tot;
    }
    cx_size removed = 0;

    /* ---- usual case: candidates of bin H recorded during the compaction */
    cx_index *c_row = NULL, *c_pos = NULL;
    uint16_t *c_low = NULL;
    int use_cand = n_h <= proj->n_synapses / 8 + 4096;
#ifdef CX_STORAGE_TEST_ALT
    use_cand = n & 1; /* test hook: exercise both selection paths */
#endif
    if (use_cand) {
        c_row = malloc((size_t)n_h * sizeof(cx_index));
        c_pos = malloc((size_t)n_h * sizeof(cx_index));
        c_low = malloc((size_t)n_h * sizeof(uint16_t));
    }
    if (c_row && c_pos && c_low) {
        /* chunk t's candidates start at tb[t] (exclusive prefix) */
        for (int t = 0; t < nt; t++)
            tb[t + 1] = tb[t] + hist[(size_t)t * SEL_BINS + H];
        /* commit starts here: nothing below allocates */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : removed)
#endif
        for (int t = 0; t < nt; t++) {
            cx_index lo, hi;
            chunk_rows(n_pre, t, nt, &lo, &hi);
            cx_size ci = tb[t];
            for (cx_index i = lo; i < hi; i++)
                removed += row_prune_record(cols, &rows[i], i, H, c_row, c_pos, c_low, &ci);
        }
        /* exact cut inside bin H: low half L, the first r_ties ties go */
        cx_size *h = hist; /* reuse chunk 0's histogram */
        memset(h, 0, SEL_BINS * sizeof(cx_size));
        for (cx_size q = 0; q < n_h; q++)
            h[c_low[q]]++;
        cx_size need = n - below, acc = 0;
        uint32_t L = 0;
        for (; L < SEL_BINS; L++) {
            if (acc + h[L] >= need)
                break;
            acc += h[L];
        }
        cx_size r_ties = need - acc;
        /* keep the chosen candidates' positions in c_pos (in order, so
         * ascending within each row), then remove them row by row */
        cx_size m = 0, tie = 0;
        for (cx_size q = 0; q < n_h; q++) {
            uint32_t lw = c_low[q];
            int drop = lw < L || (lw == L && tie++ < r_ties);
            if (drop) {
                c_row[m] = c_row[q];
                c_pos[m] = c_pos[q];
                m++;
            }
        }
        /* m == need; each chunk removes from its own rows: parallel */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int t = 0; t < nt; t++) {
            cx_index lo, hi;
            chunk_rows(n_pre, t, nt, &lo, &hi);
            /* candidates of rows [lo, hi): binary search in c_row[0, m) */
            cx_size a = 0, b = m;
            while (a < b) {
                cx_size mid = a + (b - a) / 2;
                if (c_row[mid] < lo)
                    a = mid + 1;
                else
                    b = mid;
            }
            while (a < m && c_row[a] < hi) {
                cx_size e = a;
                while (e < m && c_row[e] == c_row[a])
                    e++;
                row_remove_positions(cols, &rows[c_row[a]], c_pos + a, (cx_index)(e - a));
                a = e;
            }
        }
        removed += m;
        free(c_row);
        free(c_pos);
        free(c_low);
        goto done;
    }
    free(c_row);
    free(c_pos);
    free(c_low);

    /* ---- fallback: pass 2 histograms the low 16 bits within bin H */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_size *h = hist + (size_t)t * SEL_BINS;
        memset(h, 0, SEL_BINS * sizeof(cx_size));
        cx_index lo, hi;
        chunk_rows(n_pre, t, nt, &lo, &hi);
        for (cx_index i = lo; i < hi; i++) {
            const cx_real *W = rows[i].col[CX_COL_WEIGHT];
            for (cx_index j = 0; j < rows[i].n; j++) {
                uint32_t k = wkey(W[j]);
                if ((k >> 16) == H)
                    h[k & 0xffffu]++;
            }
        }
    }
    uint32_t L = 0;
    cx_size n_tie = 0;
    for (uint32_t d = 0; d < SEL_BINS; d++) {
        cx_size tot = bin_total(hist, nt, d);
        if (below + tot >= n) {
            L = d;
            n_tie = tot;
            break;
        }
        below += tot;
    }
    /* below = #keys < T; the remaining r_ties come from the n_tie ties */
    uint32_t T = (H << 16) | L;
    cx_size r_ties = n - below;
    if (r_ties == n_tie) {
        T += 1; /* every tie goes: no need to count ties per chunk */
        r_ties = 0;
    } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int t = 0; t < nt; t++) {
            cx_index lo, hi;
            chunk_rows(n_pre, t, nt, &lo, &hi);
            cx_size c = 0;
            for (cx_index i = lo; i < hi; i++) {
                const cx_real *W = rows[i].col[CX_COL_WEIGHT];
                for (cx_index j = 0; j < rows[i].n; j++)
                    c += wkey(W[j]) == T;
            }
            tb[t] = c;
        }
        cx_size s = 0; /* exclusive prefix: ties before chunk t */
        for (int t = 0; t < nt; t++) {
            cx_size c = tb[t];
            tb[t] = s;
            s += c;
        }
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : removed)
#endif
    for (int t = 0; t < nt; t++) {
        cx_index lo, hi;
        chunk_rows(n_pre, t, nt, &lo, &hi);
        cx_size ties = tb[t];
        for (cx_index i = lo; i < hi; i++)
            removed += row_prune(cols, &rows[i], T, &ties, r_ties);
    }
done:
    proj->n_synapses -= removed; /* == n by construction */
    if (n_removed)
        *n_removed = removed;
    free(hist);
    free(tb);
    return CX_OK;
}

/* ======================================================= neuron removal */

/* idx[n] must be strictly increasing and in [0, limit): EINVAL / EINDEX,
 * whichever fault comes first in idx order. */
static cx_status check_ids(cx_index n, const cx_index *idx, cx_index limit) {
    if (n < 0 || (n > 0 && !idx))
        return CX_EINVAL;
    for (cx_index k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= limit)
            return CX_EINDEX;
        if (k > 0 && idx[k] <= idx[k - 1])
            return CX_EINVAL;
    }
    return CX_OK;
}

/*
 * Remove pre neurons: free their rows and slide the remaining headers down
 * (np.delete renumbering); row data never moves.  O(n_pre + n).  Never
 * allocates; the directory keeps its capacity for later add_pre.
 */
cx_status cx_proj_remove_pre(cx_proj *proj, cx_index n, const cx_index *idx) {
    if (!proj)
        return CX_EINVAL;
    cx_status st = check_ids(n, idx, proj->n_pre);
    if (st != CX_OK || n == 0)
        return st;
    cx_size removed = 0;
    cx_index o = 0, k = 0;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        if (k < n && idx[k] == i) {
            removed += proj->rows[i].n;
            cx_row_free(&proj->rows[i]);
            k++;
        } else {
            proj->rows[o++] = proj->rows[i]; /* headers move, data does not */
        }
    }
    /* keep the invariant: headers past n_pre are zero */
    memset(proj->rows + o, 0, (size_t)(proj->n_pre - o) * sizeof(cx_row));
    proj->n_pre = o;
    proj->n_synapses -= removed;
    return CX_OK;
}

/*
 * Row r after removing targets idx[n] (renumbering).  Every target t
 * becomes t - #{idx < t}; a target in idx is dropped.  Two strategies,
 * chosen per row for O(min(n log m, m log n) + m):
 *   - few ids (n <= entries from idx[0] on): locate each id by binary
 *     search in the row; between two consecutive ids the shift is
 *     constant, so each segment is one subtract loop plus one memmove per
 *     column;
 *   - many ids: binary-search each target in idx (the count only grows).
 */
static cx_index row_remove_targets(unsigned cols, cx_row *r, cx_index n, const cx_index *idx) {
    cx_index m = r->n;
    cx_index *P = r->post;
    cx_index j = cx_lower_bound_index(P, 0, m, idx[0]); /* prefix: untouched */
    if (j == m)
        return 0;
    cx_real *x[CX_N_COLS];
    x[0] = r->col[CX_COL_WEIGHT];
    int nx = 1 + extra_cols(cols, r, x + 1);
    cx_index o = j;
    if (n <= m - j) {
        for (cx_index q = 0; q < n && j < m; q++) {
            if (P[j] == idx[q]) /* P[j] >= idx[q] here */
                j++;
            cx_index e = q + 1 < n ? cx_lower_bound_index(P, j, m, idx[q + 1]) : m;
            cx_index shift = q + 1;
            for (cx_index t = j; t < e; t++) /* o <= j: forward copy is safe */
                P[o + (t - j)] = P[t] - shift;
            for (int c = 0; c < nx; c++)
                if (o != j && e > j)
                    memmove(x[c] + o, x[c] + j, (size_t)(e - j) * sizeof(cx_real));
            o += e - j;
            j = e;
        }
    } else {
        cx_index c = 0;
        for (; j < m; j++) {
            cx_index t = P[j];
            c = cx_lower_bound_index(idx, c, n, t);
            if (c < n && idx[c] == t)
                continue;
            P[o] = t - c;
            for (int q = 0; q < nx; q++)
                x[q][o] = x[q][j];
            o++;
        }
    }
    r->n = o;
    return m - o;
}

/* Remove post neurons idx[n]: see row_remove_targets.  Never allocates. */
cx_status cx_proj_remove_post(cx_proj *proj, cx_index n, const cx_index *idx, int n_threads) {
    if (!proj)
        return CX_EINVAL;
    cx_status st = check_ids(n, idx, proj->n_post);
    if (st != CX_OK || n == 0)
        return st;
    int nt = cx_storage_threads(n_threads);
    (void)nt;
    cx_row *rows = proj->rows;
    unsigned cols = proj->cols;
    cx_size removed = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : removed)
#endif
    for (cx_index i = 0; i < proj->n_pre; i++)
        removed += row_remove_targets(cols, &rows[i], n, idx);
    proj->n_post -= n;
    proj->n_synapses -= removed;
    return CX_OK;
}
