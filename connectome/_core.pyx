"""Binding of the C core (csrc/connectome.h): owning class, status -> exception, memoryviews.

No algorithms live here.  Every function checks its arguments (ValueError naming
the argument, the value and what was expected), releases the GIL around the C call
and turns a failed cx_status into an exception in exactly one place, _check().

Activations cross this boundary neuron-major: (N, B) C-contiguous float32, as the C
API wants them; connectome/network.py transposes the user's (B, N) arrays.  Inputs
are `const` memoryviews (read-only arrays are accepted, nothing is copied); outputs
are either caller-provided arrays written in place or fresh numpy arrays.  Structure
leaves C only as copies, never as views of rows that an edit may realloc.

Directives (language_level, boundscheck, ...) are set once, in setup.py.
"""

from libc.math cimport isfinite, isnan
from libc.stdint cimport INT32_MAX, INT64_MAX, INT64_MIN, int64_t, uint64_t

import numpy as np  # only to allocate outputs

COL_WEIGHT = CX_COL_WEIGHT
COL_GRAD = CX_COL_GRAD
COL_STATE0 = CX_COL_STATE0
COL_STATE1 = CX_COL_STATE1
N_COLS = CX_N_COLS

LINEAR = CX_LINEAR
RELU = CX_RELU
TANH = CX_TANH
SIGMOID = CX_SIGMOID

INIT_CONST = CX_INIT_CONST
INIT_UNIFORM = CX_INIT_UNIFORM
INIT_NORMAL = CX_INIT_NORMAL

_COL_NAMES = ("COL_WEIGHT", "COL_GRAD", "COL_STATE0", "COL_STATE1")

_EXCEPTIONS = {
    CX_ENOMEM: MemoryError,
    CX_EINDEX: IndexError,
    CX_EEXIST: ValueError,
    CX_ENOENT: KeyError,
    CX_EDUP: ValueError,
    CX_EINVAL: ValueError,
    CX_ENOSPACE: ValueError,
}


# ------------------------------------------------------------------ errors
cdef int _check(cx_status status, str message=None) except -1:
    """The only place a C status becomes a Python exception (status -> type per PLAN.md).

    message replaces the core's generic cx_strerror text when the caller knows more
    (e.g. which synapse of a batch was at fault).
    """
    if status == CX_OK:
        return 0
    exc = _EXCEPTIONS.get(status)
    if exc is None:
        raise RuntimeError(f"connectome core returned unknown status {<int>status}")
    if message is None:
        message = (<bytes>cx_strerror(status)).decode("utf-8", "replace")
    raise exc(message)


def _raise_status(int code):
    """Test hook: raise what _check raises for status `code` (nothing for 0)."""
    _check(<cx_status>code)


# ------------------------------------------------------- argument checking
cdef int64_t _integer(str name, object value, int64_t lo, int64_t hi) except? -1:
    """value as an integer in [lo, hi], else ValueError naming the argument (TypeError if not integral)."""
    cdef object v
    try:
        v = value.__index__()
    except AttributeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


cdef inline int _threads(object n_threads) except -1:
    return <int>_integer("n_threads", n_threads, 1, 1 << 16)


cdef uint64_t _seed(object seed) except? 0xFFFFFFFFFFFFFFFF:
    cdef object v
    try:
        v = seed.__index__()
    except AttributeError:
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}") from None
    if not 0 <= v < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {v}")
    return <uint64_t>v


cdef int _col(object col) except -1:
    return <int>_integer("col", col, 0, CX_N_COLS - 1)


cdef cx_init _init(object kind, object a, object b) except *:
    cdef cx_init init
    cdef int k = <int>_integer("init_kind", kind, CX_INIT_CONST, CX_INIT_NORMAL)
    cdef double fa = a, fb = b
    if not isfinite(<cx_real>fa):
        raise ValueError(f"init parameter a must be a finite float32, got {a!r}")
    if not isfinite(<cx_real>fb):
        raise ValueError(f"init parameter b must be a finite float32, got {b!r}")
    if k == CX_INIT_NORMAL and fb < 0:
        raise ValueError(f"init parameter b (the sd of INIT_NORMAL) must be >= 0, got {b!r}")
    init.kind = <cx_init_kind>k
    init.a = <cx_real>fa
    init.b = <cx_real>fb
    return init


