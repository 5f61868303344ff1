/*
 * test_rewire.c -- standalone test of cx_proj_rewire (csrc/rewire.c)
 * against prune_count as the oracle of the removed set.  Owner: storage.
 *
 * For random projections (ties, NaN, every column combination, rows with
 * and without slack capacity), rewire(n) must:
 *   - keep exactly the synapses prune_count(n) keeps, every column bitwise;
 *   - add exactly n synapses, each absent before the call, weight from
 *     init and 0 in the other enabled columns;
 *   - keep rows strictly increasing with n <= cap, n_synapses unchanged;
 *   - give bitwise the same projection for 1, 2 and 3 threads;
 *   - leave the projection identical on EINVAL / ENOSPACE / ENOMEM (with
 *     allocation-failure injection: link with -Wl,--wrap=malloc,...).
 * Plus a chi-square check that new synapses spread uniformly over the
 * free slots (per row and per column), and cx_pick_row (the per-row
 * sampler rewire, grow and sample_absent share) against its definition.
 *
 * Build and run: tests/c/run.sh
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectome.h"
#include "internal.h"
#include "storage.h"

#include "harness.h"

static uint64_t trng = 0xfeedbeefull;
static uint64_t rnd(uint64_t n) { return n ? cx_rng_below(&trng, n) : 0; }

/* ------------------------------------------------------- snapshots */

/* Everything observable: per row (n, post, enabled columns), cols, nbytes. */
typedef struct {
    int np, nq;
    unsigned cols;
    long ns;
    size_t nbytes;
    int *len;
    int *post;     /* [ns] export order */
    float *v[CX_N_COLS]; /* [ns] */
} snap;

static void snap_take(snap *s, const cx_proj *p) {
    s->np = p->n_pre;
    s->nq = p->n_post;
    s->cols = p->cols;
    s->ns = (long)p->n_synapses;
    s->nbytes = cx_proj_nbytes(p);
    s->len = malloc(sizeof(int) * (size_t)(s->np + 1));
    s->post = malloc(sizeof(int) * (size_t)(s->ns + 1));
    for (int c = 0; c < CX_N_COLS; c++)
        s->v[c] = malloc(sizeof(float) * (size_t)(s->ns + 1));
    long k = 0;
    for (int i = 0; i < s->np; i++) {
        const cx_row *r = &p->rows[i];
        s->len[i] = r->n;
        for (int j = 0; j < r->n; j++, k++) {
            s->post[k] = r->post[j];
            for (int c = 0; c < CX_N_COLS; c++)
                s->v[c][k] = ((s->cols >> c) & 1u) ? r->col[c][j] : 0.0f;
        }
    }
}
static void snap_free(snap *s) {
    free(s->len);
    free(s->post);
    for (int c = 0; c < CX_N_COLS; c++)
        free(s->v[c]);
}
/* 1 if identical (bitwise), nbytes too when with_bytes */
static int snap_eq(const snap *a, const snap *b, int with_bytes) {
    if (a->np != b->np || a->nq != b->nq || a->cols != b->cols || a->ns != b->ns)
        return 0;
    if (with_bytes && a->nbytes != b->nbytes)
        return 0;
    if (memcmp(a->len, b->len, sizeof(int) * (size_t)a->np) ||
        memcmp(a->post, b->post, sizeof(int) * (size_t)a->ns))
        return 0;
    for (int c = 0; c < CX_N_COLS; c++)
        if (memcmp(a->v[c], b->v[c], sizeof(float) * (size_t)a->ns))
            return 0;
    return 1;
}

/* Invariants: strictly increasing, in range, n <= cap, n_synapses. */
static void check_inv(const cx_proj *p) {
    long tot = 0;
    for (int i = 0; i < p->n_pre; i++) {
        const cx_row *r = &p->rows[i];
        CHECK(r->n >= 0 && r->n <= r->cap);
        for (int j = 0; j < r->n; j++) {
            CHECK(r->post[j] >= 0 && r->post[j] < p->n_post);
            if (j)
                CHECK(r->post[j - 1] < r->post[j]);
        }
        tot += r->n;
    }
    CHECK(tot == p->n_synapses);
}

