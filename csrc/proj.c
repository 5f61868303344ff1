/*
 * proj.c -- projection lifecycle, row capacity, columns and export.
 *
 * Memory layout: one directory of cx_row headers (doubling capacity, so
 * adding neurons moves headers, never row data) and, per row, one post[]
 * array plus one array per enabled column, all with the same capacity.
 * Rows are never shared; a failed allocation never loses row contents.
 */
#include "storage.h"

/* ------------------------------------------------------------ row helpers */

/*
 * Capacity policy (internal.h): max(need, cap + cap/8 + 4).  The growth
 * factor 1.125 keeps the slack of a churning projection near 12.5%
 * (about 9 B/synapse for weight + index) while repeated single inserts
 * stay amortised O(1); fill_random and add_pre allocate exactly instead.
 */

cx_status cx_row_reserve(const cx_proj *p, cx_row *r, cx_index need) {
    if (need <= r->cap)
        return CX_OK;
    /* max(need, cap + cap/8 + 4), computed wide and clamped to cx_index. */
    int64_t grow = (int64_t)r->cap + r->cap / 8 + 4;
    int64_t cap = grow > need ? grow : need;
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    /* Each array is reallocated in turn.  If one fails, the arrays already
     * enlarged keep their (unchanged) contents and r->cap keeps its old
     * value, which is still a valid lower bound for every array. */
    cx_index *post = realloc(r->post, (size_t)cap * sizeof(cx_index));
    if (!post)
        return CX_ENOMEM;
    r->post = post;
    for (int c = 0; c < CX_N_COLS; c++) {
        if (!CX_COL_ON(p, c))
            continue;
        cx_real *v = realloc(r->col[c], (size_t)cap * sizeof(cx_real));
        if (!v)
            return CX_ENOMEM;
        r->col[c] = v;
    }
    r->cap = (cx_index)cap;
    return CX_OK;
}

/* Free every array of r and zero the header (cap 0, NULL pointers). */
void cx_row_free(cx_row *r) {
    free(r->post);
    for (int c = 0; c < CX_N_COLS; c++)
        free(r->col[c]);
    memset(r, 0, sizeof(*r));
}

/*
 * Directory growth by doubling: adding neurons one at a time stays
 * amortised O(1) and only the headers move (rows keep their arrays).
 * On ENOMEM the directory is unchanged.
 */
cx_status cx_proj_reserve_rows(cx_proj *p, cx_index n_rows) {
    if (n_rows < 0)
        return CX_EINVAL;
    if (n_rows <= p->rows_cap)
        return CX_OK;
    int64_t cap = 2 * (int64_t)p->rows_cap;
    if (cap < n_rows)
        cap = n_rows;
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    cx_row *rows = realloc(p->rows, (size_t)cap * sizeof(cx_row));
    if (!rows)
        return CX_ENOMEM;
    /* Headers past n_pre are kept zero (empty rows, NULL arrays). */
    memset(rows + p->rows_cap, 0, (size_t)(cap - p->rows_cap) * sizeof(cx_row));
    p->rows = rows;
    p->rows_cap = (cx_index)cap;
    return CX_OK;
}

/* -------------------------------------------------------------- lifecycle */

/*
 * An empty projection: n_pre zeroed row headers (no row arrays yet) and
 * only the weight column enabled.  NULL on a negative size or ENOMEM.
 */
cx_proj *cx_proj_new(cx_index n_pre, cx_index n_post) {
    if (n_pre < 0 || n_post < 0)
        return NULL;
    cx_proj *p = calloc(1, sizeof(cx_proj));
    if (!p)
        return NULL;
    if (n_pre > 0) {
        p->rows = calloc((size_t)n_pre, sizeof(cx_row));
        if (!p->rows) {
            free(p);
            return NULL;
        }
    }
    p->n_pre = n_pre;
    p->n_post = n_post;
    p->rows_cap = n_pre;
    p->n_synapses = 0;
    p->cols = 1u; /* the weight column always exists */
    return p;
}

void cx_proj_free(cx_proj *proj) {
    if (!proj)
        return;
    for (cx_index i = 0; i < proj->n_pre; i++)
        cx_row_free(&proj->rows[i]);
    free(proj->rows);
    free(proj);
}