cdef int _activation(object act) except -1:
    return <int>_integer("act", act, CX_LINEAR, CX_SIGMOID)


cdef int _check_matrix(str name, Py_ssize_t r, Py_ssize_t c, str expected, Py_ssize_t rows,
                       Py_ssize_t cols) except -1:
    """ValueError unless (r, c) == (rows, cols); expected spells the wanted shape for the message."""
    if r != rows or c != cols:
        raise ValueError(f"{name} has shape ({r}, {c}), expected {expected} = ({rows}, {cols})")
    if cols > INT32_MAX:
        raise ValueError(f"{name} has batch size {cols}, the core takes at most {INT32_MAX}")
    return 0


cdef int _check_vector(str name, Py_ssize_t length, Py_ssize_t expected, str what) except -1:
    if length != expected:
        raise ValueError(f"{name} has {length} entries, expected {expected} ({what})")
    return 0


cdef int _check_sorted_ids(str name, const cx_index[::1] idx, cx_index bound, str what) except -1:
    """idx strictly increasing and in [0, bound); else the error names the first offender."""
    cdef Py_ssize_t i
    for i in range(idx.shape[0]):
        if idx[i] < 0 or idx[i] >= bound:
            raise IndexError(f"{name}[{i}] = {idx[i]} is out of range: expected a {what} in [0, {bound})")
        if i > 0 and idx[i] <= idx[i - 1]:
            raise ValueError(
                f"{name} must be strictly increasing, but {name}[{i}] = {idx[i]} follows "
                f"{name}[{i - 1}] = {idx[i - 1]}"
            )
    return 0


# ----------------------------------------------------------- module functions
def openmp_enabled():
    """True if the core was compiled with OpenMP (else every n_threads runs on one thread)."""
    return cx_openmp_enabled() != 0


def pop_forward(cx_real[:, ::1] z not None, const cx_real[::1] bias, act, n_threads):
    """z = act(z + bias[:, None]) in place.

    z : (N, B) float32, C-contiguous, overwritten;  bias : (N,) float32 or None.
    """
    cdef int a = _activation(act), nt = _threads(n_threads)
    cdef Py_ssize_t n = z.shape[0], B = z.shape[1]
    cdef const cx_real *bias_p = NULL
    cdef cx_status st
    if n > INT32_MAX or B > INT32_MAX:
        raise ValueError(f"z has shape ({n}, {B}), each side must be at most {INT32_MAX}")
    if bias is not None:
        _check_vector("bias", bias.shape[0], n, "one per neuron, z.shape[0]")
    if n == 0 or B == 0:
        return
    if bias is not None:
        bias_p = &bias[0]
    with nogil:
        st = cx_pop_forward(<cx_index>n, <cx_index>B, &z[0, 0], bias_p, <cx_activation>a, nt)
    _check(st)


def pop_backward(const cx_real[:, ::1] a not None, cx_real[:, ::1] d not None, cx_real[::1] bias_grad, act,
                 n_threads):
    """d = d * act'(.) in place, via the forward output a; bias_grad += d.sum(axis=1).

    a, d : (N, B) float32, C-contiguous (d overwritten);  bias_grad : (N,) float32 or None.
    """
    cdef int ac = _activation(act), nt = _threads(n_threads)
    cdef Py_ssize_t n = a.shape[0], B = a.shape[1]
    cdef cx_real *bg_p = NULL
    cdef cx_status st
    if n > INT32_MAX or B > INT32_MAX:
        raise ValueError(f"a has shape ({n}, {B}), each side must be at most {INT32_MAX}")
    _check_matrix("d", d.shape[0], d.shape[1], "a.shape", n, B)
    if bias_grad is not None:
        _check_vector("bias_grad", bias_grad.shape[0], n, "one per neuron, a.shape[0]")
    if n == 0 or B == 0:
        return
    if bias_grad is not None:
        bg_p = &bias_grad[0]
    with nogil:
        st = cx_pop_backward(<cx_index>n, <cx_index>B, &a[0, 0], &d[0, 0], bg_p, <cx_activation>ac, nt)
    _check(st)


