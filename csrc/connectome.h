/*
 * connectome.h -- the whole public C API of the connectome core.
 *
 * A projection (cx_proj) holds every synapse from one source population of
 * n_pre neurons to one target population of n_post neurons.  Each
 * presynaptic neuron owns one row: its outgoing synapses as strictly
 * increasing target ids (cx_index) and, column by column, one cx_real per
 * synapse (the weight, and optionally its gradient and optimiser state).
 * Nothing is stored for an absent synapse.
 *
 * Conventions
 *   - Every call returns a cx_status, a pointer (NULL means out of memory)
 *     or is a getter that cannot fail.  Nothing prints, aborts or sets errno.
 *   - A call that fails leaves the projection exactly as it was.
 *   - Activations cross this API neuron-major: an (N, B) row-major array,
 *     x[i * B + b] is neuron i in sample b.  The Python layer transposes the
 *     user's (B, N) arrays at the boundary.
 *   - n_threads >= 1 is explicit everywhere; results never depend on it
 *     (bitwise), because every output element has exactly one writer and is
 *     summed in a fixed order.
 *   - Randomness comes only from the caller's seed (no global state): the
 *     same seed gives the same result for any n_threads.
 *
 * No Python.h and no numpy here: the core can be tested and used from C.
 */
#ifndef CONNECTOME_H
#define CONNECTOME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t cx_index; /* neuron ids and row lengths (the one place to widen) */
typedef int64_t cx_size;  /* synapse counts and positions, N * B products */
typedef float cx_real;    /* weights, activations, gradients */

typedef enum {
    CX_OK = 0,
    CX_ENOMEM = -1,   /* an allocation failed */
    CX_EINDEX = -2,   /* a neuron id is out of range */
    CX_EEXIST = -3,   /* a synapse to add already exists */
    CX_ENOENT = -4,   /* a synapse to remove does not exist */
    CX_EDUP = -5,     /* the same (pre, post) twice in one batch */
    CX_EINVAL = -6,   /* any other bad argument (negative count, bad enum...) */
    CX_ENOSPACE = -7, /* fewer free (absent) synapse slots than requested */
} cx_status;

typedef enum { CX_LINEAR = 0, CX_RELU = 1, CX_TANH = 2, CX_SIGMOID = 3 } cx_activation;

/* Per-synapse columns.  The weight column always exists; the others are
 * allocated on request (cx_proj_col_enable) and then move with every
 * structural edit: a surviving synapse keeps its values, a new synapse
 * starts at 0 in every column but the weight, a removed one frees them. */
enum {
    CX_COL_WEIGHT = 0,
    CX_COL_GRAD = 1,
    CX_COL_STATE0 = 2, /* optimiser state, e.g. momentum or Adam's m */
    CX_COL_STATE1 = 3, /* optimiser state, e.g. Adam's v */
    CX_N_COLS = 4
};

/* How new weights are drawn: CONST -> a; UNIFORM -> [a, b); NORMAL -> mean a, sd b. */
typedef enum { CX_INIT_CONST = 0, CX_INIT_UNIFORM = 1, CX_INIT_NORMAL = 2 } cx_init_kind;
typedef struct {
    cx_init_kind kind;
    cx_real a, b;
} cx_init;

typedef struct cx_proj cx_proj; /* opaque; layout in internal.h */

/* ------------------------------------------------------------------ misc */
const char *cx_strerror(cx_status status); /* static string, never NULL */
int cx_openmp_enabled(void);               /* 1 if built with OpenMP */

/* ------------------------------------------------------------- lifecycle */
/* Owned: an empty projection (no synapses).  NULL if n_pre or n_post is
 * negative or on allocation failure.  Release with cx_proj_free (NULL-safe). */
cx_proj *cx_proj_new(cx_index n_pre, cx_index n_post);
void cx_proj_free(cx_proj *proj);

cx_index cx_proj_n_pre(const cx_proj *proj);
cx_index cx_proj_n_post(const cx_proj *proj);
cx_size cx_proj_n_synapses(const cx_proj *proj);
/* Heap bytes owned by the projection (row directory + every row's capacity
 * in every enabled column).  The honest numerator for bytes per synapse. */
size_t cx_proj_nbytes(const cx_proj *proj);
/* Release the slack capacity of every row (capacity = length). */
cx_status cx_proj_shrink(cx_proj *proj);