cx_index cx_proj_n_pre(const cx_proj *proj) { return proj ? proj->n_pre : 0; }
cx_index cx_proj_n_post(const cx_proj *proj) { return proj ? proj->n_post : 0; }
cx_size cx_proj_n_synapses(const cx_proj *proj) { return proj ? proj->n_synapses : 0; }

/*
 * Heap bytes: the struct, the whole directory (rows_cap headers) and every
 * row's capacity in post[] and in each enabled column.  Counts capacity,
 * not length, so slack left by pruning shows up until cx_proj_shrink.
 */
size_t cx_proj_nbytes(const cx_proj *proj) {
    if (!proj)
        return 0;
    size_t per = sizeof(cx_index);
    for (int c = 0; c < CX_N_COLS; c++)
        if (CX_COL_ON(proj, c))
            per += sizeof(cx_real);
    size_t total = sizeof(cx_proj) + (size_t)proj->rows_cap * sizeof(cx_row);
    for (cx_index i = 0; i < proj->n_pre; i++)
        total += (size_t)proj->rows[i].cap * per;
    return total;
}

/* Shrink one array to n entries; on failure the old (larger) block stays. */
static int shrink_array(void **a, cx_index n, size_t elem) {
    void *v = realloc(*a, (size_t)n * elem);
    if (!v)
        return 0;
    *a = v;
    return 1;
}

/*
 * Give every row capacity == length.  Contents never change; an empty row
 * frees its arrays.  A failed shrinking realloc (allowed by C, not seen in
 * practice) keeps the larger block and reports ENOMEM at the end.
 */
cx_status cx_proj_shrink(cx_proj *proj) {
    if (!proj)
        return CX_EINVAL;
    int ok = 1;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        cx_row *r = &proj->rows[i];
        if (r->cap == r->n)
            continue;
        if (r->n == 0) {
            cx_row_free(r);
            continue;
        }
        /* Setting cap = n is valid whatever happens: an array whose shrink
         * failed still has room for more than n entries. */
        ok &= shrink_array((void **)&r->post, r->n, sizeof(cx_index));
        for (int c = 0; c < CX_N_COLS; c++)
            if (r->col[c])
                ok &= shrink_array((void **)&r->col[c], r->n, sizeof(cx_real));
        r->cap = r->n;
    }
    return ok ? CX_OK : CX_ENOMEM;
}

/* ---------------------------------------------------------------- columns */

static int col_valid(int col) { return col >= 0 && col < CX_N_COLS; }

int cx_proj_col_enabled(const cx_proj *proj, int col) {
    return proj && col_valid(col) && CX_COL_ON(proj, col);
}

/*
 * Allocate column col zero-filled in every row with capacity (rows with
 * cap 0 keep NULL, as the invariant in storage.h says).  Atomic: on ENOMEM
 * the arrays allocated so far are freed and the bit stays clear.
 */
cx_status cx_proj_col_enable(cx_proj *proj, int col) {
    if (!proj || !col_valid(col))
        return CX_EINVAL;
    if (CX_COL_ON(proj, col))
        return CX_OK;
    /* Allocate every row's array first; only then flip the bit. */
    for (cx_index i = 0; i < proj->n_pre; i++) {
        cx_row *r = &proj->rows[i];
        if (r->cap == 0)
            continue;
        r->col[col] = calloc((size_t)r->cap, sizeof(cx_real));
        if (!r->col[col]) {
            for (cx_index j = 0; j < i; j++) {
                free(proj->rows[j].col[col]);
                proj->rows[j].col[col] = NULL;
            }
            return CX_ENOMEM;
        }
    }
    proj->cols |= 1u << col;
    return CX_OK;
}

cx_status cx_proj_col_disable(cx_proj *proj, int col) {
    if (!proj || !col_valid(col) || col == CX_COL_WEIGHT)
        return CX_EINVAL;
    if (!CX_COL_ON(proj, col))
        return CX_OK;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        free(proj->rows[i].col[col]);
        proj->rows[i].col[col] = NULL;
    }
    proj->cols &= ~(1u << col);
    return CX_OK;
}

/*
 * Set every value of an enabled column, e.g. zero the gradients before a
 * backward pass.  Rows are independent: parallel over rows when it pays.
 * Complexity: O(n_synapses)
 */
