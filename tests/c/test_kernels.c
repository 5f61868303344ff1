/*
 * test_kernels.c -- C-level tests of the kernels (forward.c, backward.c,
 * population.c, status.c) with no interpreter and no storage code: the
 * projections are built directly through internal.h.
 *
 * Checks, for many shapes and batch sizes B (including ones that make
 * several tiles and row blocks):
 *   - forward / backward against a dense double-precision oracle (tolerance);
 *   - bitwise equality with a naive float loop in the documented summation
 *     order (so tiling provably changes no arithmetic);
 *   - bitwise equality for n_threads 1, 2 and 3;
 *   - error paths (EINVAL), no-ops (B == 0), and the population kernels.
 * Exit status 0 when every check passes; failures are printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int n_fail = 0, n_check = 0;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        n_check++;                                                                          \
        if (!(cond)) {                                                                      \
            n_fail++;                                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                     \
            printf(__VA_ARGS__);                                                            \
            printf("\n");                                                                   \
        }                                                                                   \
    } while (0)

/* ------------------------------------------------------------ fixtures */
static uint64_t rng_state = 88172645463325252ull;
static double unit(void) { return cx_rng_unit(&rng_state); }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        printf("out of memory in the test\n");
        exit(2);
    }
    return p;
}

/*
 * A projection with each row drawing every target with probability
 * `density` (so row lengths vary), plus special rows: row 0 empty, row 1
 * full (every target) when n_pre > 2.  grad column enabled when `grad`.
 */
static cx_proj *make_proj(cx_index n_pre, cx_index n_post, double density, int grad) {
    cx_proj *p = xmalloc(sizeof *p);
    p->n_pre = n_pre;
    p->n_post = n_post;
    p->rows_cap = n_pre;
    p->rows = calloc(n_pre ? (size_t)n_pre : 1, sizeof(cx_row));
    p->n_synapses = 0;
    p->cols = 1u | (grad ? 1u << CX_COL_GRAD : 0u);
    cx_index *tmp = xmalloc(sizeof(cx_index) * (size_t)(n_post ? n_post : 1));
    for (cx_index i = 0; i < n_pre; i++) {
        cx_index n = 0;
        double d = (i == 0 && n_pre > 2) ? 0.0 : (i == 1 && n_pre > 2) ? 1.1 : density;
        for (cx_index t = 0; t < n_post; t++)
            if (unit() < d)
                tmp[n++] = t;
        cx_row *r = &p->rows[i];
        r->n = r->cap = n;
        r->post = xmalloc(sizeof(cx_index) * (size_t)n);
        memcpy(r->post, tmp, sizeof(cx_index) * (size_t)n);
        r->col[CX_COL_WEIGHT] = xmalloc(sizeof(cx_real) * (size_t)n);
        for (cx_index k = 0; k < n; k++)
            r->col[CX_COL_WEIGHT][k] = (cx_real)(2 * unit() - 1);
        if (grad) {
            r->col[CX_COL_GRAD] = xmalloc(sizeof(cx_real) * (size_t)n);
            for (cx_index k = 0; k < n; k++)
                r->col[CX_COL_GRAD][k] = (cx_real)(unit() - 0.5);
        }
        p->n_synapses += n;
    }
    free(tmp);
    return p;
}

static void free_proj(cx_proj *p) {
    for (cx_index i = 0; i < p->n_pre; i++) {
        free(p->rows[i].post);
        for (int c = 0; c < CX_N_COLS; c++)
            free(p->rows[i].col[c]);
    }
    free(p->rows);
    free(p);
}

static cx_real *rand_vec(cx_size n) {
    cx_real *v = xmalloc(sizeof(cx_real) * (size_t)n);
    for (cx_size i = 0; i < n; i++)
        v[i] = (cx_real)(2 * unit() - 1);
    return v;
}
static cx_real *copy_vec(const cx_real *v, cx_size n) {
    cx_real *c = xmalloc(sizeof(cx_real) * (size_t)n);
    memcpy(c, v, sizeof(cx_real) * (size_t)n);
    return c;
}
static int same_bits(const cx_real *a, const cx_real *b, cx_size n) {
    return memcmp(a, b, sizeof(cx_real) * (size_t)n) == 0;
}

