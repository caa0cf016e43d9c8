"""embedding: gradients, equality with getitem, accumulation of repeated ids, errors,
dtype."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.functional import embedding


@st.composite
def lookups(draw):
    """(ids of any small shape, repeats likely, weight [V, C] float64 leaf)."""
    V, C = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ids = rng.integers(0, V, size=shape)
    return ids, Tensor(rng.standard_normal((V, C)), requires_grad=True)


@given(problem=lookups())
def test_embedding_gradcheck(problem):
    ids, weight = problem
    assert gradcheck(lambda w: embedding(ids, w), weight)


@given(problem=lookups())
def test_embedding_equals_getitem(problem, same_values_and_grads):
    ids, weight = problem
    out = embedding(ids, weight)
    assert out.shape == ids.shape + (weight.shape[1],)
    same_values_and_grads(lambda w: embedding(ids, w), lambda w: w[ids], weight)


def test_repeated_ids_accumulate():
    weight = Tensor(np.zeros((4, 2)), requires_grad=True)
    ids = np.array([[3, 1, 3], [3, 0, 1]])
    g = np.arange(12.0).reshape(2, 3, 2)
    embedding(ids, weight).backward(g)
    expected = np.zeros((4, 2))
    for (b, t), i in np.ndenumerate(ids):
        expected[i] += g[b, t]
    np.testing.assert_array_equal(weight.grad, expected)   # row 2 never used: zero
    assert weight.grad[3].tolist() == [0 + 4 + 6, 1 + 5 + 7]


def test_large_vocabulary_backward_matches_add_at():
    rng = np.random.default_rng(0)
    weight = Tensor(np.zeros((1000, 8), np.float32), requires_grad=True)
    ids = np.minimum(rng.zipf(1.5, (16, 32)) - 1, 999)          # many repeats of small ids
    g = rng.standard_normal((16, 32, 8)).astype(np.float32)
    embedding(ids, weight).backward(g)
    expected = np.zeros((1000, 8))
    np.add.at(expected, ids.ravel(), g.reshape(-1, 8).astype(np.float64))
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-5, atol=1e-5)


def test_ids_may_be_an_int_tensor_a_list_or_any_int_dtype():
    weight = Tensor(np.arange(6.0).reshape(3, 2))
    for ids in (Tensor(np.array([2, 0])), [2, 0], np.array([2, 0], np.uint8),
                np.array([2, 0], np.int32)):
        np.testing.assert_array_equal(embedding(ids, weight).data, [[4, 5], [0, 1]])


def test_empty_ids_give_an_empty_output_and_zero_gradient():
    weight = Tensor(np.ones((3, 2)), requires_grad=True)
    out = embedding(np.zeros((2, 0), dtype=int), weight)
    assert out.shape == (2, 0, 2)
    out.backward(np.zeros((2, 0, 2)))
    np.testing.assert_array_equal(weight.grad, np.zeros((3, 2)))


def test_embedding_does_not_mutate_its_inputs():
    weight = Tensor(np.random.default_rng(1).standard_normal((5, 3)), requires_grad=True)
    ids = np.array([[4, 4, 0]])
    before, ids_before = weight.data.copy(), ids.copy()
    out = embedding(ids, weight)
    out.data[...] = 0       # the output is a copy, not a view of the weight
    out.backward(np.ones((1, 3, 3)))
    np.testing.assert_array_equal(weight.data, before)
    np.testing.assert_array_equal(ids, ids_before)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [5, 6, -1])
def test_out_of_range_ids_are_an_index_error_naming_the_id_and_V(bad):
    with pytest.raises(IndexError, match=fr"id {bad} .*V=5"):
        embedding(np.array([[0, bad], [1, 2]]), Tensor(np.zeros((5, 3))))


@pytest.mark.parametrize("ids", [np.array([0.0, 1.0]), np.array([True]),
                                 Tensor(np.array([1.0]))])
def test_float_or_bool_ids_are_a_type_error(ids):
    with pytest.raises(TypeError, match="integers"):
        embedding(ids, Tensor(np.zeros((5, 3))))


def test_weight_must_be_two_dimensional():
    with pytest.raises(ValueError, match=r"\[V, C\]"):
        embedding(np.array([0]), Tensor(np.zeros(5)))


# ----------------------------------------------------------------------------- dtype
def test_embedding_keeps_float32(float32_kept):
    weight = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    float32_kept(lambda w: embedding(np.array([[0, 3, 3]]), w), weight)
