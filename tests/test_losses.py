"""cx.losses against float64 numpy references and finite differences; argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import connectome as cx
from connectome import losses


def ref_log_softmax(z: np.ndarray) -> np.ndarray:
    """Naive float64 log softmax (fine for moderate logits)."""
    z = np.asarray(z, dtype=np.float64)
    return np.log(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))


def ref_cross_entropy(z, t) -> tuple[float, np.ndarray]:
    z = np.asarray(z, dtype=np.float64)
    t = np.asarray(t)
    if t.ndim == 1:
        t = np.eye(z.shape[1])[t]
    p = np.exp(ref_log_softmax(z))
    return float(-(t * ref_log_softmax(z)).sum(axis=1).mean()), (p - t) / z.shape[0]


def finite_difference(f, z: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    g = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (f(up) - f(down)) / (2 * eps)
    return g


@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_cross_entropy_matches_reference(batch, n_classes, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(batch, n_classes)).astype(np.float32)
    labels = rng.integers(0, n_classes, batch)
    loss, grad = losses.softmax_cross_entropy(z, labels)
    ref_loss, ref_grad = ref_cross_entropy(z, labels)
    assert isinstance(loss, float)
    assert grad.dtype == np.float32 and grad.shape == (batch, n_classes)
    assert loss == pytest.approx(ref_loss, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-8)
    # soft labels: a one-hot matrix gives the same; a general distribution matches too
    onehot = np.eye(n_classes, dtype=np.float32)[labels]
    loss2, grad2 = losses.softmax_cross_entropy(z, onehot)
    assert loss2 == pytest.approx(loss, rel=1e-12) and np.allclose(grad2, grad, atol=1e-8)
    probs = rng.dirichlet(np.ones(n_classes), size=batch)
    loss3, grad3 = losses.softmax_cross_entropy(z, probs)
    ref3, refg3 = ref_cross_entropy(z, probs)
    assert loss3 == pytest.approx(ref3, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad3, refg3, rtol=1e-6, atol=1e-8)


def test_cross_entropy_gradient_is_the_derivative():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 5))
    labels = np.array([0, 4, 2, 2])
    probs = rng.dirichlet(np.ones(5), size=4)
    for t in (labels, probs):
        _, grad = losses.softmax_cross_entropy(z, t)
        fd = finite_difference(lambda v, t=t: losses.softmax_cross_entropy(v, t)[0], z)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [3e38, 3e38, -3e38]], dtype=np.float32)
    loss, grad = losses.softmax_cross_entropy(z, np.array([1, 0]))
    # row 0: -log softmax = 1e4 exactly; row 1: two equal maxima, log 2
    assert loss == pytest.approx((1e4 + np.log(2.0)) / 2, rel=1e-12)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [-0.25, 0.25, 0.0]], atol=1e-7)
    # shift invariance: adding a constant per row changes nothing
    z = np.random.default_rng(1).normal(size=(3, 4))
    a = losses.softmax_cross_entropy(z, np.array([0, 1, 3]))
    b = losses.softmax_cross_entropy(z + 500.0, np.array([0, 1, 3]))
    assert a[0] == pytest.approx(b[0], rel=1e-9) and np.allclose(a[1], b[1], atol=1e-7)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_mse_matches_reference_and_torch_semantics(shape, seed):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=shape).astype(np.float32)
    target = rng.normal(size=shape)
    loss, grad = losses.mse(pred, target)
    diff = pred.astype(np.float64) - target
    assert loss == pytest.approx(float(np.mean(diff**2)), rel=1e-12)  # mean over every element
    assert grad.dtype == np.float32 and grad.shape == pred.shape
    np.testing.assert_allclose(grad, 2 * diff / diff.size, rtol=1e-6, atol=1e-9)


def test_mse_gradient_is_the_derivative():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    _, grad = losses.mse(pred, target)
    fd = finite_difference(lambda v: losses.mse(v, target)[0], pred)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_accuracy():
    z = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert losses.accuracy(z, np.array([1, 0, 0, 1])) == 0.5
    assert losses.accuracy(z, np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6], [1.0, 0.0]])) == 1.0


@pytest.mark.parametrize(
    "logits, labels, exc, match",
    [
        (np.zeros(3), np.array([0]), ValueError, r"logits has shape \(3,\), expected \(B, C\)"),
        (np.zeros((0, 3)), np.zeros(0, int), ValueError, "empty batch"),
        (np.zeros((2, 0)), np.zeros(2, int), ValueError, "at least one class"),
        (np.array([[0.0, np.nan]]), np.array([0]), ValueError, r"logits\[0, 1\]=.*not finite"),
        (np.array([["a", "b"]]), np.array([0]), TypeError, "logits has dtype"),
        (np.zeros((2, 3)), np.array([0, 3]), ValueError, r"labels\[1\]=3 is out of range.*< 3"),
        (np.zeros((2, 3)), np.array([-1, 0]), ValueError, r"labels\[0\]=-1 is out of range"),
        (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError, "labels has 3 entries, expected 2"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError, "must be integer class ids"),
        (np.zeros((2, 3)), np.ones((2, 2)) / 2, ValueError, r"labels has shape \(2, 2\), expected"),
        (np.zeros((2, 3)), np.full((2, 3), 0.5), ValueError, r"labels\[0\] sums to 1\.5"),
        (np.zeros((1, 2)), np.array([[1.5, -0.5]]), ValueError, r"labels\[0, 1\]=-0\.5 is negative"),
        (np.zeros((1, 2)), np.array([[np.inf, 0.0]]), ValueError, "not finite"),
        (np.zeros((1, 2)), np.zeros((1, 2, 1)), ValueError, "labels has shape"),
    ],
)
def test_cross_entropy_errors(logits, labels, exc, match):
    with pytest.raises(exc, match=match):
        losses.softmax_cross_entropy(logits, labels)


@pytest.mark.parametrize(
    "pred, target, exc, match",
    [
        (np.zeros((2, 3)), np.zeros((2, 1)), ValueError, r"target has shape \(2, 1\), expected pred's shape"),
        (np.zeros((2, 3)), np.zeros(3), ValueError, "no broadcasting"),
        (np.zeros((0, 3)), np.zeros((0, 3)), ValueError, "no elements"),
        (np.array([1.0, np.inf]), np.zeros(2), ValueError, r"pred\[1\]=.*not finite"),
        (np.zeros(2), np.array([np.nan, 0.0]), ValueError, r"target\[0\]=.*not finite"),
        (np.zeros(2), np.array(["a", "b"]), TypeError, "target has dtype"),
    ],
)
def test_mse_errors(pred, target, exc, match):
    with pytest.raises(exc, match=match):
        losses.mse(pred, target)


def test_get_resolves_names_and_callables():
    assert losses.get("mse") is losses.mse
    assert losses.get("softmax_cross_entropy") is losses.softmax_cross_entropy

    def custom(pred, y):
        return 0.0, pred

    assert losses.get(custom) is custom
    with pytest.raises(ValueError, match=r"loss='hinge' is unknown"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="loss must be a name"):
        losses.get(3)
    assert cx.losses is losses
