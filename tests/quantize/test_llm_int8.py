"""LLM.int8(): against a direct float64 recomputation of the algorithm (loops over the
regular and outlier columns), the per-element error bound against the float product,
the outlier rule, and the int32 accumulation."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from numpyllm.quantize import QuantizedWeight, llm_int8_matmul


def _reference(x, w, threshold):
    """The paper's steps written out one by one in float64 (no shared code)."""
    x = x.astype(np.float64)
    n, k = x.shape
    out = w.shape[1]
    outlier = [i for i in range(k) if any(abs(x[r, i]) >= threshold for r in range(n))]
    regular = [i for i in range(k) if i not in outlier]
    # the weight: per output column, absmax / 127 (float32, as stored), codes round-half-away
    cw = np.array([np.float32(np.float32(np.abs(w[:, j]).max()) / np.float32(127))
                   for j in range(out)], dtype=np.float64)
    wq = np.zeros((k, out))
    for j in range(out):
        if cw[j] > 0:
            v = w[:, j].astype(np.float64) / cw[j]
            wq[:, j] = np.sign(v) * np.floor(np.abs(v) + 0.5)
    y = np.zeros((n, out))
    for r in range(n):
        amax = max((abs(np.float32(x[r, i])) for i in regular), default=np.float32(0))
        cx = float(np.float32(amax) / np.float32(127))
        xq = [0.0 if cx == 0 else np.sign(x[r, i] / cx) * np.floor(abs(x[r, i] / cx) + 0.5)
              for i in regular]
        for j in range(out):
            acc = sum(int(a) * int(wq[i, j]) for a, i in zip(xq, regular))      # exact
            y[r, j] = acc * cx * cw[j] + sum(x[r, i] * wq[i, j] * cw[j] for i in outlier)
    return y, outlier, cw, wq


def _inputs():
    shape = st.tuples(st.integers(1, 4), st.integers(1, 24), st.integers(1, 5))
    return shape.flatmap(lambda s: st.tuples(
        arrays(np.float32, s[:2], elements=st.floats(-20, 20, width=32)),
        arrays(np.float32, s[1:], elements=st.floats(-2, 2, width=32))))


@given(_inputs(), st.sampled_from([6.0, 1.0, 100.0]))
def test_equals_a_float64_recomputation(xw, threshold):
    x, w = xw
    y, info = llm_int8_matmul(x, w, threshold=threshold, return_info=True)
    ref, outlier, _, _ = _reference(x, w, threshold)
    assert info["outlier_columns"].tolist() == outlier
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * (1 + np.abs(ref).max()))


@given(_inputs())
def test_error_bound_against_the_float_product(xw):
    """|y - x W| <= Σ_R (|x̂| cw/2 + cx/2 |w|) + Σ_O |x| cw/2, element by element."""
    x, w = xw
    y, info = llm_int8_matmul(x, w, return_info=True)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    outlier = np.zeros(x.shape[1], bool)
    outlier[info["outlier_columns"]] = True
    cx = info["x_scale"].astype(np.float64)[:, None]               # [N, 1]
    cw = info["w_scale"].astype(np.float64)[None, :]               # [1, out]
    xr = np.abs(x64[:, ~outlier])
    x_hat = xr + cx / 2                                            # |x̂| <= |x| + cx/2
    bound = (x_hat.sum(axis=1, keepdims=True) * cw / 2
             + cx / 2 * np.abs(w64[~outlier]).sum(axis=0)[None, :]
             + np.abs(x64[:, outlier]).sum(axis=1, keepdims=True) * cw / 2)
    err = np.abs(y - x64 @ w64)
    assert (err <= bound * (1 + 1e-4) + 1e-5).all()


def test_outliers_are_kept_in_float():
    """One huge feature column: with the decomposition the error stays small; with no
    outliers (threshold inf) that column's scale crushes every other value of its rows."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 256)).astype(np.float32) * 0.5
    x[:, 17] = 60.0
    w = rng.standard_normal((256, 32)).astype(np.float32) * 0.05
    exact = x.astype(np.float64) @ w
    mixed = llm_int8_matmul(x, w)
    plain = llm_int8_matmul(x, w, threshold=np.inf)
    err_mixed, err_plain = np.abs(mixed - exact).max(), np.abs(plain - exact).max()
    assert err_mixed * 5 < err_plain, (err_mixed, err_plain)


def test_a_stored_int8_weight_and_refusals():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    qw = QuantizedWeight.from_float(w.T, "int8")
    np.testing.assert_array_equal(llm_int8_matmul(x, qw), llm_int8_matmul(x, w))
    with pytest.raises(ValueError, match="int8 per output channel"):
        llm_int8_matmul(x, QuantizedWeight.from_float(w.T, "q8_0"))
    with pytest.raises(ValueError, match="does not fit"):
        llm_int8_matmul(x[:, :32], w)
    with pytest.raises(ValueError, match="NaN"):
        llm_int8_matmul(np.full((1, 64), np.nan, np.float32), w)
    with pytest.raises(ValueError, match="threshold"):
        llm_int8_matmul(x, w, threshold=0)