/* ------------------------------------------------------- projections */

static float rnd_w(int ties) {
    switch (rnd(ties ? 8 : 40)) {
    case 0:
        return 0.0f;
    case 1:
        return -0.0f;
    case 2:
        return NAN;
    case 3:
        return 0.25f;
    case 4:
        return -0.25f;
    default:
        return (float)((double)rnd(2000001) / 1e6 - 1.0);
    }
}

/* A random projection: np x nq, row lengths varied, every column c in
 * `cols` enabled with random values; with slack when `slack`. */
static cx_proj *make(int np, int nq, double dens, unsigned cols, int ties, int slack) {
    cx_proj *p = cx_proj_new(np, nq);
    for (int c = 1; c < CX_N_COLS; c++)
        if ((cols >> c) & 1u)
            cx_proj_col_enable(p, c);
    long cap = (long)np * nq + 1, n = 0;
    int *pre = malloc(sizeof(int) * (size_t)cap), *post = malloc(sizeof(int) * (size_t)cap);
    float *w = malloc(sizeof(float) * (size_t)cap);
    for (int i = 0; i < np; i++) {
        double d = dens * (double)rnd(3) * 0.5 + (rnd(5) == 0 ? 0.5 : 0.0);
        for (int j = 0; j < nq; j++)
            if ((double)rnd(1000000) < d * 1e6) {
                pre[n] = i;
                post[n] = j;
                w[n] = rnd_w(ties);
                n++;
            }
    }
    CHECK(cx_proj_add(p, n, pre, post, w, NULL) == CX_OK);
    for (int c = 1; c < CX_N_COLS; c++)
        if ((cols >> c) & 1u) {
            float *v = malloc(sizeof(float) * (size_t)(n + 1));
            for (long k = 0; k < n; k++)
                v[k] = rnd_w(1);
            cx_proj_col_import(p, c, v);
            free(v);
        }
    if (!slack)
        cx_proj_shrink(p);
    free(pre);
    free(post);
    free(w);
    return p;
}

/* An identical copy (contents, columns; capacity exact). */
static cx_proj *clone(const cx_proj *p) {
    cx_proj *q = cx_proj_new(p->n_pre, p->n_post);
    long n = (long)p->n_synapses;
    int *pre = malloc(sizeof(int) * (size_t)(n + 1)), *post = malloc(sizeof(int) * (size_t)(n + 1));
    float *v = malloc(sizeof(float) * (size_t)(n + 1));
    cx_proj_export(p, pre, post, v);
    CHECK(cx_proj_add(q, n, pre, post, v, NULL) == CX_OK);
    for (int c = 1; c < CX_N_COLS; c++)
        if (CX_COL_ON(p, c)) {
            cx_proj_col_enable(q, c);
            cx_proj_col_export(p, c, v);
            cx_proj_col_import(q, c, v);
        }
    free(pre);
    free(post);
    free(v);
    return q;
}

static cx_init rnd_init(void) {
    cx_init in = {(cx_init_kind)rnd(3), 0.0f, 0.0f};
    in.a = (float)rnd(100) / 50.0f - 1.0f;
    in.b = in.kind == CX_INIT_UNIFORM ? in.a + 0.5f : 0.1f;
    if (in.kind == CX_INIT_CONST && rnd(2))
        in.a = 0.0f;
    return in;
}

/*
 * One oracle case: p (consumed) rewired with n against prune_count(n) on a
 * clone, plus thread counts 2 and 3 on further clones.
 */