/* Gradient column flattened in (pre, post) order. */
static cx_real *grad_copy(const cx_proj *p) {
    cx_real *g = xmalloc(sizeof(cx_real) * (size_t)p->n_synapses);
    cx_size s = 0;
    for (cx_index i = 0; i < p->n_pre; i++)
        for (cx_index k = 0; k < p->rows[i].n; k++)
            g[s++] = p->rows[i].col[CX_COL_GRAD][k];
    return g;
}
static void grad_set(cx_proj *p, const cx_real *g) {
    cx_size s = 0;
    for (cx_index i = 0; i < p->n_pre; i++)
        for (cx_index k = 0; k < p->rows[i].n; k++)
            p->rows[i].col[CX_COL_GRAD][k] = g[s++];
}

/* The documented fixed-order dot (backward.c): B < 8 left to right;
 * else 8 lane sums, a fixed tree, the tail left to right. */
static cx_real dot_ref(const cx_real *x, const cx_real *d, cx_index B) {
    cx_index b;
    cx_real r;
    if (B < 8) {
        r = x[0] * d[0];
        for (b = 1; b < B; b++)
            r += x[b] * d[b];
        return r;
    }
    cx_real s[8];
    for (int j = 0; j < 8; j++)
        s[j] = x[j] * d[j];
    for (b = 8; b + 8 <= B; b += 8)
        for (int j = 0; j < 8; j++)
            s[j] += x[b + j] * d[b + j];
    r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (; b < B; b++)
        r += x[b] * d[b];
    return r;
}

/* |got - want| <= tol * scale + tiny, element by element. */
static int close_to(const cx_real *got, const double *want, const double *scale, cx_size n,
                    double tol, cx_size *bad) {
    for (cx_size i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * scale[i] + 1e-30)) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* ------------------------------------------------------------- forward */
static void test_forward(cx_index n_pre, cx_index n_post, double density, cx_index B) {
    cx_proj *p = make_proj(n_pre, n_post, density, 0);
    cx_size nx = (cx_size)n_pre * B, ny = (cx_size)n_post * B;
    cx_real *x = rand_vec(nx), *y0 = rand_vec(ny);

    /* Oracle in double, and a naive float loop in row order. */
    double *ref = xmalloc(sizeof(double) * (size_t)(ny ? ny : 1));
    double *mag = xmalloc(sizeof(double) * (size_t)(ny ? ny : 1));
    cx_real *naive = copy_vec(y0, ny);
    for (cx_size e = 0; e < ny; e++) {
        ref[e] = y0[e];
        mag[e] = fabs(y0[e]);
    }
    for (cx_index i = 0; i < n_pre; i++) {
        const cx_row *r = &p->rows[i];
        for (cx_index k = 0; k < r->n; k++)
            for (cx_index b = 0; b < B; b++) {
                cx_size e = (cx_size)r->post[k] * B + b;
                double v = (double)r->col[0][k] * x[(cx_size)i * B + b];
                ref[e] += v;
                mag[e] += fabs(v);
                naive[e] += r->col[0][k] * x[(cx_size)i * B + b];
            }
    }
    cx_real *y1 = copy_vec(y0, ny);
    cx_status st = cx_proj_forward(p, B, x, y1, 1);
    CHECK(st == CX_OK, "forward status %d", st);
    cx_size bad = 0;
    CHECK(close_to(y1, ref, mag, ny, 1e-5, &bad),
          "forward %dx%d d=%g B=%d: y[%lld]=%.9g oracle %.9g", n_pre, n_post, density, B,
          (long long)bad, ny ? y1[bad] : 0.0, ny ? ref[bad] : 0.0);
    CHECK(same_bits(y1, naive, ny), "forward %dx%d B=%d differs from the row-order loop",
          n_pre, n_post, B);
    for (int nt = 2; nt <= 3; nt++) {
        cx_real *yn = copy_vec(y0, ny);
        st = cx_proj_forward(p, B, x, yn, nt);
        CHECK(st == CX_OK && same_bits(y1, yn, ny),
              "forward %dx%d B=%d: %d threads differ from 1", n_pre, n_post, B, nt);
        free(yn);
    }
    free(x), free(y0), free(ref), free(mag), free(naive), free(y1);
    free_proj(p);
}