# -------------------------------------------------------------- projection
cdef class CoreProjection:
    """Every synapse from n_pre source neurons to n_post target neurons (owns one cx_proj).

    Not meant to be used directly: connectome.Projection wraps it.  Arrays in and out
    are int32 ids / float32 values; every method that does real work releases the GIL.
    Calls on one projection from several Python threads are allowed as long as no
    structural edit overlaps another call; an overlap raises RuntimeError.
    """

    def __cinit__(self, n_pre, n_post):
        cdef cx_index np_ = <cx_index>_integer("n_pre", n_pre, 0, INT32_MAX)
        cdef cx_index nq = <cx_index>_integer("n_post", n_post, 0, INT32_MAX)
        self._proj = cx_proj_new(np_, nq)
        if self._proj is NULL:
            raise MemoryError(f"cannot allocate a projection of {np_} x {nq} neurons")

    def __dealloc__(self):
        cx_proj_free(self._proj)
        self._proj = NULL

    def __reduce__(self):
        raise TypeError("CoreProjection cannot be pickled; rebuild it from to_coo()")

    def __repr__(self):
        return (f"CoreProjection(n_pre={cx_proj_n_pre(self._proj)}, n_post={cx_proj_n_post(self._proj)}, "
                f"n_synapses={cx_proj_n_synapses(self._proj)})")

    cdef int _enter(self, bint write) except -1:
        # Called with the GIL held, so the check-and-set cannot interleave.
        if self._writing or (write and self._readers):
            raise RuntimeError("this projection is being used by another thread; "
                               "structural edits must not overlap other calls")
        if write:
            self._writing = True
        else:
            self._readers += 1
        return 0

    cdef void _leave(self, bint write) noexcept:
        if write:
            self._writing = False
        else:
            self._readers -= 1

    # ---------------------------------------------------------- properties
    @property
    def n_pre(self):
        """Number of presynaptic (source) neurons."""
        return cx_proj_n_pre(self._proj)

    @property
    def n_post(self):
        """Number of postsynaptic (target) neurons."""
        return cx_proj_n_post(self._proj)

    @property
    def n_synapses(self):
        """Number of stored synapses."""
        return cx_proj_n_synapses(self._proj)

    @property
    def nbytes(self):
        """Heap bytes owned by the projection (row directory + capacity of every enabled column)."""
        return cx_proj_nbytes(self._proj)

    def shrink(self):
        """Release the slack capacity of every row."""
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_shrink(self._proj)
        finally:
            self._leave(True)
        _check(st)

    # ------------------------------------------------------------- columns
    def column_enabled(self, col):
        """True if per-synapse column col (COL_*) is allocated."""
        return cx_proj_col_enabled(self._proj, _col(col)) != 0

    def enable_column(self, col):
        """Allocate column col, zero-filled (no-op if enabled)."""
        cdef int c = _col(col)
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_col_enable(self._proj, c)
        finally:
            self._leave(True)
        _check(st)

    def disable_column(self, col):
        """Free column col (no-op if disabled).  The weight column cannot be disabled."""
        cdef int c = _col(col)
        if c == CX_COL_WEIGHT:
            raise ValueError("col must not be COL_WEIGHT (0): the weight column always exists")
        self._enter(True)
        try:
            st = cx_proj_col_disable(self._proj, c)
        finally:
            self._leave(True)
        _check(st)

    cdef int _need_column(self, int c) except -1:
        if not cx_proj_col_enabled(self._proj, c):
            raise ValueError(f"column {_COL_NAMES[c]} ({c}) is not enabled; call enable_column({c}) first")
        return 0

    def fill_column(self, col, value, n_threads=1):
        """Set every value of enabled column col to value."""
        cdef int c = _col(col), nt = _threads(n_threads)
        cdef cx_real v = value
        self._need_column(c)
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_col_fill(self._proj, c, v, nt)
        finally:
            self._leave(True)
        _check(st)

    # -------------------------------------------------------- construction
    def fill_random(self, fanout, init_kind, a, b, seed, n_threads):
        """Give every pre neuron `fanout` distinct random targets, weights from the init.

        Requires an empty projection.  The result depends on seed only, not n_threads.
        """
        cdef cx_index k = <cx_index>_integer("fanout", fanout, 0, cx_proj_n_post(self._proj))
        cdef cx_init init = _init(init_kind, a, b)
        cdef uint64_t s = _seed(seed)
        cdef int nt = _threads(n_threads)
        if cx_proj_n_synapses(self._proj) != 0:
            raise ValueError(f"fill_random needs an empty projection, this one has "
                             f"{cx_proj_n_synapses(self._proj)} synapses")
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_fill_random(self._proj, k, init, s, nt)
        finally:
            self._leave(True)
        _check(st)

    # -------------------------------------------------------------- export
    def to_coo(self):
        """(pre, post, w): fresh int32, int32, float32 arrays of n_synapses, in (pre, post) order."""
        self._enter(False)
        try:
            n = cx_proj_n_synapses(self._proj)
            pre = np.empty(n, dtype=np.int32)
            post = np.empty(n, dtype=np.int32)
            w = np.empty(n, dtype=np.float32)
            if n > 0:
                self._export(pre, post, w)
        finally:
            self._leave(False)
        return pre, post, w

    cdef int _export(self, cx_index[::1] pre, cx_index[::1] post, cx_real[::1] w) except -1:
        with nogil:
            st = cx_proj_export(self._proj, &pre[0], &post[0], &w[0])
        return _check(st)

    def get_column(self, col):
        """Column col as a fresh float32 array of n_synapses, in to_coo order (zeros if disabled)."""
        cdef int c = _col(col)
        cdef cx_real[::1] view
        self._enter(False)
        try:
            out = np.empty(cx_proj_n_synapses(self._proj), dtype=np.float32)
            view = out
            if view.shape[0] > 0:
                with nogil:
                    st = cx_proj_col_export(self._proj, c, &view[0])
                _check(st)
        finally:
            self._leave(False)
        return out

    def set_column(self, col, const cx_real[::1] values not None):
        """Column col = values (float32, n_synapses, to_coo order).  The column must be enabled."""
        cdef int c = _col(col)
        self._need_column(c)
        _check_vector("values", values.shape[0], cx_proj_n_synapses(self._proj), "one per synapse, n_synapses")
        if values.shape[0] == 0:
            return
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_col_import(self._proj, c, &values[0])
        finally:
            self._leave(True)
        _check(st)

    def fanout(self):
        """int32 (n_pre,): number of outgoing synapses of each pre neuron."""
        cdef cx_index[::1] view
        out = np.zeros(cx_proj_n_pre(self._proj), dtype=np.int32)
        view = out
        if view.shape[0] > 0:
            self._enter(False)
            try:
                with nogil:
                    st = cx_proj_fanout(self._proj, &view[0])
            finally:
                self._leave(False)
            _check(st)
        return out

    def fanin(self):
        """int32 (n_post,): number of incoming synapses of each post neuron."""
        cdef cx_index[::1] view
        out = np.zeros(cx_proj_n_post(self._proj), dtype=np.int32)
        view = out
        if view.shape[0] > 0:
            self._enter(False)
            try:
                with nogil:
                    st = cx_proj_fanin(self._proj, &view[0])
            finally:
                self._leave(False)
            _check(st)
        return out

    def row(self, i):
        """(post, w): the targets (int32, increasing) and weights (float32) of pre neuron i."""
        cdef int64_t v = _integer("i", i, INT64_MIN, INT64_MAX)
        cdef cx_index k = 0, pre
        cdef cx_index[::1] post_v
        cdef cx_real[::1] w_v
        if not 0 <= v < cx_proj_n_pre(self._proj):
            raise IndexError(f"i = {v} is out of range: expected a pre neuron in [0, {cx_proj_n_pre(self._proj)})")
        pre = <cx_index>v
        self._enter(False)
        try:
            _check(cx_proj_row_length(self._proj, pre, &k))
            post = np.empty(k, dtype=np.int32)
            w = np.empty(k, dtype=np.float32)
            if k > 0:
                post_v = post
                w_v = w
                with nogil:
                    st = cx_proj_row_copy(self._proj, pre, &post_v[0], &w_v[0])
                _check(st)
        finally:
            self._leave(False)
        return post, w

    # --------------------------------------------------------------- edits
    cdef str _batch_error(self, cx_status st, const cx_index[::1] pre, const cx_index[::1] post, cx_size at):
        """The message for a failed add/remove: names the offending synapse and its batch position."""
        if at < 0 or at >= pre.shape[0]:
            return None
        p, q = pre[at], post[at]
        syn = f"synapse (pre={p}, post={q}) at position {at}"
        if st == CX_EINDEX:
            n_pre, n_post = cx_proj_n_pre(self._proj), cx_proj_n_post(self._proj)
            if not 0 <= p < n_pre:
                return f"{syn} is out of range: pre must be in [0, {n_pre})"
            return f"{syn} is out of range: post must be in [0, {n_post})"
        if st == CX_EDUP:
            return f"{syn} appears more than once in the batch"
        if st == CX_EEXIST:
            return f"{syn} already exists"
        if st == CX_ENOENT:
            return f"{syn} does not exist"
        return None

    def add(self, const cx_index[::1] pre not None, const cx_index[::1] post not None,
            const cx_real[::1] w not None):
        """Add synapses pre[k] -> post[k] with weight w[k] (int32, int32, float32; any order).

        All or nothing: IndexError for an id out of range, ValueError for a synapse that
        exists already or appears twice in the batch; the message names it and its position.
        """
        cdef Py_ssize_t n = pre.shape[0]
        cdef cx_size err_at = -1
        _check_vector("post", post.shape[0], n, "the length of pre")
        _check_vector("w", w.shape[0], n, "the length of pre")
        if n == 0:
            return
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_add(self._proj, n, &pre[0], &post[0], &w[0], &err_at)
        finally:
            self._leave(True)
        if st != CX_OK:
            _check(st, self._batch_error(st, pre, post, err_at))

    def remove(self, const cx_index[::1] pre not None, const cx_index[::1] post not None):
        """Remove synapses pre[k] -> post[k] (int32, int32).

        All or nothing: KeyError for an absent synapse, ValueError for a duplicate in the
        batch, IndexError for an id out of range; the message names it and its position.
        """
        cdef Py_ssize_t n = pre.shape[0]
        cdef cx_size err_at = -1
        _check_vector("post", post.shape[0], n, "the length of pre")
        if n == 0:
            return
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_remove(self._proj, n, &pre[0], &post[0], &err_at)
        finally:
            self._leave(True)
        if st != CX_OK:
            _check(st, self._batch_error(st, pre, post, err_at))

    def prune_threshold(self, threshold, n_threads):
        """Remove every synapse with |w| < threshold (and NaN weights); return how many."""
        cdef double t = threshold
        cdef int nt = _threads(n_threads)
        cdef cx_size removed = 0
        if isnan(t):
            raise ValueError("threshold must be a number, got nan")
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_prune_threshold(self._proj, <cx_real>t, nt, &removed)
        finally:
            self._leave(True)
        _check(st)
        return removed

    def prune_count(self, n, n_threads):
        """Remove exactly the n synapses of smallest |w| (ties by (pre, post)); return n."""
        cdef cx_size k = _integer("n", n, 0, cx_proj_n_synapses(self._proj))
        cdef int nt = _threads(n_threads)
        cdef cx_size removed = 0
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_prune_count(self._proj, k, nt, &removed)
        finally:
            self._leave(True)
        _check(st)
        return removed

    cdef int _check_space(self, cx_size n) except -1:
        cdef cx_size free_ = <cx_size>cx_proj_n_pre(self._proj) * cx_proj_n_post(self._proj) - cx_proj_n_synapses(self._proj)
        if n > free_:
            raise ValueError(f"n = {n} absent synapses requested, but only {free_} of the "
                             f"{cx_proj_n_pre(self._proj)} x {cx_proj_n_post(self._proj)} slots are free")
        return 0

    def sample_absent(self, n, seed):
        """(pre, post): n distinct absent synapses drawn uniformly, int32, sorted by (pre, post)."""
        cdef cx_size k = _integer("n", n, 0, INT64_MAX)
        cdef uint64_t s = _seed(seed)
        cdef cx_index[::1] pre_v, post_v
        self._check_space(k)
        pre = np.empty(k, dtype=np.int32)
        post = np.empty(k, dtype=np.int32)
        if k > 0:
            pre_v = pre
            post_v = post
            self._enter(False)
            try:
                with nogil:
                    st = cx_proj_sample_absent(self._proj, k, s, &pre_v[0], &post_v[0])
            finally:
                self._leave(False)
            _check(st)
        return pre, post

    def grow(self, n, init_kind, a, b, seed, n_threads):
        """Add n distinct random absent synapses with weights from the init."""
        self._seeded_edit(cx_proj_grow, _integer("n", n, 0, INT64_MAX), init_kind, a, b, seed, n_threads)

    def rewire(self, n, init_kind, a, b, seed, n_threads):
        """Remove the n smallest-|w| synapses and add n new ones at slots absent before the call."""
        cdef cx_size k = _integer("n", n, 0, cx_proj_n_synapses(self._proj))
        self._seeded_edit(cx_proj_rewire, k, init_kind, a, b, seed, n_threads)

    cdef int _seeded_edit(self, _seeded_edit_fn edit, cx_size k, init_kind, a, b, seed,
                          n_threads) except -1:
        """Shared by grow and rewire: check the init, seed, threads and free slots, then edit."""
        cdef cx_init init = _init(init_kind, a, b)
        cdef uint64_t s = _seed(seed)
        cdef int nt = _threads(n_threads)
        cdef cx_status st
        self._check_space(k)
        if k == 0:
            return 0
        self._enter(True)
        try:
            with nogil:
                st = edit(self._proj, k, init, s, nt)
        finally:
            self._leave(True)
        _check(st)
        return 0

    # ------------------------------------------------------------- neurons
    def add_pre(self, n_new, fanout, init_kind, a, b, seed):
        """Append n_new pre neurons (ids n_pre..), each with `fanout` random targets."""
        cdef cx_index n = <cx_index>_integer("n_new", n_new, 0, INT32_MAX - cx_proj_n_pre(self._proj))
        cdef cx_index k = <cx_index>_integer("fanout", fanout, 0, cx_proj_n_post(self._proj))
        cdef cx_init init = _init(init_kind, a, b)
        cdef uint64_t s = _seed(seed)
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_add_pre(self._proj, n, k, init, s)
        finally:
            self._leave(True)
        _check(st)

    def add_post(self, n_new, fanin, init_kind, a, b, seed):
        """Append n_new post neurons (ids n_post..), each with `fanin` random sources."""
        cdef cx_index n = <cx_index>_integer("n_new", n_new, 0, INT32_MAX - cx_proj_n_post(self._proj))
        cdef cx_index k = <cx_index>_integer("fanin", fanin, 0, cx_proj_n_pre(self._proj))
        cdef cx_init init = _init(init_kind, a, b)
        cdef uint64_t s = _seed(seed)
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_add_post(self._proj, n, k, init, s)
        finally:
            self._leave(True)
        _check(st)

    def remove_pre(self, const cx_index[::1] idx not None):
        """Remove pre neurons idx (int32, strictly increasing); later ids move down (np.delete)."""
        cdef Py_ssize_t n = idx.shape[0]
        _check_sorted_ids("idx", idx, cx_proj_n_pre(self._proj), "pre neuron")
        if n == 0:
            return
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_remove_pre(self._proj, <cx_index>n, &idx[0])
        finally:
            self._leave(True)
        _check(st)

    def remove_post(self, const cx_index[::1] idx not None, n_threads):
        """Remove post neurons idx (int32, strictly increasing) and every synapse to them."""
        cdef Py_ssize_t n = idx.shape[0]
        cdef int nt = _threads(n_threads)
        _check_sorted_ids("idx", idx, cx_proj_n_post(self._proj), "post neuron")
        if n == 0:
            return
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_remove_post(self._proj, <cx_index>n, &idx[0], nt)
        finally:
            self._leave(True)
        _check(st)

    # ------------------------------------------------------------- kernels
    def forward(self, const cx_real[:, ::1] x not None, cx_real[:, ::1] y not None, n_threads):
        """y[post, :] += w * x[pre, :] over every synapse.

        x : (n_pre, B) float32, C-contiguous;  y : (n_post, B) float32, accumulated into.
        """
        cdef int nt = _threads(n_threads)
        cdef Py_ssize_t B = x.shape[1]
        _check_matrix("x", x.shape[0], x.shape[1], "(n_pre, B)", cx_proj_n_pre(self._proj), B)
        _check_matrix("y", y.shape[0], y.shape[1], "(n_post, B)", cx_proj_n_post(self._proj), B)
        if B == 0 or cx_proj_n_synapses(self._proj) == 0:
            return
        self._enter(False)
        try:
            with nogil:
                st = cx_proj_forward(self._proj, <cx_index>B, &x[0, 0], &y[0, 0], nt)
        finally:
            self._leave(False)
        _check(st)

    def backward(self, const cx_real[:, ::1] x not None, const cx_real[:, ::1] dy not None,
                 cx_real[:, ::1] dx, accumulate_grad, n_threads):
        """dx[pre, :] += sum over the row of w * dy[post, :]; grad[s] += x[pre] . dy[post].

        x : (n_pre, B), dy : (n_post, B) float32;  dx : (n_pre, B) float32 accumulated into,
        or None.  accumulate_grad needs the COL_GRAD column enabled.
        """
        cdef int nt = _threads(n_threads)
        cdef bint acc = bool(accumulate_grad)
        cdef Py_ssize_t B = x.shape[1]
        cdef cx_real *dx_p = NULL
        _check_matrix("x", x.shape[0], x.shape[1], "(n_pre, B)", cx_proj_n_pre(self._proj), B)
        _check_matrix("dy", dy.shape[0], dy.shape[1], "(n_post, B)", cx_proj_n_post(self._proj), B)
        if dx is not None:
            _check_matrix("dx", dx.shape[0], dx.shape[1], "(n_pre, B)", cx_proj_n_pre(self._proj), B)
        if acc and not cx_proj_col_enabled(self._proj, CX_COL_GRAD):
            raise ValueError("accumulate_grad=True needs column COL_GRAD (1); call enable_column(1) first")
        if B == 0 or cx_proj_n_synapses(self._proj) == 0 or (dx is None and not acc):
            return
        if dx is not None:
            dx_p = &dx[0, 0]
        self._enter(acc)
        try:
            with nogil:
                st = cx_proj_backward(self._proj, <cx_index>B, &x[0, 0], &dy[0, 0], dx_p, acc, nt)
        finally:
            self._leave(acc)
        _check(st)

    # ---------------------------------------------------------- optimisers
    @property
    def capacity(self):
        """Synapse slots allocated per enabled column (sum of row capacities, >= n_synapses)."""
        return cx_proj_capacity(self._proj)

    def optim_step(self, kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step, n_threads):
        """One optimiser step on every synapse (rules in csrc/connectome.h); return the exact zeros.

        Needs COL_GRAD and the optimiser's state columns (optim_n_state: STATE0, then STATE1)
        enabled.  Updates the weight and state columns in place; the count is of synapses
        whose weight is exactly 0 after the step.
        """
        cdef cx_optim opt = _optim(kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step)
        cdef int nt = _threads(n_threads)
        cdef int n_state = cx_optim_n_state(&opt)
        cdef cx_size n_zero = 0
        self._need_column(CX_COL_GRAD)
        if n_state >= 1:
            self._need_column(CX_COL_STATE0)
        if n_state >= 2:
            self._need_column(CX_COL_STATE1)
        self._enter(True)
        try:
            with nogil:
                st = cx_proj_optim_step(self._proj, &opt, nt, &n_zero)
        finally:
            self._leave(True)
        _check(st)
        return n_zero


