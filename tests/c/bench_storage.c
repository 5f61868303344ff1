/*
 * bench_storage.c -- timings of the storage core (owner: storage).
 *
 *   gcc -std=c11 -O3 -fopenmp -Icsrc csrc/[a-z]*.c tests/c/bench_storage.c -lm \
 *       -o /tmp/bench_storage && OMP_WAIT_POLICY=passive /tmp/bench_storage [big]
 *
 * Reports, per thread count, the best of several repetitions of each
 * operation as wall time and as process CPU time (summed over threads).
 * On a shared machine the CPU figure is the steadier one: for a parallel
 * region, CPU / n_threads approximates the wall time of an idle machine.
 * The same run times cx_proj_forward at batch 32 on the same projection
 * (the acceptance figure: prune 10% + grow 10% in less time than one
 * forward pass, same thread count).
 * With a non-zero argument it also builds 10^8 synapses
 * (10000 x 10000, fanout 10000) with uniform and normal weights.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectome.h"

typedef struct {
    double wall, cpu;
} stamp;

static stamp now(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    return (stamp){a.tv_sec + a.tv_nsec * 1e-9, b.tv_sec + b.tv_nsec * 1e-9};
}

/* best-of accumulator, milliseconds */
typedef struct {
    double wall, cpu;
} best;
static void take(best *b, stamp s, stamp e) {
    double w = (e.wall - s.wall) * 1e3, c = (e.cpu - s.cpu) * 1e3;
    if (w < b->wall)
        b->wall = w;
    if (c < b->cpu)
        b->cpu = c;
}
static void show(const char *name, best b) {
    printf("    %-28s wall %7.1f ms   cpu %7.1f ms\n", name, b.wall, b.cpu);
}

static void bench(int np, int nq, int fan, int nt, int reps) {
    cx_init in = {CX_INIT_UNIFORM, -0.05f, 0.05f};
    cx_proj *p = cx_proj_new(np, nq);
    stamp a = now();
    if (!p || cx_proj_fill_random(p, fan, in, 1, nt) != CX_OK) {
        printf("fill_random failed\n");
        return;
    }
    stamp b = now();
    cx_size ns = cx_proj_n_synapses(p);
    printf("%d x %d, fanout %d (%.2e synapses), %d thread(s)\n", np, nq, fan, (double)ns, nt);
    printf("    fill_random                  wall %7.1f ms   cpu %7.1f ms   %.3f B/synapse\n",
           (b.wall - a.wall) * 1e3, (b.cpu - a.cpu) * 1e3, (double)cx_proj_nbytes(p) / (double)ns);
    best bp = {1e30, 1e30}, bg = {1e30, 1e30}, bpg = {1e30, 1e30}, bt = {1e30, 1e30};
    best br = {1e30, 1e30}, bs = {1e30, 1e30}, bf = {1e30, 1e30}, bw = {1e30, 1e30};
    const cx_index B = 32;
    cx_real *x = malloc(sizeof(cx_real) * (size_t)np * B);
    cx_real *y = malloc(sizeof(cx_real) * (size_t)nq * B);
    for (size_t k = 0; k < (size_t)np * B; k++)
        x[k] = (cx_real)((k * 2654435761u) % 1000) * 1e-3f;
    for (int r = 0; r < reps; r++) {
        cx_size k = ns / 10, got = 0;
        stamp t0 = now();
        cx_status s1 = cx_proj_prune_count(p, k, nt, &got);
        stamp t1 = now();
        cx_status s2 = cx_proj_grow(p, k, in, 100 + (uint64_t)r, nt);
        stamp t2 = now();
        if (s1 != CX_OK || s2 != CX_OK || got != k)
            printf("error %d %d\n", s1, s2);
        take(&bp, t0, t1);
        take(&bg, t1, t2);
        take(&bpg, t0, t2);
        memset(y, 0, sizeof(cx_real) * (size_t)nq * B);
        stamp f0 = now();
        cx_proj_forward(p, B, x, y, nt);
        stamp f1 = now();
        take(&bf, f0, f1);
        cx_size ns0 = cx_proj_n_synapses(p);
        stamp w0 = now();
        cx_status s3 = cx_proj_rewire(p, k, in, 500 + (uint64_t)r, nt);
        stamp w1 = now();
        if (s3 != CX_OK || cx_proj_n_synapses(p) != ns0)
            printf("rewire error %d\n", s3);
        take(&bw, w0, w1);
        cx_proj_prune_threshold(p, 0.0005f, nt, &got);
        stamp t3 = now();
        cx_proj_grow(p, got, in, 1000 + (uint64_t)r, nt);
        take(&bt, t2, t3);
        cx_index *pre = malloc(sizeof(cx_index) * 100000), *post = malloc(sizeof(cx_index) * 100000);
        stamp t4 = now();
        cx_proj_sample_absent(p, 100000, (uint64_t)r, pre, post);
        stamp t5 = now();
        take(&bs, t4, t5);
        free(pre);
        free(post);
        cx_index idx[2] = {3, 1000};
        stamp t6 = now();
        cx_proj_remove_post(p, 2, idx, nt);
        stamp t7 = now();
        take(&br, t6, t7);
        cx_proj_add_post(p, 2, (cx_index)((int64_t)fan * np / nq), in, (uint64_t)r);
    }
    printf("  best of %d:\n", reps);
    show("prune_count 10%", bp);
    show("grow 10%", bg);
    show("prune_count + grow", bpg);
    show("forward batch 32", bf);
    printf("    ratio (prune+grow)/forward: wall %.2f  cpu %.2f\n", bpg.wall / bf.wall, bpg.cpu / bf.cpu);
    show("rewire 10% (fused)", bw);
    printf("    ratio rewire/forward: wall %.2f  cpu %.2f\n", bw.wall / bf.wall, bw.cpu / bf.cpu);
    show("prune_threshold (~1%)", bt);
    show("sample_absent 1e5", bs);
    show("remove_post(2 ids)", br);
    printf("    after churn: %.3f B/synapse\n", (double)cx_proj_nbytes(p) / (double)cx_proj_n_synapses(p));
    free(x);
    free(y);
    cx_proj_free(p);
}

static void build_big(int nt) {
    for (int kind = CX_INIT_UNIFORM; kind <= CX_INIT_NORMAL; kind++) {
        cx_init in = {(cx_init_kind)kind, 0.0f, 0.01f};
        cx_proj *p = cx_proj_new(10000, 10000);
        stamp a = now();
        cx_status st = cx_proj_fill_random(p, 10000, in, 1, nt);
        stamp b = now();
        printf("10000 x 10000 fanout 10000 (1e8 synapses), %s, %d thread(s): fill_random wall "
               "%.2f s, cpu %.2f s, %.3f B/synapse (status %d)\n",
               kind == CX_INIT_NORMAL ? "normal" : "uniform", nt, b.wall - a.wall, b.cpu - a.cpu,
               (double)cx_proj_nbytes(p) / 1e8, st);
        cx_proj_free(p);
    }
}

int main(int argc, char **argv) {
    int big = argc > 1 && atoi(argv[1]);
    for (int nt = 1; nt <= 2; nt++)
        bench(20000, 20000, 1000, nt, 10);
    if (big)
        for (int nt = 1; nt <= 2; nt++)
            build_big(nt);
    return 0;
}
