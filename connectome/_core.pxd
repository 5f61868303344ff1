# Declarations of the C core (csrc/connectome.h), one line per C function in
# header order, plus the one class that owns a cx_proj*.  Implemented in _core.pyx.
cimport cython
from libc.stdint cimport int32_t, int64_t, uint64_t


cdef extern from "connectome.h" nogil:
    ctypedef int32_t cx_index
    ctypedef int64_t cx_size
    ctypedef float cx_real

    ctypedef enum cx_status:
        CX_OK
        CX_ENOMEM
        CX_EINDEX
        CX_EEXIST
        CX_ENOENT
        CX_EDUP
        CX_EINVAL
        CX_ENOSPACE

    ctypedef enum cx_activation:
        CX_LINEAR
        CX_RELU
        CX_TANH
        CX_SIGMOID

    enum:
        CX_COL_WEIGHT
        CX_COL_GRAD
        CX_COL_STATE0
        CX_COL_STATE1
        CX_N_COLS

    ctypedef enum cx_init_kind:
        CX_INIT_CONST
        CX_INIT_UNIFORM
        CX_INIT_NORMAL

    ctypedef struct cx_init:
        cx_init_kind kind
        cx_real a
        cx_real b

    ctypedef struct cx_proj:
        pass

    # misc
    const char *cx_strerror(cx_status status)
    int cx_openmp_enabled()
    # lifecycle
    cx_proj *cx_proj_new(cx_index n_pre, cx_index n_post)
    void cx_proj_free(cx_proj *proj)
    cx_index cx_proj_n_pre(const cx_proj *proj)
    cx_index cx_proj_n_post(const cx_proj *proj)
    cx_size cx_proj_n_synapses(const cx_proj *proj)
    size_t cx_proj_nbytes(const cx_proj *proj)
    cx_status cx_proj_shrink(cx_proj *proj)
    # columns
    int cx_proj_col_enabled(const cx_proj *proj, int col)
    cx_status cx_proj_col_enable(cx_proj *proj, int col)
    cx_status cx_proj_col_disable(cx_proj *proj, int col)
    cx_status cx_proj_col_fill(cx_proj *proj, int col, cx_real value, int n_threads)
    # construction
    cx_status cx_proj_fill_random(cx_proj *proj, cx_index fanout, cx_init init, uint64_t seed, int n_threads)
    # export
    cx_status cx_proj_export(const cx_proj *proj, cx_index *pre, cx_index *post, cx_real *w)
    cx_status cx_proj_col_export(const cx_proj *proj, int col, cx_real *out)
    cx_status cx_proj_col_import(cx_proj *proj, int col, const cx_real *in_)
    cx_status cx_proj_fanout(const cx_proj *proj, cx_index *out)
    cx_status cx_proj_fanin(const cx_proj *proj, cx_index *out)
    cx_status cx_proj_row_length(const cx_proj *proj, cx_index pre, cx_index *n)
    cx_status cx_proj_row_copy(const cx_proj *proj, cx_index pre, cx_index *post, cx_real *w)
    # edits
    cx_status cx_proj_add(cx_proj *proj, cx_size n, const cx_index *pre, const cx_index *post, const cx_real *w, cx_size *err_at)
    cx_status cx_proj_remove(cx_proj *proj, cx_size n, const cx_index *pre, const cx_index *post, cx_size *err_at)
    cx_status cx_proj_prune_threshold(cx_proj *proj, cx_real threshold, int n_threads, cx_size *n_removed)
    cx_status cx_proj_prune_count(cx_proj *proj, cx_size n, int n_threads, cx_size *n_removed)
    cx_status cx_proj_sample_absent(const cx_proj *proj, cx_size n, uint64_t seed, cx_index *pre, cx_index *post)
    cx_status cx_proj_grow(cx_proj *proj, cx_size n, cx_init init, uint64_t seed, int n_threads)
    cx_status cx_proj_rewire(cx_proj *proj, cx_size n, cx_init init, uint64_t seed, int n_threads)
    # neurons (in place)
    cx_status cx_proj_add_pre(cx_proj *proj, cx_index n_new, cx_index fanout, cx_init init, uint64_t seed)
    cx_status cx_proj_add_post(cx_proj *proj, cx_index n_new, cx_index fanin, cx_init init, uint64_t seed)
    cx_status cx_proj_remove_pre(cx_proj *proj, cx_index n, const cx_index *idx)
    cx_status cx_proj_remove_post(cx_proj *proj, cx_index n, const cx_index *idx, int n_threads)
    # kernels
    cx_status cx_proj_forward(const cx_proj *proj, cx_index B, const cx_real *x, cx_real *y, int n_threads)
    cx_status cx_proj_backward(cx_proj *proj, cx_index B, const cx_real *x, const cx_real *dy, cx_real *dx, int accumulate_grad, int n_threads)
    cx_status cx_pop_forward(cx_index n, cx_index B, cx_real *z, const cx_real *bias, cx_activation act, int n_threads)
    cx_status cx_pop_backward(cx_index n, cx_index B, const cx_real *a, cx_real *d, cx_real *bias_grad, cx_activation act, int n_threads)
    # optimisers
    ctypedef enum cx_optim_kind:
        CX_OPTIM_SGD
        CX_OPTIM_ADAM

    ctypedef struct cx_optim:
        cx_optim_kind kind
        double lr
        double momentum
        double beta1
        double beta2
        double eps
        double weight_decay
        double l1
        int64_t step

    int cx_optim_n_state(const cx_optim *opt)
    cx_status cx_proj_optim_step(cx_proj *proj, const cx_optim *opt, int n_threads, cx_size *n_zero)
    cx_status cx_optim_update(const cx_optim *opt, cx_size n, cx_real *w, const cx_real *grad, cx_real *s0, cx_real *s1, cx_size *n_zero)
    cx_size cx_proj_capacity(const cx_proj *proj)


# grow and rewire share one wrapper (CoreProjection._seeded_edit)
ctypedef cx_status (*_seeded_edit_fn)(cx_proj *, cx_size, cx_init, uint64_t, int) noexcept nogil


@cython.final
cdef class CoreProjection:
    cdef cx_proj *_proj  # owned; only __dealloc__ frees it, never exposed
    # Guards against a structural edit in one Python thread while another
    # thread runs a GIL-free call on the same projection (a use-after-free).
    cdef int _readers
    cdef bint _writing
    cdef int _enter(self, bint write) except -1
    cdef void _leave(self, bint write) noexcept
    cdef int _need_column(self, int c) except -1
    cdef int _check_space(self, cx_size n) except -1
    cdef int _seeded_edit(self, _seeded_edit_fn edit, cx_size k, init_kind, a, b, seed, n_threads) except -1
    cdef int _export(self, cx_index[::1] pre, cx_index[::1] post, cx_real[::1] w) except -1
    cdef str _batch_error(self, cx_status st, const cx_index[::1] pre, const cx_index[::1] post, cx_size at)
