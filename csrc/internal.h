/*
 * internal.h -- struct layouts and helpers shared by the C files in csrc only.
 * Not part of the public API; never include it from Cython.
 */
#ifndef CONNECTOME_INTERNAL_H
#define CONNECTOME_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectome.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/*
 * One presynaptic neuron's outgoing synapses.
 *   post[0..n)    strictly increasing target ids (so never a duplicate)
 *   col[c][0..n)  column c (weight, gradient, optimiser state) when
 *                 column c is enabled on the projection, else NULL
 * Every array has room for cap entries.  cap == 0 may mean NULL pointers.
 */
typedef struct {
    cx_index *post;
    cx_real *col[CX_N_COLS];
    cx_index n, cap;
} cx_row;

struct cx_proj {
    cx_index n_pre, n_post;
    cx_index rows_cap; /* directory capacity; grows by doubling, so adding
                          neurons moves row headers, never row data */
    cx_row *rows;      /* [rows_cap], the first n_pre in use */
    cx_size n_synapses;
    unsigned cols; /* bit c set when column c is enabled; bit 0 always */
};

#define CX_COL_ON(p, c) ((((p)->cols) >> (c)) & 1u)

/* ------------------------------------------------------- row helpers (proj.c) */
/* Ensure r->cap >= need in post and every enabled column of p.  Grows to
 * max(need, cap + cap/8 + 4): geometric, so repeated single inserts stay
 * amortised O(1), with at most ~12.5% slack after a batch.  On ENOMEM the
 * row's contents are unchanged (some arrays may already be larger). */
cx_status cx_row_reserve(const cx_proj *p, cx_row *r, cx_index need);
void cx_row_free(cx_row *r);
/* Ensure the directory holds n_rows rows (new headers zeroed). */
cx_status cx_proj_reserve_rows(cx_proj *p, cx_index n_rows);

/* ---------------------------------------------------------------- threads */
static inline int cx_clamp_threads(int n_threads) { return n_threads < 1 ? 1 : n_threads; }

/* ------------------------------------------------------------------ random */
/* splitmix64: seeds streams and mixes (seed, stream) pairs. */
static inline uint64_t cx_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* The state of an independent stream for (seed, stream); never zero. */
static inline uint64_t cx_rng_stream(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    uint64_t s = cx_splitmix64(&x);
    s ^= cx_splitmix64(&x);
    return s ? s : 0x9E3779B97F4A7C15ull;
}
/* xorshift64*: small, fast, good enough for sampling synapses. */
static inline uint64_t cx_rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
/* Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift, unbiased). */
static inline uint64_t cx_rng_below(uint64_t *s, uint64_t n) {
    uint64_t x = cx_rng_next(s);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            x = cx_rng_next(s);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}
/* Uniform double in [0, 1) with 53 random bits. */
static inline double cx_rng_unit(uint64_t *s) { return (double)(cx_rng_next(s) >> 11) * 0x1.0p-53; }

/*
 * Standard normal draws by the ziggurat method (Marsaglia & Tsang 2000,
 * 128 layers), with the layer index and the value taken from different
 * bits of one 64-bit draw (Doornik 2005's fix).  ~97% of draws cost one
 * random number, one compare and one multiply; Box-Muller (one log, sqrt
 * and cos per weight) dominated building 10^8 synapses.
 * The tables are built per call by cx_zig_init (random.c; ~130 exp/log)
 * and passed down: no global state, thread-safe.  Used by fill_random,
 * grow, add_neurons and rewire.
 */
#define CX_ZIG_R 3.442619855899
typedef struct {
    double k[128], w[128], f[128];
} cx_zig;

void cx_zig_init(cx_zig *z);

static inline double cx_zig_normal(const cx_zig *z, uint64_t *s) {
    for (;;) {
        uint64_t u = cx_rng_next(s);
        int iz = (int)(u & 127);
        int32_t hz = (int32_t)(uint32_t)(u >> 32);
        double x = (double)hz * z->w[iz];
        if (fabs((double)hz) < z->k[iz])
            return x; /* inside the layer's rectangle */
        if (iz == 0) { /* the tail beyond CX_ZIG_R */
            double xt, y;
            do {
                xt = -log(1.0 - cx_rng_unit(s)) / CX_ZIG_R;
                y = -log(1.0 - cx_rng_unit(s));
            } while (y + y < xt * xt);
            return hz > 0 ? CX_ZIG_R + xt : -CX_ZIG_R - xt;
        }
        if (z->f[iz] + cx_rng_unit(s) * (z->f[iz - 1] - z->f[iz]) < exp(-0.5 * x * x))
            return x; /* under the curve in the wedge */
    }
}

static inline int cx_init_valid(cx_init init) {
    return (init.kind == CX_INIT_CONST || init.kind == CX_INIT_UNIFORM ||
            init.kind == CX_INIT_NORMAL) &&
           isfinite(init.a) && isfinite(init.b);
}

#endif /* CONNECTOME_INTERNAL_H */