static void oracle_case(cx_proj *p, long n, cx_init in, uint64_t seed, int inject) {
    snap before;
    snap_take(&before, p);
    cx_proj *pr = clone(p), *p2 = clone(p), *p3 = clone(p);
    cx_size got = -1;
    CHECK(cx_proj_prune_count(pr, n, 1, &got) == CX_OK && got == n);
    cx_status st;
    if (inject && HAVE_INJ) {
        for (long k = 0;; k++) {
            inj_arm(k);
            st = cx_proj_rewire(p, n, in, seed, 1 + (int)(k & 1));
            inj_off();
            if (st != CX_ENOMEM)
                break;
            snap now;
            snap_take(&now, p);
            CHECK(snap_eq(&before, &now, 0)); /* ENOMEM left it as it was */
            snap_free(&now);
        }
    } else {
        st = cx_proj_rewire(p, n, in, seed, 1);
    }
    CHECK(st == CX_OK);
    CHECK(cx_proj_rewire(p2, n, in, seed, 2) == CX_OK);
    CHECK(cx_proj_rewire(p3, n, in, seed, 3) == CX_OK);
    check_inv(p);
    snap a, b2, b3, kept;
    snap_take(&a, p);
    snap_take(&b2, p2);
    snap_take(&b3, p3);
    snap_take(&kept, pr);
    CHECK(snap_eq(&a, &b2, 0)); /* independent of n_threads */
    CHECK(snap_eq(&a, &b3, 0));
    CHECK(a.ns == before.ns);
    /* row by row: a = kept (all columns bitwise) merged with n new ones */
    long ka = 0, kk = 0, kb = 0, added = 0;
    for (int i = 0; i < a.np; i++) {
        long ea = ka + a.len[i], ek = kk + kept.len[i], eb = kb + before.len[i];
        for (; ka < ea; ka++) {
            int q = a.post[ka];
            if (kk < ek && kept.post[kk] == q) { /* a survivor */
                for (int c = 0; c < CX_N_COLS; c++)
                    CHECK(memcmp(&a.v[c][ka], &kept.v[c][kk], sizeof(float)) == 0);
                kk++;
                continue;
            }
            /* new: absent before the call */
            while (kb < eb && before.post[kb] < q)
                kb++;
            CHECK(!(kb < eb && before.post[kb] == q));
            added++;
            float w = a.v[0][ka];
            if (in.kind == CX_INIT_CONST)
                CHECK(memcmp(&w, &in.a, sizeof w) == 0);
            else if (in.kind == CX_INIT_UNIFORM)
                CHECK(w >= in.a && w <= in.b);
            else
                CHECK(isfinite(w));
            for (int c = 1; c < CX_N_COLS; c++)
                CHECK(a.v[c][ka] == 0.0f && !signbit(a.v[c][ka]));
        }
        CHECK(kk == ek); /* every survivor is there */
        kk = ek;
        kb = eb;
    }
    CHECK(added == n);
    snap_free(&a);
    snap_free(&b2);
    snap_free(&b3);
    snap_free(&kept);
    snap_free(&before);
    cx_proj_free(p);
    cx_proj_free(pr);
    cx_proj_free(p2);
    cx_proj_free(p3);
}

static void test_oracle(int cases) {
    for (int e = 0; e < cases; e++) {
        int np = 1 + (int)rnd(30), nq = 1 + (int)rnd(40);
        double dens = (double)rnd(100) / 100.0;
        cx_proj *p = make(np, nq, dens, (unsigned)rnd(8) << 1 | 1u, (int)rnd(2), (int)rnd(2));
        long N = (long)p->n_synapses, F = (long)np * nq - N;
        long m = N < F ? N : F;
        long n = (long)rnd((uint64_t)m + 1);
        if (rnd(6) == 0)
            n = m; /* everything that can go */
        oracle_case(p, n, rnd_init(), cx_rng_next(&trng), (int)(rnd(3) == 0));
    }
}

/* Larger: the sampled cut (N > 65536) and, in the ALT build, the
 * histogram fallback; rows with and without slack. */
static void test_large(void) {
    for (int e = 0; e < 6; e++) {
        cx_proj *p = cx_proj_new(700, 900);
        cx_init in = {CX_INIT_UNIFORM, -1.0f, 1.0f};
        cx_proj_fill_random(p, 150 + 10 * e, in, (uint64_t)e, 2);
        if (e & 1)
            cx_proj_col_enable(p, CX_COL_STATE0);
        if (e >= 3) { /* many ties: a tenth of the weights are 0.5 */
            for (int i = 0; i < 700; i++)
                for (int j = 0; j < p->rows[i].n; j += 10)
                    p->rows[i].col[0][j] = 0.5f;
        }
        long N = (long)p->n_synapses;
        long n = N / 10 + e * 37;
        if (e == 4)
            n = N / 3; /* the cut inside the ties */
        oracle_case(p, n, in, 77 + (uint64_t)e, 0);
    }
}

