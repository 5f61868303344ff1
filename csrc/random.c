/*
 * random.c -- random construction and growth: fill_random, sample_absent,
 * grow, add_pre, add_post.
 *
 * Determinism: every random draw comes from a stream derived from the
 * caller's seed, a per-operation domain constant (storage.h) and a fixed
 * stream number (a row, a new neuron, or a fixed-size chunk of draws),
 * never from a thread number.  Results therefore do not depend on
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

/*
 * Standard normal draws by the ziggurat method (Marsaglia & Tsang 2000,
 * 128 layers), with the layer index and the value taken from different
 * bits of one 64-bit draw (Doornik 2005's fix).  ~97% of draws cost one
 * random number, one compare and one multiply; Box-Muller (one log, sqrt
 * and cos per weight) dominated building 10^8 synapses.
 * The tables are built per call (~130 exp/log) and passed down: no
 * global state, nothing to initialise, thread-safe.
 */
#define ZIG_R 3.442619855899
typedef struct {
    double k[128], w[128], f[128];
} zig_tables;

static void zig_init(zig_tables *z) {
    const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
    double dn = ZIG_R, tn = dn;
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

static double zig_normal(const zig_tables *z, uint64_t *s) {
    for (;;) {
        uint64_t u = cx_rng_next(s);
        int iz = (int)(u & 127);
        int32_t hz = (int32_t)(uint32_t)(u >> 32);
        double x = (double)hz * z->w[iz];
        if (fabs((double)hz) < z->k[iz])
            return x; /* inside the layer's rectangle */
        if (iz == 0) { /* the tail beyond ZIG_R */
            double xt, y;
            do {
                xt = -log(1.0 - cx_rng_unit(s)) / ZIG_R;
                y = -log(1.0 - cx_rng_unit(s));
            } while (y + y < xt * xt);
            return hz > 0 ? ZIG_R + xt : -ZIG_R - xt;
        }
        if (z->f[iz] + cx_rng_unit(s) * (z->f[iz - 1] - z->f[iz]) < exp(-0.5 * x * x))
            return x; /* under the curve in the wedge */
    }
}

/* Weights for k new synapses, in row order (z: tables for NORMAL). */
static void draw_weights(cx_init init, const zig_tables *z, uint64_t *s, cx_real *w,
                         cx_index k) {
    switch (init.kind) {
    case CX_INIT_NORMAL:
        for (cx_index j = 0; j < k; j++)
            w[j] = (cx_real)(init.a + init.b * zig_normal(z, s));
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
                     const zig_tables *z, uint64_t s, uint64_t *bits) {
    cx_pick_sorted(&s, bits, n_post, k, r->post, NULL);
    draw_weights(init, z, &s, r->col[CX_COL_WEIGHT], k);
    for (int c = 1; c < CX_N_COLS; c++)
        if (((cols >> c) & 1u) && k > 0)
            memset(r->col[c], 0, (size_t)k * sizeof(cx_real));
    r->n = k;
}

/*
 * Give an EMPTY row capacity exactly k.  On failure the row is still empty
 * and consistent: growing keeps the old cap until every array succeeded;
 * shrinking may set cap = k at once (a failed shrink keeps a larger block).
 */
static cx_status row_exact_cap(const cx_proj *p, cx_row *r, cx_index k) {
    if (r->cap == k)
        return CX_OK;
    if (k == 0) {
        cx_row_free(r);
        return CX_OK;
    }
    int ok = 1;
    void *v = realloc(r->post, (size_t)k * sizeof(cx_index));
    if (v)
        r->post = v;
    else
        ok = 0;
    for (int c = 0; c < CX_N_COLS; c++) {
        if (!CX_COL_ON(p, c))
            continue;
        v = realloc(r->col[c], (size_t)k * sizeof(cx_real));
        if (v)
            r->col[c] = v;
        else
            ok = 0;
    }
    if (ok || k < r->cap)
        r->cap = k;
    return ok ? CX_OK : CX_ENOMEM;
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
    for (cx_index i = 0; i < proj->n_pre; i++) {
        if (row_exact_cap(proj, &proj->rows[i], fanout) != CX_OK) {
            free(bitmaps);
            return CX_ENOMEM;
        }
    }
    cx_row *rows = proj->rows;
    unsigned cols = proj->cols;
    cx_index n_post = proj->n_post;
    uint64_t base = seed ^ CX_DOM_FILL;
    zig_tables zt;
    zig_init(&zt);
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

#define DRAW_CHUNK ((cx_size)1 << 16) /* draws per stream */

#define RADIX_LOCAL_BITS 11 /* <= 2048 counters per local pass */
/*
 * Sort n 64-bit keys ascending (only the low `bits` bits set; scratch[n]
 * given).  For large inputs: one MSD pass over memory on the top 11 bits
 * (per-chunk histograms, as in cx_radix_sort), then each bucket (about
 * n / 2048 keys, cache-resident) is sorted on its low bits by one or two
 * LSD passes, in parallel over the buckets: two passes over memory instead
 * of three.  A keys-only sort has one possible output, so the result does
 * not depend on n_threads.  With one thread, for small inputs or for keys
 * wider than 33 bits: cx_radix_sort.  ENOMEM (the keys are then unchanged).
 */
#define MSD_BITS 11
static cx_status sort_keys(uint64_t *key, cx_size n, int bits, int n_threads,
                           uint64_t *scratch) {
    int low = bits - MSD_BITS;
    int nt = cx_storage_threads(n_threads);
    /* measured: the MSD pass pays with two threads, not with one */
    if (nt < 2 || n < ((cx_size)1 << 16) || (uint64_t)n > UINT32_MAX || low < 1 ||
        low > 2 * RADIX_LOCAL_BITS)
        return cx_radix_sort(key, NULL, n, bits, n_threads, scratch);
    const size_t nb = (size_t)1 << MSD_BITS;
    cx_size *hist = malloc(((size_t)nt * nb + nb + 1) * sizeof(cx_size));
    if (!hist)
        return CX_ENOMEM;
    cx_size *start = hist + (size_t)nt * nb; /* [nb + 1] bucket starts */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_size lo = n * t / nt, hi = n * (t + 1) / nt;
        cx_size *h = hist + (size_t)t * nb;
        memset(h, 0, nb * sizeof(cx_size));
        for (cx_size i = lo; i < hi; i++)
            h[key[i] >> low]++;
    }
    cx_size sum = 0, maxlen = 0;
    for (size_t d = 0; d < nb; d++) {
        start[d] = sum;
        for (int t = 0; t < nt; t++) {
            cx_size c = hist[(size_t)t * nb + d];
            hist[(size_t)t * nb + d] = sum;
            sum += c;
        }
        if (sum - start[d] > maxlen)
            maxlen = sum - start[d];
    }
    start[nb] = n;
    int two = low > RADIX_LOCAL_BITS; /* two local passes, via tbuf */
    uint64_t *tbuf = two ? malloc((size_t)nt * ((size_t)maxlen + 1) * sizeof(uint64_t)) : NULL;
    if (two && !tbuf) {
        free(hist);
        return CX_ENOMEM;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_size lo = n * t / nt, hi = n * (t + 1) / nt;
        cx_size *h = hist + (size_t)t * nb;
        for (cx_size i = lo; i < hi; i++)
            scratch[h[key[i] >> low]++] = key[i];
    }
    /* per bucket: LSD on the low bits, scratch -> (tbuf ->) key */
    const int w1 = two ? (low + 1) / 2 : low, w2 = low - w1;
    const uint64_t m1 = ((uint64_t)1 << w1) - 1, m2 = ((uint64_t)1 << w2) - 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt)
#endif
    for (size_t d = 0; d < nb; d++) {
        cx_size s = start[d], len = start[d + 1] - s;
        if (len == 0)
            continue;
        const uint64_t *src = scratch + s;
        uint64_t *dst = key + s;
        uint32_t cnt[1 << RADIX_LOCAL_BITS];
        uint64_t *mid = dst;
        if (two) {
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            mid = tbuf + (size_t)t * ((size_t)maxlen + 1);
        }
        /* pass 1: low w1 bits, src -> mid */
        memset(cnt, 0, ((size_t)1 << w1) * sizeof(uint32_t));
        for (cx_size i = 0; i < len; i++)
            cnt[src[i] & m1]++;
        uint32_t acc = 0;
        for (size_t b = 0; b <= m1; b++) {
            uint32_t c = cnt[b];
            cnt[b] = acc;
            acc += c;
        }
        for (cx_size i = 0; i < len; i++)
            mid[cnt[src[i] & m1]++] = src[i];
        if (!two)
            continue;
        /* pass 2: the next w2 bits, mid -> dst */
        memset(cnt, 0, ((size_t)1 << w2) * sizeof(uint32_t));
        for (cx_size i = 0; i < len; i++)
            cnt[(mid[i] >> w1) & m2]++;
        acc = 0;
        for (size_t b = 0; b <= m2; b++) {
            uint32_t c = cnt[b];
            cnt[b] = acc;
            acc += c;
        }
        for (cx_size i = 0; i < len; i++)
            dst[cnt[(mid[i] >> w1) & m2]++] = mid[i];
    }
    free(tbuf);
    free(hist);
    return CX_OK;
}

/*
 * Draw m distinct values uniformly from [0, F) (2m <= F), ascending, into
 * a[m]; tmp[m] is scratch.  Draw with replacement, sort, drop repeats, and
 * top up the shortfall in further rounds.  The result is a uniform
 * m-subset: the procedure is symmetric under any permutation of [0, F).
 * Round r, chunk c draws from stream (r << 32 | c): thread-independent.
 */
static cx_status draw_distinct(uint64_t F, cx_size m, uint64_t seed, int nt, uint64_t *a,
                               uint64_t *tmp) {
    int bits = cx_bits_for(F);
    cx_size have = 0;
    for (uint64_t round = 0; have < m; round++) {
        cx_size need = m - have;
        cx_size nchunk = (need + DRAW_CHUNK - 1) / DRAW_CHUNK;
        uint64_t *dst = a + have;
        (void)nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nchunk > 1)
#endif
        for (cx_size c = 0; c < nchunk; c++) {
            uint64_t s = cx_rng_stream(seed, (round << 32) | (uint64_t)c);
            cx_size lo = c * DRAW_CHUNK, hi = lo + DRAW_CHUNK < need ? lo + DRAW_CHUNK : need;
            for (cx_size k = lo; k < hi; k++)
                dst[k] = cx_rng_below(&s, F);
        }
        cx_status st = sort_keys(dst, need, bits, nt, tmp);
        if (st != CX_OK)
            return st;
        if (have == 0) { /* first round: drop repeats in place */
            cx_size o = 0;
            for (cx_size k = 0; k < need; k++)
                if (o == 0 || a[o - 1] != a[k])
                    a[o++] = a[k];
            have = o;
            continue;
        }
        /* union with a[0, have): the new distinct values not yet held
         * (few: binary search each) go to tmp, then one backward merge in
         * place (dst's space is free again) */
        cx_size add = 0;
        for (cx_size k = 0; k < need; k++) {
            uint64_t v = dst[k];
            if (k > 0 && dst[k - 1] == v)
                continue;
            cx_size x = 0, y = have;
            while (x < y) {
                cx_size mid = x + (y - x) / 2;
                if (a[mid] < v)
                    x = mid + 1;
                else
                    y = mid;
            }
            if (x < have && a[x] == v)
                continue;
            tmp[add++] = v;
        }
        cx_size i = have, j = add, o = have + add;
        while (j > 0) {
            if (i > 0 && a[i - 1] > tmp[j - 1])
                a[--o] = a[--i];
            else
                a[--o] = tmp[--j];
        }
        have += add;
    }
    return CX_OK;
}