/* ------------------------------------------------------------ backward */
static void test_backward(cx_index n_pre, cx_index n_post, double density, cx_index B) {
    cx_proj *p = make_proj(n_pre, n_post, density, 1);
    cx_size nx = (cx_size)n_pre * B, ny = (cx_size)n_post * B, ns = p->n_synapses;
    cx_real *x = rand_vec(nx), *dy = rand_vec(ny), *dx0 = rand_vec(nx);
    cx_real *g0 = grad_copy(p);

    double *rdx = xmalloc(sizeof(double) * (size_t)(nx ? nx : 1));
    double *mdx = xmalloc(sizeof(double) * (size_t)(nx ? nx : 1));
    double *rg = xmalloc(sizeof(double) * (size_t)(ns ? ns : 1));
    double *mg = xmalloc(sizeof(double) * (size_t)(ns ? ns : 1));
    cx_real *ndx = copy_vec(dx0, nx), *ng = copy_vec(g0, ns);
    cx_size s = 0;
    for (cx_index i = 0; i < n_pre; i++) {
        const cx_row *r = &p->rows[i];
        for (cx_index b = 0; b < B; b++) {
            rdx[(cx_size)i * B + b] = dx0[(cx_size)i * B + b];
            mdx[(cx_size)i * B + b] = fabs(dx0[(cx_size)i * B + b]);
        }
        for (cx_index k = 0; k < r->n; k++, s++) {
            const cx_real *dyt = dy + (cx_size)r->post[k] * B, *xi = x + (cx_size)i * B;
            rg[s] = g0[s];
            mg[s] = fabs(g0[s]);
            for (cx_index b = 0; b < B; b++) {
                double v = (double)r->col[0][k] * dyt[b];
                rdx[(cx_size)i * B + b] += v;
                mdx[(cx_size)i * B + b] += fabs(v);
                ndx[(cx_size)i * B + b] += r->col[0][k] * dyt[b];
                rg[s] += (double)xi[b] * dyt[b];
                mg[s] += fabs((double)xi[b] * dyt[b]);
            }
            ng[s] += dot_ref(xi, dyt, B);
        }
    }

    /* Both outputs, 1 thread. */
    cx_real *dx1 = copy_vec(dx0, nx);
    cx_status st = cx_proj_backward(p, B, x, dy, dx1, 1, 1);
    CHECK(st == CX_OK, "backward status %d", st);
    cx_real *g1 = grad_copy(p);
    cx_size bad = 0;
    CHECK(close_to(dx1, rdx, mdx, nx, 1e-5, &bad), "backward dx %dx%d B=%d: [%lld] %.9g vs %.9g",
          n_pre, n_post, B, (long long)bad, nx ? dx1[bad] : 0.0, nx ? rdx[bad] : 0.0);
    CHECK(close_to(g1, rg, mg, ns, 1e-5, &bad), "backward grad %dx%d B=%d: [%lld] %.9g vs %.9g",
          n_pre, n_post, B, (long long)bad, ns ? g1[bad] : 0.0, ns ? rg[bad] : 0.0);
    CHECK(same_bits(dx1, ndx, nx), "backward dx %dx%d B=%d differs from the row-order loop",
          n_pre, n_post, B);
    CHECK(same_bits(g1, ng, ns), "backward grad %dx%d B=%d differs from the lane-order dot",
          n_pre, n_post, B);

    for (int nt = 2; nt <= 3; nt++) {
        grad_set(p, g0);
        cx_real *dxn = copy_vec(dx0, nx);
        st = cx_proj_backward(p, B, x, dy, dxn, 1, nt);
        cx_real *gn = grad_copy(p);
        CHECK(st == CX_OK && same_bits(dx1, dxn, nx) && same_bits(g1, gn, ns),
              "backward %dx%d B=%d: %d threads differ from 1", n_pre, n_post, B, nt);
        free(dxn), free(gn);
    }
    /* dx only (grad untouched), then grad only (x needed, dx NULL). */
    grad_set(p, g0);
    cx_real *dxo = copy_vec(dx0, nx);
    st = cx_proj_backward(p, B, NULL, dy, dxo, 0, 2);
    cx_real *gu = grad_copy(p);
    CHECK(st == CX_OK && same_bits(dxo, dx1, nx) && same_bits(gu, g0, ns),
          "backward dx-only %dx%d B=%d", n_pre, n_post, B);
    st = cx_proj_backward(p, B, x, dy, NULL, 1, 2);
    cx_real *go = grad_copy(p);
    CHECK(st == CX_OK && same_bits(go, g1, ns), "backward grad-only %dx%d B=%d", n_pre, n_post,
          B);

    free(x), free(dy), free(dx0), free(g0), free(rdx), free(mdx), free(rg), free(mg);
    free(ndx), free(ng), free(dx1), free(g1), free(dxo), free(gu), free(go);
    free_proj(p);
}

