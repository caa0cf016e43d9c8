"""distill_loss: a float64 NumPy reference and its composition from primitives, gradient
checks, cross-entropy exactly at T=1 and alpha=0, zero at student == teacher, properties
(KL >= 0, ignored positions, shift invariance), chunking, errors, dtype."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpyllm.functional.distill as distill_module
from numpyllm import Tensor, gradcheck
from numpyllm.functional import cross_entropy, distill_loss, log_softmax

REDUCTIONS = ["mean", "sum", "none"]


def reference(s, t, y, T, alpha, reduction="mean"):
    """The loss in float64 NumPy, written from the formula: per position
    α T² Σ p (log p - log q) + (1 - α)(-log softmax(s)[y]), over the counted positions."""
    def log_softmax_np(x):
        m = x.max(axis=-1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    log_q, log_p = log_softmax_np(s / T), log_softmax_np(t / T)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)
    ce = -np.take_along_axis(log_softmax_np(s), np.where(y < 0, 0, y)[..., None], -1)[..., 0]
    per = np.where(y == -100, 0.0, alpha * T * T * kl + (1 - alpha) * ce)
    if reduction == "none":
        return per
    n = int((y != -100).sum())
    return per.sum() / (n if reduction == "mean" and n else 1)


def reference_grad(s, t, y, T, alpha):
    """d mean-loss / d s in NumPy: (α T (q - p) + (1 - α)(softmax(s) - onehot)) / n."""
    def softmax_np(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    onehot = np.eye(s.shape[-1])[np.where(y < 0, 0, y)]
    g = alpha * T * (softmax_np(s / T) - softmax_np(t / T)) \
        + (1 - alpha) * (softmax_np(s) - onehot)
    counted = (y != -100)
    return np.where(counted[..., None], g, 0.0) / max(int(counted.sum()), 1)


def composed(s, t, y, T, alpha, reduction="mean"):
    """The same loss from the library's primitives (log_softmax, *, sum), on Tensors."""
    V = s.shape[-1]
    log_q = log_softmax(s * (1.0 / T))
    log_p = np.asarray(log_softmax(Tensor(t / T)).data)
    kl = (Tensor(np.exp(log_p)) * (Tensor(log_p) - log_q)).sum(axis=-1)
    onehot = np.eye(V)[np.where(y < 0, 0, y)]
    ce = -(log_softmax(s) * Tensor(onehot)).sum(axis=-1)
    mask = Tensor((y != -100).astype(np.float64))
    per = (kl * (alpha * T * T) + ce * (1 - alpha)) * mask
    if reduction == "none":
        return per
    n = int((y != -100).sum())
    return per.sum() * (1.0 / (n if reduction == "mean" and n else 1))


def problem(seed, shape=(2, 5), V=7, ignored=0.3):
    rng = np.random.default_rng(seed)
    s = 2 * rng.standard_normal(shape + (V,))
    t = 2 * rng.standard_normal(shape + (V,))
    y = rng.integers(0, V, size=shape)
    y[rng.random(shape) < ignored] = -100
    return s, t, y


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (2.0, 0.5), (4.0, 1.0), (0.5, 0.0),
                                     (3.0, 0.1), (1.0, 1.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_numpy_reference(seed, T, alpha):
    s, t, y = problem(seed)
    x = Tensor(s.copy(), requires_grad=True)
    loss = distill_loss(x, t, y, temperature=T, alpha=alpha)
    loss.backward()
    np.testing.assert_allclose(loss.item(), reference(s, t, y, T, alpha), rtol=1e-12)
    np.testing.assert_allclose(x.grad, reference_grad(s, t, y, T, alpha), rtol=1e-10,
                               atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("T,alpha", [(2.0, 0.5), (1.0, 0.0), (5.0, 1.0)])
def test_equals_its_composition_from_primitives(same_values_and_grads, T, alpha, reduction):
    s, t, y = problem(3, (3, 4), 6)
    fused = lambda x: distill_loss(x, t, y, temperature=T, alpha=alpha,     # noqa: E731
                                   reduction=reduction)
    same_values_and_grads(fused, lambda x: composed(x, t, y, T, alpha, reduction),
                          Tensor(s, requires_grad=True))
    np.testing.assert_allclose(fused(Tensor(s)).data, reference(s, t, y, T, alpha, reduction),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_gradcheck(alpha, reduction):
    s, t, y = problem(4, (2, 3), 5)
    assert gradcheck(lambda x: distill_loss(x, t, y, temperature=2.5, alpha=alpha,
                                            reduction=reduction), Tensor(s, requires_grad=True))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("T", [1.0, 3.0])
def test_alpha_zero_is_cross_entropy_exactly(reduction, T):
    """At α = 0 the teacher plays no part: the value and the gradient are cross_entropy's,
    bit for bit (the same operations in the same order), whatever T and the teacher."""
    s, t, y = problem(5, (3, 6), 9)
    a, b = Tensor(s.copy(), requires_grad=True), Tensor(s.copy(), requires_grad=True)
    ours = distill_loss(a, t, y, temperature=T, alpha=0.0, reduction=reduction)
    theirs = cross_entropy(b, y, reduction=reduction)
    assert np.array_equal(ours.data, theirs.data)
    cot = np.random.default_rng(0).standard_normal(ours.shape)
    ours.backward(cot)
    theirs.backward(cot)
    assert np.array_equal(a.grad, b.grad)


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_student_equal_to_teacher_has_zero_kl_and_gradient(T):
    s, _, y = problem(6, (2, 4), 8)
    x = Tensor(s.copy(), requires_grad=True)
    loss = distill_loss(x, s, y, temperature=T, alpha=1.0)
    loss.backward()
    assert abs(loss.item()) < 1e-14
    assert np.abs(x.grad).max() < 1e-15
    # mixed: what remains is (1 - α) times the cross-entropy and its gradient
    x2, x3 = Tensor(s.copy(), requires_grad=True), Tensor(s.copy(), requires_grad=True)
    mixed = distill_loss(x2, s, y, temperature=T, alpha=0.4)
    ce = cross_entropy(x3, y)
    mixed.backward(), ce.backward()
    np.testing.assert_allclose(mixed.item(), 0.6 * ce.item(), rtol=1e-13)
    np.testing.assert_allclose(x2.grad, 0.6 * x3.grad, rtol=1e-12, atol=1e-16)


@st.composite
def problems(draw):
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    V = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0, 100.0]))
    s = scale * rng.standard_normal(lead + (V,))
    t = scale * rng.standard_normal(lead + (V,))
    y = rng.integers(0, V, size=lead)
    y[rng.random(lead) < draw(st.sampled_from([0.0, 0.4]))] = -100
    T = draw(st.sampled_from([0.5, 1.0, 2.0, 7.0]))
    return s, t, y, T