/* *g = n distinct uniform values of [0, F), ascending (caller frees). */
static cx_status sample_slots(uint64_t F, cx_size n, uint64_t seed, int nt, uint64_t **g) {
    *g = NULL;
    if (!cx_fits(n, sizeof(uint64_t)))
        return CX_ENOMEM;
    /* 2n > F: draw the F - n slots to leave out, then list the others */
    int comp = (uint64_t)n > F - (uint64_t)n;
    cx_size m = comp ? (cx_size)(F - (uint64_t)n) : n;
    uint64_t *a = malloc(((size_t)m + 1) * sizeof(uint64_t));
    uint64_t *tmp = malloc(((size_t)m + 1) * sizeof(uint64_t));
    uint64_t *out = comp ? malloc(((size_t)n + 1) * sizeof(uint64_t)) : a;
    if (!a || !tmp || !out) {
        free(a);
        free(tmp);
        if (comp)
            free(out);
        return CX_ENOMEM;
    }
    cx_status st = draw_distinct(F, m, seed, nt, a, tmp);
    free(tmp);
    if (st != CX_OK) {
        free(a);
        if (comp)
            free(out);
        return st;
    }
    if (comp) { /* F < 2n here, so this walk is O(n) */
        cx_size k = 0, o = 0;
        for (uint64_t v = 0; v < F; v++) {
            if (k < m && a[k] == v)
                k++;
            else
                out[o++] = v;
        }
        free(a);
    }
    *g = out;
    return CX_OK;
}