/* --------------------------------------------------------------- columns */
int cx_proj_col_enabled(const cx_proj *proj, int col);
/* Allocate column col, zero-filled, for every row.  No-op if enabled.
 * EINVAL for a bad col; ENOMEM leaves it disabled. */
cx_status cx_proj_col_enable(cx_proj *proj, int col);
/* Free column col.  EINVAL for CX_COL_WEIGHT or a bad col; no-op if disabled. */
cx_status cx_proj_col_disable(cx_proj *proj, int col);
/* Set every value of an enabled column (e.g. zero the gradients). EINVAL if disabled. */
cx_status cx_proj_col_fill(cx_proj *proj, int col, cx_real value, int n_threads);

/* --------------------------------------------------------- construction */
/*
 * Give every row `fanout` distinct uniformly random targets, weights drawn
 * from init.  Requires an empty projection.
 *
 * Input:   fanout in [0, n_post], init, seed
 * Note:    row i draws from a stream derived from (seed, i), so the result
 *          does not depend on n_threads.
 * Errors:  EINVAL (not empty, fanout out of range, bad init), ENOMEM.
 * Complexity: O(n_synapses + n_pre * n_post / 64)
 */
cx_status cx_proj_fill_random(cx_proj *proj, cx_index fanout, cx_init init, uint64_t seed,
                              int n_threads);

/* ---------------------------------------------------------------- export */
/*
 * Copy the synapses out in (pre, post) order.
 * Output:  pre[n_synapses], post[n_synapses], w[n_synapses]; each may be NULL.
 */
cx_status cx_proj_export(const cx_proj *proj, cx_index *pre, cx_index *post, cx_real *w);
/* out[n_synapses] = column col in export order (zeros if the column is disabled). */
cx_status cx_proj_col_export(const cx_proj *proj, int col, cx_real *out);
/* Column col = in[n_synapses], export order.  EINVAL if disabled. */
cx_status cx_proj_col_import(cx_proj *proj, int col, const cx_real *in);
/* out[n_pre] = row lengths (fan-out); out[n_post] = fan-in counts. */
cx_status cx_proj_fanout(const cx_proj *proj, cx_index *out);
cx_status cx_proj_fanin(const cx_proj *proj, cx_index *out);
/* Row length of pre neuron i (*n), then copy it: post[*n], w[*n] (may be NULL). */
cx_status cx_proj_row_length(const cx_proj *proj, cx_index pre, cx_index *n);
cx_status cx_proj_row_copy(const cx_proj *proj, cx_index pre, cx_index *post, cx_real *w);

/* ----------------------------------------------------------------- edits */
/*
 * Add a batch of synapses (any order).
 * Input:   pre[n], post[n], w[n]
 * Output:  *err_at (may be NULL): on EINDEX/EDUP/EEXIST, the batch position
 *          of the first offending entry (after sorting, the smallest
 *          (pre, post) at fault; reported as its position in the input); else -1.
 * Note:    sorted by row, then each touched row is merged once.  New
 *          synapses get 0 in every enabled column but the weight.
 * Errors:  EINDEX, EDUP, EEXIST, EINVAL (n < 0), ENOMEM.  Atomic.
 * Complexity: O(n log n + sum of touched row lengths)
 */
cx_status cx_proj_add(cx_proj *proj, cx_size n, const cx_index *pre, const cx_index *post,
                      const cx_real *w, cx_size *err_at);
/* Remove a batch of existing synapses.  EINDEX, EDUP, ENOENT (+ *err_at). Atomic. */
cx_status cx_proj_remove(cx_proj *proj, cx_size n, const cx_index *pre, const cx_index *post,
                         cx_size *err_at);
/* Remove every synapse with |w| < threshold (NaN weights are removed too).
 * *n_removed (may be NULL) gets the count.  Never allocates. O(n_synapses) */
cx_status cx_proj_prune_threshold(cx_proj *proj, cx_real threshold, int n_threads,
                                  cx_size *n_removed);
/* Remove exactly n synapses: the n smallest |w|, ties broken by (pre, post)
 * order.  EINVAL if n < 0 or n > n_synapses.  O(n_synapses) */
cx_status cx_proj_prune_count(cx_proj *proj, cx_size n, int n_threads, cx_size *n_removed);
/*
 * Draw n distinct absent (pre, post) pairs uniformly at random.
 * Output:  pre[n], post[n], sorted by (pre, post).
 * Errors:  ENOSPACE if fewer than n slots are free; EINVAL if n < 0.
 */