cx_status cx_proj_col_fill(cx_proj *proj, int col, cx_real value, int n_threads) {
    if (!proj || !col_valid(col) || !CX_COL_ON(proj, col))
        return CX_EINVAL;
    int nt = cx_storage_threads(n_threads);
    cx_row *rows = proj->rows;
    cx_index n_pre = proj->n_pre;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (proj->n_synapses > 65536)
#endif
    for (cx_index i = 0; i < n_pre; i++) {
        cx_real *v = rows[i].col[col];
        cx_index n = rows[i].n;
        for (cx_index j = 0; j < n; j++)
            v[j] = value;
    }
    return CX_OK;
}

/* ----------------------------------------------------------------- export */

/*
 * Export order is (pre, post): row by row, each row ascending.  Every
 * export and import below walks the rows in that same order, so
 * col_export / col_import line up with export's triples.
 * Complexity: O(n_pre + n_synapses)
 */
cx_status cx_proj_export(const cx_proj *proj, cx_index *pre, cx_index *post, cx_real *w) {
    if (!proj)
        return CX_EINVAL;
    cx_size o = 0;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        const cx_row *r = &proj->rows[i];
        if (r->n == 0)
            continue;
        if (pre)
            for (cx_index j = 0; j < r->n; j++)
                pre[o + j] = i;
        if (post)
            memcpy(post + o, r->post, (size_t)r->n * sizeof(cx_index));
        if (w)
            memcpy(w + o, r->col[CX_COL_WEIGHT], (size_t)r->n * sizeof(cx_real));
        o += r->n;
    }
    return CX_OK;
}

cx_status cx_proj_col_export(const cx_proj *proj, int col, cx_real *out) {
    if (!proj || !col_valid(col) || (!out && proj->n_synapses > 0))
        return CX_EINVAL;
    if (!CX_COL_ON(proj, col)) {
        for (cx_size s = 0; s < proj->n_synapses; s++)
            out[s] = 0;
        return CX_OK;
    }
    cx_size o = 0;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        const cx_row *r = &proj->rows[i];
        if (r->n)
            memcpy(out + o, r->col[col], (size_t)r->n * sizeof(cx_real));
        o += r->n;
    }
    return CX_OK;
}

cx_status cx_proj_col_import(cx_proj *proj, int col, const cx_real *in) {
    if (!proj || !col_valid(col) || !CX_COL_ON(proj, col) || (!in && proj->n_synapses > 0))
        return CX_EINVAL;
    cx_size o = 0;
    for (cx_index i = 0; i < proj->n_pre; i++) {
        cx_row *r = &proj->rows[i];
        if (r->n)
            memcpy(r->col[col], in + o, (size_t)r->n * sizeof(cx_real));
        o += r->n;
    }
    return CX_OK;
}

cx_status cx_proj_fanout(const cx_proj *proj, cx_index *out) {
    if (!proj || (!out && proj->n_pre > 0))
        return CX_EINVAL;
    for (cx_index i = 0; i < proj->n_pre; i++)
        out[i] = proj->rows[i].n;
    return CX_OK;
}

/* Fan-in: one counting pass over every row.  O(n_post + n_synapses) */
cx_status cx_proj_fanin(const cx_proj *proj, cx_index *out) {
    if (!proj || (!out && proj->n_post > 0))
        return CX_EINVAL;
    if (proj->n_post > 0)
        memset(out, 0, (size_t)proj->n_post * sizeof(cx_index));
    for (cx_index i = 0; i < proj->n_pre; i++) {
        const cx_row *r = &proj->rows[i];
        for (cx_index j = 0; j < r->n; j++)
            out[r->post[j]]++;
    }
    return CX_OK;
}

cx_status cx_proj_row_length(const cx_proj *proj, cx_index pre, cx_index *n) {
    if (!proj || !n)
        return CX_EINVAL;
    if (pre < 0 || pre >= proj->n_pre)
        return CX_EINDEX;
    *n = proj->rows[pre].n;
    return CX_OK;
}

cx_status cx_proj_row_copy(const cx_proj *proj, cx_index pre, cx_index *post, cx_real *w) {
    if (!proj)
        return CX_EINVAL;
    if (pre < 0 || pre >= proj->n_pre)
        return CX_EINDEX;
    const cx_row *r = &proj->rows[pre];
    if (r->n == 0)
        return CX_OK;
    if (post)
        memcpy(post, r->post, (size_t)r->n * sizeof(cx_index));
    if (w)
        memcpy(w, r->col[CX_COL_WEIGHT], (size_t)r->n * sizeof(cx_real));
    return CX_OK;
}
