/*
 * edit.c -- structural edits: batched add / remove, pruning, and removal
 * of neurons (with np.delete renumbering).
 *
 * Every call validates and reserves first, then commits with code that
 * cannot fail, so a failed call leaves the projection exactly as it was.
 */
#include "storage.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

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

/* Prefetch the first lines of a row's post and weight arrays: every row is
 * its own allocation, so the hardware prefetcher starts cold on each one;
 * touching the next row's head while this one is processed hides that. */
static inline void prefetch_row_head(const cx_row *r, int with_post) {
    const char *p = (const char *)r->post, *w = (const char *)r->col[CX_COL_WEIGHT];
    size_t bytes = (size_t)r->n * sizeof(cx_real);
    for (size_t o = 0; o < bytes && o < 512; o += 64) {
        if (with_post)
            __builtin_prefetch(p + o);
        __builtin_prefetch(w + o);
    }
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


/*
 * Vector compaction (x86-64, AVX2 chosen at run time; the build itself
 * stays baseline x86-64).  Same decisions as row_prune, 8 synapses at a
 * time: the keep mask selects a lane permutation from a 256-entry table,
 * and every array's block is permuted and stored at the output position
 * (a full 8-lane store at o <= j never reaches past the block just read;
 * the lanes beyond the kept ones are overwritten later or lie past the
 * new length).  A block holding a tie while ties are still being dropped
 * is decided lane by lane, in order.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define CX_PRUNE_AVX2 1

__attribute__((target("avx2"))) static cx_index
row_prune_avx2(unsigned cols, cx_row *r, uint32_t T, cx_size *ties, cx_size r_ties,
               const cx_perm8 *pt) {
    cx_index n = r->n;
    cx_index *P = r->post;
    cx_real *W = r->col[CX_COL_WEIGHT];
    cx_size tie = *ties;
    cx_index j = 0;
    for (; j < n; j++) { /* the prefix up to the first drop stays */
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
    cx_index o = j++; /* entry j is dropped */
    const __m256i vT = _mm256_set1_epi32((int32_t)T), absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000), one = _mm256_set1_epi32(1);
    for (; j + 8 <= n; j += 8) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(W + j));
        __m256i u = _mm256_and_si256(w, absm);
        __m256i k = _mm256_andnot_si256(_mm256_cmpgt_epi32(u, inf), _mm256_add_epi32(u, one));
        int em = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, vT)));
        int km;
        if (em && tie < r_ties) {
            km = 0;
            for (int l = 0; l < 8; l++) {
                uint32_t kl = wkey(W[j + l]);
                int eq = kl == T;
                int drop = (kl < T) | (eq & (tie < r_ties));
                tie += eq;
                km |= (!drop) << l;
            }
        } else {
            tie += __builtin_popcount((unsigned)em);
            km = ~_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(vT, k))) & 255;
        }
        __m256i idx = _mm256_loadu_si256((const __m256i *)pt->idx[km]);
        __m256i pv = _mm256_loadu_si256((const __m256i *)(P + j));
        _mm256_storeu_si256((__m256i *)(P + o), _mm256_permutevar8x32_epi32(pv, idx));
        _mm256_storeu_si256((__m256i *)(W + o), _mm256_permutevar8x32_epi32(w, idx));
        for (int c = 0; c < nx; c++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(x[c] + j));
            _mm256_storeu_si256((__m256i *)(x[c] + o), _mm256_permutevar8x32_epi32(xv, idx));
        }
        o += __builtin_popcount((unsigned)km);
    }
    for (; j < n; j++) {
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
    *ties = tie;
    r->n = o;
    return n - o;
}
#endif

/* row_prune, vectorised when pt != NULL (AVX2 available). */
static inline cx_index row_prune_v(unsigned cols, cx_row *r, uint32_t T, cx_size *ties,
                                   cx_size r_ties, const cx_perm8 *pt) {
#ifdef CX_PRUNE_AVX2
    if (pt)
        return row_prune_avx2(cols, r, T, ties, r_ties, pt);
#endif
    (void)pt;
    return row_prune(cols, r, T, ties, r_ties);
}

/* The permutation table if the vector path can run (pt is the caller's
 * storage), else NULL. */