cx_status cx_proj_sample_absent(const cx_proj *proj, cx_size n, uint64_t seed, cx_index *pre,
                                cx_index *post);
/* Sample n absent pairs as above and insert them with weights from init.
 * ENOSPACE, EINVAL, ENOMEM.  Atomic. */
cx_status cx_proj_grow(cx_proj *proj, cx_size n, cx_init init, uint64_t seed, int n_threads);
/*
 * SET-style rewiring in one pass: remove the n smallest-|w| synapses (the
 * same choice as cx_proj_prune_count, ties by (pre, post) order) and add n
 * new synapses at uniformly random slots that were absent before the call
 * (so a synapse just removed is never regrown in the same call), weights
 * from init.  Synapse count unchanged.  ENOSPACE if fewer than n slots were
 * absent; EINVAL for n < 0 or n > n_synapses or a bad init.  Atomic.
 * Result independent of n_threads.
 */
cx_status cx_proj_rewire(cx_proj *proj, cx_size n, cx_init init, uint64_t seed, int n_threads);

/* ---------------------------------------------------- neurons (in place) */
/* Append n_new presynaptic neurons (rows n_pre .. n_pre+n_new-1), each with
 * `fanout` distinct random targets and weights from init.  Atomic. */
cx_status cx_proj_add_pre(cx_proj *proj, cx_index n_new, cx_index fanout, cx_init init,
                          uint64_t seed);
/* Append n_new postsynaptic neurons (ids n_post .. n_post+n_new-1); each
 * gets `fanin` distinct random presynaptic neurons, weights from init.
 * Their ids are the largest, so each insert is an append.  Atomic. */
cx_status cx_proj_add_post(cx_proj *proj, cx_index n_new, cx_index fanin, cx_init init,
                           uint64_t seed);
/* Remove presynaptic neurons idx[n] (strictly increasing, in range; else
 * EINVAL/EINDEX): their rows are freed and later rows move down, as
 * np.delete would renumber them.  Never allocates. */
cx_status cx_proj_remove_pre(cx_proj *proj, cx_index n, const cx_index *idx);
/* Remove postsynaptic neurons idx[n] (strictly increasing, in range):
 * every synapse to them is removed and later ids are renumbered down.
 * Never allocates.  O(n_synapses * log n) */
cx_status cx_proj_remove_post(cx_proj *proj, cx_index n, const cx_index *idx, int n_threads);

/* --------------------------------------------------------------- kernels */
/*
 * y[post, :] += w * x[pre, :] for every synapse (scatter over the rows).
 *
 * Input:   x[n_pre * B]    neuron-major, read-only
 * Output:  y[n_post * B]   preallocated, ACCUMULATED into (zero it first)
 * Threads: each thread owns a range of targets and walks its slice of every
 *          row, target tile by target tile; bitwise identical for any n_threads.
 * Note:    B == 0 is a no-op.  Allocation-free.
 * Complexity: O(n_synapses * B)
 */
cx_status cx_proj_forward(const cx_proj *proj, cx_index B, const cx_real *x, cx_real *y,
                          int n_threads);
/*
 * Gather over the same rows, in one pass:
 *   dx[pre, :] += sum over the row of w * dy[post, :]       (if dx != NULL)
 *   grad[s]    += dot(x[pre, :], dy[post, :])               (if accumulate_grad)
 *
 * Input:   x[n_pre * B], dy[n_post * B]
 * Output:  dx[n_pre * B] accumulated (may be NULL); the CX_COL_GRAD column
 *          (must be enabled when accumulate_grad, else EINVAL).
 * Threads: each thread owns a range of rows; bitwise identical for any n_threads.
 * Complexity: O(n_synapses * B)
 */
cx_status cx_proj_backward(cx_proj *proj, cx_index B, const cx_real *x, const cx_real *dy,
                           cx_real *dx, int accumulate_grad, int n_threads);
/*
 * a = act(z + bias[i]) in place, for a population of n neurons.
 * Input:   z[n * B] (in: summed input; out: activation), bias[n] (may be NULL)
 */
cx_status cx_pop_forward(cx_index n, cx_index B, cx_real *z, const cx_real *bias,
                         cx_activation act, int n_threads);
/*
 * d = d * act'(.) in place, expressed through the activation a itself
 * (relu: a > 0; tanh: 1 - a^2; sigmoid: a (1 - a)).
 * Input:   a[n * B] the forward output; d[n * B] in: dL/da, out: dL/dz
 * Output:  bias_grad[n] += sum over the batch of dL/dz (may be NULL)
 */