/* --------------------------------------------------------- error paths */
static void test_errors(void) {
    cx_proj *p = make_proj(5, 7, 0.5, 0);
    cx_real x[5 * 4], y[7 * 4], y0[7 * 4];
    for (int i = 0; i < 20; i++)
        x[i] = (cx_real)i;
    for (int i = 0; i < 28; i++)
        y[i] = y0[i] = (cx_real)-i;
    CHECK(cx_proj_forward(NULL, 4, x, y, 1) == CX_EINVAL, "forward NULL proj");
    CHECK(cx_proj_forward(p, -1, x, y, 1) == CX_EINVAL, "forward B < 0");
    CHECK(cx_proj_forward(p, 4, NULL, y, 1) == CX_EINVAL, "forward NULL x");
    CHECK(cx_proj_forward(p, 4, x, NULL, 1) == CX_EINVAL, "forward NULL y");
    CHECK(cx_proj_forward(p, 0, NULL, NULL, 1) == CX_OK, "forward B == 0 is a no-op");
    CHECK(cx_proj_forward(p, 0, x, y, 4) == CX_OK && same_bits(y, y0, 28), "forward B == 0");
    CHECK(cx_proj_forward(p, 4, x, y, 0) == CX_OK, "forward n_threads 0 is clamped to 1");
    CHECK(cx_proj_forward(p, 4, x, y, -3) == CX_OK, "forward n_threads < 0 is clamped to 1");

    /* grad column disabled */
    CHECK(cx_proj_backward(p, 4, x, y, NULL, 1, 1) == CX_EINVAL, "backward grad disabled");
    CHECK(cx_proj_backward(p, 4, x, y, x, 1, 1) == CX_EINVAL, "backward grad disabled + dx");
    CHECK(cx_proj_backward(NULL, 4, x, y, x, 0, 1) == CX_EINVAL, "backward NULL proj");
    CHECK(cx_proj_backward(p, -2, x, y, x, 0, 1) == CX_EINVAL, "backward B < 0");
    CHECK(cx_proj_backward(p, 4, x, NULL, x, 0, 1) == CX_EINVAL, "backward NULL dy");
    CHECK(cx_proj_backward(p, 4, NULL, NULL, NULL, 0, 1) == CX_OK, "backward nothing to do");
    CHECK(cx_proj_backward(p, 0, NULL, NULL, NULL, 0, 1) == CX_OK, "backward B == 0");
    free_proj(p);

    p = make_proj(5, 7, 0.5, 1);
    CHECK(cx_proj_backward(p, 4, NULL, y, NULL, 1, 1) == CX_EINVAL, "backward grad, NULL x");
    CHECK(cx_proj_backward(p, 4, x, y, NULL, 1, 1) == CX_OK, "backward grad only");
    free_proj(p);

    /* Empty projections: no synapses, no work, NULL arrays accepted. */
    p = make_proj(0, 0, 0.5, 1);
    CHECK(cx_proj_forward(p, 8, NULL, NULL, 2) == CX_OK, "forward 0x0");
    CHECK(cx_proj_backward(p, 8, NULL, NULL, NULL, 1, 2) == CX_OK, "backward 0x0");
    free_proj(p);
    p = make_proj(4, 0, 0.5, 0);
    CHECK(cx_proj_forward(p, 8, x, NULL, 2) == CX_OK, "forward 4x0");
    free_proj(p);

    /* Population kernels. */
    cx_real z[6] = {1, 2, 3, 4, 5, 6}, b[3] = {0, 0, 0};
    CHECK(cx_pop_forward(-1, 2, z, NULL, CX_RELU, 1) == CX_EINVAL, "pop n < 0");
    CHECK(cx_pop_forward(3, -1, z, NULL, CX_RELU, 1) == CX_EINVAL, "pop B < 0");
    CHECK(cx_pop_forward(3, 2, z, NULL, (cx_activation)7, 1) == CX_EINVAL, "pop bad act");
    CHECK(cx_pop_forward(3, 2, NULL, NULL, CX_RELU, 1) == CX_EINVAL, "pop NULL z");
    CHECK(cx_pop_forward(3, 0, NULL, NULL, CX_RELU, 1) == CX_OK, "pop B == 0");
    CHECK(cx_pop_forward(0, 5, NULL, NULL, CX_TANH, 1) == CX_OK, "pop n == 0");
    CHECK(cx_pop_backward(3, 2, z, z, b, (cx_activation)-1, 1) == CX_EINVAL, "pop bwd bad act");
    CHECK(cx_pop_backward(3, 2, NULL, z, b, CX_TANH, 1) == CX_EINVAL, "pop bwd NULL a");
    CHECK(cx_pop_backward(3, 2, z, NULL, b, CX_TANH, 1) == CX_EINVAL, "pop bwd NULL d");
    CHECK(cx_pop_backward(3, 2, NULL, z, b, CX_LINEAR, 1) == CX_OK, "pop bwd linear, NULL a");
    CHECK(b[0] == 3 && b[1] == 7 && b[2] == 11, "pop bwd linear bias_grad %g %g %g", b[0], b[1],
          b[2]);
    CHECK(cx_pop_backward(3, 0, NULL, NULL, b, CX_TANH, 1) == CX_OK && b[0] == 3,
          "pop bwd B == 0 leaves bias_grad");
    CHECK(cx_pop_backward(-3, 1, z, z, b, CX_TANH, 1) == CX_EINVAL, "pop bwd n < 0");
}