/*
 * Free slots: row i owns the global slot ranks [fb[i], fb[i+1]), where
 * fb[i] = sum over earlier rows of (n_post - length).  lo[i] = first
 * sample in row i (lower bound of fb[i] in the sorted samples).
 */
typedef struct {
    uint64_t *fb; /* [n_pre + 1] */
    cx_size *lo;  /* [n_pre + 1] */
    uint64_t *g;  /* [n] sorted distinct slot ranks */
} slots;

static void slots_free(slots *sl) {
    free(sl->fb);
    free(sl->lo);
    free(sl->g);
}

/* Sample n absent slots and bucket them by row.  ENOSPACE / ENOMEM. */
static cx_status slots_sample(const cx_proj *p, cx_size n, uint64_t seed, int nt, slots *sl) {
    memset(sl, 0, sizeof(*sl));
    cx_index n_pre = p->n_pre;
    sl->fb = malloc(((size_t)n_pre + 1) * sizeof(uint64_t));
    sl->lo = malloc(((size_t)n_pre + 1) * sizeof(cx_size));
    if (!sl->fb || !sl->lo) {
        slots_free(sl);
        return CX_ENOMEM;
    }
    uint64_t F = 0;
    for (cx_index i = 0; i < n_pre; i++) {
        sl->fb[i] = F;
        F += (uint64_t)(p->n_post - p->rows[i].n);
    }
    sl->fb[n_pre] = F;
    if ((uint64_t)n > F) {
        slots_free(sl);
        return CX_ENOSPACE;
    }
    cx_status st = sample_slots(F, n, seed ^ CX_DOM_SAMPLE, nt, &sl->g);
    if (st != CX_OK) {
        slots_free(sl);
        return st;
    }
    const uint64_t *g = sl->g;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (n_pre > 4096)
#endif
    for (cx_index i = 0; i <= n_pre; i++) {
        cx_size a = 0, b = n; /* lower bound of fb[i] in g */
        while (a < b) {
            cx_size mid = a + (b - a) / 2;
            if (g[mid] < sl->fb[i])
                a = mid + 1;
            else
                b = mid;
        }
        sl->lo[i] = a;
    }
    return CX_OK;
}