cx_status cx_pop_backward(cx_index n, cx_index B, const cx_real *a, cx_real *d,
                          cx_real *bias_grad, cx_activation act, int n_threads);

/* ------------------------------------------------------------ optimisers */
/*
 * One optimiser step over per-synapse (or per-neuron) parameters, with the
 * update rules of torch.optim.SGD and torch.optim.Adam:
 *
 *   g = grad + weight_decay * w                  (L2 added to the gradient)
 *   SGD, momentum == 0:   w = w - lr * g                            (no state)
 *   SGD, momentum  > 0:   b = momentum * b + g;  w = w - lr * b     (b: STATE0)
 *   Adam:  m = beta1 * m + (1 - beta1) * g                          (m: STATE0)
 *          v = beta2 * v + (1 - beta2) * (g * g)                    (v: STATE1)
 *          w = w - step_size * (m / (sqrt(v) / bc2_sqrt + eps))
 *          step_size = lr / (1 - beta1^t),  bc2_sqrt = sqrt(1 - beta2^t)
 *   then, if l1 > 0, the proximal L1 step (soft threshold by lr * l1):
 *          w = sign(w) * max(|w| - lr * l1, 0)     (weights reach exactly 0)
 *
 * Arithmetic: every per-element operation is float32 in exactly the order
 * written above; the coefficients (momentum, beta1, 1 - beta1, beta2,
 * 1 - beta2, eps, lr, step_size, bc2_sqrt, lr * l1, weight_decay) are
 * computed in double and rounded to float32 once per call.  A numpy float32
 * re-implementation in that order reproduces the result bitwise.
 * torch's buf = grad on the first SGD step is momentum * 0 + grad here
 * (state starts at 0, as it does for every new synapse); torch's dampening,
 * nesterov and amsgrad are not offered (their defaults: 0, False, False).
 */
typedef enum { CX_OPTIM_SGD = 0, CX_OPTIM_ADAM = 1 } cx_optim_kind;
typedef struct {
    cx_optim_kind kind;
    double lr;           /* > 0, finite */
    double momentum;     /* SGD: >= 0, finite (0: no state column) */
    double beta1, beta2; /* Adam: in [0, 1) */
    double eps;          /* Adam: > 0, finite */
    double weight_decay; /* >= 0, finite */
    double l1;           /* >= 0, finite */
    int64_t step;        /* Adam: t >= 1, the step being taken (bias correction) */
} cx_optim;

/* Number of state columns the optimiser needs: 0 (plain SGD), 1 (SGD with
 * momentum: STATE0), 2 (Adam: STATE0, STATE1); -1 if opt is invalid. */
int cx_optim_n_state(const cx_optim *opt);
/*
 * One optimiser step on every synapse of the projection, row by row.
 *
 * Input:   opt (validated: EINVAL for any parameter out of range); the
 *          CX_COL_GRAD column and the cx_optim_n_state(opt) state columns
 *          must be enabled (else EINVAL, nothing changed)
 * Output:  the weight and state columns, updated in place;
 *          *n_zero (may be NULL) = synapses whose weight is exactly 0 (+-0)
 *          after the step, counted in the same pass
 * Threads: parallel over rows; every synapse is updated on its own, so the
 *          result is bitwise identical for any n_threads.
 * Note:    never allocates.  NaN/inf gradients propagate (as in torch).
 * Complexity: O(n_pre + n_synapses)
 */
cx_status cx_proj_optim_step(cx_proj *proj, const cx_optim *opt, int n_threads, cx_size *n_zero);
/*
 * The same step on n plain parameters (e.g. a population's biases).
 * Input:   grad[n]
 * Output:  w[n], s0[n], s1[n] updated in place (s0 / s1 may be NULL when
 *          the optimiser needs fewer state arrays, else EINVAL);
 *          *n_zero (may be NULL) as above.
 * Complexity: O(n)
 */
cx_status cx_optim_update(const cx_optim *opt, cx_size n, cx_real *w, const cx_real *grad,
                          cx_real *s0, cx_real *s1, cx_size *n_zero);
/* Total row capacity (synapse slots allocated in every enabled column,
 * >= n_synapses): nbytes = overhead + capacity * bytes per slot. O(n_pre) */
cx_size cx_proj_capacity(const cx_proj *proj);

#ifdef __cplusplus
}
#endif
#endif /* CONNECTOME_H */