static const cx_perm8 *prune_vector_table(cx_perm8 *pt) {
    if (!CX_CPU_HAS("avx2"))
        return NULL;
    cx_perm8_init(pt);
    return pt;
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
    cx_perm8 ptab;
    const cx_perm8 *vt = prune_vector_table(&ptab);
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
        if (i + 1 < proj->n_pre)
            prefetch_row_head(&rows[i + 1], 1);
        removed += row_prune_v(cols, &rows[i], T, &ties, 0, vt);
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
        if (nx) /* loop-invariant: the compiler unswitches it */
            for (int c = 0; c < nx; c++)
                x[c][o] = x[c][j];
        o += k >= T;
    }
    *ci = q;
    r->n = o;
    return n - o;
}

/* Bin d over all chunks: sum over t of hist[t][d], the chunks' histograms
 * of `bins` bins each back to back. */
static cx_size bin_total(const cx_size *hist, int nt, size_t bins, uint32_t d) {
    cx_size tot = 0;
    for (int t = 0; t < nt; t++)
        tot += hist[(size_t)t * bins + d];
    return tot;
}

/* ============================================ prune_count: sampled bracket */

#define SAMPLE_GROUPS 4096 /* sample: groups of SAMPLE_RUN consecutive keys */
#define SAMPLE_RUN 16      /* one cache line of weights per group */
_Static_assert(2 * SAMPLE_GROUPS <= SEL_BINS, "the groups are located in h[SEL_BINS]");

/*
 * The k-th smallest (0-based, k < total) of the keys held in nseg segments
 * a[s][0, len[s]), by a two-level 16-bit histogram select; h[SEL_BINS] is
 * scratch.  O(total + SEL_BINS)
 */
static uint32_t kth_key(uint32_t *const *a, const cx_size *len, int nseg, cx_size k,
                        uint32_t *h) {
    memset(h, 0, SEL_BINS * sizeof(uint32_t));
    for (int s = 0; s < nseg; s++)
        for (cx_size q = 0; q < len[s]; q++)
            h[a[s][q] >> 16]++;
    uint32_t H = 0;
    cx_size acc = 0;
    for (; H < SEL_BINS - 1 && acc + h[H] <= k; H++)
        acc += h[H];
    memset(h, 0, SEL_BINS * sizeof(uint32_t));
    for (int s = 0; s < nseg; s++)
        for (cx_size q = 0; q < len[s]; q++)
            if ((a[s][q] >> 16) == H)
                h[a[s][q] & 0xffffu]++;
    uint32_t L = 0;
    for (; L < SEL_BINS - 1 && acc + h[L] <= k; L++)
        acc += h[L];
    return (H << 16) | L;
}

/* The vector scans' rare path: append the keys kk[l] of the lanes l set in
 * m (in lane order) to buf while they fit in cap; returns the new count c,
 * which goes on counting past cap (the caller then falls back). */
static inline cx_size collect_lanes(uint32_t *buf, cx_size cap, cx_size c, const uint32_t *kk,
                                    int m) {
    do {
        int l = __builtin_ctz((unsigned)m);
        if (c < cap)
            buf[c] = kk[l];
        c++;
        m &= m - 1;
    } while (m);
    return c;
}

/*
 * Pass A of the fast path over chunk rows [lo, hi): count the keys below
 * klo and copy the keys in [klo, khi] (in (pre, post) order) to buf while
 * they fit in cap; *c_in gets how many there were; low[i] (if not NULL)
 * gets row i's count below klo.  Read-only.
 */