/*
 * Free slots of local ranks q[c] (ascending, q = g - base) in row r ->
 * absent target ids out[c], ascending.  post[t] - t (the number of absent
 * ids below post[t]) is non-decreasing in t, so the q-th absent id is
 * q + t(q) with t(q) = #{t : post[t] - t <= q}, the number of old entries
 * below it.  t(q) only grows with q: a linear walk when the samples are
 * dense in the row, else a binary search from the previous t.
 */
static void row_absent_targets(const cx_row *r, const uint64_t *g, uint64_t base, cx_size c,
                               cx_index *out) {
    const cx_index *P = r->post;
    cx_index n = r->n, t = 0;
    int linear = (int64_t)c * 16 >= n;
    for (cx_size k = 0; k < c; k++) {
        int64_t q = (int64_t)(g[k] - base);
        if (linear) {
            while (t < n && (int64_t)P[t] - t <= q)
                t++;
        } else {
            cx_index a = t, b = n;
            while (a < b) {
                cx_index mid = a + (b - a) / 2;
                if ((int64_t)P[mid] - mid <= q)
                    a = mid + 1;
                else
                    b = mid;
            }
            t = a;
        }
        out[k] = (cx_index)(q + t);
    }
}

/*
 * Insert c new synapses into row r (capacity already reserved), given as
 * free-slot ranks q_k = g[k] - base (ascending) with weights w[c].  One
 * backward pass: walking k down from c - 1, every old entry with
 * post[t] - t > q_k moves up by k + 1 (the new entries above it), then the
 * new one lands at t + k with target q_k + t.  Entries below the first new
 * one never move, and each moved entry moves once.  (Measured: scanning
 * first and then moving each array in 8-wide blocks was no faster; the
 * row is streamed from memory either way.)
 */
