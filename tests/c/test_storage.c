/*
 * test_storage.c -- standalone test of the storage core (proj.c, edit.c,
 * random.c) against a dense-matrix oracle.  Owner: storage.
 *
 * Random sequences of every edit run on two projections in lockstep (one
 * with 1 thread, one with 2) and are checked after each step against a
 * dense oracle: membership, every column bitwise, invariants (rows
 * strictly increasing, n <= cap, n_synapses, fan-out / fan-in, export).
 * Error paths must leave the projection identical (including nbytes), and
 * with allocation-failure injection (link with -Wl,--wrap=malloc,...) an
 * ENOMEM must leave the contents identical.
 *
 * Build and run: tests/c/run.sh
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectome.h"
#include "internal.h"

#include "harness.h"

#define ZIG_TEST_R 3.442619855899

/* test rng */
static uint64_t trng = 0x1234567ull;
static uint64_t rnd(uint64_t n) { return n ? cx_rng_below(&trng, n) : 0; }
static float rnd_w(void) {
    switch (rnd(8)) { /* ties, zeros and signed values on purpose */
    case 0:
        return 0.0f;
    case 1:
        return 0.5f;
    case 2:
        return -0.5f;
    case 3:
        return -0.0f;
    default:
        return (float)cx_rng_unit(&trng) * 2 - 1;
    }
}
static int feq(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---------------------------------------------------------- dense oracle */
typedef struct {
    int np, nq;
    unsigned char *m; /* [np * nq] present */
    float *v[CX_N_COLS];
    unsigned cols;
} dense;

static void dense_init(dense *d, int np, int nq) {
    d->np = np;
    d->nq = nq;
    d->m = calloc((size_t)np * nq + 1, 1);
    for (int c = 0; c < CX_N_COLS; c++)
        d->v[c] = calloc((size_t)np * nq + 1, sizeof(float));
    d->cols = 1;
}
static void dense_free(dense *d) {
    free(d->m);
    for (int c = 0; c < CX_N_COLS; c++)
        free(d->v[c]);
}
static long dense_count(const dense *d) {
    long s = 0;
    for (long k = 0; k < (long)d->np * d->nq; k++)
        s += d->m[k];
    return s;
}
/* rebuild with a new shape: keep[i] / keepq[j] give old index or -1 */
static void dense_reshape(dense *d, int np, int nq, const int *mapi, const int *mapj) {
    dense e;
    dense_init(&e, np, nq);
    e.cols = d->cols;
    for (int i = 0; i < np; i++)
        for (int j = 0; j < nq; j++) {
            int oi = mapi[i], oj = mapj[j];
            if (oi < 0 || oj < 0)
                continue;
            long a = (long)oi * d->nq + oj, b = (long)i * nq + j;
            e.m[b] = d->m[a];
            for (int c = 0; c < CX_N_COLS; c++)
                e.v[c][b] = d->v[c][a];
        }
    dense_free(d);
    *d = e;
}

/* Full comparison of p with the oracle, plus structural invariants. */
static void check(const cx_proj *p, const dense *d) {
    CHECK(cx_proj_n_pre(p) == d->np);
    CHECK(cx_proj_n_post(p) == d->nq);
    CHECK(p->cols == d->cols);
    if (cx_proj_n_pre(p) != d->np || cx_proj_n_post(p) != d->nq)
        return;
    long total = 0;
    int *fin = calloc((size_t)d->nq + 1, sizeof(int));
    for (int i = 0; i < d->np; i++) {
        const cx_row *r = &p->rows[i];
        CHECK(r->n >= 0 && r->n <= r->cap);
        long cnt = 0;
        for (int j = 0; j < d->nq; j++)
            cnt += d->m[(long)i * d->nq + j];
        CHECK(cnt == r->n);
        for (int c = 0; c < CX_N_COLS; c++)
            if (r->cap > 0)
                CHECK((r->col[c] != NULL) == (int)((d->cols >> c) & 1u));
        for (int k = 0; k < r->n; k++) {
            int j = r->post[k];
            CHECK(j >= 0 && j < d->nq);
            if (k > 0)
                CHECK(r->post[k - 1] < j);
            if (j < 0 || j >= d->nq)
                continue;
            long a = (long)i * d->nq + j;
            CHECK(d->m[a]);
            fin[j]++;
            for (int c = 0; c < CX_N_COLS; c++)
                if ((d->cols >> c) & 1u)
                    CHECK(feq(r->col[c][k], d->v[c][a]));
        }
        total += r->n;
    }
    /* headers past n_pre are zero */
    for (int i = d->np; i < p->rows_cap; i++)
        CHECK(p->rows[i].post == NULL && p->rows[i].n == 0 && p->rows[i].cap == 0);
    CHECK(total == cx_proj_n_synapses(p));
    CHECK(total == dense_count(d));
    /* public getters */
    int *fo = malloc(((size_t)d->np + 1) * sizeof(int));
    int *fi = malloc(((size_t)d->nq + 1) * sizeof(int));
    CHECK(cx_proj_fanout(p, fo) == CX_OK);
    CHECK(cx_proj_fanin(p, fi) == CX_OK);
    for (int i = 0; i < d->np; i++)
        CHECK(fo[i] == p->rows[i].n);
    for (int j = 0; j < d->nq; j++)
        CHECK(fi[j] == fin[j]);
    long n = total;
    int *ep = malloc((size_t)(n + 1) * sizeof(int)), *eq = malloc((size_t)(n + 1) * sizeof(int));
    float *ew = malloc((size_t)(n + 1) * sizeof(float)), *ec = malloc((size_t)(n + 1) * sizeof(float));
    CHECK(cx_proj_export(p, ep, eq, ew) == CX_OK);
    long s = 0;
    for (int i = 0; i < d->np; i++)
        for (int j = 0; j < d->nq; j++)
            if (d->m[(long)i * d->nq + j]) {
                CHECK(ep[s] == i && eq[s] == j && feq(ew[s], d->v[0][(long)i * d->nq + j]));
                s++;
            }
    for (int c = 0; c < CX_N_COLS; c++) {
        CHECK(cx_proj_col_export(p, c, ec) == CX_OK);
        s = 0;
        for (long a = 0; a < (long)d->np * d->nq; a++)
            if (d->m[a]) {
                float want = ((d->cols >> c) & 1u) ? d->v[c][a] : 0.0f;
                CHECK(feq(ec[s], want));
                s++;
            }
    }
    if (d->np > 0) {
        int i = (int)rnd((uint64_t)d->np), len = -1;
        CHECK(cx_proj_row_length(p, i, &len) == CX_OK && len == p->rows[i].n);
        CHECK(cx_proj_row_copy(p, i, eq, ew) == CX_OK);
        for (int k = 0; k < len; k++)
            CHECK(eq[k] == p->rows[i].post[k] && feq(ew[k], p->rows[i].col[0][k]));
    }
    free(fin);
    free(fo);
    free(fi);
    free(ep);
    free(eq);
    free(ew);
    free(ec);
}

/* ---------------------------------------------- expected batch outcome */
typedef struct {
    int pre, post;
    long pos;
} ent;
static int ent_cmp(const void *a, const void *b) {
    const ent *x = a, *y = b;
    if (x->pre != y->pre)
        return x->pre < y->pre ? -1 : 1;
    if (x->post != y->post)
        return x->post < y->post ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}
static cx_status expect_batch(const dense *d, long n, const int *pre, const int *post,
                              int removing, long *err_at) {
    *err_at = -1;
    ent *e = malloc((size_t)(n + 1) * sizeof(ent));
    for (long k = 0; k < n; k++)
        e[k] = (ent){pre[k], post[k], k};
    qsort(e, (size_t)n, sizeof(ent), ent_cmp);
    cx_status st = CX_OK;
    for (long k = 0; k < n; k++)
        if (e[k].pre < 0 || e[k].pre >= d->np || e[k].post < 0 || e[k].post >= d->nq) {
            *err_at = e[k].pos;
            st = CX_EINDEX;
            break;
        }
    for (long k = 0; k < n && st == CX_OK; k++) {
        if (k > 0 && e[k].pre == e[k - 1].pre && e[k].post == e[k - 1].post) {
            *err_at = e[k].pos;
            st = CX_EDUP;
            break;
        }
        int present = d->m[(long)e[k].pre * d->nq + e[k].post];
        if (present != removing) {
            *err_at = e[k].pos;
            st = removing ? CX_ENOENT : CX_EEXIST;
        }
    }
    free(e);
    return st;
}

/* ---------------------------------------------------------- the state */
typedef struct {
    cx_proj *p1, *p2; /* 1 thread, 2 threads */
    dense d;
} state;

/* Record structure for "identical after failure" (content + nbytes). */
static void expect_unchanged(state *s, size_t nb1) {
    check(s->p1, &s->d);
    CHECK(cx_proj_nbytes(s->p1) == nb1);
}

/* Run op on p1 under allocation failure injection at every position until
 * it succeeds; each ENOMEM must leave the contents intact.  Returns the
 * final status. */
typedef cx_status (*opfn)(cx_proj *p, void *arg, int nt);
static cx_status run_injected(state *s, opfn f, void *arg, int nt) {
    if (!HAVE_INJ || rnd(3) != 0)
        return f(s->p1, arg, nt);
    for (long k = 0;; k++) {
        inj_arm(k);
        cx_status st = f(s->p1, arg, nt);
        inj_off();
        if (st != CX_ENOMEM)
            return st;
        check(s->p1, &s->d); /* failure left the content as it was */
    }
}

/* copy the p1 state of a row-set into the oracle (after random ops) */
static void oracle_from(dense *d, const cx_proj *p) {
    memset(d->m, 0, (size_t)d->np * d->nq);
    for (int c = 0; c < CX_N_COLS; c++)
        memset(d->v[c], 0, (size_t)d->np * d->nq * sizeof(float));
    for (int i = 0; i < d->np; i++) {
        const cx_row *r = &p->rows[i];
        for (int k = 0; k < r->n; k++) {
            long a = (long)i * d->nq + r->post[k];
            d->m[a] = 1;
            for (int c = 0; c < CX_N_COLS; c++)
                if ((d->cols >> c) & 1u)
                    d->v[c][a] = r->col[c][k];
        }
    }
}

/* ---- op wrappers ---- */
typedef struct {
    long n;
    int *pre, *post;
    float *w;
    long err_at;
} batch_arg;
static cx_status op_add(cx_proj *p, void *a, int nt) {
    batch_arg *b = a;
    (void)nt;
    return cx_proj_add(p, b->n, b->pre, b->post, b->w, &b->err_at);
}
static cx_status op_remove(cx_proj *p, void *a, int nt) {
    batch_arg *b = a;
    (void)nt;
    return cx_proj_remove(p, b->n, b->pre, b->post, &b->err_at);
}
typedef struct {
    long n;
    float thr;
    long removed;
} prune_arg;
static cx_status op_prune_thr(cx_proj *p, void *a, int nt) {
    prune_arg *b = a;
    return cx_proj_prune_threshold(p, b->thr, nt, &b->removed);
}
static cx_status op_prune_cnt(cx_proj *p, void *a, int nt) {
    prune_arg *b = a;
    return cx_proj_prune_count(p, b->n, nt, &b->removed);
}
typedef struct {
    long n;
    cx_init init;
    uint64_t seed;
    int fan;
} grow_arg;
static cx_status op_grow(cx_proj *p, void *a, int nt) {
    grow_arg *b = a;
    return cx_proj_grow(p, b->n, b->init, b->seed, nt);
}
static cx_status op_add_pre(cx_proj *p, void *a, int nt) {
    grow_arg *b = a;
    (void)nt;
    return cx_proj_add_pre(p, (int)b->n, b->fan, b->init, b->seed);
}
static cx_status op_add_post(cx_proj *p, void *a, int nt) {
    grow_arg *b = a;
    (void)nt;
    return cx_proj_add_post(p, (int)b->n, b->fan, b->init, b->seed);
}
static cx_status op_fill(cx_proj *p, void *a, int nt) {
    grow_arg *b = a;
    return cx_proj_fill_random(p, b->fan, b->init, b->seed, nt);
}
typedef struct {
    int n;
    int *idx;
} ids_arg;
static cx_status op_remove_pre(cx_proj *p, void *a, int nt) {
    ids_arg *b = a;
    (void)nt;
    return cx_proj_remove_pre(p, b->n, b->idx);
}
static cx_status op_remove_post(cx_proj *p, void *a, int nt) {
    ids_arg *b = a;
    return cx_proj_remove_post(p, b->n, b->idx, nt);
}
static cx_status op_col_enable(cx_proj *p, void *a, int nt) {
    (void)nt;
    return cx_proj_col_enable(p, *(int *)a);
}
static cx_status op_shrink(cx_proj *p, void *a, int nt) {
    (void)a;
    (void)nt;
    return cx_proj_shrink(p);
}

/* apply to both projections; p1 possibly under injection */
static cx_status both(state *s, opfn f, void *arg, int inject) {
    size_t nb = cx_proj_nbytes(s->p1);
    cx_status st1 = inject ? run_injected(s, f, arg, 1) : f(s->p1, arg, 1);
    cx_status st2 = f(s->p2, arg, 2);
    CHECK(st1 == st2);
    if (st1 != CX_OK && st1 != CX_ENOMEM)
        expect_unchanged(s, nb);
    return st1;
}

static cx_init rnd_init(void) {
    cx_init in;
    in.kind = (cx_init_kind)rnd(3);
    in.a = rnd(2) ? 0.0f : -0.25f;
    in.b = 0.5f;
    return in;
}

/* --------------------------------------------------------- the ops */
static void step_add(state *s) {
    dense *d = &s->d;
    long n = (long)rnd(12);
    batch_arg b = {n, malloc(sizeof(int) * (size_t)(n + 1)), malloc(sizeof(int) * (size_t)(n + 1)),
                   malloc(sizeof(float) * (size_t)(n + 1)), 0};
    int mode = (int)rnd(5); /* 0..1 clean-ish, 2 index, 3 dup, 4 existing */
    for (long k = 0; k < n; k++) {
        b.pre[k] = d->np ? (int)rnd((uint64_t)d->np) : 0;
        b.post[k] = d->nq ? (int)rnd((uint64_t)d->nq) : 0;
        b.w[k] = rnd_w();
        /* prefer absent pairs unless testing EEXIST */
        for (int t = 0; t < 8 && mode != 4 && d->np && d->nq &&
                        d->m[(long)b.pre[k] * d->nq + b.post[k]];
             t++) {
            b.pre[k] = (int)rnd((uint64_t)d->np);
            b.post[k] = (int)rnd((uint64_t)d->nq);
        }
    }
    if (n > 0 && mode == 2) {
        long k = (long)rnd((uint64_t)n);
        if (rnd(2))
            b.pre[k] = rnd(2) ? -1 - (int)rnd(3) : d->np + (int)rnd(3);
        else
            b.post[k] = rnd(2) ? -1 : d->nq;
    }
    if (n > 1 && mode == 3) {
        long k = (long)rnd((uint64_t)n), q = (long)rnd((uint64_t)n);
        b.pre[q] = b.pre[k];
        b.post[q] = b.post[k];
    }
    long want_at;
    cx_status want = expect_batch(d, n, b.pre, b.post, 0, &want_at);
    if (d->np == 0 || d->nq == 0)
        want = n > 0 ? CX_EINDEX : CX_OK;
    cx_status st = both(s, op_add, &b, 1);
    CHECK(st == want);
    if (st == want && st != CX_OK)
        CHECK(b.err_at == want_at);
    if (st == CX_OK) {
        for (long k = 0; k < n; k++) {
            long a = (long)b.pre[k] * d->nq + b.post[k];
            d->m[a] = 1;
            d->v[0][a] = b.w[k];
            for (int c = 1; c < CX_N_COLS; c++)
                d->v[c][a] = 0;
        }
    }
    free(b.pre);
    free(b.post);
    free(b.w);
}

static void step_remove(state *s) {
    dense *d = &s->d;
    long have = dense_count(d);
    long n = (long)rnd(12);
    batch_arg b = {n, malloc(sizeof(int) * (size_t)(n + 1)), malloc(sizeof(int) * (size_t)(n + 1)),
                   NULL, 0};
    int mode = (int)rnd(5);
    for (long k = 0; k < n; k++) {
        if (have > 0 && mode != 4) { /* pick an existing synapse */
            long t = (long)rnd((uint64_t)have), a = 0;
            for (;; a++)
                if (d->m[a] && t-- == 0)
                    break;
            b.pre[k] = (int)(a / d->nq);
            b.post[k] = (int)(a % d->nq);
        } else {
            b.pre[k] = d->np ? (int)rnd((uint64_t)d->np) : 0;
            b.post[k] = d->nq ? (int)rnd((uint64_t)d->nq) : 0;
        }
    }
    if (n > 0 && mode == 2) {
        long k = (long)rnd((uint64_t)n);
        b.post[k] = rnd(2) ? -5 : d->nq + 1;
    }
    long want_at;
    cx_status want = expect_batch(d, n, b.pre, b.post, 1, &want_at);
    cx_status st = both(s, op_remove, &b, 1);
    CHECK(st == want);
    if (st == want && st != CX_OK)
        CHECK(b.err_at == want_at);
    if (st == CX_OK)
        for (long k = 0; k < n; k++) {
            long a = (long)b.pre[k] * d->nq + b.post[k];
            d->m[a] = 0;
            for (int c = 0; c < CX_N_COLS; c++)
                d->v[c][a] = 0;
        }
    free(b.pre);
    free(b.post);
}

static uint32_t okey(float w) {
    uint32_t u;
    memcpy(&u, &w, 4);
    u &= 0x7fffffffu;
    return u > 0x7f800000u ? 0u : u + 1u;
}

static void drop(dense *d, long a) {
    d->m[a] = 0;
    for (int c = 0; c < CX_N_COLS; c++)
        d->v[c][a] = 0;
}

static void step_prune_thr(state *s) {
    dense *d = &s->d;
    prune_arg b = {0, (float)cx_rng_unit(&trng) * 0.8f, -1};
    if (rnd(10) == 0)
        b.thr = NAN;
    if (rnd(10) == 0)
        b.thr = -1.0f;
    if (rnd(10) == 0)
        b.thr = INFINITY;
    if (rnd(6) == 0) /* a weight value exactly: |w| == thr is kept */
        b.thr = 0.5f;
    cx_status st = both(s, op_prune_thr, &b, 1);
    CHECK(st == (isnan(b.thr) ? CX_EINVAL : CX_OK));
    if (st != CX_OK)
        return;
    long removed = 0;
    for (long a = 0; a < (long)d->np * d->nq; a++)
        if (d->m[a] && !(fabsf(d->v[0][a]) >= b.thr)) {
            drop(d, a);
            removed++;
        }
    CHECK(removed == b.removed);
}

static void step_prune_cnt(state *s) {
    dense *d = &s->d;
    long have = dense_count(d);
    prune_arg b = {(long)rnd((uint64_t)have + 1), 0, -1};
    if (rnd(10) == 0)
        b.n = rnd(2) ? -1 : have + 1;
    cx_status st = both(s, op_prune_cnt, &b, 1);
    CHECK(st == ((b.n < 0 || b.n > have) ? CX_EINVAL : CX_OK));
    if (st != CX_OK)
        return;
    CHECK(b.removed == b.n);
    /* oracle: remove the n smallest keys, ties by (pre, post) */
    for (long r = 0; r < b.n; r++) {
        long best = -1;
        for (long a = 0; a < (long)d->np * d->nq; a++)
            if (d->m[a] && (best < 0 || okey(d->v[0][a]) < okey(d->v[0][best])))
                best = a;
        drop(d, best);
    }
}

static void step_grow(state *s) {
    dense *d = &s->d;
    long free_slots = (long)d->np * d->nq - dense_count(d);
    grow_arg b = {(long)rnd((uint64_t)free_slots + 1), rnd_init(), cx_rng_next(&trng), 0};
    if (rnd(8) == 0)
        b.n = free_slots + 1 + (long)rnd(3);
    if (rnd(10) == 0)
        b.init.a = NAN;
    if (rnd(20) == 0)
        b.n = -1;
    /* the pairs grow will insert: sample_absent with the same seed */
    int *sp = malloc(sizeof(int) * (size_t)(b.n > 0 ? b.n : 1));
    int *sq = malloc(sizeof(int) * (size_t)(b.n > 0 ? b.n : 1));
    cx_status sst = cx_proj_sample_absent(s->p1, b.n, b.seed, sp, sq);
    cx_status st = both(s, op_grow, &b, 1);
    cx_status want = b.n < 0 ? CX_EINVAL : b.n > free_slots ? CX_ENOSPACE : CX_OK;
    if (!cx_init_valid(b.init) && b.n >= 0)
        want = CX_EINVAL;
    CHECK(st == want);
    CHECK(sst == (b.n < 0 ? CX_EINVAL : b.n > free_slots ? CX_ENOSPACE : CX_OK));
    if (st == CX_OK) {
        for (long k = 0; k < b.n; k++) {
            CHECK(sp[k] >= 0 && sp[k] < d->np && sq[k] >= 0 && sq[k] < d->nq);
            if (k > 0)
                CHECK(sp[k - 1] < sp[k] || (sp[k - 1] == sp[k] && sq[k - 1] < sq[k]));
            long a = (long)sp[k] * d->nq + sq[k];
            CHECK(!d->m[a]);
            d->m[a] = 1; /* weights: taken from p1 below */
        }
        CHECK(dense_count(d) == cx_proj_n_synapses(s->p1));
        /* new synapses: weight from init, other columns 0 */
        for (long k = 0; k < b.n; k++) {
            const cx_row *r = &s->p1->rows[sp[k]];
            int pos = -1;
            for (int q = 0; q < r->n; q++)
                if (r->post[q] == sq[k])
                    pos = q;
            CHECK(pos >= 0);
            if (pos < 0)
                continue;
            float w = r->col[0][pos];
            if (b.init.kind == CX_INIT_CONST)
                CHECK(w == b.init.a);
            if (b.init.kind == CX_INIT_UNIFORM)
                CHECK(w >= b.init.a && w <= b.init.b);
            for (int c = 1; c < CX_N_COLS; c++)
                if ((d->cols >> c) & 1u)
                    CHECK(r->col[c][pos] == 0.0f);
            long a = (long)sp[k] * d->nq + sq[k];
            d->v[0][a] = w;
        }
    }
    free(sp);
    free(sq);
}

static void step_add_pre(state *s) {
    dense *d = &s->d;
    grow_arg b = {(long)rnd(4), rnd_init(), cx_rng_next(&trng), (int)rnd((uint64_t)d->nq + 1)};
    if (rnd(10) == 0)
        b.fan = d->nq + 1;
    if (rnd(20) == 0)
        b.n = -1;
    cx_status st = both(s, op_add_pre, &b, 1);
    CHECK(st == ((b.fan > d->nq || b.n < 0) ? CX_EINVAL : CX_OK));
    if (st != CX_OK)
        return;
    int np = d->np + (int)b.n;
    int *mi = malloc(sizeof(int) * (size_t)(np + 1)), *mj = malloc(sizeof(int) * (size_t)(d->nq + 1));
    for (int i = 0; i < np; i++)
        mi[i] = i < d->np ? i : -1;
    for (int j = 0; j < d->nq; j++)
        mj[j] = j;
    dense_reshape(d, np, d->nq, mi, mj);
    for (int i = np - (int)b.n; i < np; i++) {
        const cx_row *r = &s->p1->rows[i];
        CHECK(r->n == b.fan && r->cap == b.fan);
        for (int k = 0; k < r->n; k++) {
            long a = (long)i * d->nq + r->post[k];
            d->m[a] = 1;
            d->v[0][a] = r->col[0][k];
            if (b.init.kind == CX_INIT_CONST)
                CHECK(r->col[0][k] == b.init.a);
        }
    }
    free(mi);
    free(mj);
}

static void step_add_post(state *s) {
    dense *d = &s->d;
    grow_arg b = {(long)rnd(4), rnd_init(), cx_rng_next(&trng), (int)rnd((uint64_t)d->np + 1)};
    if (rnd(10) == 0)
        b.fan = d->np + 1;
    cx_status st = both(s, op_add_post, &b, 1);
    CHECK(st == (b.fan > d->np ? CX_EINVAL : CX_OK));
    if (st != CX_OK)
        return;
    int nq = d->nq + (int)b.n;
    int *mi = malloc(sizeof(int) * (size_t)(d->np + 1)), *mj = malloc(sizeof(int) * (size_t)(nq + 1));
    for (int i = 0; i < d->np; i++)
        mi[i] = i;
    for (int j = 0; j < nq; j++)
        mj[j] = j < d->nq ? j : -1;
    dense_reshape(d, d->np, nq, mi, mj);
    for (int i = 0; i < d->np; i++) {
        const cx_row *r = &s->p1->rows[i];
        for (int k = 0; k < r->n; k++)
            if (r->post[k] >= nq - (int)b.n) {
                long a = (long)i * nq + r->post[k];
                d->m[a] = 1;
                d->v[0][a] = r->col[0][k];
            }
    }
    for (int j = nq - (int)b.n; j < nq; j++) {
        int c = 0;
        for (int i = 0; i < d->np; i++)
            c += d->m[(long)i * nq + j];
        CHECK(c == b.fan);
    }
    free(mi);
    free(mj);
}

static void step_remove_neurons(state *s, int post_side) {
    dense *d = &s->d;
    int lim = post_side ? d->nq : d->np;
    int *idx = malloc(sizeof(int) * (size_t)(lim + 2)), n = 0;
    for (int i = 0; i < lim; i++)
        if (rnd(4) == 0)
            idx[n++] = i;
    cx_status want = CX_OK;
    int mode = (int)rnd(6);
    if (mode == 0 && n >= 2) {
        idx[n - 1] = idx[n - 2]; /* not strictly increasing */
        want = CX_EINVAL;
    } else if (mode == 1) {
        idx[n++] = lim + (int)rnd(2); /* out of range, still increasing */
        want = CX_EINDEX;
    }
    ids_arg b = {n, idx};
    cx_status st = both(s, post_side ? op_remove_post : op_remove_pre, &b, 1);
    CHECK(st == want);
    /* never allocates: must succeed even with every allocation failing */
    if (st == CX_OK) {
        int np = d->np, nq = d->nq;
        int *mi = malloc(sizeof(int) * (size_t)(np + 1)), *mj = malloc(sizeof(int) * (size_t)(nq + 1));
        int o = 0, k = 0;
        for (int i = 0; i < lim; i++) {
            if (k < n && idx[k] == i) {
                k++;
                continue;
            }
            (post_side ? mj : mi)[o++] = i;
        }
        if (post_side) {
            for (int i = 0; i < np; i++)
                mi[i] = i;
            nq = o;
        } else {
            for (int j = 0; j < nq; j++)
                mj[j] = j;
            np = o;
        }
        dense_reshape(d, np, nq, mi, mj);
        free(mi);
        free(mj);
    }
    free(idx);
}

static void step_columns(state *s) {
    dense *d = &s->d;
    int c = (int)rnd(CX_N_COLS + 1); /* CX_N_COLS: invalid */
    int what = (int)rnd(4);
    if (what == 0) {
        cx_status st = both(s, op_col_enable, &c, 1);
        CHECK(st == (c < CX_N_COLS ? CX_OK : CX_EINVAL));
        if (st == CX_OK && !((d->cols >> c) & 1u)) {
            d->cols |= 1u << c;
            for (long a = 0; a < (long)d->np * d->nq; a++)
                d->v[c][a] = 0;
        }
    } else if (what == 1) {
        cx_status st1 = cx_proj_col_disable(s->p1, c), st2 = cx_proj_col_disable(s->p2, c);
        CHECK(st1 == st2);
        CHECK(st1 == ((c == 0 || c >= CX_N_COLS) ? CX_EINVAL : CX_OK));
        if (st1 == CX_OK) {
            d->cols &= ~(1u << c);
            for (long a = 0; a < (long)d->np * d->nq; a++)
                d->v[c][a] = 0;
        }
    } else if (what == 2) { /* import random values */
        long n = dense_count(d);
        float *v = malloc(sizeof(float) * (size_t)(n + 1));
        for (long k = 0; k < n; k++)
            v[k] = rnd_w();
        cx_status st1 = cx_proj_col_import(s->p1, c, v), st2 = cx_proj_col_import(s->p2, c, v);
        CHECK(st1 == st2);
        int on = c < CX_N_COLS && ((d->cols >> c) & 1u);
        CHECK(st1 == (on ? CX_OK : CX_EINVAL));
        if (st1 == CX_OK) {
            long k = 0;
            for (long a = 0; a < (long)d->np * d->nq; a++)
                if (d->m[a])
                    d->v[c][a] = v[k++];
        }
        free(v);
    } else {
        float val = rnd_w();
        cx_status st1 = cx_proj_col_fill(s->p1, c, val, 1), st2 = cx_proj_col_fill(s->p2, c, val, 2);
        CHECK(st1 == st2);
        int on = c < CX_N_COLS && ((d->cols >> c) & 1u);
        CHECK(st1 == (on ? CX_OK : CX_EINVAL));
        if (st1 == CX_OK)
            for (long a = 0; a < (long)d->np * d->nq; a++)
                if (d->m[a])
                    d->v[c][a] = val;
    }
}

static void step_shrink(state *s) {
    cx_status st = both(s, op_shrink, NULL, 1);
    CHECK(st == CX_OK);
    /* after shrink: capacity == length everywhere */
    size_t per = sizeof(cx_index);
    for (int c = 0; c < CX_N_COLS; c++)
        if ((s->d.cols >> c) & 1u)
            per += sizeof(cx_real);
    CHECK(cx_proj_nbytes(s->p2) == sizeof(cx_proj) + (size_t)s->p2->rows_cap * sizeof(cx_row) +
                                       (size_t)cx_proj_n_synapses(s->p2) * per);
}

static void step_refill(state *s) {
    dense *d = &s->d;
    grow_arg b = {0, rnd_init(), cx_rng_next(&trng), (int)rnd((uint64_t)d->nq + 1)};
    int empty = dense_count(d) == 0;
    if (rnd(10) == 0)
        b.fan = d->nq + 1;
    cx_status st = both(s, op_fill, &b, 1);
    CHECK(st == ((!empty || b.fan > d->nq) ? CX_EINVAL : CX_OK));
    if (st == CX_OK) {
        for (int i = 0; i < d->np; i++)
            CHECK(s->p1->rows[i].n == b.fan && s->p1->rows[i].cap == b.fan);
        oracle_from(d, s->p1); /* check() then compares p2 and invariants */
    }
}

/* ------------------------------------------------------------ episodes */
static void episode(int steps) {
    state s;
    int np = (int)rnd(10), nq = (int)rnd(10);
    if (rnd(3) == 0)
        nq = 60 + (int)rnd(80); /* bitmaps wider than one word */
    if (rnd(4) == 0)
        np = 30 + (int)rnd(40);
    s.p1 = cx_proj_new(np, nq);
    s.p2 = cx_proj_new(np, nq);
    dense_init(&s.d, np, nq);
    CHECK(s.p1 && s.p2);
    if (rnd(2)) {
        grow_arg b = {0, rnd_init(), cx_rng_next(&trng), (int)rnd((uint64_t)nq + 1)};
        CHECK(both(&s, op_fill, &b, 1) == CX_OK);
        oracle_from(&s.d, s.p1);
    }
    check(s.p1, &s.d);
    check(s.p2, &s.d);
    for (int t = 0; t < steps; t++) {
        int op = (int)rnd(13);
        switch (op) {
        case 0:
        case 1:
            step_add(&s);
            break;
        case 2:
            step_remove(&s);
            break;
        case 3:
            step_prune_thr(&s);
            break;
        case 4:
            step_prune_cnt(&s);
            break;
        case 5:
        case 6:
            step_grow(&s);
            break;
        case 7:
            step_add_pre(&s);
            break;
        case 8:
            step_add_post(&s);
            break;
        case 9:
            step_remove_neurons(&s, (int)rnd(2));
            break;
        case 10:
            step_columns(&s);
            break;
        case 11:
            step_shrink(&s);
            break;
        default:
            step_refill(&s);
        }
        check(s.p1, &s.d);
        check(s.p2, &s.d);
        if (n_fail) {
            fprintf(stderr, "  (episode step %d, op %d)\n", t, op);
            break;
        }
    }
    cx_proj_free(s.p1);
    cx_proj_free(s.p2);
    dense_free(&s.d);
}

/* ----------------------------------------------------- targeted tests */

/* Invalid arguments: NULLs and bad values give EINVAL/EINDEX, no crash. */
static void test_invalid(void) {
    CHECK(cx_proj_new(-1, 3) == NULL);
    CHECK(cx_proj_new(3, -1) == NULL);
    cx_proj_free(NULL);
    CHECK(cx_proj_n_pre(NULL) == 0 && cx_proj_nbytes(NULL) == 0);
    cx_proj *p = cx_proj_new(4, 5);
    cx_init ok = {CX_INIT_UNIFORM, -1, 1}, bad = {(cx_init_kind)7, 0, 0};
    CHECK(cx_proj_fill_random(p, 2, bad, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_fill_random(p, -1, ok, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_fill_random(p, 6, ok, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_fill_random(NULL, 1, ok, 1, 1) == CX_EINVAL);
    CHECK(cx_proj_fill_random(p, 2, ok, 1, 0) == CX_OK); /* n_threads < 1 -> 1 */
    cx_size err = 7;
    CHECK(cx_proj_add(p, -1, NULL, NULL, NULL, &err) == CX_EINVAL && err == -1);
    CHECK(cx_proj_add(p, 1, NULL, NULL, NULL, &err) == CX_EINVAL);
    CHECK(cx_proj_add(p, 0, NULL, NULL, NULL, NULL) == CX_OK);
    CHECK(cx_proj_remove(p, 2, NULL, NULL, &err) == CX_EINVAL);
    CHECK(cx_proj_prune_count(p, -1, 1, NULL) == CX_EINVAL);
    CHECK(cx_proj_prune_count(p, 9, 1, NULL) == CX_EINVAL);
    CHECK(cx_proj_prune_threshold(p, NAN, 1, NULL) == CX_EINVAL);
    CHECK(cx_proj_sample_absent(p, 1, 0, NULL, NULL) == CX_EINVAL);
    CHECK(cx_proj_sample_absent(p, 13, 0, NULL, NULL) == CX_EINVAL);
    cx_index a[20], b[20];
    CHECK(cx_proj_sample_absent(p, 13, 0, a, b) == CX_ENOSPACE);
    CHECK(cx_proj_sample_absent(p, 12, 0, a, b) == CX_OK);
    CHECK(cx_proj_grow(p, 13, ok, 0, 1) == CX_ENOSPACE);
    CHECK(cx_proj_add_pre(p, 1, 6, ok, 0) == CX_EINVAL);
    CHECK(cx_proj_add_pre(p, -1, 1, ok, 0) == CX_EINVAL);
    CHECK(cx_proj_add_pre(p, INT32_MAX, 1, ok, 0) == CX_EINVAL);
    CHECK(cx_proj_add_post(p, 1, 5, ok, 0) == CX_EINVAL);
    CHECK(cx_proj_add_post(p, INT32_MAX, 1, ok, 0) == CX_EINVAL);
    CHECK(cx_proj_remove_pre(p, 1, NULL) == CX_EINVAL);
    CHECK(cx_proj_remove_pre(p, -1, a) == CX_EINVAL);
    a[0] = 4;
    CHECK(cx_proj_remove_pre(p, 1, a) == CX_EINDEX);
    a[0] = -1;
    CHECK(cx_proj_remove_post(p, 1, a, 1) == CX_EINDEX);
    CHECK(cx_proj_row_length(p, 4, b) == CX_EINDEX);
    CHECK(cx_proj_row_length(p, 0, NULL) == CX_EINVAL);
    CHECK(cx_proj_row_copy(p, -1, a, NULL) == CX_EINDEX);
    CHECK(cx_proj_fanout(p, NULL) == CX_EINVAL);
    CHECK(cx_proj_col_export(p, 0, NULL) == CX_EINVAL);
    CHECK(cx_proj_col_enable(p, -1) == CX_EINVAL);
    CHECK(cx_proj_col_disable(p, CX_COL_WEIGHT) == CX_EINVAL);
    CHECK(cx_proj_col_fill(p, CX_COL_GRAD, 0, 1) == CX_EINVAL);
    CHECK(cx_proj_n_synapses(p) == 8);
    cx_proj_free(p);
    /* empty shapes */
    p = cx_proj_new(0, 0);
    CHECK(p != NULL);
    CHECK(cx_proj_fill_random(p, 0, ok, 1, 2) == CX_OK);
    CHECK(cx_proj_grow(p, 0, ok, 1, 2) == CX_OK);
    CHECK(cx_proj_grow(p, 1, ok, 1, 2) == CX_ENOSPACE);
    CHECK(cx_proj_add_post(p, 3, 0, ok, 1) == CX_OK && cx_proj_n_post(p) == 3);
    CHECK(cx_proj_add_pre(p, 2, 3, ok, 1) == CX_OK && cx_proj_n_synapses(p) == 6);
    CHECK(cx_proj_prune_count(p, 6, 2, NULL) == CX_OK && cx_proj_n_synapses(p) == 0);
    cx_proj_free(p);
}

/* Uniformity of sample_absent and of fill_random targets (loose chi^2). */
static void test_uniform(void) {
    /* 3 x 3 with 4 present: 5 free slots, sample 2 -> 10 possible pairs */
    cx_proj *p = cx_proj_new(3, 3);
    cx_index pr[4] = {0, 1, 1, 2}, po[4] = {1, 0, 2, 2};
    cx_real w[4] = {1, 1, 1, 1};
    CHECK(cx_proj_add(p, 4, pr, po, w, NULL) == CX_OK);
    long cnt[9 * 9] = {0};
    int trials = 20000;
    for (int t = 0; t < trials; t++) {
        cx_index a[2], b[2];
        CHECK(cx_proj_sample_absent(p, 2, (uint64_t)t * 7919u, a, b) == CX_OK);
        cnt[(a[0] * 3 + b[0]) * 9 + a[1] * 3 + b[1]]++;
    }
    int cells = 0;
    double chi = 0, e = trials / 10.0;
    for (int k = 0; k < 81; k++)
        if (cnt[k]) {
            cells++;
            chi += (cnt[k] - e) * (cnt[k] - e) / e;
        }
    CHECK(cells == 10);
    CHECK(chi < 40); /* 9 dof: p ~ 1e-5 */
    /* complement path: sample 4 of 5 */
    for (int t = 0; t < 200; t++) {
        cx_index a[5], b[5];
        CHECK(cx_proj_sample_absent(p, 5, (uint64_t)t, a, b) == CX_OK);
        CHECK(a[0] == 0 && b[0] == 0 && a[4] == 2 && b[4] == 1);
    }
    cx_proj_free(p);
    /* fill_random: target frequencies over rows, both draw regimes */
    for (int fan = 3; fan <= 45; fan += 42) {
        int nq = 50, np = 4000;
        p = cx_proj_new(np, nq);
        cx_init in = {CX_INIT_CONST, 1, 0};
        CHECK(cx_proj_fill_random(p, fan, in, 5, 2) == CX_OK);
        long *fi = calloc((size_t)nq, sizeof(long));
        int *f = malloc(sizeof(int) * (size_t)nq);
        CHECK(cx_proj_fanin(p, f) == CX_OK);
        double ex = (double)np * fan / nq, c2 = 0;
        for (int j = 0; j < nq; j++)
            c2 += (f[j] - ex) * (f[j] - ex) / ex;
        CHECK(c2 < 100); /* 49 dof */
        free(fi);
        free(f);
        cx_proj_free(p);
    }
}

/* Few targets in a wide row (the insertion-sort branch of pick_sorted),
 * and add_post's appends with a small fan-in over many rows. */
static void test_wide(void) {
    int np = 40, nq = 100000, fan = 12;
    cx_init in = {CX_INIT_UNIFORM, -1, 1};
    cx_proj *a = cx_proj_new(np, nq), *b = cx_proj_new(np, nq);
    CHECK(cx_proj_fill_random(a, fan, in, 3, 1) == CX_OK);
    CHECK(cx_proj_fill_random(b, fan, in, 3, 2) == CX_OK);
    for (int i = 0; i < np; i++) {
        const cx_row *r = &a->rows[i];
        CHECK(r->n == fan && r->cap == fan);
        for (int k = 1; k < r->n; k++)
            CHECK(r->post[k - 1] < r->post[k]);
        CHECK(memcmp(r->post, b->rows[i].post, sizeof(cx_index) * (size_t)fan) == 0);
        CHECK(memcmp(r->col[0], b->rows[i].col[0], sizeof(cx_real) * (size_t)fan) == 0);
    }
    /* spread: targets of all rows fall in each tenth about equally */
    long dec[10] = {0};
    for (int i = 0; i < np; i++)
        for (int k = 0; k < fan; k++)
            dec[a->rows[i].post[k] / (nq / 10)]++;
    for (int d = 0; d < 10; d++)
        CHECK(dec[d] > 10 && dec[d] < 100); /* expected 48 */
    cx_proj_free(a);
    cx_proj_free(b);
    a = cx_proj_new(5000, 3);
    CHECK(cx_proj_add_post(a, 4, 7, in, 9) == CX_OK);
    int *fi = malloc(sizeof(int) * 7);
    CHECK(cx_proj_fanin(a, fi) == CX_OK);
    CHECK(fi[0] == 0 && fi[2] == 0 && fi[3] == 7 && fi[6] == 7);
    CHECK(cx_proj_n_synapses(a) == 28);
    free(fi);
    cx_proj_free(a);
}

/* prune_count on > 1M synapses (1 and 2 threads), exact against a
 * sort of (|w| key, export position); coarse weights make many ties. */
typedef struct {
    uint32_t key;
    long pos;
} kp;
static int kp_cmp(const void *a, const void *b) {
    const kp *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}
static void test_prune_large(void) {
    int np = 2000, nq = 4000;
    cx_init in = {CX_INIT_UNIFORM, -1, 1};
    for (int variant = 0; variant < 3; variant++) {
        cx_proj *a = cx_proj_new(np, nq), *b = cx_proj_new(np, nq);
        CHECK(cx_proj_fill_random(a, 600, in, 17 + variant, 1) == CX_OK);
        CHECK(cx_proj_fill_random(b, 600, in, 17 + variant, 2) == CX_OK);
        long n = (long)cx_proj_n_synapses(a);
        float *w = malloc(sizeof(float) * (size_t)n);
        CHECK(cx_proj_export(a, NULL, NULL, w) == CX_OK);
        for (long k = 0; k < n; k++) {
            if (variant == 1) /* coarse: ~500 distinct values, heavy ties */
                w[k] = floorf(w[k] * 256.0f) / 256.0f;
            if (variant == 2 && k % 7 == 0) /* a block of exact zeros */
                w[k] = 0.0f;
        }
        CHECK(cx_proj_col_import(a, 0, w) == CX_OK);
        CHECK(cx_proj_col_import(b, 0, w) == CX_OK);
        CHECK(cx_proj_col_enable(a, CX_COL_GRAD) == CX_OK);
        float *g = malloc(sizeof(float) * (size_t)n);
        for (long k = 0; k < n; k++)
            g[k] = (float)k; /* the gradient column names each synapse */
        CHECK(cx_proj_col_import(a, CX_COL_GRAD, g) == CX_OK);
        long cut = variant == 0 ? n / 10 : variant == 1 ? n / 3 + 12345 : n / 7 + 99;
        kp *e = malloc(sizeof(kp) * (size_t)n);
        for (long k = 0; k < n; k++)
            e[k] = (kp){okey(w[k]), k};
        qsort(e, (size_t)n, sizeof(kp), kp_cmp);
        unsigned char *gone = calloc((size_t)n, 1);
        for (long k = 0; k < cut; k++)
            gone[e[k].pos] = 1;
        cx_size ra = 0, rb = 0;
        CHECK(cx_proj_prune_count(a, cut, 1, &ra) == CX_OK && ra == cut);
        CHECK(cx_proj_prune_count(b, cut, 2, &rb) == CX_OK && rb == cut);
        long m = n - cut;
        CHECK(cx_proj_n_synapses(a) == m && cx_proj_n_synapses(b) == m);
        float *ga = malloc(sizeof(float) * (size_t)(m + 1)), *wa = malloc(sizeof(float) * (size_t)(m + 1));
        float *wb = malloc(sizeof(float) * (size_t)(m + 1));
        CHECK(cx_proj_col_export(a, CX_COL_GRAD, ga) == CX_OK);
        CHECK(cx_proj_export(a, NULL, NULL, wa) == CX_OK);
        CHECK(cx_proj_export(b, NULL, NULL, wb) == CX_OK);
        CHECK(memcmp(wa, wb, sizeof(float) * (size_t)m) == 0);
        long q = 0, bad = 0;
        for (long k = 0; k < n; k++)
            if (!gone[k]) {
                bad += q >= m || ga[q] != (float)k || !feq(wa[q], w[k]);
                q++;
            }
        CHECK(bad == 0 && q == m);
        free(w);
        free(g);
        free(e);
        free(gone);
        free(ga);
        free(wa);
        free(wb);
        cx_proj_free(a);
        cx_proj_free(b);
    }
}

/* NORMAL init (ziggurat): moments and tail masses of 2e6 draws. */
static void test_normal(void) {
    int nq = 1000000;
    cx_proj *p = cx_proj_new(2, nq);
    cx_init in = {CX_INIT_NORMAL, 1.0f, 2.0f};
    CHECK(cx_proj_fill_random(p, nq, in, 42, 2) == CX_OK);
    long n = 2L * nq;
    float *w = malloc(sizeof(float) * (size_t)n);
    CHECK(cx_proj_export(p, NULL, NULL, w) == CX_OK);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    long in1 = 0, tail = 0, far = 0;
    for (long k = 0; k < n; k++) {
        double z = (w[k] - 1.0) / 2.0;
        m1 += z;
        m2 += z * z;
        m3 += z * z * z;
        m4 += z * z * z * z;
        in1 += fabs(z) < 1.0;
        tail += fabs(z) > ZIG_TEST_R;
        far += fabs(z) > 4.5;
    }
    m1 /= n;
    m2 /= n;
    m3 /= n;
    m4 /= n;
    /* sd of the estimates ~ sqrt(k / n): 7e-4 for the mean, 1e-3 var, 5e-3 kurt */
    CHECK(fabs(m1) < 0.005);
    CHECK(fabs(m2 - 1) < 0.01);
    CHECK(fabs(m3) < 0.02);
    CHECK(fabs(m4 - 3) < 0.05);
    CHECK(fabs((double)in1 / n - 0.682689) < 0.003);
    /* P(|z| > 3.4426) = 5.76e-4: ~1152 expected; P(|z| > 4.5) = 6.8e-6: ~14 */
    CHECK(tail > 1000 && tail < 1310);
    CHECK(far >= 2 && far < 40);
    free(w);
    cx_proj_free(p);
}

/* Larger: the parallel paths (radix sort chunks, select chunks) give the
 * same result for 1 and 2 threads, and agree with a simple count. */
static void test_threads_large(void) {
    int np = 600, nq = 3000;
    cx_init in = {CX_INIT_NORMAL, 0, 0.1f};
    cx_proj *a = cx_proj_new(np, nq), *b = cx_proj_new(np, nq);
    CHECK(cx_proj_fill_random(a, 300, in, 11, 1) == CX_OK);
    CHECK(cx_proj_fill_random(b, 300, in, 11, 1000) == CX_OK); /* capped, same result */
    {
        cx_size n0 = cx_proj_n_synapses(a);
        cx_real *w1 = malloc(sizeof(cx_real) * (size_t)n0), *w2 = malloc(sizeof(cx_real) * (size_t)n0);
        CHECK(cx_proj_export(a, NULL, NULL, w1) == CX_OK && cx_proj_export(b, NULL, NULL, w2) == CX_OK);
        CHECK(memcmp(w1, w2, sizeof(cx_real) * (size_t)n0) == 0);
        cx_proj_free(b);
        b = cx_proj_new(np, nq);
        CHECK(cx_proj_fill_random(b, 300, in, 11, 2) == CX_OK);
        CHECK(cx_proj_export(b, NULL, NULL, w2) == CX_OK);
        CHECK(memcmp(w1, w2, sizeof(cx_real) * (size_t)n0) == 0);
        free(w1);
        free(w2);
    }
    CHECK(cx_proj_col_enable(a, CX_COL_STATE1) == CX_OK);
    CHECK(cx_proj_col_enable(b, CX_COL_STATE1) == CX_OK);
    cx_size ra, rb;
    CHECK(cx_proj_prune_count(a, 18000, 1, &ra) == CX_OK);
    CHECK(cx_proj_prune_count(b, 18000, 999, &rb) == CX_OK);
    CHECK(ra == 18000 && rb == 18000);
    CHECK(cx_proj_grow(a, 150000, in, 3, 1) == CX_OK);
    CHECK(cx_proj_grow(b, 150000, in, 3, 2) == CX_OK);
    cx_index ids[3] = {5, 77, 2999};
    CHECK(cx_proj_remove_post(a, 3, ids, 1) == CX_OK);
    CHECK(cx_proj_remove_post(b, 3, ids, 2) == CX_OK);
    CHECK(cx_proj_prune_threshold(a, 0.05f, 1, &ra) == CX_OK);
    CHECK(cx_proj_prune_threshold(b, 0.05f, 2, &rb) == CX_OK);
    CHECK(ra == rb);
    /* grow to nearly full: complement sampling path with many chunks */
    cx_size fr = (cx_size)np * (nq - 3) - cx_proj_n_synapses(a);
    CHECK(cx_proj_grow(a, fr - 1000, in, 9, 1) == CX_OK);
    CHECK(cx_proj_grow(b, fr - 1000, in, 9, 2) == CX_OK);
    cx_size n = cx_proj_n_synapses(a);
    CHECK(n == cx_proj_n_synapses(b));
    cx_index *pa = malloc(sizeof(cx_index) * (size_t)n), *pb = malloc(sizeof(cx_index) * (size_t)n);
    cx_index *qa = malloc(sizeof(cx_index) * (size_t)n), *qb = malloc(sizeof(cx_index) * (size_t)n);
    cx_real *wa = malloc(sizeof(cx_real) * (size_t)n), *wb = malloc(sizeof(cx_real) * (size_t)n);
    CHECK(cx_proj_export(a, pa, qa, wa) == CX_OK);
    CHECK(cx_proj_export(b, pb, qb, wb) == CX_OK);
    CHECK(memcmp(pa, pb, sizeof(cx_index) * (size_t)n) == 0);
    CHECK(memcmp(qa, qb, sizeof(cx_index) * (size_t)n) == 0);
    CHECK(memcmp(wa, wb, sizeof(cx_real) * (size_t)n) == 0);
    /* prune_count with heavy ties (many zeros): exact count and ties in order */
    CHECK(cx_proj_col_fill(a, CX_COL_WEIGHT, 0.0f, 1) == CX_OK);
    CHECK(cx_proj_col_fill(b, CX_COL_WEIGHT, 0.0f, 2) == CX_OK);
    CHECK(cx_proj_prune_count(a, 12345, 1, &ra) == CX_OK);
    CHECK(cx_proj_prune_count(b, 12345, 2, &rb) == CX_OK);
    CHECK(ra == 12345 && rb == 12345);
    /* the first 12345 synapses in (pre, post) order went */
    cx_size m = cx_proj_n_synapses(a);
    CHECK(m == n - 12345);
    CHECK(cx_proj_export(a, pa, qa, NULL) == CX_OK);
    CHECK(cx_proj_export(b, pb, qb, NULL) == CX_OK);
    CHECK(memcmp(pa, pb, sizeof(cx_index) * (size_t)m) == 0 &&
          memcmp(qa, qb, sizeof(cx_index) * (size_t)m) == 0);
    free(pa);
    free(pb);
    free(qa);
    free(qb);
    free(wa);
    free(wb);
    cx_proj_free(a);
    cx_proj_free(b);
}

/* A large add batch (parallel-sized radix sort path) with an error at the
 * end: reported position, structure untouched. */
static void test_big_batch(void) {
    int np = 300, nq = 1000;
    cx_proj *p = cx_proj_new(np, nq);
    long n = 100000;
    cx_index *pr = malloc(sizeof(cx_index) * (size_t)n), *po = malloc(sizeof(cx_index) * (size_t)n);
    cx_real *w = malloc(sizeof(cx_real) * (size_t)n);
    /* a random permutation of n distinct slots */
    long tot = (long)np * nq;
    unsigned char *used = calloc((size_t)tot, 1);
    for (long k = 0; k < n; k++) {
        long a;
        do
            a = (long)rnd((uint64_t)tot);
        while (used[a]);
        used[a] = 1;
        pr[k] = (cx_index)(a / nq);
        po[k] = (cx_index)(a % nq);
        w[k] = (float)k;
    }
    cx_size err;
    long q = n / 2; /* duplicate entry q at position n - 1 */
    cx_index sp = pr[n - 1], sq = po[n - 1];
    pr[n - 1] = pr[q];
    po[n - 1] = po[q];
    CHECK(cx_proj_add(p, n, pr, po, w, &err) == CX_EDUP && err == n - 1);
    CHECK(cx_proj_n_synapses(p) == 0 && cx_proj_nbytes(p) == sizeof(cx_proj) + np * sizeof(cx_row));
    pr[n - 1] = sp;
    po[n - 1] = sq;
    CHECK(cx_proj_add(p, n, pr, po, w, &err) == CX_OK && err == -1);
    CHECK(cx_proj_n_synapses(p) == n);
    for (long k = 0; k < n; k += 997) {
        const cx_row *r = &p->rows[pr[k]];
        int pos = -1;
        for (int j = 0; j < r->n; j++)
            if (r->post[j] == po[k])
                pos = j;
        CHECK(pos >= 0 && r->col[0][pos] == (float)k);
    }
    CHECK(cx_proj_add(p, 1, pr + 5, po + 5, w, &err) == CX_EEXIST && err == 0);
    CHECK(cx_proj_remove(p, n, pr, po, &err) == CX_OK && cx_proj_n_synapses(p) == 0);
    free(used);
    free(pr);
    free(po);
    free(w);
    cx_proj_free(p);
}

int main(int argc, char **argv) {
    int episodes = argc > 1 ? atoi(argv[1]) : 150;
    test_invalid();
    test_uniform();
    test_normal();
    test_wide();
    test_prune_large();
    test_big_batch();
    test_threads_large();
    for (int e = 0; e < episodes && !n_fail; e++)
        episode(40);
    printf("test_storage: %ld checks, %ld failures (openmp %s, injection %s)\n", n_checks, n_fail,
#ifdef _OPENMP
           "on",
#else
           "off",
#endif
           HAVE_INJ ? "on" : "off");
    return n_fail ? 1 : 0;
}
