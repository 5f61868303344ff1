/*
 * rewire.c -- SET-style rewiring in one pass: cx_proj_rewire.
 *
 * Remove the n smallest-|w| synapses (prune_count's choice) and add n new
 * ones at uniformly random slots that were absent before the call.
 *
 * Determinism: the per-row counts of new synapses come from a fixed binary
 * tree over the rows (one stream per tree node), the new targets and
 * weights of row i from the stream (seed, i), and the tie quota of the cut
 * is decided in global (pre, post) order; nothing depends on n_threads.
 */
#include "storage.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h> /* the vector paths, chosen at run time */
#endif

/* Below this many synapses a rewire runs on one thread: a team costs more
 * than it saves (1.3e5 synapses: 0.81 ms on one thread, 1.02 ms on two,
 * best of 60), and on a busy machine each of its parallel regions may
 * wait for a scheduler slice (medians of 40 ms).  Results never depend
 * on it; the C tests set it to 0 so that their small projections still
 * run every thread count. */
#ifndef RW_SERIAL_SYNAPSES
#define RW_SERIAL_SYNAPSES ((cx_size)1 << 18)
#endif

/* seed domains (see storage.h): the row split and the per-row draws */
#define CX_DOM_RWSPLIT 0x510E527FADE682D1ull
#define CX_DOM_RWROW 0x9B05688C2B3E6C1Full
#define CX_DOM_RWW 0x1F83D9ABFB41BD6Bull

/* ====================================================== hypergeometric */

/* log(k!) for k < 30 (math.lgamma, within an ulp or two). */
static const double log_fact_small[30] = {
    0.0, 0.0, 0.693147180559945, 1.7917594692280554, 3.178053830347945, 4.787491742782047,
    6.579251212010102, 8.525161361065415, 10.604602902745249, 12.801827480081467,
    15.104412573075514, 17.502307845873887, 19.987214495661885, 22.55216385312342,
    25.191221182738683, 27.89927138384089, 30.671860106080672, 33.50507345013689,
    36.39544520803305, 39.339884187199495, 42.335616460753485, 45.38013889847691,
    48.47118135183522, 51.60667556776438, 54.78472939811232, 58.00360522298052, 61.26170176100201,
    64.55753862700634, 67.88974313718153, 71.257038967168};

/*
 * log(x!) for integer x >= 0: the table below 30, else Stirling's series
 * with three correction terms (absolute error < 1e-13), one log.  lgamma
 * is avoided: it may write the global signgam, a data race under OpenMP.
 */
static double log_fact(double x) {
    if (x < 30.0)
        return log_fact_small[(int)x];
    double r = 1.0 / x, r2 = r * r;
    return (x + 0.5) * log(x) - x + 0.91893853320467274178 +
           r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 / 1260.0));
}

/*
 * X ~ Hypergeometric: m draws without replacement from a population of N
 * holding K marked items; X = marked items drawn.  Inversion from the
 * mode ("chop-down"): the probability of the mode comes from log_fact in
 * double precision, then the search moves outward one value at a time,
 * alternating up and down, each probability from its neighbour's by the
 * exact ratio.  Expected steps ~ the standard deviation.  If rounding
 * leaves mass unassigned after the whole support (a ~1e-12 event), the
 * mode is returned.
 */
static cx_size hyper_draw(uint64_t *s, cx_size N, cx_size K, cx_size m) {
    cx_size lo = m - (N - K) > 0 ? m - (N - K) : 0;
    cx_size hi = K < m ? K : m;
    if (lo >= hi)
        return lo;
    double dN = (double)N, dK = (double)K, dm = (double)m;
    cx_size mode = (cx_size)floor((dm + 1.0) * (dK + 1.0) / (dN + 2.0));
    if (mode < lo)
        mode = lo;
    if (mode > hi)
        mode = hi;
    double k = (double)mode;
    double lp = log_fact(dK) - log_fact(k) - log_fact(dK - k) + log_fact(dN - dK) -
                log_fact(dm - k) - log_fact(dN - dK - dm + k) - log_fact(dN) + log_fact(dm) +
                log_fact(dN - dm);
    double pm = exp(lp);
    double u = cx_rng_unit(s) - pm;
    if (u < 0)
        return mode;
    double pu = pm, pd = pm;
    cx_size up = mode, dn = mode;
    while (up < hi || dn > lo) {
        if (up < hi) { /* P(x+1) / P(x) */
            double x = (double)up;
            pu *= (dK - x) * (dm - x) / ((x + 1.0) * (dN - dK - dm + x + 1.0));
            up++;
            u -= pu;
            if (u < 0)
                return up;
        }
        if (dn > lo) { /* P(x-1) / P(x) */
            double x = (double)dn;
            pd *= x * (dN - dK - dm + x) / ((dK - x + 1.0) * (dm - x + 1.0));
            dn--;
            u -= pd;
            if (u < 0)
                return dn;
        }
    }
    return mode;
}

/* ============================================================ row split */

/*
 * cnt[lo, hi) = an exact multivariate hypergeometric split of m over the
 * rows' free-slot counts (prefix sums fp): rows [lo, mid) get
 * X ~ Hypergeometric(fp[hi] - fp[lo], fp[mid] - fp[lo], m), the rest
 * m - X, recursively (mid = (lo + hi) / 2, so the tree depends on n_pre
 * only).  Node `node` (heap numbering, root 1) draws from its own stream.
 * Subtrees at depth `cut` are not descended but appended to tasks[*nk]
 * (lo, hi, m, node) for a parallel second round (cut < 0: no limit).
 */
typedef struct {
    cx_index lo, hi;
    cx_size m;
    uint64_t node;
} split_task;

static void split_rows(const cx_size *fp, cx_index lo, cx_index hi, cx_size m, uint64_t node,
                       uint64_t seed, int cut, cx_index *cnt, split_task *tasks, int *nk) {
    if (cut == 0) {
        tasks[(*nk)++] = (split_task){lo, hi, m, node};
        return;
    }
    if (hi - lo == 1) {
        cnt[lo] = (cx_index)m;
        return;
    }
    cx_index mid = lo + (hi - lo) / 2;
    cx_size tot = fp[hi] - fp[lo], left = fp[mid] - fp[lo], ml;
    if (m == 0)
        ml = 0;
    else if (m == tot)
        ml = left;
    else {
        uint64_t s = cx_rng_stream(seed ^ CX_DOM_RWSPLIT, node);
        ml = hyper_draw(&s, tot, left, m);
    }
    split_rows(fp, lo, mid, ml, 2 * node, seed, cut - 1, cnt, tasks, nk);
    split_rows(fp, mid, hi, m - ml, 2 * node + 1, seed, cut - 1, cnt, tasks, nk);
}

/* cx_split_rows (storage.h): 6 levels of the tree serially, then the
 * <= 64 subtrees below in parallel. */
void cx_split_rows(const cx_size *fp, cx_index n_pre, cx_size n, uint64_t seed, int nt,
                   cx_index *cnt) {
    if (n_pre <= 0)
        return;
    split_task tasks[64];
    int nk = 0;
    split_rows(fp, 0, n_pre, n, 1, seed, 6, cnt, tasks, &nk);
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
    for (int q = 0; q < nk; q++)
        split_rows(fp, tasks[q].lo, tasks[q].hi, tasks[q].m, tasks[q].node, seed, -1, cnt, NULL,
                   NULL);
}

/* cx_split_iter_init (storage.h): the root on the stack. */
void cx_split_iter_init(cx_split_iter *it, const cx_size *fp, cx_index n_pre, cx_size n,
                        uint64_t seed) {
    it->fp = fp;
    it->seed = seed;
    it->sp = 0;
    if (n_pre > 0)
        it->st[it->sp++] = (cx_split_node){0, n_pre, n, 1};
}

/*
 * cx_split_next (storage.h): split_rows' depth-first walk with an explicit
 * stack, stopping at each leaf.  A node is drawn exactly as split_rows
 * draws it (same stream, same N, K, m); nodes that end before row i are
 * dropped undrawn (their draws decide nothing for rows >= i).
 */