static void row_insert_slots(unsigned cols, cx_row *r, const uint64_t *g, uint64_t base,
                             cx_index c, const cx_real *w) {
    cx_index *P = r->post;
    cx_real *W = r->col[CX_COL_WEIGHT];
    cx_real *x[CX_N_COLS];
    int nx = 0;
    for (int k = 1; k < CX_N_COLS; k++)
        if ((cols >> k) & 1u)
            x[nx++] = r->col[k];
    cx_index t = r->n;
    for (cx_index k = c - 1; k >= 0; k--) {
        int64_t q = (int64_t)(g[k] - base);
        if (nx == 0) {
            while (t > 0 && (int64_t)P[t - 1] - (t - 1) > q) {
                t--;
                P[t + k + 1] = P[t];
                W[t + k + 1] = W[t];
            }
        } else {
            while (t > 0 && (int64_t)P[t - 1] - (t - 1) > q) {
                t--;
                P[t + k + 1] = P[t];
                W[t + k + 1] = W[t];
                for (int e = 0; e < nx; e++)
                    x[e][t + k + 1] = x[e][t];
            }
            for (int e = 0; e < nx; e++)
                x[e][t + k] = 0;
        }
        P[t + k] = (cx_index)(q + t);
        W[t + k] = w[k];
    }
    r->n += c;
}

/*
 * Uniform n-subset of the absent pairs, in (pre, post) order: global
 * free-slot ranks (slots_sample), mapped row by row to target ids.  grow
 * with the same seed inserts exactly these pairs.
 * O(n log(F) / 11 + n_pre + sum of touched row lengths), F = free slots.
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
        cx_size a = sl.lo[i], b = sl.lo[i + 1];
        for (cx_size k = a; k < b; k++)
            pre[k] = i;
        row_absent_targets(&proj->rows[i], sl.g + a, sl.fb[i], b - a, post + a);
    }
    slots_free(&sl);
    return CX_OK;
}

/*
 * Random growth (SET): sample as cx_proj_sample_absent, reserve every
 * touched row, then per row (in parallel) draw the weights from stream
 * (seed, row) and insert.  Sampling uses fixed-size chunks of draws, not
 * threads, so the result is the same for any n_threads.  Atomic.
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
     * of size n would cost page faults, which are slow in a VM) */
    cx_size maxc = 0;
    for (cx_index i = 0; i < proj->n_pre; i++)
        if (sl.lo[i + 1] - sl.lo[i] > maxc)
            maxc = sl.lo[i + 1] - sl.lo[i];
    cx_real *wbuf = malloc((size_t)nt * ((size_t)maxc + 1) * sizeof(cx_real));
    if (!wbuf)
        st = CX_ENOMEM;
    /* reserve every touched row (content unchanged on failure) */
    for (cx_index i = 0; st == CX_OK && i < proj->n_pre; i++) {
        cx_size c = sl.lo[i + 1] - sl.lo[i];
        if (c > 0)
            st = cx_row_reserve(proj, &proj->rows[i], proj->rows[i].n + (cx_index)c);
    }
    if (st == CX_OK) {
        /* commit: per row, draw the weights, then map and insert in one
         * backward pass (row_insert_slots) */
        cx_row *rows = proj->rows;
        unsigned cols = proj->cols;
        uint64_t wbase = seed ^ CX_DOM_GROWW;
        zig_tables zt;
        zig_init(&zt);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (cx_index i = 0; i < proj->n_pre; i++) {
            cx_size a = sl.lo[i], c = sl.lo[i + 1] - a;
            if (c == 0)
                continue;
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            cx_real *w = wbuf + (size_t)t * ((size_t)maxc + 1);
            uint64_t s = cx_rng_stream(wbase, (uint64_t)i);
            draw_weights(init, &zt, &s, w, (cx_index)c);
            row_insert_slots(cols, &rows[i], sl.g + a, sl.fb[i], (cx_index)c, w);
        }
        proj->n_synapses += n;
    }
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
    /* rows[n0 ..) are zero headers (invariant); allocate them all first */
    for (cx_index j = 0; j < n_new; j++) {
        if (row_exact_cap(proj, &proj->rows[n0 + j], fanout) != CX_OK) {
            for (cx_index q = 0; q <= j; q++)
                cx_row_free(&proj->rows[n0 + q]);
            free(bits);
            return CX_ENOMEM;
        }
    }
    uint64_t base = seed ^ CX_DOM_ADDPRE;
    zig_tables zt;
    zig_init(&zt);
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
        zig_tables zt;
        zig_init(&zt);
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