/* --------------------------------------------------------- populations */
static double act_ref(double v, cx_activation act) {
    switch (act) {
    case CX_RELU:
        return v > 0 ? v : 0;
    case CX_TANH:
        return tanh(v);
    case CX_SIGMOID:
        return 1 / (1 + exp(-v));
    default:
        return v;
    }
}
static double dact_ref(double a, cx_activation act) {
    switch (act) {
    case CX_RELU:
        return a > 0;
    case CX_TANH:
        return 1 - a * a;
    case CX_SIGMOID:
        return a * (1 - a);
    default:
        return 1;
    }
}

static void test_population(cx_index n, cx_index B, cx_activation act, int with_bias) {
    cx_size ne = (cx_size)n * B;
    cx_real *z = rand_vec(ne), *bias = rand_vec(n), *d = rand_vec(ne), *bg0 = rand_vec(n);
    for (cx_size e = 0; e < ne; e++)
        z[e] *= 6; /* cover the tails of tanh / sigmoid */
    const cx_real *bp = with_bias ? bias : NULL;
    cx_real *a1 = copy_vec(z, ne), *a2 = copy_vec(z, ne);
    CHECK(cx_pop_forward(n, B, a1, bp, act, 1) == CX_OK, "pop forward status");
    CHECK(cx_pop_forward(n, B, a2, bp, act, 2) == CX_OK, "pop forward status (2)");
    CHECK(same_bits(a1, a2, ne), "pop forward act %d n=%d B=%d: 2 threads differ", act, n, B);
    int ok = 1;
    for (cx_index i = 0; i < n && ok; i++)
        for (cx_index b = 0; b < B && ok; b++) {
            double want = act_ref((double)z[(cx_size)i * B + b] + (bp ? bp[i] : 0), act);
            double got = a1[(cx_size)i * B + b];
            if (!(fabs(got - want) <= 2e-6 * (1 + fabs(want)))) {
                ok = 0;
                printf("  a[%d,%d] = %.9g, want %.9g\n", i, b, got, want);
            }
        }
    CHECK(ok, "pop forward act %d n=%d B=%d bias=%d vs oracle", act, n, B, with_bias);

    cx_real *d1 = copy_vec(d, ne), *d2 = copy_vec(d, ne);
    cx_real *bg1 = copy_vec(bg0, n), *bg2 = copy_vec(bg0, n);
    CHECK(cx_pop_backward(n, B, a1, d1, bg1, act, 1) == CX_OK, "pop backward status");
    CHECK(cx_pop_backward(n, B, a1, d2, bg2, act, 2) == CX_OK, "pop backward status (2)");
    CHECK(same_bits(d1, d2, ne) && same_bits(bg1, bg2, n),
          "pop backward act %d n=%d B=%d: 2 threads differ", act, n, B);
    ok = 1;
    for (cx_index i = 0; i < n && ok; i++) {
        double sum = bg0[i], mag = fabs(bg0[i]);
        for (cx_index b = 0; b < B && ok; b++) {
            cx_size e = (cx_size)i * B + b;
            double want = d[e] * dact_ref(a1[e], act);
            sum += want;
            mag += fabs(want);
            if (!(fabs(d1[e] - want) <= 1e-6 * (1 + fabs(want)))) {
                ok = 0;
                printf("  d[%d,%d] = %.9g, want %.9g\n", i, b, d1[e], want);
            }
        }
        if (ok && !(fabs(bg1[i] - sum) <= 1e-6 * (1 + mag))) {
            ok = 0;
            printf("  bias_grad[%d] = %.9g, want %.9g\n", i, bg1[i], sum);
        }
    }
    CHECK(ok, "pop backward act %d n=%d B=%d vs oracle", act, n, B);
    /* bias_grad NULL: same d. */
    cx_real *d3 = copy_vec(d, ne);
    CHECK(cx_pop_backward(n, B, a1, d3, NULL, act, 2) == CX_OK && same_bits(d1, d3, ne),
          "pop backward act %d without bias_grad", act);
    free(z), free(bias), free(d), free(bg0), free(a1), free(a2), free(d1), free(d2);
    free(bg1), free(bg2), free(d3);
}