cx_index cx_split_next(cx_split_iter *it, cx_index i) {
    const cx_size *fp = it->fp;
    while (it->sp > 0) {
        cx_split_node t = it->st[--it->sp];
        if (t.hi <= i)
            continue;
        if (t.hi - t.lo == 1)
            return (cx_index)t.m;
        cx_index mid = t.lo + (t.hi - t.lo) / 2;
        cx_size tot = fp[t.hi] - fp[t.lo], left = fp[mid] - fp[t.lo], ml;
        if (t.m == 0)
            ml = 0;
        else if (t.m == tot)
            ml = left;
        else {
            uint64_t s = cx_rng_stream(it->seed ^ CX_DOM_RWSPLIT, t.node);
            ml = hyper_draw(&s, tot, left, t.m);
        }
        it->st[it->sp++] = (cx_split_node){mid, t.hi, t.m - ml, 2 * t.node + 1};
        it->st[it->sp++] = (cx_split_node){t.lo, mid, ml, 2 * t.node};
    }
    return 0; /* i >= n_pre: not asked */
}

/* ====================================================== per-row draws */

/*
 * The per-row streams are counter-based (splitmix64: the state advances
 * by a constant and each output is a function of the counter alone), so
 * consecutive draws are independent computations that overlap in the
 * pipeline; xorshift's state chain made every draw wait for the last.
 */

/* Mark v in bits and its word in summary copy sq; 1 if v was new. */
static inline int mark_new(uint64_t *bits, uint64_t *sq, uint64_t v) {
    uint64_t w = v >> 6, bit = 1ull << (v & 63), old = bits[w];
    bits[w] = old | bit;
    sq[w >> 6] |= 1ull << (w & 63);
    return (old & bit) == 0;
}

/*
 * The marked words of a pick's bitmap, ascending, each read and cleared
 * with its summary bits: the walk both emissions of cx_pick_row share.
 * The summary's four copies (sum[4][sw], see cx_pick_row) are ORed and
 * cleared a 64-word group at a time.
 */
typedef struct {
    uint64_t *bits, *sum;
    size_t sw, ns, a; /* summary words, groups, the next group */
    uint64_t m;       /* the current group's marked words not yet visited */
} pick_walk;

/* The next marked word's bits (never 0) and its index in *w; 0 when the
 * walk is done. */
static inline uint64_t pick_walk_next(pick_walk *it, size_t *w) {
    while (!it->m) {
        if (it->a == it->ns)
            return 0;
        uint64_t *s = it->sum + it->a;
        size_t sw = it->sw;
        it->m = s[0] | s[sw] | s[2 * sw] | s[3 * sw];
        s[0] = s[sw] = s[2 * sw] = s[3 * sw] = 0;
        it->a++;
    }
    *w = (it->a - 1) * 64 + (size_t)__builtin_ctzll(it->m);
    it->m &= it->m - 1;
    uint64_t b = it->bits[*w];
    it->bits[*w] = 0;
    return b;
}

/*
 * The emission of cx_pick_row with AVX-512 VBMI2 (x86-64, chosen at run
 * time): each marked word becomes the positions of its bits in one byte
 * compress of 0..63, widened to 16 ids and stored under a mask (no room
 * needed past u[k]: random.c packs the rows' picks back to back).  The
 * scalar emission's per-bit loop mispredicted on every word holding two
 * picks (~15% of them at 100 picks in 19,000 slots), and its cost was
 * about that of the draws.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define CX_PICK_VBMI2 1
__attribute__((target("avx512f,avx512bw,avx512vbmi2"))) static void
emit_vbmi2(uint64_t *bits, uint64_t *sum, size_t sw, size_t ns, cx_index *u) {
    const __m512i iota = _mm512_set_epi8(
        63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42,
        41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
        19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    cx_index o = 0;
    pick_walk it = {bits, sum, sw, ns, 0, 0};
    size_t w;
    for (uint64_t b; (b = pick_walk_next(&it, &w));) {
        __m512i pos = _mm512_maskz_compress_epi8(b, iota);
        __m512i base = _mm512_set1_epi32((int)(w * 64));
        int pc = __builtin_popcountll(b);
        for (int q = 0; q < pc; q += 16) { /* one step unless the word is dense */
            __m512i ids = _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(pos)), base);
            int left = pc - q;
            _mm512_mask_storeu_epi32(
                u + o + q, left >= 16 ? (__mmask16)0xffffu : (__mmask16)((1u << left) - 1u), ids);
            pos = _mm512_alignr_epi32(pos, pos, 4); /* the next 16 positions */
        }
        o += pc;
    }
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define CX_PICK_SORT 1
/*
 * The sorting path of cx_pick_row (AVX-512 F/DQ/BW, chosen at run time)
 * for k <= 128: the first k candidates of the stream -- 16 per step, the
 * scalar loop's splitmix64 outputs and multiply-shifts lane by lane --
 * go through a bitonic sorting network in registers, and when they are
 * distinct (and none was rejected) they are the answer, since the first
 * k candidates then are the first k distinct ones.  A repeat (about k^2
 * / 2n per row) is settled in pick_fixup, a rejected candidate (about k /
 * 2^32 * n) by the bitmap path.  The bitmap path costs ~12 cycles a
 * pick, mostly its stores and emission; the network ~5 vector operations
 * a candidate (100 picks of 19,000 slots: 560 against 1,237 cycles).
 */
#define PICK_SORT_MAX 128
#define PICK_TGT __attribute__((target("avx512f,avx512dq,avx512bw"), always_inline)) static inline

/* One compare-exchange stage inside each 16-lane register: lane i meets
 * lane i ^ d (shuffle S); lanes in mask mx keep the larger value. */
#define PK_STAGE(v, S, mx)                                                                        \
    do {                                                                                          \
        __m512i p_ = (S);                                                                         \
        __m512i n_ = _mm512_min_epi32((v), p_);                                                   \
        (v) = _mm512_mask_max_epi32(n_, (__mmask16)(mx), (v), p_);                                \
    } while (0)
#define PK_D1(v) _mm512_shuffle_epi32((v), (_MM_PERM_ENUM)0xB1)
#define PK_D2(v) _mm512_shuffle_epi32((v), (_MM_PERM_ENUM)0x4E)
#define PK_D4(v) _mm512_shuffle_i32x4((v), (v), 0xB1)
#define PK_D8(v) _mm512_shuffle_i32x4((v), (v), 0x4E)

/* Sort the 16 lanes of v, ascending (bitonic: blocks of 2, 4, 8 sorted
 * in alternating directions, then merged). */
PICK_TGT __m512i pk_sort16(__m512i v) {
    PK_STAGE(v, PK_D1(v), 0x6666);
    PK_STAGE(v, PK_D2(v), 0x3c3c);
    PK_STAGE(v, PK_D1(v), 0x5a5a);
    PK_STAGE(v, PK_D4(v), 0x0ff0);
    PK_STAGE(v, PK_D2(v), 0x33cc);
    PK_STAGE(v, PK_D1(v), 0x55aa);
    PK_STAGE(v, PK_D8(v), 0xff00);
    PK_STAGE(v, PK_D4(v), 0xf0f0);
    PK_STAGE(v, PK_D2(v), 0xcccc);
    PK_STAGE(v, PK_D1(v), 0xaaaa);
    return v;
}

/* Sort a bitonic register ascending (the last four stages). */
PICK_TGT __m512i pk_clean16(__m512i v) {
    PK_STAGE(v, PK_D8(v), 0xff00);
    PK_STAGE(v, PK_D4(v), 0xf0f0);
    PK_STAGE(v, PK_D2(v), 0xcccc);
    PK_STAGE(v, PK_D1(v), 0xaaaa);
    return v;
}

/* Sort the R * 16 lanes of v[0..R), R in {1, 2, 4, 8} (a compile-time
 * constant at each call, so the loops unroll and v stays in registers):
 * each register sorted, then sorted runs of h registers merged in pairs
 * (the second run reversed, so every compare is ascending). */
