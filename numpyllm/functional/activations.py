"""Activations and normalised exponentials: softmax, log_softmax, gelu, relu (and `erf`).

softmax, log_softmax and gelu are single graph nodes whose backward is derived by hand
below each forward. All keep the input's dtype: float32 in, float32 out and float32
gradients (constants are Python floats, which never promote a float32 array).
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor

__all__ = ["softmax", "log_softmax", "gelu", "relu", "erf"]


# ----------------------------------------------------------------------------- softmax
class Softmax(Function):
    # y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j (cancels; keeps exp <= 1).
    # Jacobian: dy_i/dx_j = y_i (delta_ij - y_j), so the vector-Jacobian product is
    #   dx_j = sum_i g_i y_i (delta_ij - y_j) = y_j (g_j - sum_i g_i y_i).
    # Only the output y is needed: save it, not x.
    @staticmethod
    def forward(ctx, x, axis=-1):
        y = x - x.max(axis=axis, keepdims=True)
        np.exp(y, out=y)
        y /= y.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved
        gy = g * y
        gy -= y * gy.sum(axis=ctx.axis, keepdims=True)   # y*g - y*sum(g*y)
        return gy


class LogSoftmax(Function):
    # out_i = x_i - logsumexp(x) = (x_i - m) - log sum_j exp(x_j - m).
    # d out_i / dx_j = delta_ij - softmax_j, so dx_j = g_j - softmax_j * sum_i g_i.
    # softmax = exp(out): save the output and exponentiate it in backward.
    @staticmethod
    def forward(ctx, x, axis=-1):
        z = x - x.max(axis=axis, keepdims=True)
        out = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved
        return g - np.exp(out) * g.sum(axis=ctx.axis, keepdims=True)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, as one node. Stable for any finite logits: the
    maximum is subtracted first, so exp never overflows (logits of 1e4 are fine).

    >>> softmax(Tensor([0.0, 0.0, np.log(2.0)])).data.tolist()
    [0.25, 0.25, 0.5]
    """
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along `axis`, as one node, computed as x - logsumexp(x) (never
    log of 0: a logit far below the others gives a large negative number, not -inf).

    >>> np.round(log_softmax(Tensor([0.0, 0.0, np.log(2.0)])).data, 4).tolist()
    [-1.3863, -1.3863, -0.6931]
    """
    return LogSoftmax.apply(x, axis=axis)


# ----------------------------------------------------------------------------- erf
# W. J. Cody, "Rational Chebyshev approximations for the error function",
# Mathematics of Computation 23 (1969) 631-637; the coefficients and the three
# intervals of his SPECFUN routine CALERF (netlib.org/specfun/erf). Relative error
# below 1e-16 in each interval for IEEE doubles.
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRPI = 5.6418958354775628695e-1        # 1 / sqrt(pi)


def _ratio(t, num, den, n):
    """(num[n] t^(n+1) + num[0] t^n + ... + num[n-1]) / (t^(n+1)... + den[n-1]):
    Cody's Horner loop, in which the highest coefficient of `num` is stored last."""
    xnum = num[n] * t
    xden = t.copy()
    for i in range(n - 1):
        xnum += num[i]
        xnum *= t
        xden += den[i]
        xden *= t
    return (xnum + num[n - 1]) / (xden + den[n - 1])


def _erfc_tail(y, ratio):
    """exp(-y^2) * ratio, with y^2 split as ysq^2 + (y - ysq)(y + ysq), ysq = y rounded
    down to 1/16: Cody's way of keeping exp's argument error from growing with y."""
    ysq = np.trunc(y * 16.0) / 16.0
    return np.exp(-ysq * ysq) * np.exp(-(y - ysq) * (y + ysq)) * ratio


def erf(x) -> np.ndarray:
    """The error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise,
    on a NumPy array (NumPy has none). Keeps a floating dtype (ints become float64);
    within 4 units in the last place of `math.erf` in float64 (Cody 1969 above).

    >>> erf(np.array([0.0, 0.5, -3.0])).round(12).tolist()
    [0.0, 0.520499877813, -0.999977909503]
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    y = np.abs(x)
    out = np.empty_like(y)
    small = y <= 0.46875
    mid = (y > 0.46875) & (y <= 4.0)
    big = ~(small | mid)                   # |x| > 4, and nan
    ys = y[small]                          # erf(y) = y * R(y^2)
    out[small] = ys * _ratio(ys * ys, _A, _B, 4)
    ym = y[mid]                            # erfc(y) = exp(-y^2) * R(y)
    out[mid] = 1.0 - _erfc_tail(ym, _ratio(ym, _C, _D, 8))
    # erfc(y) = exp(-y^2) / y * (1/sqrt(pi) + R(1/y^2) / y^2); erf is 1 in double from
    # y = 6 on, so clamping at 27 (where exp underflows) changes nothing but avoids inf-inf
    yb = np.minimum(y[big], 27.0)
    t = 1.0 / (yb * yb)
    out[big] = 1.0 - _erfc_tail(yb, (_SQRPI - t * _ratio(t, _P, _Q, 5)) / yb)
    return np.copysign(out, x)


# ----------------------------------------------------------------------------- gelu
_K = math.sqrt(2.0 / math.pi)              # GPT-2's tanh approximation constants
_C3 = 0.044715
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GeluTanh(Function):
    # y = x/2 (1 + t), t = tanh(u), u = k (x + c x^3), k = sqrt(2/pi), c = 0.044715.
    # dy/dx = (1 + t)/2 + x/2 (1 - t^2) du/dx,  du/dx = k (1 + 3c x^2).
    @staticmethod
    def forward(ctx, x):
        t = np.tanh(_K * (x + _C3 * x * x * x))
        ctx.save_for_backward(x, t)
        return 0.5 * x * (1.0 + t)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved
        dudx = _K * (1.0 + 3.0 * _C3 * x * x)
        return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)


class GeluErf(Function):
    # y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal CDF.
    # dy/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) its density.
    @staticmethod
    def forward(ctx, x):
        cdf = 0.5 * (1.0 + erf(x * _INV_SQRT2))
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, g):
        x, cdf = ctx.saved
        return g * (cdf + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x))


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """The Gaussian Error Linear Unit x * Phi(x), as one node.

    ``approximate="tanh"`` (the default, GPT-2's form):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). ``approximate="none"``: the exact
    0.5 x (1 + erf(x / sqrt 2)), with `erf` above. The two differ by at most ~5e-4.

    >>> np.round(gelu(Tensor([-1.0, 0.0, 1.0])).data, 6).tolist()
    [-0.158808, 0.0, 0.841192]
    >>> np.round(gelu(Tensor([-1.0, 0.0, 1.0]), approximate="none").data, 6).tolist()
    [-0.158655, 0.0, 0.841345]
    """
    if approximate == "tanh":
        return GeluTanh.apply(x)
    if approximate == "none":
        return GeluErf.apply(x)
    raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise (the primitive `Tensor.relu`; gradient 0 at x == 0).

    >>> relu(Tensor([-1.0, 0.0, 2.0])).data.tolist()
    [0.0, 0.0, 2.0]
    """
    return x.relu()
