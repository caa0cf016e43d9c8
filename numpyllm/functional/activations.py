"""Activations and normalised exponentials: softmax, log_softmax, gelu, relu (and `erf`).

softmax, log_softmax and gelu are single graph nodes whose backward is derived by hand
below each forward. All keep the input's dtype: float32 in, float32 out and float32
gradients (constants are Python floats, which never promote a float32 array).
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor
from ..parallel import elementwise as _elementwise

__all__ = ["softmax", "log_softmax", "gelu", "relu", "erf", "silu", "silu_mul"]


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
        s = gy.sum(axis=ctx.axis, keepdims=True)        # sum_i g_i y_i
        np.subtract(g, s, out=gy)                       # reuse the buffer: fewer
        gy *= y                                         # temporaries, less time
        return gy


class LogSoftmax(Function):
    # out_i = x_i - logsumexp(x) = (x_i - m) - log sum_j exp(x_j - m).
    # d out_i / dx_j = delta_ij - softmax_j, so dx_j = g_j - softmax_j * sum_i g_i.
    # softmax = exp(out): save the output and exponentiate it in backward.
    @staticmethod
    def forward(ctx, x, axis=-1):
        out = x - x.max(axis=axis, keepdims=True)
        out -= np.log(np.exp(out).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        out, = ctx.saved
        grad = np.exp(out)                              # softmax
        grad *= g.sum(axis=ctx.axis, keepdims=True)
        return np.subtract(g, grad, out=grad)


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
# intervals of his SPECFUN routine CALERF (netlib.org/specfun/erf), accurate to a few
# units in the last place of a double (tested against math.erf).
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
    """(num[n] t^n + num[0] t^(n-1) + ... + num[n-1]) / (t^n + den[0] t^(n-1) + ... +
    den[n-1]): Cody's Horner loop, in which the leading coefficient of `num` is last.
    (Every step in place: on large arrays a fresh temporary costs more than the
    arithmetic, so the erf code below allocates as little as it can.)"""
    xnum = num[n] * t
    xden = t.copy()
    for i in range(n - 1):
        xnum += num[i]
        xnum *= t
        xden += den[i]
        xden *= t
    xnum += num[n - 1]
    xden += den[n - 1]
    xnum /= xden
    return xnum


def _erfc_tail(y, ratio):
    """exp(-y^2) * ratio, into `ratio`. y^2 is split as ysq^2 + (y - ysq)(y + ysq), ysq =
    y rounded down to a multiple of 1/16, so ysq^2 is exact: Cody's way of keeping exp's
    argument error from growing with y."""
    ysq = y * 16.0
    np.trunc(ysq, out=ysq)
    ysq *= 0.0625
    d = y - ysq
    e = y + ysq
    d *= e
    np.negative(d, out=d)
    ratio *= np.exp(d, out=d)                       # exp(-(y - ysq)(y + ysq))
    np.multiply(ysq, ysq, out=e)
    np.negative(e, out=e)
    ratio *= np.exp(e, out=e)                       # exp(-ysq^2)
    return ratio


def _select(cond, a, b):
    """b where cond else a, written into a; exact when a and b are finite. Multiplying by
    the booleans is ~10x faster than np.where on a random mask (no branches)."""
    a *= ~cond
    b *= cond
    a += b
    return a


_BLOCK = 32768      # elements per block of erf: its temporaries stay in cache


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
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    # In blocks: the dozen temporaries of one block fit in cache and are reused by the
    # allocator, where whole-array temporaries would each cost fresh pages. Measured on
    # [12, 64, 512]: 2-3x faster than one pass over the whole array.
    for i in range(0, flat.size, _BLOCK):
        _erf_block(flat[i:i + _BLOCK], out[i:i + _BLOCK])
    return out.reshape(x.shape)


def _erf_block(x, out):
    """erf of the 1-D array x, written into out."""
    y = np.abs(x)
    # Each interval's formula runs on the whole block with y clipped into its interval
    # (so every value is finite), and _select keeps the right one: cheaper than
    # gathering and scattering each interval's elements. An empty interval is skipped.
    r = _erf_mid(np.clip(y, 0.46875, 4.0))
    if np.any(y <= 0.46875):
        r = _select(y <= 0.46875, r, _erf_small(np.minimum(y, 0.46875)))
    if not np.all(y <= 4.0):                        # some y > 4 (or nan)
        r = _select(y > 4.0, r, _erf_big(np.clip(y, 4.0, 27.0)))
    np.copysign(r, x, out=out)


def _erf_small(y):
    """erf(y) = y R(y^2) for 0 <= y <= 0.46875."""
    r = _ratio(y * y, _A, _B, 4)
    r *= y
    return r


def _erf_mid(y):
    """erf(y) = 1 - erfc(y), erfc(y) = exp(-y^2) R(y), for 0.46875 <= y <= 4."""
    r = _erfc_tail(y, _ratio(y, _C, _D, 8))
    return np.subtract(1.0, r, out=r)


def _erf_big(y):
    """erf(y) = 1 - erfc(y), erfc(y) = exp(-y^2) / y (1/sqrt(pi) + R(1/y^2) / y^2), for
    4 <= y <= 27. erf is 1 in double from y = 6 on, so the caller clips at 27 (where
    exp underflows): that changes nothing and keeps the values finite."""
    t = 1.0 / (y * y)
    r = _ratio(t, _P, _Q, 5)
    r *= t
    np.subtract(_SQRPI, r, out=r)
    r /= y
    r = _erfc_tail(y, r)
    return np.subtract(1.0, r, out=r)


# ----------------------------------------------------------------------------- gelu
_K = math.sqrt(2.0 / math.pi)              # GPT-2's tanh approximation constants
_C3 = 0.044715
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GeluTanh(Function):
    # y = x/2 (1 + t), t = tanh(u), u = k (x + c x^3), k = sqrt(2/pi), c = 0.044715.
    # dy/dx = (1 + t)/2 + x/2 (1 - t^2) du/dx,  du/dx = k (1 + 3c x^2).
    # Saved: x, and t only while it is small: at GPT-2 small's size keeping t would hold
    # one more [B, T, 4C] array per layer until backward (150 MB in all), so backward
    # recomputes it (as PyTorch does), block by block in cache. Under _KEEP_T_BYTES the
    # memory is nothing and the recomputation is not: nanoGPT's backward took 0.8 ms
    # more a step recomputing (4 layers of 768 x 512), so there t is kept.
    # (In-place steps: a temporary of this size costs more than the arithmetic on it.
    # Every element is its own: `_elementwise` runs blocks of the arrays on threads.)
    @staticmethod
    def forward(ctx, x):
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        t = np.empty_like(x) if x.nbytes <= _KEEP_T_BYTES else None

        def piece(x, out, t):
            if t is None:
                _gelu_tanh_t(x, out)                # t, in out's block
                out += 1.0
            else:
                np.add(_gelu_tanh_t(x, t), 1.0, out=out)
            out *= x
            out *= 0.5
        _elementwise(piece, x, out, t)
        ctx.save_for_backward(x, t)
        return out

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved
        g = np.ascontiguousarray(g)
        grad = np.empty_like(x)

        def piece(x, g, grad, t):
            if t is None:
                t = _gelu_tanh_t(x, np.empty_like(x))   # recomputed, in a block's scratch
            dudx = np.multiply(x, x)
            dudx *= 3.0 * _C3 * _K
            dudx += _K                              # k (1 + 3c x^2)
            np.multiply(t, t, out=grad)
            np.subtract(1.0, grad, out=grad)        # 1 - t^2
            grad *= x
            grad *= dudx
            grad += t
            grad += 1.0
            grad *= 0.5                             # (1 + t + x (1 - t^2) du/dx) / 2
            grad *= g
        _elementwise(piece, x, g, grad, t)
        return grad


_KEEP_T_BYTES = 4 << 20           # GELU keeps tanh(u) for backward up to 4 MB of it


def _gelu_tanh_t(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``t = tanh(k (x + c x³))`` written into `out` (the same steps in forward and in
    backward's recomputation, so the same bits)."""
    np.multiply(x, x, out=out)
    out *= _C3
    out += 1.0
    out *= x
    out *= _K                                       # u = k x (1 + c x^2)
    return np.tanh(out, out=out)


