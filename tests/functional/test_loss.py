"""cross_entropy: gradients, its composition from primitives, ignore_index, reductions,
stability, errors, dtype."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.functional import cross_entropy

REDUCTIONS = ["mean", "sum", "none"]


@st.composite
def problems(draw):
    """(logits [..., V] float64 leaf, targets [...] with some -100s, reduction)."""
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    V = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    targets = rng.integers(0, V, size=lead)
    ignored = rng.random(lead) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    targets = np.where(ignored, -100, targets)
    logits = Tensor(rng.standard_normal(lead + (V,)) * 2, requires_grad=True)
    return logits, targets, draw(st.sampled_from(REDUCTIONS))


def cross_entropy_composed(logits, targets, reduction="mean", ignore_index=-100, smoothing=0.0):
    """-log_softmax(logits)[targets] from primitives: max, exp, sum, log, getitem; with
    label smoothing, (1 - ε) of it plus ε times the mean of -log_softmax over classes."""
    V = logits.shape[-1]
    x = logits.reshape(-1, V)                                   # [N, V]
    z = x - x.max(axis=-1, keepdims=True)
    logp = z - z.exp().sum(axis=-1, keepdims=True).log()        # [N, V]
    t = np.asarray(targets).reshape(-1)
    valid = t != ignore_index
    picked = -logp[np.arange(t.size), np.where(valid, t, 0)]    # [N]
    if smoothing:
        picked = (1 - smoothing) * picked - smoothing * logp.mean(axis=-1)
    losses = picked * valid.astype(logits.dtype)                # ignored rows: 0
    if reduction == "none":
        return losses.reshape(np.shape(targets))
    total = losses.sum()
    return total / max(int(valid.sum()), 1) if reduction == "mean" else total


# ----------------------------------------------------------------------------- gradients
@given(problem=problems())
def test_cross_entropy_gradcheck(problem):
    logits, targets, reduction = problem
    assert gradcheck(lambda x: cross_entropy(x, targets, reduction=reduction), logits)


@given(problem=problems())
def test_cross_entropy_equals_its_composition(problem, same_values_and_grads):
    logits, targets, reduction = problem
    same_values_and_grads(lambda x: cross_entropy(x, targets, reduction=reduction),
                          lambda x: cross_entropy_composed(x, targets, reduction), logits)


@given(problem=problems(), smoothing=st.sampled_from([0.05, 0.5, 1.0]))
def test_label_smoothing_gradcheck_and_composition(problem, smoothing, same_values_and_grads):
    logits, targets, reduction = problem

    def fused(x):
        return cross_entropy(x, targets, reduction=reduction, label_smoothing=smoothing)
    assert gradcheck(fused, logits)
    same_values_and_grads(fused, lambda x: cross_entropy_composed(x, targets, reduction,
                                                                  smoothing=smoothing), logits)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.1"])
def test_label_smoothing_out_of_range(bad):
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(Tensor(np.zeros((2, 3))), [0, 1], label_smoothing=bad)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(0)
    logits = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    targets = np.array([[0, 3, -100], [1, 1, 2]])
    cross_entropy(logits, targets).backward()
    p = np.exp(logits.data) / np.exp(logits.data).sum(-1, keepdims=True)
    expected = p.copy()
    for (b, t), c in np.ndenumerate(targets):
        if c == -100:
            expected[b, t] = 0
        else:
            expected[b, t, c] -= 1
    np.testing.assert_allclose(logits.grad, expected / 5, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("V", [1, 2, 65, 50257])
def test_uniform_logits_give_log_vocab(V):
    loss = cross_entropy(Tensor(np.zeros((3, V))), np.arange(3) % V)
    assert loss.item() == pytest.approx(math.log(V), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_logits_of_magnitude_1e4(dtype):
    logits = Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype),
                    requires_grad=True)
    loss = cross_entropy(logits, np.array([1, 2]), reduction="none")
    np.testing.assert_allclose(loss.data, [2e4, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    assert np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(logits.grad, [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-7)


def test_mean_is_over_the_targets_that_are_not_ignored():
    rng = np.random.default_rng(1)
    logits = Tensor(rng.standard_normal((4, 6)))
    targets = np.array([2, -100, 5, -100])
    per = cross_entropy(logits, targets, reduction="none").data
    assert per[1] == 0 and per[3] == 0
    assert cross_entropy(logits, targets).item() == pytest.approx((per[0] + per[2]) / 2)
    assert cross_entropy(logits, targets, reduction="sum").item() == pytest.approx(per.sum())
    # a valid class as ignore_index (a padding token id): those positions count for nothing
    assert cross_entropy(logits, np.array([2, 0, 5, 0]), ignore_index=0).item() == \
        pytest.approx((per[0] + per[2]) / 2)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_targets_ignored_gives_zero_loss_and_zero_gradient(reduction):
    # PyTorch gives nan (0/0) for "mean"; we give 0, see the docstring
    logits = Tensor(np.random.default_rng(2).standard_normal((2, 3, 4)), requires_grad=True)
    loss = cross_entropy(logits, np.full((2, 3), -100), reduction=reduction)
    np.testing.assert_array_equal(loss.data, np.zeros(loss.shape))
    loss.backward(np.ones(loss.shape))
    np.testing.assert_array_equal(logits.grad, np.zeros((2, 3, 4)))


def test_targets_may_be_an_int_tensor_or_a_list_and_of_any_int_dtype():
    logits = Tensor(np.random.default_rng(3).standard_normal((3, 4)))
    expected = cross_entropy(logits, np.array([0, 3, 1])).item()
    for targets in (Tensor(np.array([0, 3, 1])), [0, 3, 1], np.array([0, 3, 1], np.uint8),
                    np.array([0, 3, 1], np.int32)):
        assert cross_entropy(logits, targets).item() == expected


def test_one_dimensional_logits_take_a_scalar_target():
    logits = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    loss = cross_entropy(logits, np.array(2))
    expected = -(3 - np.log(np.exp([1.0, 2.0, 3.0]).sum()))
    assert loss.item() == pytest.approx(expected)
    assert gradcheck(lambda x: cross_entropy(x, 2), logits)


def test_backward_twice_with_retained_graph_doubles_the_gradient():
    logits = Tensor(np.random.default_rng(4).standard_normal((3, 4)), requires_grad=True)
    loss = cross_entropy(logits, np.array([0, 1, -100]))
    loss.backward(retain_graph=True)
    first = logits.grad.copy()
    loss.backward()
    np.testing.assert_allclose(logits.grad, 2 * first, rtol=1e-15)


def test_cross_entropy_does_not_mutate_its_inputs():
    rng = np.random.default_rng(5)
    logits = Tensor(rng.standard_normal((2, 3, 5)), requires_grad=True)
    targets = np.array([[0, 4, -100], [1, 2, 3]])
    before, tbefore = logits.data.copy(), targets.copy()
    cross_entropy(logits, targets).backward()
    np.testing.assert_array_equal(logits.data, before)
    np.testing.assert_array_equal(targets, tbefore)


# ----------------------------------------------------------------------------- errors
def test_shape_mismatch_is_an_error_naming_both_shapes():
    logits = Tensor(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3, 5\).*\(2, 3\).*\(3, 2\)"):
        cross_entropy(logits, np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="targets of shape"):
        cross_entropy(logits, np.zeros((2, 3, 5), dtype=int))


@pytest.mark.parametrize("bad", [5, 7, -1, -101])
def test_target_out_of_range_is_an_index_error_naming_it(bad):
    with pytest.raises(IndexError, match=f"target {bad} .*V=5"):
        cross_entropy(Tensor(np.zeros((3, 5))), np.array([0, bad, -100]))


@pytest.mark.parametrize("targets", [np.array([0.0, 1.0]), np.array([True, False]),
                                     Tensor(np.array([0.0, 1.0]))])
def test_float_or_bool_targets_are_a_type_error(targets):
    with pytest.raises(TypeError, match="integers"):
        cross_entropy(Tensor(np.zeros((2, 3))), targets)


def test_unknown_reduction_is_an_error():
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 1]), reduction="avg")


# ----------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_keeps_float32(reduction, float32_kept):
    logits = Tensor(np.random.default_rng(6).standard_normal((2, 3, 4)).astype(np.float32),
                    requires_grad=True)
    targets = np.array([[0, 3, -100], [1, 1, 2]])
    float32_kept(lambda x: cross_entropy(x, targets, reduction=reduction), logits)


def test_cross_entropy_is_one_node():
    logits = Tensor(np.zeros((2, 3, 4)), requires_grad=True)
    assert cross_entropy(logits, np.zeros((2, 3), dtype=int))._ctx.parents[0] is logits
    assert cross_entropy(logits, np.zeros((2, 3), dtype=int),
                         reduction="none")._ctx.parents[0] is logits
