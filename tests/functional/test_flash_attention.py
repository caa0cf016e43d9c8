"""The memory-efficient path, ``scaled_dot_product_attention(..., block_size=n)``:
gradients, equality with the standard path for every kind of mask, its tile-wise
dropout, the tiles it skips, and the memory it does not use."""
import doctest
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck, no_grad
from numpyllm.functional import (causal_mask, combine_masks, padding_mask, prefix_lm_mask,
                                 scaled_dot_product_attention as sdpa, sliding_window_mask)
from numpyllm.functional import flash_attention
from numpyllm.functional.flash_attention import Tiling

def _padding(rng, B, Tk):
    return padding_mask(rng.integers(0, Tk + 1, size=B), Tk)        # [B, 1, 1, Tk]


# kind -> the mask of a case as sdpa keyword arguments, for B sequences, Tq queries, Tk
# keys (a prefix-LM mask needs Tq == Tk). Kinds combine by and-ing their masks.
MASKS = {
    "none": lambda rng, B, Tq, Tk: {},
    "causal": lambda rng, B, Tq, Tk: {"causal": True},
    "padding": lambda rng, B, Tq, Tk: {"mask": _padding(rng, B, Tk)},
    "prefix": lambda rng, B, Tq, Tk: {
        "mask": prefix_lm_mask(Tq, rng.integers(0, Tq + 1, size=B))},  # [B, 1, T, T]
    "window": lambda rng, B, Tq, Tk: {
        "mask": sliding_window_mask(Tq, int(rng.integers(1, 4)), Tk)},  # [Tq, Tk]
    "random": lambda rng, B, Tq, Tk: {"mask": rng.random((B, 1, Tq, Tk)) < 0.7},
    "causal+padding": lambda rng, B, Tq, Tk: {"causal": True,
                                              "mask": _padding(rng, B, Tk)},
    "window+padding": lambda rng, B, Tq, Tk: {"mask": combine_masks(
        sliding_window_mask(Tq, 2, Tk), _padding(rng, B, Tk))},
}


def leaf(rng, shape, dtype=np.float64):
    return Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


@st.composite
def cases(draw, kinds=tuple(MASKS), max_T=7):
    """q, k, v [B, nh, T, hs], a block size (1 included, T not a multiple of it), and
    one kind of mask, as sdpa keyword arguments."""
    B, nh = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    Tq, Tk = draw(st.integers(1, max_T)), draw(st.integers(1, max_T))
    hs, hv = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    block_size = draw(st.integers(1, 4), label="block_size")
    kind = draw(st.sampled_from(kinds))
    if kind == "prefix":
        Tk = Tq
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kwargs = {"block_size": block_size, **MASKS[kind](rng, B, Tq, Tk)}
    q, k, v = leaf(rng, (B, nh, Tq, hs)), leaf(rng, (B, nh, Tk, hs)), leaf(rng, (B, nh, Tk, hv))
    return rng, q, k, v, kwargs


BIAS_SHAPES = {                          # each broadcasts to the scores [B, nh, Tq, Tk]
    "full": lambda B, nh, Tq, Tk: (B, nh, Tq, Tk),
    "per head": lambda B, nh, Tq, Tk: (nh, Tq, Tk),
    "per key": lambda B, nh, Tq, Tk: (Tk,),
    "per query": lambda B, nh, Tq, Tk: (nh, Tq, 1),
}


def bias_for(rng, q, k, kind):
    return leaf(rng, BIAS_SHAPES[kind](*q.shape[:3], k.shape[2]))


def grads_of(fn, inputs, cotangent):
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    out.backward(cotangent)
    return [out.data.copy()] + [t.grad.copy() for t in inputs]


# ----------------------------------------------------------------------------- gradients
@given(case=cases(), bias=st.sampled_from([None] + list(BIAS_SHAPES)))
def test_gradcheck_each_mask_kind_with_and_without_bias(case, bias):
    rng, q, k, v, kwargs = case
    if bias is None:
        assert gradcheck(lambda q, k, v: sdpa(q, k, v, **kwargs), q, k, v)
    else:
        b = bias_for(rng, q, k, bias)
        assert gradcheck(lambda q, k, v, b: sdpa(q, k, v, bias=b, **kwargs), q, k, v, b)


@given(case=cases(), p=st.sampled_from([0.1, 0.5]))
def test_gradcheck_with_dropout(case, p):
    rng, q, k, v, kwargs = case
    b = bias_for(rng, q, k, "per head")
    # a fresh generator with a fixed seed inside fn: every evaluation drops the same weights
    fn = lambda q, k, v, b: sdpa(q, k, v, bias=b, dropout_p=p, rng=np.random.default_rng(7),
                                 **kwargs)
    assert gradcheck(fn, q, k, v, b)


def test_gradcheck_broadcast_batch_axes():
    rng = np.random.default_rng(0)
    # keys and values shared by all heads (multi-query attention), and the reverse
    q, k, v = leaf(rng, (2, 3, 5, 2)), leaf(rng, (2, 1, 5, 2)), leaf(rng, (2, 1, 5, 3))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, causal=True, block_size=2), q, k, v)
    q, k, v = leaf(rng, (1, 3, 2)), leaf(rng, (3, 2)), leaf(rng, (2, 3, 2))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, block_size=2), q, k, v)