class GeluErf(Function):
    # y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal CDF.
    # dy/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) its density.
    @staticmethod
    def forward(ctx, x):
        cdf = erf(x * _INV_SQRT2)
        cdf += 1.0
        cdf *= 0.5
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, g):
        x, cdf = ctx.saved
        grad = np.asarray(x * x)
        grad *= -0.5
        np.exp(grad, out=grad)
        grad *= _INV_SQRT_2PI
        grad *= x                                   # x phi(x)
        grad += cdf
        grad *= g
        return grad


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


def _sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + exp(-a))`` in one new array (or in `out`)."""
    s = np.negative(a, out=out)
    np.exp(s, out=s)
    s += 1.0
    return np.reciprocal(s, out=s)


def silu_mul_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``silu(a) * b`` on arrays, written over `a` (inference: nothing is kept for a
    backward, and no buffer beyond the sigmoid's). The same operations in the same order
    as `silu_mul`'s node, so the same bits."""
    a *= _sigmoid(a)                                        # silu(a)
    a *= b
    return a


class SiLUMul(Function):
    # The SwiGLU gate (Shazeer 2020; LLaMA's feed-forward): y = silu(a) * b, one node.
    #   silu(a) = a s,  s = sigmoid(a);   d silu/da = s (1 + a (1 - s))
    #   dL/da = g b s (1 + a (1 - s)),    dL/db = g silu(a)
    # Saved: a, b and s (three arrays; the product's temporaries are not kept).
    @staticmethod
    def forward(ctx, a, b):
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        s, out = np.empty_like(a), np.empty_like(a)

        def piece(a, b, s, out):
            _sigmoid(a, out=s)
            np.multiply(a, s, out=out)                      # silu(a)
            out *= b
        _elementwise(piece, a, b, s, out)
        ctx.save_for_backward(a, b, s)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, s = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        g = np.ascontiguousarray(g)
        da = np.empty_like(a) if need_a else None
        db = np.empty_like(a) if need_b else None

        def piece(a, b, s, g, da, db):
            if db is not None:
                np.multiply(a, s, out=db)
                db *= g                                     # g silu(a)
            if da is not None:
                np.subtract(1.0, s, out=da)
                da *= a
                da += 1.0
                da *= s                                     # silu'(a)
                da *= b
                da *= g
        _elementwise(piece, a, b, s, g, da, db)
        return da, db


def silu_mul(a: Tensor, b: Tensor) -> Tensor:
    """``silu(a) * b`` (``silu(a) = a * sigmoid(a)``), the gated unit of the SwiGLU
    feed-forward (``down(silu(gate(x)) * up(x))``), as one node. `a` and `b` have one shape.

    >>> np.round(silu_mul(Tensor([0.0, 1.0, -1.0]), Tensor([2.0, 2.0, 2.0])).data, 4).tolist()
    [0.0, 1.4621, -0.5379]
    """
    sa = np.shape(a.data if isinstance(a, Tensor) else a)
    sb = np.shape(b.data if isinstance(b, Tensor) else b)
    if sa != sb:
        raise ValueError(f"silu_mul: a and b must have one shape, got {sa} and {sb}")
    return SiLUMul.apply(a, b)


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (the swish), from the primitive ops.

    >>> np.round(silu(Tensor([0.0, 1.0])).data, 4).tolist()
    [0.0, 0.7311]
    """
    return x * x.sigmoid()