PICK_TGT void pk_sort(__m512i *v, int R) {
    const __m512i rev = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int r = 0; r < R; r++)
        v[r] = pk_sort16(v[r]);
    for (int h = 1; h < R; h *= 2)
        for (int g = 0; g < R; g += 2 * h) {
            for (int i = 0; i < h; i++) { /* v[g + i] against reversed v[g + 2h - 1 - i] */
                __m512i a = v[g + i], b = _mm512_permutexvar_epi32(rev, v[g + 2 * h - 1 - i]);
                v[g + i] = _mm512_min_epi32(a, b);
                v[g + 2 * h - 1 - i] = _mm512_max_epi32(a, b);
            }
            /* two bitonic runs of h registers, the second stored reversed
             * in register order: put it back in order */
            for (int i = 0; i < h / 2; i++) {
                __m512i t = v[g + h + i];
                v[g + h + i] = v[g + 2 * h - 1 - i];
                v[g + 2 * h - 1 - i] = t;
            }
            for (int d = h / 2; d >= 1; d /= 2) /* register half-cleaners */
                for (int b = g; b < g + 2 * h; b += 2 * d)
                    for (int i = b; i < b + d; i++) {
                        __m512i a = v[i], c = v[i + d];
                        v[i] = _mm512_min_epi32(a, c);
                        v[i + d] = _mm512_max_epi32(a, c);
                    }
            for (int i = g; i < g + 2 * h; i++)
                v[i] = pk_clean16(v[i]);
        }
}

/* Candidates 16 r .. 16 r + 15 of the stream at counter x (candidate 2q:
 * the high half of draw q mapped by multiply-shift, 2q + 1: the low
 * half); lanes at or past k hold INT32_MAX.  *rej: the lanes below k
 * that the scalar loop would reject. */
PICK_TGT __m512i pk_cands(uint64_t x, int r, cx_index k, uint32_t n, uint32_t lim,
                          __mmask16 *rej) {
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    const __m512i lane = _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8);
    __m512i z = _mm512_add_epi64(_mm512_set1_epi64((long long)(x + (uint64_t)(8 * r) * g)),
                                 _mm512_mullo_epi64(lane, _mm512_set1_epi64((long long)g)));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    const __m512i vn = _mm512_set1_epi64((long long)n);
    __m512i p0 = _mm512_mul_epu32(_mm512_srli_epi64(z, 32), vn); /* high half * n */
    __m512i p1 = _mm512_mul_epu32(z, vn);                        /* low half * n */
    __m512i c = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(p0, 32), p1);
    const __m512i vlim = _mm512_set1_epi32((int32_t)lim);
    unsigned bad = ((unsigned)_mm512_cmplt_epu32_mask(p0, vlim) & 0x5555u) |
                   (((unsigned)_mm512_cmplt_epu32_mask(p1, vlim) & 0x5555u) << 1);
    cx_index left = k - 16 * r;
    __mmask16 in = left >= 16  ? (__mmask16)0xffffu
                   : left <= 0 ? (__mmask16)0
                               : (__mmask16)((1u << left) - 1u);
    *rej = (__mmask16)(bad & in);
    return _mm512_mask_blend_epi32(in, _mm512_set1_epi32(INT32_MAX), c);
}

/* Candidate q of the stream at counter x, or -1 if the scalar loop
 * rejects it. */
static int64_t pk_cand1(uint64_t x, int64_t q, uint64_t n, uint32_t lim) {
    uint64_t c = x + (uint64_t)(q / 2) * 0x9E3779B97F4A7C15ull;
    uint64_t r = cx_splitmix64(&c);
    uint64_t m = (q & 1 ? r & 0xffffffffu : r >> 32) * n;
    return (uint32_t)m >= lim ? (int64_t)(m >> 32) : -1;
}

/* u[0, k): the first k candidates, sorted, with repeats.  Make them the
 * first k distinct candidates: drop the repeats, then take candidates k,
 * k + 1, ... while values are missing, as the scalar loop would.
 * Returns the number of draws used. */
static int64_t pick_fixup(uint64_t x, cx_index *u, cx_index k, uint64_t n, uint32_t lim) {
    cx_index m = 1;
    for (cx_index q = 1; q < k; q++)
        if (u[q] != u[m - 1])
            u[m++] = u[q];
    int64_t q = k;
    for (; m < k; q++) {
        int64_t c = pk_cand1(x, q, n, lim);
        if (c < 0)
            continue;
        cx_index lo = cx_lower_bound_index(u, 0, m, (cx_index)c); /* c < n <= INT32_MAX */
        if (lo < m && u[lo] == c)
            continue;
        memmove(u + lo + 1, u + lo, (size_t)(m - lo) * sizeof(cx_index));
        u[lo] = (cx_index)c;
        m++;
    }
    return (q + 1) / 2; /* candidate q - 1 was the last taken: draw (q - 1) / 2 */
}

/* R registers: the sort path for k <= 16 R.  Returns 0 if a candidate was
 * rejected (nothing written; *xp unchanged), else 1. */
PICK_TGT int pick_sort_r(uint64_t *xp, cx_index n, cx_index k, cx_index *u, uint32_t lim, int R) {
    __m512i v[PICK_SORT_MAX / 16];
    unsigned rej = 0;
    for (int r = 0; r < R; r++) {
        __mmask16 b;
        v[r] = pk_cands(*xp, r, k, (uint32_t)n, lim, &b);
        rej |= b;
    }
    if (rej)
        return 0;
    pk_sort(v, R);
    unsigned dup = 0;
    for (int r = 0; r < R; r++) {
        __m512i nx = r + 1 < R ? v[r + 1] : _mm512_set1_epi32(INT32_MAX);
        __m512i sh = _mm512_alignr_epi32(nx, v[r], 1); /* lane l: element 16 r + l + 1 */
        cx_index left = k - 1 - 16 * r; /* pairs (e, e + 1) with e + 1 < k */
        __mmask16 in = left >= 16  ? (__mmask16)0xffffu
                       : left <= 0 ? (__mmask16)0
                                   : (__mmask16)((1u << left) - 1u);
        dup |= (unsigned)_mm512_mask_cmpeq_epi32_mask(in, v[r], sh);
        cx_index lk = k - 16 * r;
        if (lk > 0)
            _mm512_mask_storeu_epi32(u + 16 * r,
                                     lk >= 16 ? (__mmask16)0xffffu : (__mmask16)((1u << lk) - 1u),
                                     v[r]);
    }
    int64_t draws = (k + 1) / 2;
    if (dup)
        draws = pick_fixup(*xp, u, k, (uint64_t)n, lim);
    *xp += (uint64_t)draws * 0x9E3779B97F4A7C15ull;
    return 1;
}

__attribute__((target("avx512f,avx512dq,avx512bw"))) static int
pick_sort(uint64_t *xp, cx_index n, cx_index k, cx_index *u, uint32_t lim) {
    if (k <= 16)
        return pick_sort_r(xp, n, k, u, lim, 1);
    if (k <= 32)
        return pick_sort_r(xp, n, k, u, lim, 2);
    if (k <= 64)
        return pick_sort_r(xp, n, k, u, lim, 4);
    return pick_sort_r(xp, n, k, u, lim, 8);
}
#endif

/*
 * cx_pick_row (storage.h): u[k] = k distinct values drawn uniformly from
 * [0, n), ascending: the first k distinct candidates of the stream *xp.
 * Sparse case (2k <= n), k <= 128 and vec: the sorting path above.
 * Else, sparse case: each draw is checked against
 * bits (a repeat is drawn again, so the set is a uniform k-subset), and
 * the word it lands in is marked in a word summary; the emission visits the marked words
 * only, in order, clearing the maps, so no sort and no scan of empty
 * words.  Draw q marks summary copy q % 4 (sum[4][sw], ORed at the end):
 * with a single copy, every draw would wait for the previous one's
 * read-modify-write of the same summary word.
 * Dense case: cx_pick_sorted (draws the n - k to leave out).
 * bits[(n + 63) / 64] and sum[4 * sw], sw = (n + 4095) / 4096, are zero
 * on entry and on exit.  O(k + n / 4096)
 */
