"""Positions: the sinusoidal closed form, RoPE's relative-position property and its
gradient, ALiBi's slopes and bias."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.nn import (ALiBi, RotaryEmbedding, SinusoidalPositions, alibi_bias, alibi_slopes,
                         apply_rope, sinusoidal_table)
from numpyllm.nn.positional import rotate_pairs

seeds = st.integers(0, 2**16)


# ----------------------------------------------------------------------------- sinusoidal
@given(T=st.integers(0, 6), d=st.integers(1, 9), offset=st.integers(0, 10_000),
       base=st.sampled_from([10000.0, 100.0]))
def test_sinusoidal_table_matches_the_closed_form(T, d, offset, base):
    table = sinusoidal_table(T, d, base, dtype=np.float64, offset=offset)
    assert table.shape == (T, d)
    for pos in range(T):
        for c in range(d):
            i = c // 2
            angle = (offset + pos) / base ** (2 * i / d)
            expected = math.sin(angle) if c % 2 == 0 else math.cos(angle)
            assert table[pos, c] == pytest.approx(expected, abs=1e-12)


def test_sinusoidal_table_any_length_and_dtype():
    long = sinusoidal_table(5000, 16)
    assert long.dtype == np.float32 and np.isfinite(long).all() and np.abs(long).max() <= 1
    np.testing.assert_array_equal(sinusoidal_table(3, 16, offset=4000), long[4000:4003])


def test_sinusoidal_positions_module():
    pe = SinusoidalPositions(6)
    out = pe(4, offset=2)
    assert isinstance(out, Tensor) and not out.requires_grad
    assert out.shape == (4, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out.data, sinusoidal_table(6, 6)[2:])
    assert pe(2, dtype=np.float64).dtype == np.float64
    assert list(pe.named_parameters()) == [] and "n_embd=6" in repr(pe)


# ----------------------------------------------------------------------------- RoPE
@st.composite
def rope_inputs(draw):
    lead = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    T, hs = draw(st.integers(1, 4)), 2 * draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(seeds))
    x = Tensor(rng.standard_normal(lead + (T, hs)), requires_grad=True)
    return x, draw(st.integers(0, 50))


@given(inputs=rope_inputs())
def test_apply_rope_gradcheck(inputs):
    x, offset = inputs
    rope = RotaryEmbedding(x.shape[-1])
    cos, sin = rope.cos_sin(x.shape[-2], offset, np.float64)
    assert gradcheck(lambda x: apply_rope(x, cos, sin), x)
    assert gradcheck(lambda x: rope(x, offset=offset), x)


@given(hs=st.integers(1, 4).map(lambda n: 2 * n), m=st.integers(0, 60), n=st.integers(0, 60),
       shift=st.integers(-60, 1000), seed=seeds, base=st.sampled_from([10000.0, 10.0]))
def test_rope_dot_product_depends_only_on_the_relative_position(hs, m, n, shift, seed, base):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal(hs), rng.standard_normal(hs)
    rope = RotaryEmbedding(hs, base=base)
    shift = max(shift, -min(m, n))

    def at(x, pos):
        cos, sin = rope.cos_sin(1, pos, np.float64)
        return apply_rope(Tensor(x[None]), cos, sin).data[0]

    assert at(q, m) @ at(k, n) == pytest.approx(at(q, m + shift) @ at(k, n + shift), abs=1e-9)
    if m == n:                                   # no relative offset: the plain dot product
        assert at(q, m) @ at(k, n) == pytest.approx(q @ k, abs=1e-9)


def test_rope_is_a_rotation_of_interleaved_pairs():
    rope = RotaryEmbedding(4, base=100.0)
    cos, sin = rope.cos_sin(3, dtype=np.float64)
    np.testing.assert_allclose(cos[:, 1], np.cos(np.arange(3) / 10.0))      # 100^(-2/4)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = apply_rope(Tensor(x), cos, sin).data
    np.testing.assert_array_equal(y[:, 0], x[:, 0])                         # position 0
    pairs = lambda a: a.reshape(2, 3, 2, 2)
    np.testing.assert_allclose(np.linalg.norm(pairs(y), axis=-1), np.linalg.norm(pairs(x), axis=-1))
    # pair 0 at position 1 is turned by 1 radian
    c, s = math.cos(1.0), math.sin(1.0)
    np.testing.assert_allclose(y[:, 1, :2], np.stack([c * x[:, 1, 0] - s * x[:, 1, 1],
                                                      s * x[:, 1, 0] + c * x[:, 1, 1]], -1))
    np.testing.assert_allclose(rotate_pairs(y, cos, sin, inverse=True), x, atol=1e-15)


def test_rope_offsets_continue_the_positions():
    rope = RotaryEmbedding(6)
    full_cos, full_sin = rope.cos_sin(10, dtype=np.float64)
    cos, sin = rope.cos_sin(3, offset=7, dtype=np.float64)
    np.testing.assert_array_equal(cos, full_cos[7:])
    np.testing.assert_array_equal(sin, full_sin[7:])
    x = np.random.default_rng(1).standard_normal((1, 2, 10, 6)).astype(np.float32)
    out = rope(Tensor(x[:, :, 7:]), offset=7)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, rope(Tensor(x)).data[:, :, 7:], rtol=1e-6)


@pytest.mark.parametrize("call, words", [
    (lambda: RotaryEmbedding(5), "even"),
    (lambda: apply_rope(Tensor(np.ones((2, 3))), np.ones((2, 1)), np.ones((2, 1))), "even"),
    (lambda: apply_rope(Tensor(np.ones((2, 4))), np.ones((3, 2)), np.ones((3, 2))), "(3, 2)"),
    (lambda: apply_rope(Tensor(np.ones((2, 4))), np.ones((2, 2)), np.ones((2, 1))), "sin (2, 1)"),
    (lambda: RotaryEmbedding(4).cos_sin(3, offset=-1), "offset"),
])
def test_rope_errors(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert words in str(info.value)


# ----------------------------------------------------------------------------- ALiBi
def paper_slopes(n):
    """get_slopes from the ALiBi authors' reference code, as published."""
    def get_slopes_power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        ratio = start
        return [start * ratio ** i for i in range(n)]
    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (get_slopes_power_of_2(closest_power_of_2)
            + paper_slopes(2 * closest_power_of_2)[0::2][:n - closest_power_of_2])


