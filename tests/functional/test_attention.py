"""scaled_dot_product_attention: gradients, the composition from primitives, and what
the masks mean (causality, key padding, batch independence, empty rows)."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck, no_grad
from numpyllm.functional import (causal_mask, combine_masks, padding_mask, prefix_lm_mask,
                                 scaled_dot_product_attention as sdpa, sliding_window_mask)

MASK_KINDS = ["none", "causal", "padding", "prefix", "window", "random"]


def leaf(rng, shape, dtype=np.float64):
    return Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


@st.composite
def cases(draw, kinds=MASK_KINDS):
    """q, k, v [B, nh, T, hs] with small sizes (size 1 included) and one kind of mask,
    as sdpa keyword arguments."""
    B, nh = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    Tq, Tk = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    hs, hv = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kind = draw(st.sampled_from(kinds))
    if kind == "prefix":
        Tk = Tq
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kwargs = {}
    if kind == "causal":
        kwargs["causal"] = True
    elif kind == "padding":
        kwargs["mask"] = padding_mask(rng.integers(0, Tk + 1, size=B), Tk)
    elif kind == "prefix":
        kwargs["mask"] = prefix_lm_mask(Tq, rng.integers(0, Tq + 1, size=B))
    elif kind == "window":
        kwargs["mask"] = sliding_window_mask(Tq, int(rng.integers(1, 4)), Tk)
    elif kind == "random":
        kwargs["mask"] = rng.random((B, 1, Tq, Tk)) < 0.7
    q, k, v = leaf(rng, (B, nh, Tq, hs)), leaf(rng, (B, nh, Tk, hs)), leaf(rng, (B, nh, Tk, hv))
    return rng, q, k, v, kwargs


def full_mask(q, k, kwargs):
    """The allowed (query, key) pairs of a case as one explicit [B, nh, Tq, Tk] mask."""
    shape = q.shape[:-1] + (k.shape[-2],)
    causal = causal_mask(q.shape[-2], k.shape[-2]) if kwargs.get("causal") else None
    allowed = combine_masks(kwargs.get("mask"), causal)
    return np.ones(shape, bool) if allowed is None else np.broadcast_to(allowed, shape)


def composed(q, k, v, allowed, bias=None, keep=None, p=0.0):
    """Attention from primitives: q@kᵀ, masked_fill, softmax via exp/sum, dropout, @v."""
    s = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if bias is not None:
        s = s + bias
    s = s.masked_fill(~allowed, -np.inf)
    e = (s - s.data.max(axis=-1, keepdims=True)).exp()   # a constant shift: no gradient
    w = e / e.sum(axis=-1, keepdims=True)
    if keep is not None:
        w = w * (keep / (1.0 - p))
    return w @ v


# ----------------------------------------------------------------------------- gradients
@given(case=cases())
def test_gradcheck_each_mask_kind(case):
    _, q, k, v, kwargs = case
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, **kwargs), q, k, v)


@given(case=cases(), bias_heads=st.booleans())
def test_gradcheck_with_a_bias_that_requires_grad(case, bias_heads):
    rng, q, k, v, kwargs = case
    B, nh, Tq, _ = q.shape
    bias = leaf(rng, (nh if bias_heads else 1, Tq, k.shape[-2]))     # broadcast over B
    assert gradcheck(lambda q, k, v, b: sdpa(q, k, v, bias=b, **kwargs), q, k, v, bias)


@given(case=cases(), p=st.sampled_from([0.1, 0.5]))
def test_gradcheck_with_dropout(case, p):
    _, q, k, v, kwargs = case
    # a fresh generator with a fixed seed inside fn: every evaluation drops the same weights
    fn = lambda q, k, v: sdpa(q, k, v, dropout_p=p, rng=np.random.default_rng(7), **kwargs)
    assert gradcheck(fn, q, k, v)


@given(Tq=st.integers(1, 5), Tk=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_gradcheck_causal_with_different_query_and_key_lengths(Tq, Tk, seed):
    rng = np.random.default_rng(seed)
    q, k, v = leaf(rng, (2, Tq, 3)), leaf(rng, (2, Tk, 3)), leaf(rng, (2, Tk, 2))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, causal=True), q, k, v)


def test_gradcheck_broadcast_batch_axes():
    rng = np.random.default_rng(0)
    # keys and values shared by all heads (as in multi-query attention), and the reverse
    q, k, v = leaf(rng, (2, 3, 4, 2)), leaf(rng, (2, 1, 4, 2)), leaf(rng, (2, 1, 4, 3))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, causal=True), q, k, v)
    q, k, v = leaf(rng, (1, 3, 2)), leaf(rng, (3, 2)), leaf(rng, (2, 3, 2))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v), q, k, v)


def test_gradient_reaches_only_the_inputs_that_require_it():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2)), leaf(rng, (2, 3, 2))
    assert gradcheck(lambda v: sdpa(q, k, v, causal=True), v)
    qt = leaf(rng, (2, 3, 2))
    assert gradcheck(lambda q: sdpa(q, k, v.data, causal=True), qt)


# ----------------------------------------------------------------------------- composition
@given(case=cases(), with_bias=st.booleans())
def test_equals_the_composition_from_primitives(case, with_bias, same_values_and_grads):
    rng, q, k, v, kwargs = case
    allowed = full_mask(q, k, kwargs).copy()
    allowed[~allowed.any(axis=-1)] = True       # the composition would give NaN on empty rows
    bias = leaf(rng, (1, q.shape[1], q.shape[2], k.shape[2])) if with_bias else None
    same_values_and_grads(lambda q, k, v, *b: sdpa(q, k, v, mask=allowed, bias=b[0] if b else None),
                          lambda q, k, v, *b: composed(q, k, v, allowed, b[0] if b else None),
                          q, k, v, *([bias] if with_bias else []))


def _dropped_weights(q, k, kwargs, p, seed):
    """The weights attention used, read off its output: with v the identity over keys,
    out = dropout(softmax(scores)) @ I is the dropped weight matrix itself."""
    Tk = k.shape[-2]
    eye = np.broadcast_to(np.eye(Tk), k.shape[:-1] + (Tk,))
    with no_grad():
        return sdpa(q.data, k.data, eye, dropout_p=p, rng=np.random.default_rng(seed),
                    **kwargs).data


@pytest.mark.parametrize("block_size", [None, 2])
@given(case=cases(kinds=["none", "causal", "padding", "window"]), p=st.sampled_from([0.2, 0.6]),
       seed=st.integers(0, 2**16))
def test_dropout_drops_whole_weights_after_the_softmax(case, p, seed, block_size,
                                                       same_values_and_grads):
    """Each weight is either dropped (0) or kept and scaled by 1/(1-p), after the softmax
    (kept rows are not renormalised); the mask is a function of the generator alone, so
    the real v sees the same mask, and values and gradients equal the composition with
    that mask. Nothing here knows how the implementation draws it."""
    _, q, k, v, kwargs = case
    if block_size:
        kwargs = dict(kwargs, block_size=block_size)
    with no_grad():
        weights = sdpa(q.data, k.data, v.data, mask=kwargs.get("mask"),
                       causal=kwargs.get("causal", False), return_weights=True)[1]
    dropped = _dropped_weights(q, k, kwargs, p, seed)
    keep = dropped != 0
    np.testing.assert_allclose(dropped, np.where(keep, weights / (1 - p), 0.0),
                               rtol=1e-12, atol=1e-15)
    assert not (keep & (weights == 0)).any()          # a masked key is never revived
    allowed = full_mask(q, k, kwargs).copy()
    allowed[~allowed.any(axis=-1)] = True              # the composition would give NaN
    same_values_and_grads(
        lambda q, k, v: sdpa(q, k, v, dropout_p=p, rng=np.random.default_rng(seed), **kwargs),
        lambda q, k, v: composed(q, k, v, allowed, keep=keep, p=p),   # empty rows: all dropped
        q, k, v)


@pytest.mark.parametrize("block_size", [None, 4])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_keeps_each_weight_with_probability_1_minus_p(p, block_size):
    rng = np.random.default_rng(0)
    q, k = (Tensor(rng.standard_normal((4, 4, 32, 8))) for _ in range(2))
    kw = {} if block_size is None else {"block_size": block_size}
    kept = np.mean([_dropped_weights(q, k, kw, p, s) != 0 for s in range(3)])
    n = 3 * 4 * 4 * 32 * 32
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)    # 5 sigma
    # independent draws: other seeds give other masks; the same seed the same one
    a, b = (_dropped_weights(q, k, kw, p, s) for s in (0, 1))
    assert (a != 0).tolist() != (b != 0).tolist()
    np.testing.assert_array_equal(a, _dropped_weights(q, k, kw, p, 0))


def test_causal_flag_equals_the_explicit_causal_mask():
    rng = np.random.default_rng(2)
    q, k, v = leaf(rng, (2, 3, 2)), leaf(rng, (2, 5, 2)), leaf(rng, (2, 5, 2))
    np.testing.assert_array_equal(sdpa(q, k, v, causal=True).data,
                                  sdpa(q, k, v, mask=causal_mask(3, 5)).data)


def test_float32_stays_float32(float32_kept):
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng, (2, 2, 3, 4), np.float32) for _ in range(3))
    bias = leaf(rng, (2, 3, 3), np.float32)
    float32_kept(lambda q, k, v, b: sdpa(q, k, v, causal=True, bias=b, dropout_p=0.1,
                                         rng=np.random.default_rng(0)), q, k, v, bias)
    # a float64 bias does not promote the float32 scores
    assert sdpa(q, k, v, bias=np.zeros((3, 3))).dtype == np.float32


# ----------------------------------------------------------------------------- semantics
@given(case=cases(kinds=["causal"]), data=st.data())
def test_causality_later_keys_do_not_change_earlier_outputs(case, data):
    rng, q, k, v, kwargs = case
    Tq, Tk = q.shape[2], k.shape[2]
    t = data.draw(st.integers(0, Tk - 1), label="t")     # keys after absolute position t change
    k2, v2 = k.data.copy(), v.data.copy()
    k2[:, :, t + 1:] = rng.standard_normal(k2[:, :, t + 1:].shape)
    v2[:, :, t + 1:] = rng.standard_normal(v2[:, :, t + 1:].shape)
    with no_grad():
        before, after = sdpa(q, k, v, causal=True).data, sdpa(q, k2, v2, causal=True).data
    seen = Tk - Tq + np.arange(Tq) <= t                  # queries at positions <= t
    np.testing.assert_allclose(after[:, :, seen], before[:, :, seen], rtol=0, atol=1e-14)


@given(case=cases(kinds=["padding"]))
def test_what_sits_in_padded_keys_does_not_matter(case):
    rng, q, k, v, kwargs = case
    padded = ~kwargs["mask"][:, 0, 0]                    # [B, Tk]
    k2, v2 = k.data.copy(), v.data.copy()
    for a in (k2, v2):
        by_key = a.transpose(0, 2, 1, 3)                 # [B, Tk, nh, hs], a view of a
        by_key[padded] = 1e3 * rng.standard_normal(by_key[padded].shape)
    with no_grad():
        np.testing.assert_allclose(sdpa(q, k2, v2, **kwargs).data, sdpa(q, k, v, **kwargs).data,
                                   rtol=0, atol=1e-14)


@given(case=cases())
def test_each_sequence_is_computed_independently(case):
    _, q, k, v, kwargs = case
    with no_grad():
        whole = sdpa(q, k, v, **kwargs).data
        for b in range(q.shape[0]):
            mask = kwargs.get("mask")
            if mask is not None and mask.shape[0] == q.shape[0] and mask.ndim == 4:
                mask = mask[b:b + 1]
            one = sdpa(q.data[b:b + 1], k.data[b:b + 1], v.data[b:b + 1], mask=mask,
                       causal=kwargs.get("causal", False)).data
            np.testing.assert_allclose(one[0], whole[b], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make_mask", [
    lambda Tq, Tk: prefix_lm_mask(Tq, 2),
    lambda Tq, Tk: sliding_window_mask(Tq, 2, Tk),
    lambda Tq, Tk: causal_mask(Tq, Tk),
], ids=["prefix_lm", "sliding_window", "causal"])
def test_weights_are_positive_exactly_where_the_mask_allows(make_mask):
    rng = np.random.default_rng(4)
    Tq = Tk = 5
    q, k, v = (rng.standard_normal((2, 3, T, 4)) for T in (Tq, Tk, Tk))
    mask = make_mask(Tq, Tk)
    out, w = sdpa(q, k, v, mask=mask, return_weights=True)
    np.testing.assert_array_equal(w > 0, np.broadcast_to(mask, w.shape))
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(w @ v, out.data, rtol=1e-12)


def test_fully_masked_rows_give_zeros_and_no_nan():
    rng = np.random.default_rng(5)
    q, k, v = leaf(rng, (2, 2, 4, 3)), leaf(rng, (2, 2, 5, 3)), leaf(rng, (2, 2, 5, 3))
    mask = padding_mask([0, 3], 5)                        # sequence 0 has no valid key at all
    out, w = sdpa(q, k, v, mask=mask, return_weights=True)
    out.backward(rng.standard_normal(out.shape))
    assert not any(np.isnan(a).any() for a in (out.data, w, q.grad, k.grad, v.grad))
    assert (out.data[0] == 0).all() and (w[0] == 0).all() and (q.grad[0] == 0).all()
    assert out.data[1].any()
    # causal with more queries than keys: the first Tq - Tk queries see nothing
    out = sdpa(q, k[:, :, :2], v[:, :, :2], causal=True)
    assert (out.data[:, :, :2] == 0).all() and out.data[:, :, 2:].all()
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, mask=mask), q, k, v)


def test_no_keys_at_all_gives_zeros():
    q, k, v = np.ones((2, 3)), np.ones((0, 3)), np.ones((0, 4))
    np.testing.assert_array_equal(sdpa(q, k, v).data, np.zeros((2, 4)))


def test_return_weights_are_read_only_and_inputs_are_not_written():
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((3, 4)) for _ in range(3))
    copies = [a.copy() for a in (q, k, v)]
    _, w = sdpa(q, k, v, causal=True, return_weights=True)
    with pytest.raises(ValueError):
        w[0, 0] = 1.0
    for a, c in zip((q, k, v), copies):
        np.testing.assert_array_equal(a, c)


def test_scale_argument():
    rng = np.random.default_rng(7)
    q, k, v = (leaf(rng, (3, 2)) for _ in range(3))
    np.testing.assert_allclose(sdpa(q, k, v, scale=1.0).data, sdpa(q * (2 ** 0.5), k, v).data)
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, scale=0.3), q, k, v)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(q=(2, 3, 4), k=(2, 3, 5)), ValueError, "same head size"),
    (dict(k=(2, 4, 4)), ValueError, "number of keys"),
    (dict(q=(3, 3, 4)), ValueError, "do not broadcast"),
    (dict(q=(4,)), ValueError, "[..., T, head_size]"),
    (dict(mask=np.ones((3, 3))), TypeError, "boolean"),
    (dict(mask=np.ones((2, 3), bool)), ValueError, "does not broadcast"),
    (dict(bias=np.ones((4, 3))), ValueError, "bias of shape (4, 3)"),
    (dict(dropout_p=1.0, rng=np.random.default_rng()), ValueError, "dropout_p"),
    (dict(dropout_p=-0.1), ValueError, "dropout_p"),
    (dict(dropout_p=0.1), ValueError, "rng"),
    (dict(v_dtype=np.float32), TypeError, "float32"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, words):
    shapes = {"q": (2, 3, 4), "k": (2, 3, 4), "v": (2, 3, 4)}
    for name in "qkv":
        shapes[name] = kwargs.pop(name, shapes[name])
    v_dtype = kwargs.pop("v_dtype", np.float64)
    q, k = np.zeros(shapes["q"]), np.zeros(shapes["k"])
    v = np.zeros(shapes["v"], dtype=v_dtype)
    with pytest.raises(error) as info:
        sdpa(q, k, v, **kwargs)
    assert words in str(info.value)


def test_a_masked_score_is_ignored_whatever_its_value():
    # a masked position may hold inf or nan (an inf bias, a nan key at a padded slot):
    # the mask replaces it, so it changes nothing
    q, k = np.ones((2, 3)), np.ones((2, 3))
    v = np.arange(8.0).reshape(2, 4)
    keep_first = np.array([[True, False], [True, False]])
    expected = np.array([[0.0, 1, 2, 3], [0, 1, 2, 3]])
    bias = np.array([[0.0, np.inf], [0.0, np.nan]])
    np.testing.assert_array_equal(sdpa(q, k, v, mask=keep_first, bias=bias).data, expected)
    k_nan = k.copy()
    k_nan[1] = np.nan
    np.testing.assert_array_equal(sdpa(q, k_nan, v, mask=keep_first).data, expected)