void cx_pick_row(uint64_t *xp, uint64_t *bits, uint64_t *sum, size_t sw, cx_index n, cx_index k,
                 cx_index *u, int vec) {
    if (k <= 0)
        return;
    if (2 * (int64_t)k > n) {
        cx_pick_sorted(xp, bits, n, k, u, NULL);
        return;
    }
    /* two candidates per draw, one per 32-bit half, each mapped to [0, n)
     * by Lemire's multiply-shift (n < 2^31), unbiased: the rare low
     * products below 2^32 mod n are rejected */
    const uint32_t lim = (uint32_t)(0u - (uint32_t)n) % (uint32_t)n;
#ifdef CX_PICK_SORT
    if (vec && k <= PICK_SORT_MAX && pick_sort(xp, n, k, u, lim))
        return;
#endif
    uint64_t x = *xp; /* a local: bits and sum may alias *xp */
    const uint64_t nn = (uint64_t)n;
    for (cx_index got = 0, q = 0; got < k;) {
        uint64_t r = cx_splitmix64(&x);
        uint64_t m0 = (r >> 32) * nn, m1 = (r & 0xffffffffu) * nn;
        if ((uint32_t)m0 >= lim)
            got += mark_new(bits, sum + (size_t)(q++ & 3) * sw, m0 >> 32);
        if (got < k && (uint32_t)m1 >= lim)
            got += mark_new(bits, sum + (size_t)(q++ & 3) * sw, m1 >> 32);
    }
    *xp = x;
    size_t ns = ((size_t)n + 4095) / 4096;
#ifdef CX_PICK_VBMI2
    if (vec) {
        emit_vbmi2(bits, sum, sw, ns, u);
        return;
    }
#endif
    (void)vec;
    cx_index o = 0;
    pick_walk it = {bits, sum, sw, ns, 0, 0};
    size_t w;
    for (uint64_t b; (b = pick_walk_next(&it, &w));)
        do { /* usually one bit per word */
            u[o++] = (cx_index)(w * 64 + (size_t)__builtin_ctzll(b));
            b &= b - 1;
        } while (b);
}

/*
 * UNIFORM weights 8 at a time (AVX-512 DQ, chosen at run time): lane q of
 * a step takes splitmix64 at counter x + (q + 1) gamma (each output is a
 * function of its counter alone), and the doubles go through the scalar
 * loop's operations in its order (exact u64 -> double conversion, one
 * multiply, one add, no contraction), so the weights are bitwise the
 * same.  Returns how many of wn[c] it wrote (a multiple of 8) and advances
 * *xp past them.  The scalar loop was ~4% of a rewire.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define CX_DRAW_AVX512 1
__attribute__((target("avx512f,avx512dq"))) static cx_index
draw_uniform_avx512(double a, double b, uint64_t *xp, cx_real *wn, cx_index c) {
    const uint64_t g = 0x9E3779B97F4A7C15ull;
    const __m512i lane = _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8);
    __m512i ctr = _mm512_add_epi64(_mm512_set1_epi64((long long)*xp),
                                   _mm512_mullo_epi64(lane, _mm512_set1_epi64((long long)g)));
    const __m512i step = _mm512_set1_epi64((long long)(8 * g));
    const __m512i m1 = _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull);
    const __m512i m2 = _mm512_set1_epi64((long long)0x94D049BB133111EBull);
    const __m512d va = _mm512_set1_pd(a), vw = _mm512_set1_pd(b - a);
    const __m512d scale = _mm512_set1_pd(0x1.0p-53);
    cx_index k = 0;
    for (; k + 8 <= c; k += 8) {
        __m512i z = ctr;
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        __m512d u = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(z, 11)), scale);
        _mm256_storeu_ps(wn + k, _mm512_cvtpd_ps(_mm512_add_pd(va, _mm512_mul_pd(vw, u))));
        ctr = _mm512_add_epi64(ctr, step);
    }
    *xp += (uint64_t)k * g;
    return k;
}
#endif

/* wn[c] = the weights of a row's new synapses, in order, from the
 * counter-based stream *x (NORMAL: the ziggurat on a xorshift state seeded
 * by one draw of *x; zt: its tables, or NULL unless NORMAL);
 * dq: CX_CPU_HAS("avx512dq"), probed once by the caller. */
static void draw_row_weights(cx_init init, const cx_zig *zt, uint64_t *xp, cx_real *wn, cx_index c,
                             int dq) {
    double a = init.a, b = init.b;
    uint64_t xv = *xp, *x = &xv; /* the counter stays in a register */
    cx_index k0 = 0;
    switch (init.kind) {
    case CX_INIT_UNIFORM:
#ifdef CX_DRAW_AVX512
        if (dq)
            k0 = draw_uniform_avx512(a, b, x, wn, c);
#else
        (void)dq;
#endif
        for (cx_index k = k0; k < c; k++)
            wn[k] = (cx_real)(a + (b - a) * ((double)(cx_splitmix64(x) >> 11) * 0x1.0p-53));
        break;
    case CX_INIT_NORMAL: {
        /* Box-Muller here (a log, a sqrt and a cos per weight) cost as much
         * as the rest of a 10% rewire of 2e7 synapses */
        uint64_t s = cx_splitmix64(x) | 1u; /* a xorshift state: never zero */
        for (cx_index k = 0; k < c; k++)
            wn[k] = (cx_real)(a + b * cx_zig_normal(zt, &s));
        break;
    }
    case CX_INIT_CONST:
    default:
        for (cx_index k = 0; k < c; k++)
            wn[k] = init.a;
        break;
    }
    *xp = xv;
}

/* ============================================================ row merge */

/*
 * Copy the originals of a row from position *j on that survive the cut to
 * dst from position *o on, while P[q] - q <= lim (the originals below the
 * next new id; lim = INT32_MAX: to the end of the row).  Branch-free: every
 * entry is written and o advances only for a kept one; the search for the
 * segment's end is fused into the copy, so a segment costs one branch
 * mispredict.  Once the chunk's tie quota is used up (*tie >= r_ties),
 * ties are kept and need no counting: the tight loops.
 */
static inline void seg_keep(const cx_index *P, const cx_real *W, cx_real *const *x,
                            cx_real *const *dx, int nx, cx_index n, cx_index lim, cx_index *jp,
                            cx_index *DP, cx_real *DW, cx_index *op, uint32_t T, cx_size *tie,
                            cx_size r_ties) {
    cx_index j = *jp, o = *op;
    if (*tie >= r_ties) {
        if (nx == 0) {
            for (; j < n && P[j] - j <= lim; j++) {
                cx_real w = W[j];
                DP[o] = P[j];
                DW[o] = w;
                o += cx_wkey(w) >= T;
            }
        } else {
            for (; j < n && P[j] - j <= lim; j++) {
                cx_real w = W[j];
                DP[o] = P[j];
                DW[o] = w;
                for (int a = 0; a < nx; a++)
                    dx[a][o] = x[a][j];
                o += cx_wkey(w) >= T;
            }
        }
    } else {
        cx_size t = *tie;
        for (; j < n && P[j] - j <= lim; j++) {
            cx_real w = W[j];
            uint32_t key = cx_wkey(w);
            int eq = key == T;
            int drop = (key < T) | (eq & (t < r_ties));
            t += eq;
            DP[o] = P[j];
            DW[o] = w;
            for (int a = 0; a < nx; a++)
                dx[a][o] = x[a][j];
            o += !drop;
        }
        *tie = t;
    }
    *jp = j;
    *op = o;
}

/*
 * Write the rewired row r into dst (arrays post + enabled columns): the
 * survivors of the cut in order, merged with the new targets -- the
 * u[k]-th absent id of the ORIGINAL row, k < c, u ascending -- with
 * weights wn[k] (other columns 0).  The
 * originals below the k-th new id are those with P[q] - q <= u[k]
 * (P[q] - q, the absent ids below P[q], never decreases), and the new id
 * is u[k] + (their count).
 * dst must not alias r and needs room for min(n + c, result + 1) entries
 * (a dropped synapse is written, then overwritten).  Returns the new
 * length.
 */
