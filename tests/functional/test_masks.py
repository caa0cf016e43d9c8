"""Attention masks: each allows exactly what its definition says (True = may attend)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.functional import (causal_mask, combine_masks, padding_mask, prefix_lm_mask,
                                 sliding_window_mask)

sizes = st.integers(0, 7)


def brute(Tq, Tk, allow):
    """The mask built element by element from a predicate on (query pos, key pos)."""
    return np.array([[allow(Tk - Tq + i, j) for j in range(Tk)] for i in range(Tq)],
                    dtype=bool).reshape(Tq, Tk)


@given(Tq=sizes, Tk=sizes)
def test_causal_mask_is_bottom_right_aligned(Tq, Tk):
    m = causal_mask(Tq, Tk)
    assert m.shape == (Tq, Tk) and m.dtype == bool
    np.testing.assert_array_equal(m, brute(Tq, Tk, lambda p, j: j <= p))


def test_causal_mask_square_is_the_lower_triangle():
    np.testing.assert_array_equal(causal_mask(5), np.tril(np.ones((5, 5), bool)))
    # more queries than keys: the first Tq - Tk rows allow nothing
    assert not causal_mask(4, 2)[:2].any() and causal_mask(4, 2)[2:].any(axis=1).all()


@given(Tq=sizes, Tk=sizes, window=st.integers(1, 8))
def test_sliding_window_allows_exactly_the_last_window_keys(Tq, Tk, window):
    m = sliding_window_mask(Tq, window, Tk)
    np.testing.assert_array_equal(m, brute(Tq, Tk, lambda p, j: 0 <= p - j < window))
    # every query whose position exists among the keys sees min(window, p + 1) keys
    pos = Tk - Tq + np.arange(Tq)
    np.testing.assert_array_equal(m.sum(axis=1), np.clip(np.minimum(window, pos + 1), 0, None))
    if window >= Tk:
        np.testing.assert_array_equal(m, causal_mask(Tq, Tk))


@given(T=sizes, data=st.data())
def test_prefix_lm_mask_is_bidirectional_over_the_prefix_and_causal_after(T, data):
    prefix = data.draw(st.integers(0, T))
    m = prefix_lm_mask(T, prefix)
    np.testing.assert_array_equal(m, brute(T, T, lambda i, j: j <= i or j < prefix))
    # the prefix block is full, the rest of the rows are causal
    assert m[:prefix, :prefix].all() and not m[:prefix, prefix:].any()
    np.testing.assert_array_equal(m[prefix:, prefix:], causal_mask(T - prefix))


def test_prefix_lm_mask_per_sequence():
    lengths = np.array([0, 2, 4])
    m = prefix_lm_mask(4, lengths)
    assert m.shape == (3, 1, 4, 4)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(m[b, 0], prefix_lm_mask(4, int(n)))
    np.testing.assert_array_equal(m[0, 0], causal_mask(4))
    assert m[2].all()


@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=4))
def test_padding_mask_from_lengths_and_from_valid_tokens_agree(lengths):
    T = 6
    m = padding_mask(np.array(lengths), T)
    assert m.shape == (len(lengths), 1, 1, T)
    valid = np.arange(T)[None, :] < np.array(lengths)[:, None]
    np.testing.assert_array_equal(m[:, 0, 0], valid)
    np.testing.assert_array_equal(padding_mask(valid), m)
    np.testing.assert_array_equal(padding_mask(valid, T), m)


def test_padding_mask_does_not_alias_the_callers_array():
    valid = np.ones((1, 3), bool)
    padding_mask(valid)[...] = False
    assert valid.all()


def test_combine_masks():
    causal, pad = causal_mask(3), padding_mask([2, 3], 3)
    both = combine_masks(causal, None, pad)
    assert both.shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(both, causal & pad)
    np.testing.assert_array_equal(combine_masks(None, causal), causal)
    assert combine_masks() is None and combine_masks(None, None) is None


@pytest.mark.parametrize("call, error, words", [
    (lambda: causal_mask(-1), ValueError, "Tq"),
    (lambda: causal_mask(2, 1.5), ValueError, "Tk"),
    (lambda: sliding_window_mask(3, 0), ValueError, "window"),
    (lambda: prefix_lm_mask(3, 4), ValueError, "prefix_len"),
    (lambda: prefix_lm_mask(3, [-1]), ValueError, "prefix_len"),
    (lambda: prefix_lm_mask(3, 1.0), ValueError, "prefix_len"),
    (lambda: padding_mask([1, 4], 3), ValueError, "lengths"),
    (lambda: padding_mask([1, 2]), ValueError, "T"),
    (lambda: padding_mask([0.5], 3), ValueError, "lengths"),
    (lambda: padding_mask(np.ones((2, 3), bool), 4), ValueError, "(2, 3)"),
    (lambda: padding_mask(np.ones(3, bool)), ValueError, "[B, T]"),
    (lambda: combine_masks(causal_mask(2), np.ones((2, 2))), TypeError, "float64"),
    (lambda: combine_masks(causal_mask(2), causal_mask(3)), ValueError, "(3, 3)"),
])
def test_bad_arguments_raise_clear_errors(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