static void bracket_scan(const cx_row *rows, cx_index lo, cx_index hi, uint32_t klo,
                         uint32_t khi, uint32_t *buf, cx_size cap, cx_size *below,
                         cx_size *c_in, cx_index *low, cx_split_iter *it,
                         cx_index *cnt) {
    const uint32_t span = khi - klo;
    const int32_t slo = (int32_t)(klo < 0x7f800002u ? klo : 0x7f800002u);
    const int32_t shi = (int32_t)(khi < 0x7f800002u ? khi : 0x7f800002u);
    cx_size b = 0, c = 0;
    for (cx_index i = lo; i < hi; i++) {
        const cx_real *W = rows[i].col[CX_COL_WEIGHT];
        cx_index n = rows[i].n, j = 0;
        cx_size b0 = b;
        if (i + 1 < hi)
            prefetch_row_head(&rows[i + 1], 0);
        if (it) /* the row split's draws for row i (compute) while row i + 1's head loads */
            cnt[i] = cx_split_next(it, i);
#ifdef __SSE2__
        /* 4 keys at a time (keys < 2^31: signed compares): count the keys
         * below, then collect the lanes inside the bracket (rare) */
        const __m128i vlo = _mm_set1_epi32(slo), vhi = _mm_set1_epi32(shi);
        const __m128i abs = _mm_set1_epi32(0x7fffffff), inf = _mm_set1_epi32(0x7f800000);
        const __m128i one = _mm_set1_epi32(1);
        __m128i vb = _mm_setzero_si128();
        for (; j + 4 <= n; j += 4) {
            __m128i u = _mm_and_si128(_mm_loadu_si128((const __m128i *)(W + j)), abs);
            __m128i k = _mm_andnot_si128(_mm_cmpgt_epi32(u, inf), _mm_add_epi32(u, one));
            __m128i lt = _mm_cmpgt_epi32(vlo, k);
            vb = _mm_sub_epi32(vb, lt);
            __m128i out = _mm_or_si128(lt, _mm_cmpgt_epi32(k, vhi));
            int m = ~_mm_movemask_ps(_mm_castsi128_ps(out)) & 15;
            if (m) {
                uint32_t kk[4];
                _mm_storeu_si128((__m128i *)kk, k);
                c = collect_lanes(buf, cap, c, kk, m);
            }
        }
        { /* a lane counts at most n / 4 < 2^29 keys of this row */
            uint32_t t4[4];
            _mm_storeu_si128((__m128i *)t4, vb);
            b += (cx_size)t4[0] + t4[1] + t4[2] + t4[3];
        }
#else
        (void)slo;
        (void)shi;
#endif
        for (; j < n; j++) {
            uint32_t k = wkey(W[j]);
            b += k < klo;
            if (k - klo <= span) {
                if (c < cap)
                    buf[c] = k;
                c++;
            }
        }
        if (low)
            low[i] = (cx_index)(b - b0);
    }
    *below = b;
    *c_in = c;
}

/* bracket_scan with 8-lane AVX2 vectors (chosen at run time). */
#ifdef CX_PRUNE_AVX2
/*
 * Pass A (AVX2) over chunk rows [lo, hi): as bracket_scan.  Read-only.
 */
