/*
 * population.c -- per-neuron kernels of a population of n neurons:
 * bias + activation forward, activation derivative + bias gradient backward.
 *
 * Every element is computed independently (and each bias gradient by one
 * thread in a fixed order), so results never depend on n_threads.
 */
#include "kernels.h"

/* Elements below which one thread does the whole population. */
#define POP_SERIAL_ELEMS ((cx_size)1 << 16)

static int act_valid(cx_activation act) {
    return act == CX_LINEAR || act == CX_RELU || act == CX_TANH || act == CX_SIGMOID;
}

/* The logistic function without overflow: exp() of a non-positive number
 * only, so it never returns inf/inf (NaN) for large |v|. */
static inline cx_real sigmoid(cx_real v) {
    if (v >= 0) {
        cx_real e = expf(-v);
        return 1.0f / (1.0f + e);
    }
    cx_real e = expf(v); /* v < 0, or NaN falls through to here: NaN out */
    return e / (1.0f + e);
}

/*
 * act(z[0..B) + bias) in place for one neuron.
 * Note:    relu keeps NaN (v < 0 is false for NaN) as torch does.
 */
static void neuron_forward(cx_real *restrict z, cx_real bias, cx_activation act, cx_index B) {
    switch (act) {
    case CX_RELU:
        for (cx_index b = 0; b < B; b++) {
            cx_real v = z[b] + bias;
            z[b] = v < 0 ? 0.0f : v;
        }
        break;
    case CX_TANH:
        for (cx_index b = 0; b < B; b++)
            z[b] = tanhf(z[b] + bias);
        break;
    case CX_SIGMOID:
        for (cx_index b = 0; b < B; b++)
            z[b] = sigmoid(z[b] + bias);
        break;
    case CX_LINEAR:
    default:
        if (bias != 0)
            for (cx_index b = 0; b < B; b++)
                z[b] += bias;
        break;
    }
}

/*
 * a = act(z + bias[i]) in place (see connectome.h).
 *
 * Input:   z[n * B] summed input, neuron-major; bias[n] (NULL: no bias)
 * Output:  z[n * B] overwritten with the activation
 * Threads: static split over neurons; elementwise, so bitwise identical
 *          for any n_threads.
 * Note:    EINVAL for n < 0, B < 0, an unknown act, or z == NULL with
 *          n * B > 0.  Adding a bias of exactly 0 is skipped (linear),
 *          which only differs from z + 0 for z = -0.0.
 * Complexity: O(n * B)
 */
cx_status cx_pop_forward(cx_index n, cx_index B, cx_real *z, const cx_real *bias,
                         cx_activation act, int n_threads) {
    if (n < 0 || B < 0 || !act_valid(act))
        return CX_EINVAL;
    cx_size total = (cx_size)n * B;
    if (total == 0)
        return CX_OK;
    if (z == NULL)
        return CX_EINVAL;
    if (act == CX_LINEAR && bias == NULL)
        return CX_OK; /* identity */
    int nt = cx_clamp_threads(n_threads);
    if (total < POP_SERIAL_ELEMS)
        nt = 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (cx_index i = 0; i < n; i++)
        neuron_forward(z + (cx_size)i * B, bias != NULL ? bias[i] : 0.0f, act, B);
    (void)nt;
    return CX_OK;
}

/*
 * d *= act'(.) for one neuron through its activation a; returns the sum
 * of the new d over the batch in a fixed order (8 lane sums in
 * increasing b, a fixed tree, then the tail in order).
 */
static cx_real neuron_backward(const cx_real *restrict a, cx_real *restrict d,
                               cx_activation act, cx_index B) {
    switch (act) {
    case CX_RELU:
        for (cx_index b = 0; b < B; b++)
            d[b] = a[b] > 0 ? d[b] : 0.0f;
        break;
    case CX_TANH:
        for (cx_index b = 0; b < B; b++)
            d[b] *= 1.0f - a[b] * a[b];
        break;
    case CX_SIGMOID:
        for (cx_index b = 0; b < B; b++)
            d[b] *= a[b] * (1.0f - a[b]);
        break;
    case CX_LINEAR:
    default:
        break;
    }
    cx_real s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    cx_index b = 0;
    for (; b + 8 <= B; b += 8)
        for (int j = 0; j < 8; j++)
            s[j] += d[b + j];
    cx_real r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (; b < B; b++)
        r += d[b];
    return r;
}

/*
 * d = d * act'(.) in place, and the bias gradient (see connectome.h).
 *
 * Input:   a[n * B] the forward output; d[n * B] dL/da
 * Output:  d[n * B] overwritten with dL/dz;
 *          bias_grad[n] += sum over the batch of dL/dz (NULL: skipped)
 * Threads: static split over neurons; each bias_grad[i] is summed by one
 *          thread in a fixed order: bitwise identical for any n_threads.
 * Note:    act' is expressed through a: relu a > 0, tanh 1 - a^2,
 *          sigmoid a (1 - a), linear 1 (a is then not read and may be
 *          NULL).  EINVAL for n < 0, B < 0, an unknown act, or a NULL
 *          array with n * B > 0.
 * Complexity: O(n * B)
 */
cx_status cx_pop_backward(cx_index n, cx_index B, const cx_real *a, cx_real *d,
                          cx_real *bias_grad, cx_activation act, int n_threads) {
    if (n < 0 || B < 0 || !act_valid(act))
        return CX_EINVAL;
    cx_size total = (cx_size)n * B;
    if (total == 0)
        return CX_OK;
    if (d == NULL || (a == NULL && act != CX_LINEAR))
        return CX_EINVAL;
    if (act == CX_LINEAR && bias_grad == NULL)
        return CX_OK; /* d is already dL/dz */
    int nt = cx_clamp_threads(n_threads);
    if (total < POP_SERIAL_ELEMS)
        nt = 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (cx_index i = 0; i < n; i++) {
        const cx_real *ai = act == CX_LINEAR ? NULL : a + (cx_size)i * B;
        cx_real g = neuron_backward(ai, d + (cx_size)i * B, act, B);
        if (bias_grad != NULL)
            bias_grad[i] += g;
    }
    (void)nt;
    return CX_OK;
}