# -------------------------------------------------------------- optimisers
OPTIM_SGD = CX_OPTIM_SGD
OPTIM_ADAM = CX_OPTIM_ADAM


cdef cx_optim _optim(kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step) except *:
    """A checked cx_optim; ValueError naming the first bad parameter (the core re-checks)."""
    cdef cx_optim o
    o.kind = <cx_optim_kind>_integer("kind", kind, CX_OPTIM_SGD, CX_OPTIM_ADAM)
    o.lr, o.momentum, o.beta1, o.beta2 = lr, momentum, beta1, beta2
    o.eps, o.weight_decay, o.l1 = eps, weight_decay, l1
    o.step = _integer("step", step, 0, INT64_MAX)
    if not (isfinite(<cx_real>o.lr) and <cx_real>o.lr > 0):
        raise ValueError(f"lr must be finite and > 0 in float32, got {lr!r}")
    for name, v in (("weight_decay", o.weight_decay), ("l1", o.l1), ("momentum", o.momentum)):
        if not (isfinite(<cx_real><double>v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    if not (isfinite(<cx_real>(o.lr * o.l1))):
        raise ValueError(f"lr * l1 = {o.lr * o.l1!r} overflows float32")
    if o.kind == CX_OPTIM_ADAM:
        for name, v in (("beta1", o.beta1), ("beta2", o.beta2)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if not (isfinite(<cx_real>o.eps) and <cx_real>o.eps > 0):
            raise ValueError(f"eps must be finite and > 0 in float32, got {eps!r}")
        if o.step < 1:
            raise ValueError(f"step must be >= 1 for Adam (bias correction), got {o.step}")
    if cx_optim_n_state(&o) < 0:
        raise ValueError("the optimiser parameters are out of range for the core (a bias "
                         "correction or step size not representable in float32)")
    return o


def optim_n_state(kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step):
    """How many state columns / arrays the optimiser needs: 0, 1 (STATE0) or 2 (STATE0, STATE1)."""
    cdef cx_optim opt = _optim(kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step)
    return cx_optim_n_state(&opt)


def optim_update(cx_real[::1] w not None, const cx_real[::1] grad not None, cx_real[::1] s0,
                 cx_real[::1] s1, kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step):
    """The same step on plain float32 arrays (e.g. biases): w, s0, s1 updated in place.

    w, grad : (N,) float32;  s0, s1 : (N,) float32 state, or None when the optimiser needs
    fewer (see optim_n_state).  Returns how many entries of w are exactly 0 afterwards.
    """
    cdef cx_optim opt = _optim(kind, lr, momentum, beta1, beta2, eps, weight_decay, l1, step)
    cdef int n_state = cx_optim_n_state(&opt)
    cdef Py_ssize_t n = w.shape[0]
    cdef cx_real *s0_p = NULL
    cdef cx_real *s1_p = NULL
    cdef cx_size n_zero = 0
    _check_vector("grad", grad.shape[0], n, "the length of w")
    if n_state >= 1:
        if s0 is None:
            raise ValueError("s0 is None, but this optimiser keeps one state array (s0)")
        _check_vector("s0", s0.shape[0], n, "the length of w")
    if n_state >= 2:
        if s1 is None:
            raise ValueError("s1 is None, but this optimiser keeps two state arrays (s0, s1)")
        _check_vector("s1", s1.shape[0], n, "the length of w")
    if n == 0:
        return 0
    if n_state >= 1:
        s0_p = &s0[0]
    if n_state >= 2:
        s1_p = &s1[0]
    with nogil:
        st = cx_optim_update(&opt, n, &w[0], &grad[0], s0_p, s1_p, &n_zero)
    _check(st)
    return n_zero