__attribute__((target("avx2"))) static void bracket_scan_avx2(const cx_row *rows, cx_index lo, cx_index hi, uint32_t klo,
                         uint32_t khi, uint32_t *buf, cx_size cap, cx_size *below,
                         cx_size *c_in, cx_index *low, cx_split_iter *it,
                         cx_index *cnt) {
    const uint32_t span = khi - klo;
    const int32_t slo = (int32_t)(klo < 0x7f800002u ? klo : 0x7f800002u);
    const int32_t shi = (int32_t)(khi < 0x7f800002u ? khi : 0x7f800002u);
    cx_size b = 0, c = 0;
    for (cx_index i = lo; i < hi; i++) {
        const cx_real *W = rows[i].col[CX_COL_WEIGHT];
        cx_index n = rows[i].n, j = 0;
        cx_size b0 = b;
        if (i + 1 < hi)
            prefetch_row_head(&rows[i + 1], 0);
        if (it) /* the row split's draws for row i (compute) while row i + 1's head loads */
            cnt[i] = cx_split_next(it, i);
        /* 8 keys at a time (keys < 2^31: signed compares): count the keys
         * below, then collect the lanes inside the bracket (rare) */
        const __m256i vlo = _mm256_set1_epi32(slo), vhi = _mm256_set1_epi32(shi);
        const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
        const __m256i one = _mm256_set1_epi32(1);
        __m256i vb = _mm256_setzero_si256();
        /* paced prefetch of row i + 1's weights past its head: a line
         * every other step (64 bytes per 8 keys read, about one row
         * ahead); the hardware prefetcher restarts cold on each row's
         * allocation and, given only the head, streams it late */
        uintptr_t pf = 0, pfe = 0; /* addresses: may run past the array */
        if (i + 1 < hi) {
            pf = (uintptr_t)rows[i + 1].col[CX_COL_WEIGHT];
            pfe = pf + (uintptr_t)rows[i + 1].n * sizeof(cx_real);
            pf += 512;
        }
        for (; j + 8 <= n; j += 8) {
            if (pf < pfe) {
                __builtin_prefetch((const void *)pf);
                pf += 32; /* each line twice: simpler than pacing by two */
            }
            __m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(W + j)), abs);
            __m256i k = _mm256_andnot_si256(_mm256_cmpgt_epi32(u, inf), _mm256_add_epi32(u, one));
            __m256i lt = _mm256_cmpgt_epi32(vlo, k);
            vb = _mm256_sub_epi32(vb, lt);
            __m256i out = _mm256_or_si256(lt, _mm256_cmpgt_epi32(k, vhi));
            int m = ~_mm256_movemask_ps(_mm256_castsi256_ps(out)) & 255;
            if (m) {
                uint32_t kk[8];
                _mm256_storeu_si256((__m256i *)kk, k);
                c = collect_lanes(buf, cap, c, kk, m);
            }
        }
        { /* a lane counts at most n / 8 < 2^28 keys of this row */
            uint32_t t4[8];
            _mm256_storeu_si256((__m256i *)t4, vb);
            b += (cx_size)t4[0] + t4[1] + t4[2] + t4[3] + t4[4] + t4[5] + t4[6] + t4[7];
        }
        for (; j < n; j++) {
            uint32_t k = wkey(W[j]);
            b += k < klo;
            if (k - klo <= span) {
                if (c < cap)
                    buf[c] = k;
                c++;
            }
        }
        if (low)
            low[i] = (cx_index)(b - b0);
    }
    *below = b;
    *c_in = c;
}
#endif

/*
 * Pass A (AVX-512) over chunk rows [lo, hi): as bracket_scan, 16 keys a
 * step and branch-free: the in-bracket lanes of every step are compressed
 * into a register and stored at buf + min(c, cap) (buf needs 16 entries
 * of room past cap), c advancing by their count.  The collection branch
 * of the narrower scans mispredicted about once per bracket key (one key
 * in ~80 at the usual bracket; ~15% of the AVX2 scan's profile).  The
 * tail is a masked load.  Read-only.
 */
__attribute__((target("avx512f"))) static void
bracket_scan_avx512(const cx_row *rows, cx_index lo, cx_index hi, uint32_t klo, uint32_t khi,
                    uint32_t *buf, cx_size cap, cx_size *below, cx_size *c_in, cx_index *low,
                    cx_split_iter *it, cx_index *cnt) {
    /* keys < 2^31: signed compares */
    const __m512i vlo = _mm512_set1_epi32((int32_t)(klo < 0x7f800002u ? klo : 0x7f800002u));
    const __m512i vhi = _mm512_set1_epi32((int32_t)(khi < 0x7f800002u ? khi : 0x7f800002u));
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i one = _mm512_set1_epi32(1);
    cx_size b = 0, c = 0;
    for (cx_index i = lo; i < hi; i++) {
        const cx_real *W = rows[i].col[CX_COL_WEIGHT];
        cx_index n = rows[i].n;
        cx_size b0 = b;
        if (it) /* the row split's draws for row i */
            cnt[i] = cx_split_next(it, i);
        /* paced prefetch of row i + 1, one line per step (a step reads one
         * line of row i): the hardware prefetcher starts cold on every
         * row's allocation */
        uintptr_t pf = 0, pfe = 0; /* addresses: may run past the array */
        if (i + 1 < hi) {
            pf = (uintptr_t)rows[i + 1].col[CX_COL_WEIGHT];
            pfe = pf + (uintptr_t)rows[i + 1].n * sizeof(cx_real);
        }
        for (cx_index j = 0; j < n; j += 16) {
            if (pf < pfe) {
                __builtin_prefetch((const void *)pf);
                pf += 64;
            }
            cx_index left = n - j;
            __mmask16 valid = left >= 16 ? (__mmask16)0xffffu : (__mmask16)((1u << left) - 1u);
            __m512i u = _mm512_and_si512(_mm512_maskz_loadu_epi32(valid, W + j), absm);
            __mmask16 nan = _mm512_cmpgt_epi32_mask(u, inf);
            __m512i k = _mm512_maskz_add_epi32((__mmask16)~nan, u, one);
            __mmask16 lt = _mm512_mask_cmplt_epi32_mask(valid, k, vlo);
            __mmask16 in = _mm512_mask_cmple_epi32_mask((__mmask16)(valid & ~lt), k, vhi);
            _mm512_storeu_si512((void *)(buf + (c < cap ? c : cap)),
                                _mm512_maskz_compress_epi32(in, k));
            b += (cx_size)__builtin_popcount((unsigned)lt);
            c += (cx_size)__builtin_popcount((unsigned)in);
        }
        if (low)
            low[i] = (cx_index)(b - b0);
    }
    *below = b;
    *c_in = c;
}