def test_gradient_reaches_only_the_inputs_that_require_it():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 5, 2)), leaf(rng, (2, 5, 2))
    assert gradcheck(lambda v: sdpa(q, k, v, causal=True, block_size=2), v)
    qt = leaf(rng, (2, 5, 2))
    assert gradcheck(lambda q: sdpa(q, k, v.data, causal=True, block_size=2), qt)


# ----------------------------------------------------------------------------- = standard
@given(case=cases(), bias=st.sampled_from([None] + list(BIAS_SHAPES)))
def test_equals_the_standard_path_values_and_gradients(case, bias):
    rng, q, k, v, kwargs = case
    inputs = (q, k, v) + ((bias_for(rng, q, k, bias),) if bias else ())
    kwargs = dict(kwargs)
    block_size = kwargs.pop("block_size")
    g = rng.standard_normal(q.shape[:-1] + (v.shape[-1],))

    def attend(q, k, v, b=None, **extra):
        return sdpa(q, k, v, bias=b, **kwargs, **extra)

    standard = grads_of(attend, inputs, g)
    blocked = grads_of(lambda *args: attend(*args, block_size=block_size), inputs, g)
    for name, a, b in zip(["out", "dq", "dk", "dv", "dbias"], standard, blocked):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("block_size", [1, 3, 16, 64])
def test_equals_the_standard_path_at_a_larger_size_in_float32(block_size):
    rng = np.random.default_rng(2)
    q, k, v = (leaf(rng, (2, 2, 50, 8), np.float32) for _ in range(3))
    mask = padding_mask([50, 31], 50)
    g = rng.standard_normal((2, 2, 50, 8)).astype(np.float32)
    standard = grads_of(lambda q, k, v: sdpa(q, k, v, mask=mask, causal=True), (q, k, v), g)
    blocked = grads_of(lambda q, k, v: sdpa(q, k, v, mask=mask, causal=True,
                                            block_size=block_size), (q, k, v), g)
    for a, b in zip(standard, blocked):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- dropout
def tile_keep_mask(seed, shape, block_size, p):
    """The dropout mask the blocked path uses, rebuilt tile by tile as documented."""
    keep = np.empty(shape, bool)
    Tq, Tk = shape[-2:]
    for i in range(0, Tq, block_size):
        for j in range(0, Tk, block_size):
            tile = keep[..., i:i + block_size, j:j + block_size]
            tile[...] = np.random.default_rng((seed, i, j)).random(tile.shape, np.float32) >= p
    return keep


@given(case=cases(kinds=["none", "causal", "window"]), p=st.sampled_from([0.2, 0.6]))
def test_dropout_drops_normalised_weights_with_the_documented_tile_masks(case, p):
    _, q, k, v, kwargs = case
    with no_grad():
        out, weights = sdpa(q, k, v, mask=kwargs.get("mask"), causal=kwargs.get("causal", False),
                            return_weights=True)
        dropped = sdpa(q, k, v, dropout_p=p, rng=np.random.default_rng(3), **kwargs)
    seed = int(np.random.default_rng(3).integers(2**63))   # the one number the path draws
    keep = tile_keep_mask(seed, weights.shape, kwargs["block_size"], p)
    np.testing.assert_allclose(dropped.data, (weights * keep / (1 - p)) @ v.data,
                               rtol=1e-12, atol=1e-13)


def test_dropout_draws_one_number_from_the_rng_and_is_reproducible():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 9, 4)) for _ in range(3))
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    out_a = sdpa(q, k, v, dropout_p=0.3, rng=a, block_size=4).data
    out_b = sdpa(q, k, v, dropout_p=0.3, rng=b, block_size=4).data
    np.testing.assert_array_equal(out_a, out_b)
    one_draw = np.random.default_rng(5)
    one_draw.integers(2**63)
    assert a.bit_generator.state == one_draw.bit_generator.state
    assert not np.allclose(out_a, sdpa(q, k, v, block_size=4).data)   # something was dropped


# ----------------------------------------------------------------------------- tiles
def visited(tiling):
    return [(rows.start, cols.start) for rows in tiling.query_blocks()
            for cols, _ in tiling.key_blocks(rows)]


def test_causal_skips_the_tiles_above_the_diagonal():
    tiles = visited(Tiling(Tq=8, Tk=8, block_size=2, scale=1.0, causal=True))
    assert tiles == [(i, j) for i in range(0, 8, 2) for j in range(0, i + 1, 2)]   # 10 of 16
    # bottom-right aligned: 2 queries after 6 cached keys see every key block
    assert visited(Tiling(Tq=2, Tk=8, block_size=2, scale=1.0, causal=True)) == \
        [(0, 0), (0, 2), (0, 4), (0, 6)]
    # more queries than keys: the first Tq - Tk = 4 queries see nothing, not even a tile
    assert visited(Tiling(Tq=6, Tk=2, block_size=2, scale=1.0, causal=True)) == [(4, 0)]
    assert visited(Tiling(Tq=6, Tk=3, block_size=2, scale=1.0, causal=True)) == \
        [(2, 0), (4, 0), (4, 2)]