static void test_activation_edges(void) {
    cx_real z[8] = {-1e30f, -100.0f, -0.0f, 0.0f, 100.0f, 1e30f, NAN, INFINITY};
    cx_real s[8], t[8], r[8];
    memcpy(s, z, sizeof z), memcpy(t, z, sizeof z), memcpy(r, z, sizeof z);
    CHECK(cx_pop_forward(1, 8, s, NULL, CX_SIGMOID, 1) == CX_OK, "sigmoid edges");
    CHECK(s[0] == 0 && s[1] >= 0 && s[1] < 1e-40 && s[2] == 0.5f && s[3] == 0.5f &&
              s[4] == 1 && s[5] == 1 && isnan(s[6]) && s[7] == 1,
          "sigmoid edges: %g %g %g %g %g %g %g %g", s[0], s[1], s[2], s[3], s[4], s[5], s[6],
          s[7]);
    CHECK(cx_pop_forward(1, 8, t, NULL, CX_TANH, 1) == CX_OK, "tanh edges");
    CHECK(t[0] == -1 && t[1] == -1 && t[4] == 1 && t[5] == 1 && isnan(t[6]) && t[7] == 1,
          "tanh edges");
    CHECK(cx_pop_forward(1, 8, r, NULL, CX_RELU, 1) == CX_OK, "relu edges");
    CHECK(r[0] == 0 && r[1] == 0 && r[3] == 0 && r[4] == 100 && isnan(r[6]) && isinf(r[7]),
          "relu edges (NaN propagates)");
}

static void test_status(void) {
    for (int c = 0; c >= -7; c--) {
        const char *m = cx_strerror((cx_status)c);
        CHECK(m != NULL && strlen(m) > 0 && strcmp(m, cx_strerror((cx_status)-99)) != 0,
              "strerror(%d)", c);
    }
    CHECK(cx_strerror((cx_status)-99) != NULL && cx_strerror((cx_status)12345) != NULL,
          "strerror unknown");
#ifdef _OPENMP
    CHECK(cx_openmp_enabled() == 1, "openmp_enabled");
#else
    CHECK(cx_openmp_enabled() == 0, "openmp_enabled");
#endif
}

int main(void) {
    test_status();
    test_errors();
    test_activation_edges();

    /* Small shapes, every B form (specialised 1/8/16/32/64 and generic). */
    const cx_index Bs[] = {1, 2, 3, 7, 8, 9, 16, 17, 24, 32, 33, 64, 100};
    for (size_t i = 0; i < sizeof Bs / sizeof Bs[0]; i++) {
        test_forward(1, 1, 1.0, Bs[i]);
        test_forward(13, 29, 0.3, Bs[i]);
        test_backward(1, 1, 1.0, Bs[i]);
        test_backward(13, 29, 0.3, Bs[i]);
        test_backward(40, 17, 0.9, Bs[i]);
    }
    /* Several tiles and row blocks (cx_blocking gives T = 1024, R = 1601
     * for the first; T = R = 327 at B = 100), with enough work for threads. */
    test_forward(2500, 5000, 0.01, 32);
    test_backward(2500, 5000, 0.01, 32);
    test_forward(700, 3000, 0.05, 100);
    test_backward(700, 3000, 0.05, 100);
    test_forward(4500, 70000, 0.0005, 1);
    test_backward(4500, 70000, 0.0005, 1);
    test_forward(300, 9000, 0.02, 17);
    test_backward(300, 9000, 0.02, 17);
    test_forward(5, 100000, 0.2, 8);
    test_backward(5, 100000, 0.2, 8);

    const cx_activation acts[] = {CX_LINEAR, CX_RELU, CX_TANH, CX_SIGMOID};
    for (int a = 0; a < 4; a++) {
        test_population(7, 5, acts[a], 1);
        test_population(7, 5, acts[a], 0);
        test_population(3000, 33, acts[a], 1); /* > serial threshold */
        test_population(100, 1000, acts[a], 0);
    }
    printf("%d checks, %d failed\n", n_check, n_fail);
    return n_fail != 0;
}