/*
 * The cut among the keys a bracket scan collected: *T = the r-th smallest
 * (0-based) of the keys seg[t][0, len[t]), t < nt, all in [klo, khi];
 * *less = how many are below *T, and len[t] becomes the number of keys
 * == *T in chunk t.  Each chunk histograms (key - klo) >> s over at most
 * SEL_SMALL bins (a table in L1) and, once the bin H holding rank r is
 * known, gathers its keys (a small share: a bracket's keys spread over
 * its bins), in parallel, each thread over the keys it collected (in its
 * cache); a sorted copy of the gathered keys gives *T.  The serial
 * kth_key over the whole collection and the tie count after it made
 * three passes over 256 KiB tables, 0.5-0.8 ms of every prune and rewire
 * at 2e7 synapses.  Returns 0 on ENOMEM.
 */
#define SEL_SMALL 2048
static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int bracket_select(uint32_t *const *seg, cx_size *len, int nt, cx_size r, uint32_t klo,
                          uint32_t khi, uint32_t *T, cx_size *less) {
    int s = 0;
    while (((khi - klo) >> s) >= SEL_SMALL)
        s++;
    cx_size *hist = malloc((size_t)nt * SEL_SMALL * sizeof(cx_size)); /* per chunk */
    if (!hist)
        return 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_size *h = hist + (size_t)t * SEL_SMALL;
        memset(h, 0, SEL_SMALL * sizeof(cx_size));
        for (cx_size k = 0; k < len[t]; k++)
            h[(seg[t][k] - klo) >> s]++;
    }
    uint32_t H = 0;
    cx_size acc = 0, tot; /* keys in the bins below H */
    for (;; H++) {
        tot = bin_total(hist, nt, SEL_SMALL, H);
        if (acc + tot > r)
            break;
        acc += tot;
    }
    cx_size gs[CX_STORAGE_MAX_THREADS + 1]; /* chunk t's keys of bin H: g[gs[t], gs[t + 1]) */
    gs[0] = 0;
    for (int t = 0; t < nt; t++)
        gs[t + 1] = gs[t] + hist[(size_t)t * SEL_SMALL + H];
    free(hist);
    /* g: the keys in chunk order, then a sorted copy */
    uint32_t *g = malloc(2 * (size_t)gs[nt] * sizeof(uint32_t));
    if (!g)
        return 0;
    uint32_t *sorted = g + gs[nt];
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        uint32_t *q = g + gs[t];
        for (cx_size k = 0; k < len[t]; k++)
            if (((seg[t][k] - klo) >> s) == H) /* rare: one bin of up to SEL_SMALL */
                *q++ = seg[t][k];
    }
    memcpy(sorted, g, (size_t)gs[nt] * sizeof(uint32_t));
    qsort(sorted, (size_t)gs[nt], sizeof(uint32_t), cmp_u32);
    *T = sorted[r - acc];
    for (int t = 0; t < nt; t++) {
        cx_size e = 0;
        for (cx_size k = gs[t]; k < gs[t + 1]; k++) {
            acc += g[k] < *T;
            e += g[k] == *T;
        }
        len[t] = e;
    }
    *less = acc;
    free(g);
    return 1;
}