static cx_index row_merge(unsigned cols, const cx_row *r, cx_row *dst, const cx_index *u,
                          cx_index c, const cx_real *wn, uint32_t T, cx_size *tie,
                          cx_size r_ties) {
    const cx_index *P = r->post;
    const cx_real *W = r->col[CX_COL_WEIGHT];
    cx_index *DP = dst->post;
    cx_real *DW = dst->col[CX_COL_WEIGHT];
    cx_real *x[CX_N_COLS], *dx[CX_N_COLS];
    int nx = 0;
    for (int a = 1; a < CX_N_COLS; a++)
        if ((cols >> a) & 1u) {
            x[nx] = r->col[a];
            dx[nx++] = dst->col[a];
        }
    cx_index n = r->n, j = 0, o = 0;
    for (cx_index k = 0; k < c; k++) {
        seg_keep(P, W, x, dx, nx, n, u[k], &j, DP, DW, &o, T, tie, r_ties);
        DP[o] = u[k] + j;
        DW[o] = wn[k];
        for (int a = 0; a < nx; a++)
            dx[a][o] = 0;
        o++;
    }
    seg_keep(P, W, x, dx, nx, n, INT32_MAX, &j, DP, DW, &o, T, tie, r_ties);
    return o;
}

/*
 * row_merge with 8-lane AVX2 segments (x86-64, chosen at run time; the
 * build stays baseline).  Per block of 8 originals: the lanes inside the
 * segment (P[q] - q <= lim, a prefix since P[q] - q never decreases) and
 * kept by the cut form a mask that selects a lane permutation, and every
 * array's block is permuted and stored at the output position; the lanes
 * past the kept ones are overwritten later or lie past the result, so dst
 * needs 8 entries of room past n + c.  Segments where ties may still be
 * dropped, and the last < 8 originals, take the scalar seg_keep.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define CX_REWIRE_AVX2 1

__attribute__((target("avx2"))) static cx_index
row_merge_avx2(unsigned cols, const cx_row *r, cx_row *dst, const cx_index *u, cx_index c,
               const cx_real *wn, uint32_t T, cx_size *tie, cx_size r_ties, const cx_perm8 *pt) {
    const cx_index *P = r->post;
    const cx_real *W = r->col[CX_COL_WEIGHT];
    cx_index *DP = dst->post;
    cx_real *DW = dst->col[CX_COL_WEIGHT];
    cx_real *x[CX_N_COLS], *dx[CX_N_COLS];
    int nx = 0;
    for (int a = 1; a < CX_N_COLS; a++)
        if ((cols >> a) & 1u) {
            x[nx] = r->col[a];
            dx[nx++] = dst->col[a];
        }
    const __m256i vT = _mm256_set1_epi32((int32_t)T), absm = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000), one = _mm256_set1_epi32(1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    cx_index n = r->n, j = 0, o = 0;
    for (cx_index k = 0; k <= c; k++) {
        cx_index lim = k < c ? u[k] : INT32_MAX;
        if (*tie < r_ties) {
            seg_keep(P, W, x, dx, nx, n, lim, &j, DP, DW, &o, T, tie, r_ties);
        } else {
            const __m256i vlim = _mm256_set1_epi32(lim);
            for (;;) {
                if (j + 8 > n) {
                    seg_keep(P, W, x, dx, nx, n, lim, &j, DP, DW, &o, T, tie, r_ties);
                    break;
                }
                __m256i pv = _mm256_loadu_si256((const __m256i *)(P + j));
                __m256i d = _mm256_sub_epi32(pv, _mm256_add_epi32(lane, _mm256_set1_epi32(j)));
                int out = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(d, vlim)));
                int cnt = __builtin_ctz((unsigned)out | 256u); /* the segment's lanes */
                __m256i w = _mm256_loadu_si256((const __m256i *)(W + j));
                __m256i uu = _mm256_and_si256(w, absm);
                __m256i kk =
                    _mm256_andnot_si256(_mm256_cmpgt_epi32(uu, inf), _mm256_add_epi32(uu, one));
                int km = ~_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(vT, kk))) &
                         ((1 << cnt) - 1);
                __m256i idx = _mm256_loadu_si256((const __m256i *)pt->idx[km]);
                _mm256_storeu_si256((__m256i *)(DP + o), _mm256_permutevar8x32_epi32(pv, idx));
                _mm256_storeu_si256((__m256i *)(DW + o), _mm256_permutevar8x32_epi32(w, idx));
                for (int a = 0; a < nx; a++) {
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(x[a] + j));
                    _mm256_storeu_si256((__m256i *)(dx[a] + o),
                                        _mm256_permutevar8x32_epi32(xv, idx));
                }
                o += __builtin_popcount((unsigned)km);
                j += cnt;
                if (cnt < 8)
                    break;
            }
        }
        if (k == c)
            break;
        DP[o] = u[k] + j;
        DW[o] = wn[k];
        for (int a = 0; a < nx; a++)
            dx[a][o] = 0;
        o++;
    }
    return o;
}

/* One stream of the AVX-512 merges (row_merge_avx512, merge_pair_avx512):
 * a row and its nx extra columns. */
typedef struct {
    const cx_index *P, *u;
    const cx_real *W, *wn;
    cx_index *DP;
    cx_real *DW;
    cx_real *x[CX_N_COLS], *dx[CX_N_COLS];
    uintptr_t f[CX_N_COLS + 1]; /* the arrays of the row merged next (prefetched; as
                                    integers, since the prefetch may run past them) */
    cx_index n, c, j, o, k, lim;
    int nx;
    cx_size t, rt; /* ties seen (while t < rt), the chunk's tie quota */
} rw_stream;

static inline int rw_stream_init(rw_stream *m, unsigned cols, const cx_row *r, cx_row *dst,
                                 const cx_index *u, cx_index c, const cx_real *wn, cx_size t,
                                 cx_size rt, const cx_row *next) {
    if (!next)
        next = r; /* nothing to prefetch: the row's own lines, harmless */
    m->f[0] = (uintptr_t)next->post;
    for (int a = 0, q = 1; a < CX_N_COLS; a++)
        if ((cols >> a) & 1u)
            m->f[q++] = (uintptr_t)next->col[a];
    m->t = t;
    m->rt = rt;
    m->P = r->post;
    m->W = r->col[CX_COL_WEIGHT];
    m->DP = dst->post;
    m->DW = dst->col[CX_COL_WEIGHT];
    int nx = 0;
    for (int a = 1; a < CX_N_COLS; a++)
        if ((cols >> a) & 1u) {
            m->x[nx] = r->col[a];
            m->dx[nx++] = dst->col[a];
        }
    m->u = u;
    m->wn = wn;
    m->n = r->n;
    m->c = c;
    m->j = m->o = m->k = 0;
    m->lim = u[0];
    m->nx = nx;
    return nx;
}

/*
 * The cut as the AVX-512 merges test it.  A synapse is kept when key(w) >=
 * T, key = |w| bits + 1 (NaN: 0), that is when its |w| bits lie in
 * [A, B]: [T - 1, 0x7f800000] (NaN's out), or everything for T = 0 (the
 * NaN's then are the ties, key == T).
 */
typedef struct {
    __m512i A, B, T;
} rw_cut;

__attribute__((target("avx512f"), always_inline)) static inline rw_cut rw_cut_of(uint32_t T) {
    rw_cut c = {_mm512_set1_epi32((int32_t)(T ? T - 1 : 0)),
                _mm512_set1_epi32((int32_t)(T ? 0x7f800000u : 0xffffffffu)),
                _mm512_set1_epi32((int32_t)T)};
    return c;
}

/* One block of the branch-free loop of row_merge_avx512 (ties == T are
 * dropped while m->t < m->rt, counting them in (pre, post) order as
 * seg_keep does; nx extra columns, a constant at each call site);
 * returns 1 when the row is complete (m->o = its length).  A synapse is
 * kept when its |w| bits lie in [cut.A, cut.B] (rw_cut); the originals
 * inside the segment are those with P[q] <= lim + q (unsigned: lim + j +
 * 15 < 2^32).  Each step also prefetches the next row's arrays at the
 * same position, so that row is in cache when its turn comes (the
 * hardware prefetcher starts cold on every allocation). */
