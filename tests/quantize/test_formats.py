"""The weight formats: per-element round-trip bounds as properties, packing round trips,
the edge cases of ggml's rounding (ties, zero blocks, the clamp at 15), and refusals."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from numpyllm.quantize import QuantizedWeight, int8, q4_0, q8_0
from numpyllm.quantize.rounding import roundf

F32 = np.float32


def _blocks(max_magnitude=1e4):
    """float32 matrices [rows, 32k]: ordinary, tiny, huge, zero and repeated values."""
    elements = st.one_of(
        st.floats(-max_magnitude, max_magnitude, width=32),
        st.sampled_from([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 2.5, max_magnitude,
                         -max_magnitude]))
    shape = st.tuples(st.integers(1, 3), st.integers(1, 3).map(lambda k: 32 * k))
    return shape.flatmap(lambda s: arrays(np.float32, s, elements=elements))


# Below 127 * 2**-149 a block's float32 scale absmax/127 underflows to 0 and the block
# dequantizes to 0: an absolute error of at most 1.8e-43, the one slack the bounds allow.
UNDERFLOW = 2e-43


def _block_d(x, fmt):
    """The float32 scale of each element's block, as the quantizer computes it before
    rounding it to float16, as float64 and broadcast to x's shape."""
    rows, cols = x.shape
    b = x.reshape(rows, cols // 32, 32)
    if fmt == "q8_0":
        d = np.abs(b).max(axis=-1) / F32(127)
    else:
        i = np.abs(b).argmax(axis=-1)[..., None]
        d = np.take_along_axis(b, i, axis=-1)[..., 0] / F32(-8)
    return np.repeat(d.astype(np.float64), 32, axis=1)


@given(_blocks())
def test_q8_0_round_trip_bound(x):
    """|x - q d16| <= d/2 + |q| |d - d16|: the rounding of x/d, plus what storing the scale
    in float16 adds (d: the block's absmax/127; d16: the stored scale)."""
    q, d16 = q8_0.quantize(x)
    back = q8_0.dequantize(q, d16).astype(np.float64)
    d = _block_d(x, "q8_0")
    d_stored = np.repeat(d16.astype(np.float64), 32, axis=1)
    bound = d / 2 + np.abs(q) * np.abs(d - d_stored) + 2e-5 * d + UNDERFLOW
    assert (np.abs(x - back) <= bound).all()
    assert np.abs(q).max(initial=0) <= 127


@given(_blocks())
def test_q4_0_round_trip_bound(x):
    """t = x/d in [-8, 8]: |x - (q-8) d16| <= |d| max(1/2, t - 7) + |q-8| |d - d16|; the
    second branch is the clamp at 15 (t > 7.5 would need code 16)."""
    p, d16 = q4_0.quantize(x)
    codes = q4_0.unpack(p).astype(np.int64)
    back = q4_0.dequantize(p, d16).astype(np.float64)
    d = _block_d(x, "q4_0")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d != 0, x / d, 0.0)
    assert (np.abs(t) <= 8 + 1e-5).all()
    d_stored = np.repeat(d16.astype(np.float64), 32, axis=1)
    bound = (np.abs(d) * np.maximum(0.5, t - 7) + np.abs(codes - 8) * np.abs(d - d_stored)
             + 2e-5 * np.abs(d) + UNDERFLOW)
    assert (np.abs(x - back) <= bound).all()
    # the largest-magnitude value of each block is code 0: exact up to the float16 scale
    assert codes.max(initial=0) <= 15


@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 70)),
              elements=st.floats(-1e6, 1e6, width=32)))
def test_int8_round_trip_bound(w):
    """One float32 scale per row: |w - q s| <= s/2 (the quotient is taken against the
    stored scale, so no float16 term)."""
    q, s = int8.quantize(w)
    back = int8.dequantize(q, s).astype(np.float64)
    bound = s.astype(np.float64)[:, None] * (0.5 + 1e-6) + UNDERFLOW
    assert (np.abs(w - back) <= bound).all()
    assert np.abs(q).max(initial=0) <= 127