def test_a_mask_that_forbids_a_whole_tile_skips_it():
    mask = sliding_window_mask(8, 2)
    tiles = visited(Tiling(Tq=8, Tk=8, block_size=2, scale=1.0, mask=mask))
    assert tiles == [(0, 0), (2, 0), (2, 2), (4, 2), (4, 4), (6, 4), (6, 6)]


def test_the_causal_mask_of_each_tile_is_the_causal_mask():
    for Tq, Tk in [(7, 7), (3, 8), (8, 3)]:
        tiling = Tiling(Tq=Tq, Tk=Tk, block_size=3, scale=1.0, causal=True)
        allowed = np.zeros((Tq, Tk), bool)
        for rows in tiling.query_blocks():
            for cols, tile in tiling.key_blocks(rows):
                allowed[rows, cols] = True if tile is None else tile
        np.testing.assert_array_equal(allowed, causal_mask(Tq, Tk))


# ----------------------------------------------------------------------------- memory
def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_forward_and_backward_never_hold_a_scores_sized_array():
    rng = np.random.default_rng(6)
    T, hs, block = 512, 8, 32
    q, k, v = (leaf(rng, (1, 2, T, hs)) for _ in range(3))
    g = np.ones((1, 2, T, hs))

    def step(**kwargs):
        sdpa(q, k, v, causal=True, **kwargs).backward(g)

    scores_bytes = 2 * T * T * 8                       # one [1, 2, T, T] float64 array: 4 MiB
    assert peak_bytes(step) > 2 * scores_bytes         # the standard path keeps P, makes dP
    assert peak_bytes(lambda: step(block_size=block)) < scores_bytes / 8
    saved = [a.shape for a in sdpa(q, k, v, causal=True, block_size=block)._ctx.saved
             if a is not None]
    assert (T, T) not in [s[-2:] for s in saved]


# ----------------------------------------------------------------------------- semantics
def test_fully_masked_rows_give_zeros_and_no_nan():
    rng = np.random.default_rng(5)
    q, k, v = leaf(rng, (2, 2, 4, 3)), leaf(rng, (2, 2, 5, 3)), leaf(rng, (2, 2, 5, 3))
    mask = padding_mask([0, 3], 5)                     # sequence 0 has no valid key at all
    out = sdpa(q, k, v, mask=mask, block_size=2)
    out.backward(rng.standard_normal(out.shape))
    assert not any(np.isnan(a).any() for a in (out.data, q.grad, k.grad, v.grad))
    assert (out.data[0] == 0).all() and (q.grad[0] == 0).all() and out.data[1].all()
    # causal with more queries than keys: the first Tq - Tk queries see nothing
    out = sdpa(q, k[:, :, :2], v[:, :, :2], causal=True, block_size=1)
    assert (out.data[:, :, :2] == 0).all() and out.data[:, :, 2:].all()
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, mask=mask, block_size=3), q, k, v)


def test_no_keys_and_no_queries():
    np.testing.assert_array_equal(
        sdpa(np.ones((2, 3)), np.ones((0, 3)), np.ones((0, 4)), block_size=2).data, np.zeros((2, 4)))
    assert sdpa(np.ones((0, 3)), np.ones((2, 3)), np.ones((2, 4)), block_size=2).shape == (0, 4)


def test_float32_stays_float32(float32_kept):
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng, (2, 2, 5, 4), np.float32) for _ in range(3))
    bias = leaf(rng, (2, 5, 5), np.float32)
    float32_kept(lambda q, k, v, b: sdpa(q, k, v, causal=True, bias=b, dropout_p=0.1,
                                         rng=np.random.default_rng(0), block_size=2), q, k, v, bias)
    # a float64 bias does not promote the float32 scores
    assert sdpa(q, k, v, bias=np.zeros((5, 5)), block_size=2).dtype == np.float32


def test_inputs_and_masks_are_not_written():
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    bias = rng.standard_normal((5, 5))
    mask = combine_masks(sliding_window_mask(5, 3), rng.random((2, 5, 5)) < 0.8)
    copies = [a.copy() for a in (q, k, v, bias, mask)]
    sdpa(q, k, v, mask=mask, bias=bias, causal=True, block_size=2)
    for a, c in zip((q, k, v, bias, mask), copies):
        np.testing.assert_array_equal(a, c)


def test_the_module_example_runs():
    assert doctest.testmod(flash_attention).failed == 0


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(block_size=0), ValueError, "block_size"),
    (dict(block_size=2.5), ValueError, "block_size"),
    (dict(block_size=True), ValueError, "block_size"),
    (dict(block_size=2, return_weights=True), ValueError, "return_weights"),
    (dict(block_size=2, mask=np.ones((2, 3), bool)), ValueError, "does not broadcast"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, words):
    q = k = v = np.zeros((2, 3, 4))
    with pytest.raises(error) as info:
        sdpa(q, k, v, **kwargs)
    assert words in str(info.value)
