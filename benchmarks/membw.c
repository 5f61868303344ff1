/*
 * membw.c -- what the memory of this machine allows for the rewire's two passes.
 *
 * The layout of bench_fanout's projection (20,000 rows of 1,000 synapses,
 * a 4 KiB index array and a 4 KiB weight array per row) and three passes:
 *   1. a read of 80 MB of weights laid out contiguously;
 *   2. the same read over per-row weight arrays, allocated row by row as
 *      the core does (index and weight arrays alternate in the heap), or
 *      column by column with COLMAJOR=1 in the environment;
 *   3. a one-place shift of every row's two arrays (memmove): the bytes a
 *      merge that rewrites every row must move, without its decisions.
 * Best of 9 per pass, three rounds.  Floors for the cut (a read of every
 * |w|) and the merge (a rewrite of every row) of cx_proj_rewire.
 *
 *   gcc -O3 -march=native -fopenmp benchmarks/membw.c -o /tmp/membw
 *   OMP_NUM_THREADS=2 /tmp/membw; COLMAJOR=1 OMP_NUM_THREADS=2 /tmp/membw
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROWS 20000
#define FANOUT 1000
#define CAP 1024

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *w[ROWS];
static int *ix[ROWS];

int main(void) {
    float *flat = malloc((size_t)ROWS * FANOUT * sizeof(float));
    if (!flat)
        return 1;
    for (size_t k = 0; k < (size_t)ROWS * FANOUT; k++)
        flat[k] = (float)(k % 1000) * 1e-3f;
    int colmajor = getenv("COLMAJOR") != NULL;
    for (int i = 0; i < ROWS; i++) { /* the allocation order decides the heap layout */
        ix[i] = malloc(CAP * sizeof(int));
        if (!colmajor)
            w[i] = malloc(CAP * sizeof(float));
    }
    for (int i = 0; colmajor && i < ROWS; i++)
        w[i] = malloc(CAP * sizeof(float));
    for (int i = 0; i < ROWS; i++) {
        if (!ix[i] || !w[i])
            return 1;
        for (int j = 0; j < FANOUT; j++) {
            ix[i][j] = j;
            w[i][j] = (float)j * 1e-3f;
        }
    }
    const double mb = (double)ROWS * FANOUT * sizeof(float) / 1e6;
    for (int round = 0; round < 3; round++) {
        double best[3] = {1e9, 1e9, 1e9};
        long sink = 0;
        for (int rep = 0; rep < 9; rep++) {
            double t0 = now();
            long a = 0;
#pragma omp parallel for reduction(+ : a) schedule(static)
            for (long k = 0; k < (long)ROWS * FANOUT; k++)
                a += flat[k] < 0.1f;
            double t1 = now();
            long b = 0;
#pragma omp parallel for reduction(+ : b) schedule(static)
            for (int i = 0; i < ROWS; i++) {
                int c = 0;
                for (int j = 0; j < FANOUT; j++)
                    c += w[i][j] < 0.1f;
                b += c;
            }
            double t2 = now();
#pragma omp parallel for schedule(static)
            for (int i = 0; i < ROWS; i++) {
                memmove(w[i] + 1, w[i], (FANOUT - 1) * sizeof(float));
                memmove(ix[i] + 1, ix[i], (FANOUT - 1) * sizeof(int));
            }
            double t3 = now();
            sink += a + b;
            double d[3] = {t1 - t0, t2 - t1, t3 - t2};
            for (int k = 0; k < 3; k++)
                if (d[k] < best[k])
                    best[k] = d[k];
        }
        printf("%d threads, %s: contiguous read of %.0f MB %.2f ms (%.1f GB/s); per-row weight "
               "read %.2f ms (%.1f GB/s); per-row shift of both arrays %.2f ms (%.1f GB/s read + "
               "write)%s\n",
               omp_get_max_threads(), colmajor ? "column-major rows" : "row-major rows", mb,
               best[0] * 1e3, mb / best[0] / 1e3, best[1] * 1e3, mb / best[1] / 1e3, best[2] * 1e3,
               4 * mb / best[2] / 1e3, sink < 0 ? "!" : "");
    }
    return 0;
}