def test_the_bounds_are_tight_and_fail_on_a_wrong_rounding():
    """Ties round away from zero (as C's roundf): x/d = 2.5 gives 3, not 2 (numpy's
    np.round would); truncating instead of rounding would break the d/2 bound."""
    x = np.zeros((1, 32), F32)
    x[0, 0], x[0, 1], x[0, 2] = 127, 2.5, -2.5          # d = 1: codes are x itself
    q, d = q8_0.quantize(x)
    assert float(d[0, 0]) == 1.0 and q[0, :3].tolist() == [127, 3, -3]
    assert roundf(np.array([2.5, 0.49999997], F32)).tolist() == [3.0, 0.0]
    x = np.linspace(-1, 1, 32, dtype=F32)[None]          # Q4_0: max is -1 (the first)
    p, d = q4_0.quantize(x)
    codes = q4_0.unpack(p)[0]
    assert float(d[0, 0]) == 0.125 and codes[0] == 0 and codes[-1] == 15   # +1 clamped
    assert q4_0.dequantize(p, d)[0, -1] == 0.875         # error |d| = 0.125 (the clamp)


def test_zero_blocks_follow_the_c_reference():
    """An all-zero block: d = 0, codes 0 (Q8_0) and 8 (Q4_0). ggml's C starts `max` at
    +0.0 and only replaces it on |x| > amax, so d = 0.0 / -8 = -0.0 (float16 0x8000),
    whatever the sign of the zeros."""
    for zeros in (np.zeros((1, 32), F32), -np.zeros((1, 32), F32)):
        q, d = q8_0.quantize(zeros)
        assert (q == 0).all() and d.view(np.uint16)[0, 0] == 0
        p, d = q4_0.quantize(zeros)
        assert (q4_0.unpack(p) == 8).all() and d.view(np.uint16)[0, 0] == 0x8000
        assert (q4_0.dequantize(p, d) == 0).all()


@given(st.integers(1, 3), st.integers(1, 3), st.data())
def test_packing_round_trips(rows, nb, data):
    codes = data.draw(arrays(np.uint8, (rows, 32 * nb), elements=st.integers(0, 15)))
    packed = q4_0.pack(codes)
    assert packed.shape == (rows, 16 * nb)
    assert np.array_equal(q4_0.unpack(packed), codes)
    # the layout: byte j of a block = code j (low nibble) | code j+16 (high nibble)
    assert np.array_equal(packed[:, :16], codes[:, :16] | (codes[:, 16:32] << 4))
    d = data.draw(arrays(np.float16, (rows, nb), elements=st.floats(-100, 100, width=16)))
    raw = q4_0.to_ggml(packed, d)
    assert raw.shape == (rows, 18 * nb)
    p2, d2 = q4_0.from_ggml(raw)
    assert np.array_equal(p2, packed) and np.array_equal(d2.view(np.uint16), d.view(np.uint16))
    q = data.draw(arrays(np.int8, (rows, 32 * nb)))
    q2, d3 = q8_0.from_ggml(q8_0.to_ggml(q, d))
    assert np.array_equal(q2, q) and np.array_equal(d3.view(np.uint16), d.view(np.uint16))


@pytest.mark.parametrize("fmt", ["int8", "q8_0", "q4_0"])
def test_quantized_weight_tiles_and_refusals(fmt):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 64)).astype(F32)
    qw = QuantizedWeight.from_float(w, fmt)
    assert np.array_equal(np.concatenate([qw.rows(0, 2), qw.rows(2, 5)]), qw.dequantize())
    again = QuantizedWeight.from_arrays(fmt, qw.shape, qw.q, qw.scale)
    assert np.array_equal(again.dequantize(), qw.dequantize())
    bad = w.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        QuantizedWeight.from_float(bad, fmt)
    with pytest.raises(ValueError, match="expected"):
        QuantizedWeight.from_arrays(fmt, qw.shape, qw.q.astype(np.int16), qw.scale)
    with pytest.raises(ValueError, match="expected"):
        QuantizedWeight.from_arrays(fmt, (5, 96), qw.q, qw.scale)
    scale = qw.scale.copy()
    scale.flat[0] = np.inf
    with pytest.raises(ValueError, match="infinite scales"):
        QuantizedWeight.from_arrays(fmt, qw.shape, qw.q, scale)
    with pytest.raises(ValueError, match="unknown quantization format"):
        QuantizedWeight.from_float(w, "q5_k")


def test_block_formats_need_whole_blocks_and_float16_scales():
    with pytest.raises(ValueError, match="not a multiple of 32"):
        QuantizedWeight.from_float(np.ones((2, 48), F32), "q8_0")
    QuantizedWeight.from_float(np.ones((2, 48), F32), "int8")     # any width
    with pytest.raises(ValueError, match="beyond float16"):
        QuantizedWeight.from_float(np.full((1, 32), 1e7, F32), "q8_0")   # d = 78740
    with pytest.raises(ValueError, match="beyond float16"):
        QuantizedWeight.from_float(np.full((1, 32), 6e5, F32), "q4_0")   # |d| = 75000
