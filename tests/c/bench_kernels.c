/*
 * bench_kernels.c -- timing harness for the kernels, no Python.
 *
 *   bench_kernels [n_pre n_post fanout B reps kinds]
 *   defaults:      20000 20000 1000   32  7    15   (2 * 10^7 synapses)
 *   kinds: bit mask, 1 forward, 2 backward dx+grad, 4 dx only, 8 grad only
 *
 * Builds a projection through internal.h (fanout distinct uniformly random
 * sorted targets per row, uniform weights), then times forward and backward
 * with 1 and 2 threads and prints the best of `reps` runs as synaptic ops/s
 * (n_synapses * B / seconds).  Compare with scipy's CSR @ dense on the same
 * shape (tests/c/bench_scipy.py).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* fanout distinct sorted targets per row by selection sampling (Knuth S). */
static cx_proj *make_proj(cx_index n_pre, cx_index n_post, cx_index fanout, uint64_t seed) {
    cx_proj *p = xmalloc(sizeof *p);
    memset(p, 0, sizeof *p);
    p->n_pre = p->rows_cap = n_pre;
    p->n_post = n_post;
    p->rows = calloc((size_t)n_pre, sizeof(cx_row));
    p->cols = 1u | (1u << CX_COL_GRAD);
    for (cx_index i = 0; i < n_pre; i++) {
        uint64_t s = cx_rng_stream(seed, (uint64_t)i);
        cx_row *r = &p->rows[i];
        r->n = r->cap = fanout;
        r->post = xmalloc(sizeof(cx_index) * (size_t)fanout);
        r->col[CX_COL_WEIGHT] = xmalloc(sizeof(cx_real) * (size_t)fanout);
        r->col[CX_COL_GRAD] = calloc((size_t)fanout, sizeof(cx_real));
        cx_index need = fanout, k = 0;
        for (cx_index t = 0; t < n_post && need > 0; t++)
            if (cx_rng_below(&s, (uint64_t)(n_post - t)) < (uint64_t)need) {
                r->post[k] = t;
                r->col[CX_COL_WEIGHT][k] = (cx_real)(2 * cx_rng_unit(&s) - 1);
                k++;
                need--;
            }
        p->n_synapses += fanout;
    }
    return p;
}

static cx_real *rand_vec(cx_size n, uint64_t seed) {
    uint64_t s = cx_rng_stream(seed, 12345);
    cx_real *v = xmalloc(sizeof(cx_real) * (size_t)n);
    for (cx_size i = 0; i < n; i++)
        v[i] = (cx_real)(2 * cx_rng_unit(&s) - 1);
    return v;
}

int main(int argc, char **argv) {
    cx_index n_pre = argc > 1 ? atoi(argv[1]) : 20000;
    cx_index n_post = argc > 2 ? atoi(argv[2]) : 20000;
    cx_index fanout = argc > 3 ? atoi(argv[3]) : 1000;
    cx_index B = argc > 4 ? atoi(argv[4]) : 32;
    int reps = argc > 5 ? atoi(argv[5]) : 7;
    int kinds = argc > 6 ? atoi(argv[6]) : 15; /* bit mask of the rows below */
    cx_proj *p = make_proj(n_pre, n_post, fanout, 1);
    cx_real *x = rand_vec((cx_size)n_pre * B, 2), *dy = rand_vec((cx_size)n_post * B, 3);
    cx_real *y = xmalloc(sizeof(cx_real) * (size_t)n_post * B);
    cx_real *dx = xmalloc(sizeof(cx_real) * (size_t)n_pre * B);
    double ops = (double)p->n_synapses * B;
    printf("n_pre %d n_post %d fanout %d B %d: %.3g synapses, openmp %d\n", n_pre, n_post,
           fanout, B, (double)p->n_synapses, cx_openmp_enabled());
    const char *names[] = {"forward", "backward_dx_grad", "backward_dx",
                           "backward_grad"};
    for (int kind = 0; kind < 4; kind++)
        for (int nt = 1; nt <= 2 && (kinds >> kind & 1); nt++) {
            double best = 1e30, best_cpu = 1e30;
            for (int rep = 0; rep < reps; rep++) {
                memset(y, 0, sizeof(cx_real) * (size_t)n_post * B);
                memset(dx, 0, sizeof(cx_real) * (size_t)n_pre * B);
                double t = clock_s(CLOCK_MONOTONIC), c = clock_s(CLOCK_PROCESS_CPUTIME_ID);
                cx_status st = kind == 0   ? cx_proj_forward(p, B, x, y, nt)
                               : kind == 1 ? cx_proj_backward(p, B, x, dy, dx, 1, nt)
                               : kind == 2 ? cx_proj_backward(p, B, x, dy, dx, 0, nt)
                                           : cx_proj_backward(p, B, x, dy, NULL, 1, nt);
                t = clock_s(CLOCK_MONOTONIC) - t;
                c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c;
                if (st != CX_OK) {
                    fprintf(stderr, "status %d\n", st);
                    return 1;
                }
                best = t < best ? t : best;
                best_cpu = c < best_cpu ? c : best_cpu;
            }
            /* cpu: process CPU seconds (all threads); a loaded machine
             * inflates wall time far more than CPU time. */
            printf("%-20s threads %d: best %8.2f ms  %6.2f G synaptic ops/s   cpu %8.2f ms\n",
                   names[kind], nt, best * 1e3, ops / best * 1e-9, best_cpu * 1e3);
        }
    return 0;
}