def test_alibi_slopes_for_8_heads_are_the_papers():
    np.testing.assert_allclose(alibi_slopes(8), [1 / 2 ** i for i in range(1, 9)], rtol=1e-15)


@pytest.mark.parametrize("n", range(1, 33))
def test_alibi_slopes_follow_the_papers_rule_for_any_head_count(n):
    np.testing.assert_allclose(alibi_slopes(n), paper_slopes(n), rtol=1e-14)


@given(n_head=st.integers(1, 12), Tq=st.integers(0, 6), Tk=st.integers(0, 8))
def test_alibi_bias_matches_its_formula(n_head, Tq, Tk):
    bias = alibi_bias(n_head, Tq, Tk, dtype=np.float64)
    assert bias.shape == (n_head, Tq, Tk)
    slopes = alibi_slopes(n_head)
    for h in range(n_head):
        for i in range(Tq):
            for j in range(Tk):
                assert bias[h, i, j] == -slopes[h] * abs((Tk - Tq + i) - j)


def test_alibi_bias_any_length_and_cache_alignment():
    full = alibi_bias(4, 1000)
    assert full.shape == (4, 1000, 1000) and full.dtype == np.float32 and full.max() == 0
    # one new query after 999 cached keys sees the last row of the full bias
    np.testing.assert_array_equal(alibi_bias(4, 1, 1000), full[:, -1:])
    assert alibi_bias(2, 3).tolist() == alibi_bias(2, 3, 3).tolist()
    np.testing.assert_array_equal(ALiBi(4).bias(1, 1000), full[:, -1:])
    with pytest.raises(ValueError, match="n_head"):
        alibi_slopes(0)