/* Wide rows: sparse picks in a wide range (the sorted-picks paths:
 * insertion sort for a few, bucket sort for ~100 per row, word scan). */
static void test_wide(void) {
    const int fan[3] = {300, 300, 12000};
    const long nn[3] = {1500, 10000, 60000};
    for (int e = 0; e < 3; e++) {
        cx_proj *p = cx_proj_new(100, 20000);
        cx_init in = {CX_INIT_NORMAL, 0.0f, 1.0f};
        cx_proj_fill_random(p, fan[e], in, 3 + (uint64_t)e, 2);
        if (e == 1)
            cx_proj_col_enable(p, CX_COL_GRAD);
        oracle_case(p, nn[e], in, 99 + (uint64_t)e, e == 0);
    }
}

/* Errors leave the projection identical (nbytes included). */
static void test_errors(void) {
    cx_proj *p = make(10, 12, 0.6, 0x5u, 1, 1);
    snap a, b;
    snap_take(&a, p);
    long N = a.ns, F = 120 - N;
    cx_init ok = {CX_INIT_UNIFORM, 0.0f, 1.0f}, bad = {(cx_init_kind)7, 0.0f, 1.0f};
    cx_init nan = {CX_INIT_NORMAL, 0.0f, NAN};
    CHECK(cx_proj_rewire(NULL, 1, ok, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_rewire(p, -1, ok, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_rewire(p, N + 1, ok, 1, 2) == CX_EINVAL);
    CHECK(cx_proj_rewire(p, 1, bad, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_rewire(p, 1, nan, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_rewire(p, 0, bad, 1, 1) == CX_EINVAL);
    if (F < N)
        CHECK(cx_proj_rewire(p, F + 1, ok, 1, 2) == CX_ENOSPACE);
    CHECK(cx_proj_rewire(p, 0, ok, 1, 2) == CX_OK);
    snap_take(&b, p);
    CHECK(snap_eq(&a, &b, 1));
    snap_free(&a);
    snap_free(&b);
    cx_proj_free(p);
    /* full projection: nothing is absent */
    cx_proj *f = cx_proj_new(4, 5);
    cx_init in = {CX_INIT_CONST, 1.0f, 0.0f};
    cx_proj_fill_random(f, 5, in, 1, 1);
    CHECK(cx_proj_rewire(f, 1, in, 1, 1) == CX_ENOSPACE);
    CHECK(cx_proj_n_synapses(f) == 20);
    cx_proj_free(f);
    /* empty shapes */
    cx_proj *z = cx_proj_new(0, 7);
    CHECK(cx_proj_rewire(z, 0, in, 1, 4) == CX_OK);
    CHECK(cx_proj_rewire(z, 1, in, 1, 4) == CX_EINVAL);
    cx_proj_free(z);
}

/*
 * Uniformity: rows of very different lengths (so free counts differ), R
 * rewires with fresh seeds on fresh copies; the new synapses per row and
 * per column are compared with their expectation n * free / F by a
 * chi-square statistic, which must lie within 6 sd of its df.
 */
static void test_uniformity(void) {
    enum { NP = 60, NQ = 80, R = 300 };
    cx_proj *base = cx_proj_new(NP, NQ);
    {
        int pre[NP * NQ], post[NP * NQ];
        float w[NP * NQ];
        long n = 0;
        for (int i = 0; i < NP; i++)
            for (int j = 0; j < NQ; j++)
                if ((j * 7 + i * 3) % NQ < i + 5) { /* row i holds ~i + 5 */
                    pre[n] = i;
                    post[n] = j;
                    w[n] = (float)((n * 2654435761u) % 1000) / 1000.0f;
                    n++;
                }
        cx_proj_add(base, n, pre, post, w, NULL);
    }
    long N = (long)base->n_synapses, F = (long)NP * NQ - N, n = N / 4;
    double rowf[NP], colf[NQ], rowc[NP] = {0}, colc[NQ] = {0};
    for (int j = 0; j < NQ; j++)
        colf[j] = NP;
    for (int i = 0; i < NP; i++) {
        rowf[i] = NQ - base->rows[i].n;
        for (int k = 0; k < base->rows[i].n; k++)
            colf[base->rows[i].post[k]] -= 1;
    }
    cx_init in = {CX_INIT_CONST, 9.0f, 0.0f};
    for (int r = 0; r < R; r++) {
        cx_proj *p = clone(base);
        CHECK(cx_proj_rewire(p, n, in, 1000 + (uint64_t)r, 2) == CX_OK);
        for (int i = 0; i < NP; i++)
            for (int k = 0; k < p->rows[i].n; k++)
                if (p->rows[i].col[0][k] == 9.0f) {
                    rowc[i] += 1;
                    colc[p->rows[i].post[k]] += 1;
                }
        cx_proj_free(p);
    }
    double x2r = 0, x2c = 0;
    int dfr = -1, dfc = -1;
    for (int i = 0; i < NP; i++) {
        double e = (double)R * n * rowf[i] / (double)F;
        if (e > 0) {
            x2r += (rowc[i] - e) * (rowc[i] - e) / e;
            dfr++;
        }
    }
    for (int j = 0; j < NQ; j++) {
        double e = (double)R * n * colf[j] / (double)F;
        if (e > 0) {
            x2c += (colc[j] - e) * (colc[j] - e) / e;
            dfc++;
        }
    }
    /* sampling without replacement makes the row counts less variable
     * than multinomial: only the upper tail is a failure */
    CHECK(x2r < dfr + 6.0 * sqrt(2.0 * dfr));
    CHECK(x2c < dfc + 6.0 * sqrt(2.0 * dfc));
    CHECK(x2r > 0.2 * dfr); /* not suspiciously exact either */
    if (getenv("CX_TEST_VERBOSE"))
        printf("uniformity: rows chi2 %.1f (df %d), cols chi2 %.1f (df %d)\n", x2r, dfr, x2c, dfc);
    cx_proj_free(base);
}

/*
 * cx_pick_row's vector paths against its portable path over many streams,
 * for the sorting network (k <= 128, every register count): repeats among
 * the first k candidates (small n), rejected candidates (n = 3e8: 2^32 mod
 * n rejects 2.2% of them), the bitmap path past k = 128; the same picks,
 * nothing written past them, and the same stream position after.
 */
static void test_pick_same(void) {
    const cx_index ns[] = {3, 40, 65, 257, 4097, 20000, 300000000};
    const cx_index ks[] = {1, 2, 5, 16, 17, 32, 33, 64, 65, 100, 128, 129};
    int vec = CX_PICK_VEC;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        cx_index n = ns[a];
        size_t words = ((size_t)n + 63) / 64, sw = (words + 63) / 64;
        uint64_t *bits = calloc(words + 1, sizeof(uint64_t));
        uint64_t *sum = calloc(4 * sw + 1, sizeof(uint64_t));
        cx_index u[131], v[131];
        int streams = n > 1000000 ? 40 : 400;
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
            cx_index k = ks[b];
            if (2 * k > n)
                continue;
            for (int s = 0; s < streams; s++) {
                uint64_t x = cx_rng_stream(0x77u + (uint64_t)a, (uint64_t)(s * 64) + b), x2 = x;
                u[k] = v[k] = -5;
                cx_pick_row(&x, bits, sum, sw, n, k, u, 0);
                cx_pick_row(&x2, bits, sum, sw, n, k, v, vec);
                CHECK(x == x2);
                CHECK(memcmp(u, v, (size_t)(k + 1) * sizeof(cx_index)) == 0);
            }
        }
        free(bits);
        free(sum);
    }
}

/*
 * cx_pick_row against its definition: k distinct values of [0, n),
 * ascending, scratch bitmaps zero again on exit, the same output for the
 * same stream from the portable and the vector paths; sparse (2k <= n:
 * bitmap + word summary) and dense (2k > n) cases, n around the 64- and
 * 4096-bit word edges.  Then a chi-square over the values: each of n
 * values is picked with probability k / n.
 */
static void test_pick_row(void) {
    const cx_index ns[] = {1, 2, 63, 64, 65, 100, 4095, 4096, 4097, 9000, 20000};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        cx_index n = ns[a];
        size_t words = ((size_t)n + 63) / 64, sw = (words + 63) / 64;
        uint64_t *bits = calloc(words + 1, sizeof(uint64_t));
        uint64_t *sum = calloc(4 * sw + 1, sizeof(uint64_t));
        cx_index *u = malloc(((size_t)n + 1) * sizeof(cx_index));
        cx_index *v = malloc(((size_t)n + 1) * sizeof(cx_index));
        const cx_index ks[] = {0, 1, 2, n / 3, n / 2, n / 2 + 1, n - 1, n};
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
            cx_index k = ks[b];
            if (k < 0 || k > n)
                continue;
            uint64_t x = cx_rng_stream(0x1234u + (uint64_t)a, (uint64_t)b), x2 = x;
            cx_pick_row(&x, bits, sum, sw, n, k, u, 0);
            for (cx_index q = 0; q < k; q++) {
                CHECK(u[q] >= 0 && u[q] < n);
                if (q > 0)
                    CHECK(u[q - 1] < u[q]); /* ascending, so distinct */
            }
            int clean = 1;
            for (size_t w = 0; w < words; w++)
                clean &= bits[w] == 0;
            for (size_t w = 0; w < 4 * sw; w++)
                clean &= sum[w] == 0;
            CHECK(clean);
            /* same stream, same picks (vector emission where the CPU has it) */
            cx_pick_row(&x2, bits, sum, sw, n, k, v, CX_PICK_VEC);
            CHECK(k == 0 || memcmp(u, v, (size_t)k * sizeof(cx_index)) == 0);
        }
        free(bits);
        free(sum);
        free(u);
        free(v);
    }
    /* uniformity: R draws of k of n (sparse, and dense through the
     * fallback), counts per value against R k / n */
    const cx_index cases[2][2] = {{5000, 40}, {300, 200}};
    for (int e = 0; e < 2; e++) {
        cx_index n = cases[e][0], k = cases[e][1];
        const int R = 4000;
        size_t words = ((size_t)n + 63) / 64, sw = (words + 63) / 64;
        uint64_t *bits = calloc(words + 1, sizeof(uint64_t));
        uint64_t *sum = calloc(4 * sw + 1, sizeof(uint64_t));
        cx_index *u = malloc(((size_t)k + 1) * sizeof(cx_index));
        long *cnt = calloc((size_t)n, sizeof(long));
        for (int r = 0; r < R; r++) {
            uint64_t x = cx_rng_stream(77u + (uint64_t)e, (uint64_t)r);
            cx_pick_row(&x, bits, sum, sw, n, k, u, CX_PICK_VEC);
            for (cx_index q = 0; q < k; q++)
                cnt[u[q]]++;
        }
        double ex = (double)R * k / n, chi = 0;
        for (cx_index q = 0; q < n; q++)
            chi += (cnt[q] - ex) * (cnt[q] - ex) / ex;
        /* finite-population correction: var = ex (1 - k / n) */
        chi /= 1.0 - (double)k / n;
        double df = n - 1, z = (chi - df) / sqrt(2 * df);
        CHECK(fabs(z) < 5.0);
        free(bits);
        free(sum);
        free(u);
        free(cnt);
    }
}

int main(int argc, char **argv) {
    int cases = argc > 1 ? atoi(argv[1]) : 400;
    test_errors();
    test_oracle(cases);
    test_large();
    test_wide();
    test_uniformity();
    test_pick_row();
    test_pick_same();
    printf("test_rewire: %ld checks, %ld failures (openmp %s, injection %s)\n", n_checks, n_fail,
#ifdef _OPENMP
           "on",
#else
           "off",
#endif
           HAVE_INJ ? "on" : "off");
    return n_fail ? 1 : 0;
}