/*
 * Find the exact cut of prune_count(n) with one read-only pass over the
 * weights: a deterministic sample of the keys (SAMPLE_GROUPS runs of
 * SAMPLE_RUN consecutive keys, evenly spaced in export order, or every key
 * when there are few) brackets the n-th smallest key in [klo, khi] with a
 * wide margin (4.5 standard deviations of the sample quantile plus 0.1%);
 * the pass counts the keys below klo per chunk and collects the keys
 * inside the bracket, among which the exact key T is selected.  The
 * sample only affects speed: when the bracket misses, or a chunk's
 * collection overflows, this returns 0 and the caller uses the histogram
 * path.  On success (1): every key < *T goes, plus the first *r_ties keys
 * == *T in (pre, post) order, and tb[t] = the number of keys == *T in the
 * chunks before t (only when *r_ties > 0).
 */
static int prune_cut_sampled(const cx_proj *proj, cx_size n, int nt, uint32_t *T,
                             cx_size *r_ties, cx_size *tb, int avx2, cx_index *low,
                             cx_split_job *sj) {
    int avx512 = avx2 && CX_CPU_HAS("avx512f");
    (void)avx512; /* unused without the x86-64 vector paths */
    const cx_row *rows = proj->rows;
    cx_index n_pre = proj->n_pre;
    cx_size N = proj->n_synapses;
    int ok = 0;
    uint32_t *h = malloc(SEL_BINS * sizeof(uint32_t));
    uint32_t *smp = malloc((size_t)SAMPLE_GROUPS * SAMPLE_RUN * sizeof(uint32_t));
    cx_size *cnt = malloc((size_t)nt * 3 * sizeof(cx_size)); /* cap, below, in */
    uint32_t **seg = malloc((size_t)nt * sizeof(uint32_t *));
    uint32_t *buf = NULL;
    if (!h || !smp || !cnt || !seg)
        goto out;
    /* ---- sample */
    cx_size S = 0;
    if (N <= (cx_size)SAMPLE_GROUPS * SAMPLE_RUN) {
        for (cx_index i = 0; i < n_pre; i++)
            for (cx_index j = 0; j < rows[i].n; j++)
                smp[S++] = wkey(rows[i].col[CX_COL_WEIGHT][j]);
    } else {
        /* locate the groups first (row, offset: in h, free until the
         * sort), then gather them with prefetches 16 groups ahead: each
         * group is a cache miss, and one at a time they were ~0.4 ms */
        uint32_t *gr = h, *go = h + SAMPLE_GROUPS;
        cx_index i = 0;
        cx_size base = 0; /* export position of row i's first synapse */
        for (cx_size g = 0; g < SAMPLE_GROUPS; g++) {
            cx_size pos = (2 * g + 1) * (N / 2) / SAMPLE_GROUPS; /* ascending */
            while (base + rows[i].n <= pos)
                base += rows[i++].n;
            gr[g] = (uint32_t)i;
            go[g] = (uint32_t)(pos - base);
        }
        for (cx_size g = 0; g < SAMPLE_GROUPS; g++) {
            if (g + 16 < SAMPLE_GROUPS)
                __builtin_prefetch(rows[gr[g + 16]].col[CX_COL_WEIGHT] + go[g + 16]);
            const cx_real *W = rows[gr[g]].col[CX_COL_WEIGHT];
            cx_index j = (cx_index)go[g], e = j + SAMPLE_RUN;
            if (e > rows[gr[g]].n)
                e = rows[gr[g]].n;
            for (; j < e; j++)
                smp[S++] = wkey(W[j]);
        }
    }
    double q = (double)n / (double)N, rk = q * (double)S;
    double d = 4.5 * sqrt((double)S * q * (1.0 - q)) + (double)S / 1024.0 + 8.0;
    double rlo = floor(rk - d), rhi = ceil(rk + d);
    if (S == N) /* the sample is everything: the bracket is exact */
        rlo = rhi = (double)(n - 1);
    /* the two order statistics by histogram select (no full sort: it
     * was ~0.5 ms of serial time); h is free once the groups are read */
    uint32_t *sseg[1] = {smp};
    cx_size slen[1] = {S};
    uint32_t klo = rlo < 0 ? 0u : kth_key(sseg, slen, 1, (cx_size)rlo, h);
    uint32_t khi = rhi >= (double)S ? UINT32_MAX
                   : rhi == rlo    ? klo /* the exact case: one select (most of a small edit) */
                                   : kth_key(sseg, slen, 1, (cx_size)rhi, h);
#ifdef CX_STORAGE_TEST_ALT
    if (n & 4) /* test hook: a bracket past every key misses the cut */
        klo = khi = 0x7f800002u;
#endif
    double f = (rhi >= (double)S ? (double)S : rhi + 1) - (rlo < 0 ? 0 : rlo);
    f /= (double)S;
    /* ---- per-chunk collection buffers: 3x the expected share */
    cx_size tot = 0;
    for (int t = 0; t < nt; t++) {
        cx_index lo, hi;
        chunk_rows(n_pre, t, nt, &lo, &hi);
        cx_size m = 0;
        for (cx_index i = lo; i < hi; i++)
            m += rows[i].n;
        double c = 3.0 * f * (double)m + 4096.0;
        cnt[t] = c < (double)m ? (cx_size)c : m;
        tot += cnt[t];
    }
    /* 16 entries of room past each chunk's cap (the AVX-512 scan's
     * full-vector stores) */
    buf = malloc(((size_t)tot + 16 * (size_t)nt + 1) * sizeof(uint32_t));
    if (!buf)
        goto out;
    tot = 0;
    for (int t = 0; t < nt; t++) {
        seg[t] = buf + tot;
        tot += cnt[t] + 16;
    }
    /* ---- pass A: read-only, parallel over the chunks */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_index lo, hi;
        chunk_rows(n_pre, t, nt, &lo, &hi);
        cx_split_iter it, *itp = NULL; /* the chunk's own row split (rewire) */
        if (sj) {
            cx_split_iter_init(&it, sj->fp, n_pre, sj->n, sj->seed);
            itp = &it;
        }
#ifdef CX_PRUNE_AVX2
        if (avx512)
            bracket_scan_avx512(rows, lo, hi, klo, khi, seg[t], cnt[t], &cnt[nt + t],
                                &cnt[2 * nt + t], low, itp, sj ? sj->cnt : NULL);
        else if (avx2)
            bracket_scan_avx2(rows, lo, hi, klo, khi, seg[t], cnt[t], &cnt[nt + t],
                              &cnt[2 * nt + t], low, itp, sj ? sj->cnt : NULL);
        else
#endif
            bracket_scan(rows, lo, hi, klo, khi, seg[t], cnt[t], &cnt[nt + t],
                         &cnt[2 * nt + t], low, itp, sj ? sj->cnt : NULL);
    }
    if (sj) /* every row's count is drawn, whatever the bracket gave */
        sj->done = 1;
    cx_size B = 0, C = 0;
    int over = 0;
    for (int t = 0; t < nt; t++) {
        B += cnt[nt + t];
        C += cnt[2 * nt + t];
        over |= cnt[2 * nt + t] > cnt[t];
    }
    if (!(B < n && n <= B + C))
        goto out; /* the bracket missed the cut */
    cx_size less = 0, *len = cnt + 2 * nt; /* len[t]: keys collected by chunk t */
    if (over) {
        if (klo != khi)
            goto out;
        *T = klo; /* every collected key is klo: no need to have kept them */
    } else {
        if (!bracket_select(seg, len, nt, n - B - 1, klo, khi, T, &less))
            goto out;
    }
    cx_size eq = 0;
    for (int t = 0; t < nt; t++) {
        tb[t] = eq;
        eq += len[t];
    }
    *r_ties = n - B - less; /* 1 <= r_ties <= eq */
    if (*r_ties == eq) {
        *T += 1; /* every tie goes: T <= 0x7f800001 here */
        *r_ties = 0;
    }
    ok = 1;