__attribute__((target("avx512f"), always_inline)) static inline int
rw_step(rw_stream *m, rw_cut cut, int nx) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i absm = _mm512_set1_epi32(0x7fffffff);
    cx_index j = m->j, o = m->o, left = m->n - j;
    for (int a = 0; a < nx + 2; a++)
        __builtin_prefetch((const void *)(m->f[a] + 4 * (uintptr_t)j + 128));
    __mmask16 valid = left >= 16 ? (__mmask16)0xffffu : (__mmask16)((1u << left) - 1u);
    __m512i pv = _mm512_maskz_loadu_epi32(valid, m->P + j);
    uint32_t lj = (uint32_t)m->lim + (uint32_t)j;
    __m512i thr = _mm512_add_epi32(_mm512_set1_epi32((int32_t)lj), lane);
    unsigned out = (unsigned)_mm512_cmpgt_epu32_mask(pv, thr) | (unsigned)(__mmask16)~valid;
    int cnt = __builtin_ctz(out | 0x10000u);
    __mmask16 seg = (__mmask16)((1u << cnt) - 1u);
    __m512i w = _mm512_maskz_loadu_epi32(valid, m->W + j);
    __m512i uu = _mm512_and_si512(w, absm);
    __mmask16 km = _mm512_mask_cmpge_epu32_mask(_mm512_cmple_epu32_mask(uu, cut.B), uu, cut.A) & seg;
    if (m->t < m->rt) { /* ties still to drop: the first ones in order go */
        /* ties: key == T, key = |w| bits + 1, NaN's 0 (so for T = 0 the
         * NaN's, which [A, B] keeps) */
        __mmask16 nan = _mm512_cmpgt_epu32_mask(uu, _mm512_set1_epi32(0x7f800000));
        __m512i kk = _mm512_maskz_add_epi32((__mmask16)~nan, uu, _mm512_set1_epi32(1));
        unsigned e = (unsigned)_mm512_mask_cmpeq_epi32_mask(km, kk, cut.T);
        while (e) {
            int l = __builtin_ctz(e);
            e &= e - 1;
            if (m->t < m->rt)
                km = (__mmask16)((unsigned)km & ~(1u << l));
            m->t++;
        }
    }
    _mm512_storeu_si512((void *)(m->DP + o), _mm512_maskz_compress_epi32(km, pv));
    _mm512_storeu_si512((void *)(m->DW + o), _mm512_maskz_compress_epi32(km, w));
    for (int a = 0; a < nx; a++) {
        __m512i xv = _mm512_maskz_loadu_epi32(valid, m->x[a] + j);
        _mm512_storeu_si512((void *)(m->dx[a] + o), _mm512_maskz_compress_epi32(km, xv));
    }
    o += __builtin_popcount((unsigned)km);
    j += cnt;
    int end = cnt < 16;
    m->j = j;
    if (end & (m->k == m->c)) {
        m->o = o;
        return 1;
    }
    m->DP[o] = (cx_index)(lj + (uint32_t)cnt);
    m->DW[o] = m->wn[m->k];
    for (int a = 0; a < nx; a++)
        m->dx[a][o] = 0;
    m->o = o + end;
    m->k += end;
    m->lim = m->u[m->k];
    return 0;
}

/* Run streams A and B to completion, interleaved while both run. */
__attribute__((target("avx512f"), always_inline)) static inline void
rw_run_pair(rw_stream *A, rw_stream *B, rw_cut cut, int nx) {
    int fa = 0, fb = 0;
    while (!(fa | fb)) {
        fa = rw_step(A, cut, nx);
        fb = rw_step(B, cut, nx);
    }
    while (!fa)
        fa = rw_step(A, cut, nx);
    while (!fb)
        fb = rw_step(B, cut, nx);
}

/*
 * Two consecutive rows merged in one loop (as row_merge_avx512 does
 * each): the rows' dependency chains (segment end -> next load) are
 * independent, so they overlap.  u*[c*] == INT32_MAX.  *tie: ties seen
 * before row a on entry, before the row after b on return (row b starts
 * from *tie plus row a's ties, counted up front while the quota is open).
 * The extra columns (0 to 3) select a specialised loop.  na, nb (or
 * NULL): the rows merged after a and b, prefetched along.  Returns the
 * lengths in *oa, *ob.
 */
__attribute__((target("avx512f"))) static void
merge_pair_avx512(unsigned cols, const cx_row *ra, cx_row *da, const cx_index *ua, cx_index ca,
                  const cx_real *wa, const cx_row *rb, cx_row *db, const cx_index *ub,
                  cx_index cb, const cx_real *wb, uint32_t T, cx_size *tie, cx_size r_ties,
                  cx_index *oa, cx_index *ob, const cx_row *na, const cx_row *nb) {
    const rw_cut cut = rw_cut_of(T);
    cx_size tb = *tie;
    if (tb < r_ties) {
        const cx_real *W = ra->col[CX_COL_WEIGHT];
        for (cx_index q = 0; q < ra->n; q++)
            tb += cx_wkey(W[q]) == T;
    }
    rw_stream A, B;
    int nx = rw_stream_init(&A, cols, ra, da, ua, ca, wa, *tie, r_ties, na);
    rw_stream_init(&B, cols, rb, db, ub, cb, wb, tb, r_ties, nb);
    switch (nx) {
    case 0:
        rw_run_pair(&A, &B, cut, 0);
        break;
    case 1:
        rw_run_pair(&A, &B, cut, 1);
        break;
    default:
        rw_run_pair(&A, &B, cut, nx);
        break;
    }
    *oa = A.o;
    *ob = B.o;
    *tie = B.t;
}

/*
 * row_merge (same arguments and result) with 16-lane AVX-512 blocks:
 * rw_step until the row is complete (compress into a register, then a
 * full store: the memory form of vpcompressd is slow on some cores), so
 * dst needs 16 entries of room past n + c; u[c] == INT32_MAX.  next (or
 * NULL): the row merged after this one, prefetched along.
 */
__attribute__((target("avx512f"))) static cx_index
row_merge_avx512(unsigned cols, const cx_row *r, cx_row *dst, const cx_index *u, cx_index c,
                 const cx_real *wn, uint32_t T, cx_size *tie, cx_size r_ties,
                 const cx_row *next) {
    const rw_cut cut = rw_cut_of(T);
    rw_stream A;
    switch (rw_stream_init(&A, cols, r, dst, u, c, wn, *tie, r_ties, next)) {
    case 0:
        while (!rw_step(&A, cut, 0))
            ;
        break;
    case 1:
        while (!rw_step(&A, cut, 1))
            ;
        break;
    default:
        while (!rw_step(&A, cut, A.nx))
            ;
        break;
    }
    *tie = A.t;
    return A.o;
}
#endif

/* cx_row_merge_new (storage.h): row_merge_avx512 with a cut that keeps
 * every old synapse (T = 0: every key is >= 0, NaN's included). */
int cx_row_merge_new_fast(void) { return CX_CPU_HAS("avx512f"); }

cx_index cx_row_merge_new(unsigned cols, const cx_row *r, cx_row *dst, const cx_index *u,
                          cx_index c, const cx_real *wn) {
#ifdef CX_REWIRE_AVX2
    cx_size tie = 0;
    return row_merge_avx512(cols, r, dst, u, c, wn, 0u, &tie, 0, NULL);
#else
    (void)cols, (void)r, (void)dst, (void)u, (void)c, (void)wn;
    return 0; /* never called: cx_row_merge_new_fast() is 0 */
#endif
}

/* cx_row_merge_new2: two rows at once (merge_pair_avx512, T = 0). */
void cx_row_merge_new2(unsigned cols, const cx_row *const *r, cx_row *const *dst,
                       cx_index *const *u, const cx_index *c, cx_real *const *wn, cx_index *o,
                       const cx_row *const *next) {
#ifdef CX_REWIRE_AVX2
    cx_size tie = 0;
    merge_pair_avx512(cols, r[0], dst[0], u[0], c[0], wn[0], r[1], dst[1], u[1], c[1], wn[1], 0u,
                      &tie, 0, &o[0], &o[1], next[0], next[1]);
#else
    (void)cols, (void)r, (void)dst, (void)u, (void)c, (void)wn, (void)o, (void)next;
#endif
}

/* Prefetch the first 256 bytes of a row's targets and weights: every row
 * is its own allocation, so the hardware prefetcher starts cold on each;
 * given the head it streams the rest.  (Measured: prefetching whole rows
 * was ~9% slower, the prefetches stalling on full miss buffers.) */