@settings(max_examples=60, deadline=None)
@given(problems())
def test_kl_is_never_negative(p):
    s, t, y, T = p
    per = distill_loss(Tensor(s), t, y, temperature=T, alpha=1.0, reduction="none").data
    assert np.all(per >= -1e-12 * max(1.0, np.abs(s).max(), np.abs(t).max()))
    assert np.isfinite(per).all()


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(0.0, 1.0))
def test_ignored_positions_contribute_nothing(p, alpha):
    s, t, y, T = p
    noise = np.random.default_rng(1).standard_normal(s.shape) * 50
    ignored = (y == -100)[..., None]
    s2, t2 = np.where(ignored, s + noise, s), np.where(ignored, t - noise, t)
    a, b = Tensor(s, requires_grad=True), Tensor(s2, requires_grad=True)
    la = distill_loss(a, t, y, temperature=T, alpha=alpha)
    lb = distill_loss(b, t2, y, temperature=T, alpha=alpha)
    la.backward(), lb.backward()
    assert la.item() == lb.item()
    assert np.all(a.grad[y == -100] == 0) and np.all(b.grad[y == -100] == 0)
    np.testing.assert_array_equal(a.grad, b.grad)


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(0.0, 1.0), st.floats(-1e3, 1e3))
def test_invariant_to_a_constant_added_to_a_teacher_row(p, alpha, c):
    s, t, y, T = p
    shifts = c * np.random.default_rng(2).random(t.shape[:-1])[..., None]   # per row
    a, b = Tensor(s, requires_grad=True), Tensor(s, requires_grad=True)
    la = distill_loss(a, t, y, temperature=T, alpha=alpha)
    lb = distill_loss(b, t + shifts, y, temperature=T, alpha=alpha)
    la.backward(), lb.backward()
    scale = 1.0 + abs(la.item())
    assert abs(la.item() - lb.item()) <= 1e-9 * scale * (1 + abs(c) / T)
    np.testing.assert_allclose(a.grad, b.grad, atol=1e-9 * (1 + abs(c) / T))


def test_chunks_give_the_same_result(monkeypatch):
    """Rows in chunks of 2 (a tiny CHUNK_ELEMENTS) equal the one-chunk result."""
    s, t, y = problem(7, (3, 5), 6)
    def run():
        x = Tensor(s.copy(), requires_grad=True)
        loss = distill_loss(x, t, y, temperature=2.0, alpha=0.5, reduction="none")
        loss.backward(np.arange(15.0).reshape(3, 5))
        return loss.data, x.grad
    whole = run()
    monkeypatch.setattr(distill_module, "CHUNK_ELEMENTS", 12)        # 2 rows of V = 6
    chunked = run()
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-14)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-14)


def test_every_target_ignored_gives_zero():
    s, t, _ = problem(8)
    x = Tensor(s, requires_grad=True)
    loss = distill_loss(x, t, np.full((2, 5), -100))
    loss.backward()
    assert loss.item() == 0.0 and not x.grad.any()


def test_float32_kept(float32_kept):
    s, t, y = problem(9)
    float32_kept(lambda x: distill_loss(x, t, y), Tensor(s.astype(np.float32),
                                                         requires_grad=True))


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": float("inf")}, "temperature"),
    ({"temperature": True}, "temperature"), ({"alpha": 1.5}, "alpha"),
    ({"alpha": -0.1}, "alpha"), ({"alpha": float("nan")}, "alpha"),
    ({"reduction": "avg"}, "reduction")])
def test_bad_settings_are_refused(kwargs, match):
    s, t, y = problem(11)
    with pytest.raises(ValueError, match=match):
        distill_loss(Tensor(s), t, y, **kwargs)


def test_bad_shapes_and_targets_are_refused():
    s, t, y = problem(12)
    with pytest.raises(ValueError, match="same vocabulary"):
        distill_loss(Tensor(s), t[..., :-1], y)
    with pytest.raises(ValueError, match="targets of shape"):
        distill_loss(Tensor(s), t, y[:, :-1])
    with pytest.raises(IndexError, match="out of range"):
        distill_loss(Tensor(s), t, np.full((2, 5), 7))
    with pytest.raises(TypeError, match="floats"):
        distill_loss(Tensor(s), t.astype(np.int64), y)