out:
    free(h);
    free(smp);
    free(cnt);
    free(seg);
    free(buf);
    return ok;
}

/*
 * Exact count pruning (the n smallest |w| by wkey, ties in (pre, post)
 * order).
 *   - Fast path (prune_cut_sampled): one read-only pass over the weights
 *     finds the exact cut key T and the number of ties to drop, then one
 *     compaction pass (row_prune, AVX2 when available) removes them.
 *     When the sampled bracket misses (or collects too much) it falls
 *     back to the radix select below; the result is the same either way.
 * Radix select: pass 1 histograms the high 16 bits per chunk of rows and
 * finds the bin H holding the n-th smallest key.
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
    cx_size removed = 0;
    cx_perm8 ptab;
    const cx_perm8 *vt = prune_vector_table(&ptab);
    int sampled = 1;
#ifdef CX_STORAGE_TEST_ALT
    sampled = (n & 2) != 0; /* test hook: exercise the histogram paths too */
#endif
    if (sampled) {
        cx_size *tb0 = malloc(((size_t)nt + 1) * sizeof(cx_size));
        uint32_t T;
        cx_size r_ties;
        if (tb0 && prune_cut_sampled(proj, n, nt, &T, &r_ties, tb0, vt != NULL, NULL, NULL)) {
            /* commit: one compaction pass, parallel over the chunks */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : removed)
#endif
            for (int t = 0; t < nt; t++) {
                cx_index lo, hi;
                chunk_rows(n_pre, t, nt, &lo, &hi);
                cx_size ties = tb0[t];
                for (cx_index i = lo; i < hi; i++) {
                    if (i + 1 < hi)
                        prefetch_row_head(&rows[i + 1], 1);
                    removed += row_prune_v(cols, &rows[i], T, &ties, r_ties, vt);
                }
            }
            free(tb0);
            proj->n_synapses -= removed; /* == n by construction */
            if (n_removed)
                *n_removed = removed;
            return CX_OK;
        }
        free(tb0);
    }
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
        cx_size tot = bin_total(hist, nt, SEL_BINS, d);
        if (below + tot >= n) {
            H = d;
            n_h = tot;
            break;
        }
        below += tot;
    }

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
        cx_size tot = bin_total(hist, nt, SEL_BINS, d);
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
            removed += row_prune_v(cols, &rows[i], T, &ties, r_ties, vt);
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