static inline void prefetch_row(const cx_row *r) {
    const char *p = (const char *)r->post, *w = (const char *)r->col[CX_COL_WEIGHT];
    size_t bytes = (size_t)r->n * sizeof(cx_real);
    for (size_t o = 0; o < bytes && o < 256; o += 64) {
        __builtin_prefetch(p + o);
        __builtin_prefetch(w + o);
    }
}

/*
 * The merge target of row r (c new synapses, at least lo of its synapses
 * dropped; lo < 0: r has fresh arrays): the thread's spare arrays when
 * they have room for every merge's widest store (the result, at most
 * n - lo + c entries, and the vector stores' 16 lanes past it), else the
 * scratch row (and a copy after).  An empty row without arrays keeps
 * none: it stays empty (else it would have fresh arrays).
 */
static cx_row *merge_dst(const cx_row *r, cx_index c, cx_index lo, cx_row *spare, cx_row *scr) {
    if (lo >= 0 && r->cap > 0 && (cx_size)spare->cap >= (cx_size)r->n - lo + c + 16)
        return spare;
    return scr;
}

/* Install row i's result (length o) from dst: the spare arrays (swapped:
 * the row keeps them and its old arrays become the spare, so the merge
 * wrote the row's final place and nothing is copied) or the scratch row
 * (copied to row i's fresh arrays f if it has them, else in place). */
static void commit_row(unsigned cols, cx_row *r, cx_row *f, cx_row *dst, cx_row *spare,
                       cx_index o) {
    if (dst == spare) {
        cx_row old = *r;
        *r = *spare;
        *spare = old;
        r->n = o;
        return;
    }
    const cx_row *scr = dst;
    if (f) {
        cx_row_free(r);
        *r = *f;
    }
    if (o > 0) {
        memcpy(r->post, scr->post, (size_t)o * sizeof(cx_index));
        for (int a = 0; a < CX_N_COLS; a++)
            if ((cols >> a) & 1u)
                memcpy(r->col[a], scr->col[a], (size_t)o * sizeof(cx_real));
    }
    r->n = o;
}

/* Free the arrays of a row that was never installed. */
static void fresh_free(cx_row *f) {
    free(f->post);
    for (int a = 0; a < CX_N_COLS; a++)
        free(f->col[a]);
    memset(f, 0, sizeof(*f));
}

/*
 * Steps:
 *   1. the cut (cx_prune_cut, read-only; skipped when everything goes),
 *      with a lower bound low_i of each row's drops;
 *   2. the per-row counts of new synapses (the split tree): drawn by the
 *      cut's pass, each chunk its own rows (cx_split_next); else
 *      cx_split_rows (its first levels serially, the subtrees below in
 *      parallel).  Measured at 2e7 synapses, 2 threads: the draws add
 *      ~1.1 ms to the pass, little of them hidden by its loads, against
 *      ~1.35 ms for cx_split_rows after it;
 *   3. reserve (parallel, rows untouched): every row with
 *      n - low_i + c_i > cap gets fresh arrays.  Any ENOMEM here frees
 *      everything and leaves the projection untouched.  Fresh arrays
 *      follow cx_row_reserve's growth rule; with low_i (about all the
 *      drops) most rows, even of an exact-capacity projection, run in
 *      place.  Per-thread scratch is sized by the largest row, not by
 *      n_post;
 *   4. commit (parallel over the same chunks, cannot fail): each row
 *      draws its new positions (cx_pick_row) and its new weights from
 *      two counter-based streams (seed, i), and merges survivors and new
 *      synapses in one walk into the thread's spare arrays when they have
 *      room (merge_dst: the row keeps them, its old arrays become the
 *      spare), else into the per-thread scratch row, copied back in place
 *      or into its fresh arrays after (the portable path writes fresh
 *      arrays directly).  With AVX-512, rows go two at a time through
 *      merge_pair_avx512 (branch-free blocks, the next pair prefetched
 *      at the same pace), a chunk's odd last row through
 *      row_merge_avx512; else row_merge_avx2 when available.
 * Chunks are the prune cut's chunks, so each starts with the number of
 * ties before it.  O(n_synapses + n_pre * n_post / 64)
 */
