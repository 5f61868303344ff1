/*
 * optim.c -- optimiser steps (SGD with momentum, Adam, weight decay, L1)
 * over the weight, gradient and state columns of a projection's rows, and
 * over plain arrays (a population's biases).
 *
 * The rules and the exact float32 operation order are documented once, in
 * connectome.h.  Every parameter is updated on its own, so there is no
 * reduction except the integer count of exact zeros: the result is bitwise
 * identical for any thread count.  Nothing here allocates.
 */
#include "internal.h"

/* Below this many synapses a step runs on one thread (the fork costs more). */
#define OPTIM_PARALLEL_MIN 32768

/* The per-call coefficients, rounded to float32 once (connectome.h). */
typedef struct {
    cx_optim_kind kind;
    int n_state;                      /* 0, 1 or 2 state arrays */
    int decay, prox;                  /* weight_decay > 0; l1 > 0 (in float32) */
    cx_real lr, wd, lam;              /* lam = lr * l1 */
    cx_real mom;                      /* SGD */
    cx_real b1, c1, b2, c2;           /* Adam: beta1, 1 - beta1, beta2, 1 - beta2 */
    cx_real eps, step_size, bc2_sqrt; /* Adam: lr / (1 - beta1^t), sqrt(1 - beta2^t) */
} coef;

static int finite_nonneg(double x) { return isfinite(x) && x >= 0; }
static int finite_f32(double x) { return isfinite((cx_real)x); }

/*
 * Check opt and fill c.  Returns 0 for an invalid optimiser: a parameter
 * out of range, or one that is not finite (or turns 0) in float32.
 */
static int coef_init(const cx_optim *o, coef *c) {
    if (!o || !(isfinite(o->lr) && o->lr > 0) || !finite_nonneg(o->weight_decay) ||
        !finite_nonneg(o->l1))
        return 0;
    memset(c, 0, sizeof(*c));
    c->kind = o->kind;
    c->lr = (cx_real)o->lr;
    c->wd = (cx_real)o->weight_decay;
    c->lam = (cx_real)(o->lr * o->l1);
    if (!(c->lr > 0) || !finite_f32(o->lr) || !finite_f32(o->weight_decay) ||
        !isfinite(c->lam))
        return 0;
    c->decay = c->wd > 0;
    c->prox = c->lam > 0;
    switch (o->kind) {
    case CX_OPTIM_SGD:
        if (!finite_nonneg(o->momentum) || !finite_f32(o->momentum))
            return 0;
        c->mom = (cx_real)o->momentum;
        c->n_state = c->mom > 0 ? 1 : 0;
        return 1;
    case CX_OPTIM_ADAM: {
        if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
            !(isfinite(o->eps) && o->eps > 0) || o->step < 1)
            return 0;
        double bc1 = 1.0 - pow(o->beta1, (double)o->step);
        double bc2 = 1.0 - pow(o->beta2, (double)o->step);
        c->b1 = (cx_real)o->beta1;
        c->c1 = (cx_real)(1.0 - o->beta1);
        c->b2 = (cx_real)o->beta2;
        c->c2 = (cx_real)(1.0 - o->beta2);
        c->eps = (cx_real)o->eps;
        c->step_size = (cx_real)(o->lr / bc1);
        c->bc2_sqrt = (cx_real)sqrt(bc2);
        /* beta < 1 gives bc > 0 in double; its float32 image must stay usable. */
        if (!(c->eps > 0) || !isfinite(c->step_size) || !(c->bc2_sqrt > 0))
            return 0;
        c->n_state = 2;
        return 1;
    }
    }
    return 0;
}

int cx_optim_n_state(const cx_optim *opt) {
    coef c;
    return coef_init(opt, &c) ? c.n_state : -1;
}

/* w = sign(w) * max(|w| - lam, 0); lam > 0.  Exactly +0 when it clips. */
static inline cx_real soft_threshold(cx_real w, cx_real lam) {
    cx_real a = fabsf(w) - lam;
    return a > 0 ? copysignf(a, w) : 0.0f;
}

/*
 * The step on n parameters: w[n], grad[n], s0[n] / s1[n] as c->n_state says
 * (unused ones may be NULL).  Returns how many weights are exactly 0 after
 * the step.  One loop per rule, so each vectorises on its own.
 */