/* ============================================== the cut, exposed (rewire) */

/*
 * The cut of prune_count(n) without removing anything (see storage.h).
 * Same decision as cx_proj_prune_count: the sampled bracket first, else
 * two read-only histogram passes (high then low 16 bits of the key) and,
 * when only some ties go, one pass counting the ties per chunk.
 */
cx_status cx_prune_cut(const cx_proj *proj, cx_size n, int nt, uint32_t *T, cx_size *r_ties,
                       cx_size *tb, cx_index *low, cx_split_job *sj) {
    const cx_row *rows = proj->rows;
    cx_index n_pre = proj->n_pre;
    for (int t = 0; t < nt; t++)
        tb[t] = 0;
    if (prune_cut_sampled(proj, n, nt, T, r_ties, tb, CX_CPU_HAS("avx2"), low, sj))
        return CX_OK;
    if (low) /* the histogram path gives no per-row bound */
        memset(low, 0, (size_t)n_pre * sizeof(cx_index));
    cx_size *hist = malloc((size_t)nt * SEL_BINS * sizeof(cx_size));
    if (!hist)
        return CX_ENOMEM;
    cx_size below = 0;
    uint32_t key = 0;
    /* two rounds: round 0 bins the high half of every key, round 1 the low
     * half of the keys whose high half is the bin found in round 0 */
    for (int round = 0; round < 2; round++) {
        const uint32_t Hk = key >> 16;
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
                    if (round == 0)
                        h[k >> 16]++;
                    else if ((k >> 16) == Hk)
                        h[k & 0xffffu]++;
                }
            }
        }
        for (uint32_t d = 0; d < SEL_BINS; d++) {
            cx_size tot = bin_total(hist, nt, SEL_BINS, d);
            if (below + tot >= n) {
                key = round == 0 ? d << 16 : (key | d);
                if (round == 1) { /* tot = ties of the exact key */
                    *r_ties = n - below;
                    if (*r_ties == tot) {
                        key += 1; /* every tie goes */
                        *r_ties = 0;
                    }
                }
                break;
            }
            below += tot;
        }
    }
    free(hist);
    *T = key;
    if (*r_ties > 0) {
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
                    c += wkey(W[j]) == key;
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
    return CX_OK;
}