cx_status cx_proj_rewire(cx_proj *proj, cx_size n, cx_init init, uint64_t seed, int n_threads) {
    if (!proj || n < 0 || n > proj->n_synapses || !cx_init_valid(init))
        return CX_EINVAL;
    cx_index n_pre = proj->n_pre, n_post = proj->n_post;
    cx_size N = proj->n_synapses;
    cx_size F = (cx_size)n_pre * n_post - N; /* absent slots */
    if (F < n)
        return CX_ENOSPACE;
    if (n == 0)
        return CX_OK;
    cx_row *rows = proj->rows;
    unsigned cols = proj->cols;
    int nt = N < RW_SERIAL_SYNAPSES ? 1 : cx_storage_threads(n_threads);
    if (nt > n_pre)
        nt = n_pre;
    cx_status st = CX_ENOMEM;
    size_t words = ((size_t)n_post + 63) / 64, swords = (words + 63) / 64;
    cx_size *tb = malloc(((size_t)nt + 1) * sizeof(cx_size));
    cx_size *fp = malloc(((size_t)n_pre + 1) * sizeof(cx_size));
    cx_index *cnt = malloc((size_t)n_pre * sizeof(cx_index));
    cx_index *low = malloc((size_t)n_pre * sizeof(cx_index)); /* drops, a lower bound */
    /* fresh[i] is set only for the rows marked low[i] = -1 by the reserve
     * (a few): not zeroed, so its pages are touched only there (a fresh
     * calloc of n_pre entries cost page faults on every call) */
    cx_row *fresh = malloc((size_t)n_pre * sizeof(cx_row));
    /* per thread: a bitmap over the free slots and its word summaries */
    uint64_t *bits = calloc((size_t)nt * (words + 4 * swords) + 1, sizeof(uint64_t));
    cx_index *ubuf = NULL, *sp = NULL;
    cx_real *sc = NULL, *wbuf = NULL;
    cx_row *spares = NULL; /* two per thread (see merge_dst) */
    if (!tb || !fp || !cnt || !low || !fresh || !bits)
        goto out;

    /* ---- 1. the cut, and 2. the per-row counts: drawn during the cut's
     * read pass when it has one */
    fp[0] = 0;
    for (cx_index i = 0; i < n_pre; i++)
        fp[i + 1] = fp[i] + (n_post - rows[i].n);
    cx_split_job sj = {fp, n, seed, cnt, 0};
    uint32_t T;
    cx_size r_ties = 0;
    if (n == N) { /* every key is below 0x7f800002 */
        T = 0x7f800002u;
        for (int t = 0; t < nt; t++)
            tb[t] = 0;
        for (cx_index i = 0; i < n_pre; i++)
            low[i] = rows[i].n;
    } else if (cx_prune_cut(proj, n, nt, &T, &r_ties, tb, low, &sj) != CX_OK) {
        goto out;
    }
    if (!sj.done)
        cx_split_rows(fp, n_pre, n, seed, nt, cnt);

    /* per thread, sized by the largest row: new positions and weights
     * (+ a sentinel) and the scratch row (+ room for vector stores) */
    cx_index maxc = 0, maxo = 0;
    for (cx_index i = 0; i < n_pre; i++) {
        if (cnt[i] > maxc)
            maxc = cnt[i];
        if (rows[i].n + cnt[i] > maxo)
            maxo = rows[i].n + cnt[i];
    }
    size_t nu = (size_t)maxc + 1, ncol = (size_t)maxo + 17;
    ubuf = malloc((size_t)nt * 2 * nu * sizeof(cx_index));
    wbuf = malloc((size_t)nt * 2 * nu * sizeof(cx_real));
    sp = malloc((size_t)nt * 2 * ncol * sizeof(cx_index));
    sc = malloc((size_t)nt * 2 * ncol * CX_N_COLS * sizeof(cx_real));
    spares = calloc((size_t)nt * 2, sizeof(cx_row));
    if (!ubuf || !wbuf || !sp || !sc || !spares)
        goto out;

    /* ---- 3. reserve: fresh arrays for every row that may outgrow its
     * capacity: n - low_i + c_i > cap, low_i the drops the cut's scan
     * already counted (the keys below its bracket), so most rows stay in
     * place; sized by the growth rule of cx_row_reserve and one more
     * entry (the portable merge writes a dropped synapse before
     * overwriting it) */
    int fail = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(| : fail)
#endif
    for (int t = 0; t < nt; t++) {
        cx_index lo, hi;
        cx_index_chunk(n_pre, t, nt, &lo, &hi);
        for (cx_index i = lo; i < hi && !fail; i++) {
            cx_row *r = &rows[i];
            cx_size need = (cx_size)r->n - low[i] + cnt[i];
            if (need <= r->cap)
                continue;
            cx_size c2 = (cx_size)r->cap + r->cap / 8 + 4;
            if (c2 > n_post)
                c2 = n_post; /* need <= n_post: n + c_i <= n + free_i */
            cx_index cap = (cx_index)(c2 > need + 1 ? c2 : need + 1);
            cx_row *f = &fresh[i];
            memset(f, 0, sizeof(*f));
            low[i] = -1; /* low_i is not used after this: row i has fresh[i] */
            f->post = malloc((size_t)cap * sizeof(cx_index));
            f->cap = cap;
            fail |= f->post == NULL;
        }
        /* each column's arrays after all the post[] arrays, one kind at a
         * time, so that one kind's arrays lie together in the heap (see
         * rows_exact_cap in random.c) */
        for (int a = 0; a < CX_N_COLS && !fail; a++) {
            if (!((cols >> a) & 1u))
                continue;
            for (cx_index i = lo; i < hi && !fail; i++)
                if (low[i] < 0) {
                    fresh[i].col[a] = malloc((size_t)fresh[i].cap * sizeof(cx_real));
                    fail |= fresh[i].col[a] == NULL;
                }
        }
        for (int s = 0; s < 2 && !fail; s++) {
            cx_row *e = &spares[2 * t + s];
            e->cap = (cx_index)ncol;
            e->post = malloc(ncol * sizeof(cx_index));
            fail |= e->post == NULL;
            for (int a = 0; a < CX_N_COLS && !fail; a++)
                if ((cols >> a) & 1u) {
                    e->col[a] = malloc(ncol * sizeof(cx_real));
                    fail |= e->col[a] == NULL;
                }
        }
    }
    if (fail) {
        for (cx_index i = 0; i < n_pre; i++)
            if (low[i] < 0)
                fresh_free(&fresh[i]);
        goto out;
    }

    /* ---- 4. commit: cannot fail */
    cx_perm8 ptab;
    const cx_perm8 *vt = NULL;
    int v512 = CX_CPU_HAS("avx512f"), pvec = CX_PICK_VEC;
    int dq = CX_CPU_HAS("avx512dq");
    cx_zig ztab;
    const cx_zig *zt = NULL;
    if (init.kind == CX_INIT_NORMAL) {
        cx_zig_init(&ztab);
        zt = &ztab;
    }
    if (!v512 && CX_CPU_HAS("avx2")) {
        cx_perm8_init(&ptab);
        vt = &ptab;
    }
    (void)vt; /* unused without the x86-64 vector path */
    (void)v512;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; t++) {
        cx_index lo, hi;
        cx_index_chunk(n_pre, t, nt, &lo, &hi);
        cx_size tie = tb[t];
        uint64_t *bt = bits + (size_t)t * (words + 4 * swords), *sm = bt + words;
        /* picks and new weights for two rows at a time (the AVX-512
         * pair path); two scratch rows */
        cx_index *u = ubuf + (size_t)t * 2 * nu, *u2 = u + nu;
        cx_real *wn = wbuf + (size_t)t * 2 * nu, *wn2 = wn + nu;
        (void)u2;
        (void)wn2;
        cx_row scr = {0}, scr2 = {0}, *spare = spares + 2 * t;
        scr.post = sp + (size_t)t * 2 * ncol;
        scr2.post = scr.post + ncol;
        for (int a = 0; a < CX_N_COLS; a++) {
            scr.col[a] = sc + ((size_t)t * 2 * CX_N_COLS + (size_t)a) * ncol;
            scr2.col[a] = sc + ((size_t)t * 2 * CX_N_COLS + CX_N_COLS + (size_t)a) * ncol;
        }
        for (cx_index i = lo; i < hi; i++) {
            cx_row *r = &rows[i];
            cx_row *f = low[i] < 0 ? &fresh[i] : NULL;
            cx_index o;
            /* row i's positions and weights: two streams (seed, i) */
            uint64_t x = cx_rng_stream(seed ^ CX_DOM_RWROW, (uint64_t)i);
            uint64_t xw = cx_rng_stream(seed ^ CX_DOM_RWW, (uint64_t)i);
            cx_pick_row(&x, bt, sm, swords, n_post - r->n, cnt[i], u, pvec);
            draw_row_weights(init, zt, &xw, wn, cnt[i], dq);
            u[cnt[i]] = INT32_MAX;
#ifdef CX_REWIRE_AVX2
            if (v512 && i + 1 < hi) {
                /* rows i and i + 1 together */
                cx_row *r2 = &rows[i + 1];
                if (i + 2 < hi)
                    prefetch_row(&rows[i + 2]);
                if (i + 3 < hi)
                    prefetch_row(&rows[i + 3]);
                uint64_t x2 = cx_rng_stream(seed ^ CX_DOM_RWROW, (uint64_t)(i + 1));
                uint64_t xw2 = cx_rng_stream(seed ^ CX_DOM_RWW, (uint64_t)(i + 1));
                cx_pick_row(&x2, bt, sm, swords, n_post - r2->n, cnt[i + 1], u2, pvec);
                draw_row_weights(init, zt, &xw2, wn2, cnt[i + 1], dq);
                u2[cnt[i + 1]] = INT32_MAX;
                cx_index o2;
                cx_row *d = merge_dst(r, cnt[i], low[i], &spare[0], &scr);
                cx_row *d2 = merge_dst(r2, cnt[i + 1], low[i + 1], &spare[1], &scr2);
                merge_pair_avx512(cols, r, d, u, cnt[i], wn, r2, d2, u2, cnt[i + 1], wn2, T, &tie,
                                  r_ties, &o, &o2, i + 2 < hi ? &rows[i + 2] : NULL,
                                  i + 3 < hi ? &rows[i + 3] : NULL);
                commit_row(cols, r, f, d, &spare[0], o);
                commit_row(cols, r2, low[i + 1] < 0 ? &fresh[i + 1] : NULL, d2, &spare[1], o2);
                i++;
                continue;
            }
#endif
            if (i + 1 < hi)
                prefetch_row(&rows[i + 1]);
            cx_row *d = merge_dst(r, cnt[i], low[i], &spare[0], &scr);
#ifdef CX_REWIRE_AVX2
            if (v512)
                o = row_merge_avx512(cols, r, d, u, cnt[i], wn, T, &tie, r_ties,
                                     i + 1 < hi ? &rows[i + 1] : NULL);
            else if (vt) /* merged in the scratch row (vector stores need room) */
                o = row_merge_avx2(cols, r, d, u, cnt[i], wn, T, &tie, r_ties, vt);
            else
#endif
            if (f) {
                /* straight into the fresh arrays (room: a dropped entry is
                 * written at o <= the new length < cap), then install them */
                o = row_merge(cols, r, f, u, cnt[i], wn, T, &tie, r_ties);
                cx_row_free(r);
                *r = *f;
                r->n = o;
                continue;
            } else {
                o = row_merge(cols, r, d, u, cnt[i], wn, T, &tie, r_ties);
            }
            /* install: fresh arrays, the spare's, or in place */
            commit_row(cols, r, f, d, &spare[0], o);
        }
    }
    st = CX_OK; /* n_synapses unchanged: n dropped, n added */
out:
    if (spares) /* the last rows' old arrays, or spares never used */
        for (int s = 0; s < 2 * nt; s++)
            cx_row_free(&spares[s]);
    free(spares);
    free(tb);
    free(fp);
    free(cnt);
    free(low);
    free(fresh);
    free(bits);
    free(ubuf);
    free(wbuf);
    free(sp);
    free(sc);
    return st;
}
