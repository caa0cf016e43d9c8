"""LLM.int8() (Dettmers et al., 2022): an int8 matrix product with outliers kept in float.

In large transformers a few *feature columns* of the activations (input dimensions i)
carry values far larger than the rest (|x| of 20-60 where most are below 1). Quantizing a
row of x with one absmax scale would then crush every ordinary value to 0 or ±1. The
paper's mixed-precision decomposition splits the input dimensions:

    O = { i : |x_ni| >= threshold for some row n }          outlier columns (6.0)
    R = the others

    x W = x[:, O] W[O, :]   +   x[:, R] W[R, :]
          float product         int8 product, dequantized

and quantizes the regular part *vector-wise*: each row n of x[:, R] by its own absmax,
each output column j of W by its own (the int8 weight format, `numpyllm.quantize.int8`):

    cx_n = max_{i in R} |x_ni| / 127        xq_ni = round(x_ni / cx_n)       int8
    cw_j = max_i |w_ij| / 127               wq_ij = round(w_ij / cw_j)       int8
    acc_nj = Σ_{i in R} xq_ni wq_ij         int32 accumulation (exact)
    y_nj  = acc_nj · cx_n · cw_j            the outer product of the scales
          + Σ_{i in O} x_ni ŵ_ij            ŵ = wq · cw: the outlier rows of W, dequantized

(bitsandbytes stores W once in int8, as here, and dequantizes its outlier rows for the
float part.) int32 cannot overflow while |R| · 127² < 2³¹, i.e. up to 133,143 input
dimensions.

Error against the float product, element by element (x̂ = xq · cx, ŵ = wq · cw, and
|x̂ - x| <= cx/2, |ŵ - w| <= cw/2):

    |y_nj - (x W)_nj| <= Σ_{i in R} (|x̂_ni| cw_j/2 + cx_n/2 |w_ij|) + Σ_{i in O} |x_ni| cw_j/2

NumPy's integer matmul has no BLAS kernel: this is the algorithm, for study and checks,
not a fast path.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((4, 64)).astype(np.float32); x[:, 5] *= 20    # an outlier column
>>> w = rng.standard_normal((64, 16)).astype(np.float32)
>>> y, info = llm_int8_matmul(x, w, return_info=True)
>>> info["outlier_columns"].tolist()
[5]
>>> bool(np.abs(y - x @ w).max() < 0.05 * np.abs(x @ w).max())
True
"""
from __future__ import annotations

import numpy as np

from .rounding import roundf
from .weight import QuantizedWeight

__all__ = ["llm_int8_matmul", "THRESHOLD"]

THRESHOLD = 6.0                     # the paper's outlier threshold
_MAX_INT32_TERMS = (2 ** 31 - 1) // (127 * 127)


def _int8_weight(weight) -> QuantizedWeight:
    if isinstance(weight, QuantizedWeight):
        if weight.format != "int8":
            raise ValueError(f"llm_int8_matmul: the weight must be int8 per output channel, "
                             f"got {weight.format}")
        return weight
    w = np.asarray(weight)
    if w.ndim != 2:
        raise ValueError(f"llm_int8_matmul: weight must be [in, out], got shape {w.shape}")
    return QuantizedWeight.from_float(w.T, "int8")                 # [out, in]


def llm_int8_matmul(x, weight, bias=None, *, threshold: float = THRESHOLD,
                    return_info: bool = False):
    """``x [..., in] @ W [in, out] (+ bias)`` by LLM.int8()'s decomposition; float32.

    `weight` is a float ``[in, out]`` matrix (quantized here, per output channel) or an
    int8 `QuantizedWeight` ``[out, in]``. `threshold`: a column of x with any
    ``|x| >= threshold`` is an outlier column (``float('inf')``: none). With
    ``return_info`` returns ``(y, {"outlier_columns", "x_scale", "w_scale"})``.
    """
    qw = _int8_weight(weight)
    out, n_in = qw.shape
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] != n_in:
        raise ValueError(f"llm_int8_matmul: x of shape {x.shape} does not fit a weight with "
                         f"{n_in} inputs")
    if not np.isfinite(x).all():
        raise ValueError("llm_int8_matmul: x has NaN or infinite values")
    if not threshold > 0:
        raise ValueError(f"llm_int8_matmul: threshold must be > 0, got {threshold}")
    x2 = x.reshape(-1, n_in)                                       # [N, in]
    outlier = (np.abs(x2) >= threshold).any(axis=0)                # [in]
    regular = ~outlier
    if regular.sum() > _MAX_INT32_TERMS:
        raise ValueError(f"llm_int8_matmul: {int(regular.sum())} regular input dimensions "
                         f"could overflow int32 accumulation (at most {_MAX_INT32_TERMS})")
    # the regular part: row-wise int8 activations, column-wise int8 weights
    xr = x2[:, regular]                                            # [N, k]
    cx = np.abs(xr).max(axis=1, initial=0) / np.float32(127)       # [N]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(cx > 0, 1.0 / cx.astype(np.float64), 0.0)
    xq = np.clip(roundf(xr.astype(np.float64) * inv[:, None]), -127, 127).astype(np.int8)
    wq = qw.q[:, regular]                                          # [out, k] int8
    acc = xq.astype(np.int32) @ wq.T.astype(np.int32)              # [N, out] int32, exact
    cw = qw.scale                                                  # [out] float32
    y = acc.astype(np.float32) * (cx[:, None] * cw[None, :])       # outer product of scales
    # the outlier part, in float, against the dequantized outlier rows of W
    if outlier.any():
        w_out = qw.q[:, outlier].astype(np.float32) * cw[:, None]  # [out, |O|]
        y += x2[:, outlier] @ w_out.T
    if bias is not None:
        y += np.asarray(bias, dtype=np.float32)
    y = y.reshape(*x.shape[:-1], out)
    if return_info:
        return y, {"outlier_columns": np.flatnonzero(outlier), "x_scale": cx, "w_scale": cw}
    return y