static cx_size update(const coef *c, cx_size n, cx_real *restrict w, const cx_real *restrict grad,
                      cx_real *restrict s0, cx_real *restrict s1) {
    const cx_real lr = c->lr, wd = c->decay ? c->wd : 0.0f;
    const int decay = c->decay;
    if (c->kind == CX_OPTIM_SGD && c->n_state == 0) {
        for (cx_size j = 0; j < n; j++) {
            cx_real g = decay ? grad[j] + wd * w[j] : grad[j];
            w[j] = w[j] - lr * g;
        }
    } else if (c->kind == CX_OPTIM_SGD) {
        const cx_real mom = c->mom;
        for (cx_size j = 0; j < n; j++) {
            cx_real g = decay ? grad[j] + wd * w[j] : grad[j];
            cx_real b = mom * s0[j] + g;
            s0[j] = b;
            w[j] = w[j] - lr * b;
        }
    } else {
        const cx_real b1 = c->b1, c1 = c->c1, b2 = c->b2, c2 = c->c2;
        const cx_real eps = c->eps, step_size = c->step_size, bc2_sqrt = c->bc2_sqrt;
        for (cx_size j = 0; j < n; j++) {
            cx_real g = decay ? grad[j] + wd * w[j] : grad[j];
            cx_real m = b1 * s0[j] + c1 * g;
            cx_real v = b2 * s1[j] + c2 * (g * g);
            s0[j] = m;
            s1[j] = v;
            cx_real denom = sqrtf(v) / bc2_sqrt + eps;
            w[j] = w[j] - step_size * (m / denom);
        }
    }
    cx_size zeros = 0;
    if (c->prox) {
        const cx_real lam = c->lam;
        for (cx_size j = 0; j < n; j++) {
            cx_real x = soft_threshold(w[j], lam);
            w[j] = x;
            zeros += x == 0.0f;
        }
    } else {
        for (cx_size j = 0; j < n; j++)
            zeros += w[j] == 0.0f;
    }
    return zeros;
}

/*
 * Rows are independent: a static split over rows, each row updated by
 * update() above.  The zero count is an integer reduction (exact).
 * EINVAL (nothing changed) for a bad optimiser or a missing column.
 */
cx_status cx_proj_optim_step(cx_proj *proj, const cx_optim *opt, int n_threads, cx_size *n_zero) {
    coef c;
    if (n_zero)
        *n_zero = 0;
    if (!proj || !coef_init(opt, &c) || !CX_COL_ON(proj, CX_COL_GRAD))
        return CX_EINVAL;
    if ((c.n_state >= 1 && !CX_COL_ON(proj, CX_COL_STATE0)) ||
        (c.n_state >= 2 && !CX_COL_ON(proj, CX_COL_STATE1)))
        return CX_EINVAL;
    int nt = cx_clamp_threads(n_threads);
    (void)nt;
    cx_row *rows = proj->rows;
    cx_index n_pre = proj->n_pre;
    cx_size zeros = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : zeros) \
    if (proj->n_synapses >= OPTIM_PARALLEL_MIN)
#endif
    for (cx_index i = 0; i < n_pre; i++) {
        cx_row *r = &rows[i];
        if (r->n == 0)
            continue;
        zeros += update(&c, r->n, r->col[CX_COL_WEIGHT], r->col[CX_COL_GRAD], r->col[CX_COL_STATE0],
                        r->col[CX_COL_STATE1]);
    }
    if (n_zero)
        *n_zero = zeros;
    return CX_OK;
}

cx_status cx_optim_update(const cx_optim *opt, cx_size n, cx_real *w, const cx_real *grad,
                          cx_real *s0, cx_real *s1, cx_size *n_zero) {
    coef c;
    if (n_zero)
        *n_zero = 0;
    if (!coef_init(opt, &c) || n < 0)
        return CX_EINVAL;
    if (n == 0)
        return CX_OK;
    if (!w || !grad || (c.n_state >= 1 && !s0) || (c.n_state >= 2 && !s1))
        return CX_EINVAL;
    cx_size zeros = update(&c, n, w, grad, s0, s1);
    if (n_zero)
        *n_zero = zeros;
    return CX_OK;
}

cx_size cx_proj_capacity(const cx_proj *proj) {
    if (!proj)
        return 0;
    cx_size cap = 0;
    for (cx_index i = 0; i < proj->n_pre; i++)
        cap += proj->rows[i].cap;
    return cap;
}
