"""Loss functions returning ``(loss, gradient)``, ready for :meth:`Network.backward`.

Each loss takes the network's output batch-major, ``(B, C)`` as forward
returns it, and gives back the mean loss (a Python float, computed in float64)
and dL/d(output) as float32 of the output's shape:

>>> import numpy as np
>>> import connectome as cx
>>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], dtype=np.float32)
>>> loss, grad = cx.losses.softmax_cross_entropy(logits, np.array([0, 2]))
>>> round(loss, 4), grad.shape, grad.dtype
(0.1681, (2, 3), dtype('float32'))

Bad input raises ValueError / TypeError naming the argument (shapes that do
not match, labels out of range, non-finite values, an empty batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .network import _as_real_array
from .network import _check_finite as _check_network_finite

__all__ = ["LOSSES", "accuracy", "get", "mse", "softmax_cross_entropy"]

LossFn = Callable[[Any, Any], tuple[float, Any]]


# --------------------------------------------------------------- argument checks
def _real_array(name: str, value: Any) -> np.ndarray:
    return _as_real_array(name, value, into="float64")


def _check_finite(name: str, a: np.ndarray) -> None:
    _check_network_finite(name, a, into="float64")


def _check_logits(logits: Any) -> np.ndarray:
    z = _real_array("logits", logits)
    if z.ndim != 2:
        raise ValueError(f"logits has shape {z.shape}, expected (B, C): one row of class scores per sample")
    if z.shape[0] == 0:
        raise ValueError("logits has an empty batch (B=0): the mean loss is undefined")
    if z.shape[1] == 0:
        raise ValueError("logits has shape (B, 0), expected at least one class")
    _check_finite("logits", z)
    return z


def _check_labels(labels: Any, batch: int, n_classes: int) -> np.ndarray:
    """labels as int64 (B,) class ids in [0, C), or float64 (B, C) probabilities."""
    t = _real_array("labels", labels)
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            raise TypeError(
                f"labels has shape {t.shape} and dtype {t.dtype}: 1-D labels must be integer class "
                f"ids (pass (B, C) float probabilities for soft labels)"
            )
        if t.shape[0] != batch:
            raise ValueError(f"labels has {t.shape[0]} entries, expected {batch} (one per row of logits)")
        bad = (t < 0) | (t >= n_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"labels[{i}]={int(t[i])} is out of range: expected class ids 0 <= labels < {n_classes}"
            )
        return t.astype(np.int64, copy=False)
    if t.ndim == 2:
        if t.shape != (batch, n_classes):
            raise ValueError(
                f"labels has shape {t.shape}, expected ({batch},) class ids or ({batch}, {n_classes}) "
                "probabilities matching logits"
            )
        t = t.astype(np.float64, copy=False)
        _check_finite("labels", t)
        if (t < 0).any():
            pos = tuple(int(i) for i in np.argwhere(t < 0)[0])
            raise ValueError(
                f"labels[{pos[0]}, {pos[1]}]={float(t[pos])!r} is negative: expected probabilities"
            )
        sums = t.sum(axis=1)
        off = np.abs(sums - 1.0) > 1e-3
        if off.any():
            i = int(np.argmax(off))
            raise ValueError(f"labels[{i}] sums to {sums[i]:.6g}, expected probabilities summing to 1")
        return t
    raise ValueError(
        f"labels has shape {t.shape}, expected ({batch},) class ids or ({batch}, {n_classes}) probabilities"
    )


# ------------------------------------------------------------------------ losses
def _softmax_cross_entropy(z: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Unchecked kernel: z (B, C) finite, t checked as by _check_labels."""
    z64 = z.astype(np.float64)
    z64 -= z64.max(axis=1, keepdims=True)  # log-sum-exp shift: exp never overflows
    e = np.exp(z64)
    s = e.sum(axis=1, keepdims=True)
    logp = z64 - np.log(s)
    batch = z.shape[0]
    p = e / s
    if t.ndim == 1:
        rows = np.arange(batch)
        loss = -float(logp[rows, t].sum()) / batch
        p[rows, t] -= 1.0
    else:
        loss = -float((t * logp).sum()) / batch
        p -= t
    p /= batch
    return loss, p.astype(np.float32)


def softmax_cross_entropy(logits: Any, labels: Any) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against labels, and its gradient.

    ``loss = -mean_b sum_c t[b, c] log softmax(logits[b])[c]`` where t is the
    one-hot encoding of integer labels or the given probabilities (as
    ``torch.nn.functional.cross_entropy``).  Computed in float64 with the
    log-sum-exp shift, so large logits neither overflow nor lose the loss.

    Parameters
    ----------
    logits : (B, C) real array
        Unnormalised class scores, finite, ``B >= 1``.
    labels : (B,) integer array or (B, C) real array
        Class ids in ``[0, C)``, or per-sample probabilities (non-negative,
        each row summing to 1 within 1e-3).

    Returns
    -------
    loss : float
    grad : (B, C) float32
        dL/dlogits = ``(softmax(logits) - t) / B``.
    """
    z = _check_logits(logits)
    t = _check_labels(labels, z.shape[0], z.shape[1])
    return _softmax_cross_entropy(z, t)


def _mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Unchecked kernel: same shapes, finite, size >= 1."""
    diff = pred.astype(np.float64) - target
    loss = float(np.dot(diff.ravel(), diff.ravel())) / diff.size
    return loss, (diff * (2.0 / diff.size)).astype(np.float32)


def mse(pred: Any, target: Any) -> tuple[float, np.ndarray]:
    """Mean squared error over every element (``torch.nn.MSELoss()``), and its gradient.

    Parameters
    ----------
    pred : (B, N) real array (any shape)
        Finite, at least one element.
    target : real array of pred's exact shape (no broadcasting)
        Finite.

    Returns
    -------
    loss : float
        ``mean((pred - target) ** 2)``.
    grad : float32 array of pred's shape
        ``2 * (pred - target) / pred.size``.
    """
    p = _real_array("pred", pred)
    t = _real_array("target", target)
    if p.shape != t.shape:
        raise ValueError(f"target has shape {t.shape}, expected pred's shape {p.shape} (no broadcasting)")
    if p.size == 0:
        raise ValueError(f"pred has shape {p.shape} with no elements: the mean loss is undefined")
    _check_finite("pred", p)
    _check_finite("target", t)
    return _mse(p, t)


def accuracy(logits: Any, labels: Any) -> float:
    """Fraction of rows whose largest logit is the label's class.

    Parameters
    ----------
    logits : (B, C) real array
    labels : (B,) integer class ids or (B, C) probabilities (their argmax is the class)

    Returns
    -------
    accuracy : float in [0, 1]
    """
    z = _check_logits(logits)
    t = _check_labels(labels, z.shape[0], z.shape[1])
    cls = t if t.ndim == 1 else t.argmax(axis=1)
    return float(np.mean(z.argmax(axis=1) == cls))


LOSSES: dict[str, LossFn] = {"softmax_cross_entropy": softmax_cross_entropy, "mse": mse}


def get(loss: str | LossFn) -> LossFn:
    """The loss function for a name in :data:`LOSSES`, or a callable unchanged."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is unknown: expected one of {list(LOSSES)} or a callable")
        return LOSSES[loss]
    if not callable(loss):
        raise TypeError(
            f"loss must be a name in {list(LOSSES)} or a callable (pred, y) -> (loss, grad), "
            f"got {type(loss).__name__}"
        )
    return loss
