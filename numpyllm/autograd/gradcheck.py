"""`gradcheck`: compare backward's gradients with central finite differences.

For a function f of inputs x_1..x_n and an output cotangent v, backward computes
vᵀ J_i, the vector-Jacobian product, for each input. Central differences estimate the
Jacobian from values alone:

    D(h) = (f(x + h e) - f(x - h e)) / (2 h)  =  J e  +  h² f'''/6  +  O(δ / h)

where δ is the rounding error in one evaluation of f. For small inputs the whole
Jacobian is compared element by element (one backward per output element, evaluations
along every input element). For larger ones that costs too much, so random directions
are compared instead: for random v and u, vᵀ J u from backward (the dot product of the
gradient with u) must equal vᵀ D(h) along u.

**The tolerance.** A check is only worth something if a wrong gradient fails it, and
a gradient that is zero or off by 1% is wrong. A fixed absolute tolerance cannot tell:
scaled up for large inputs it swallows small true gradients whole. So each comparison
is judged against the gradient's own scale and the error the finite difference itself
makes, estimated on the spot:

    |analytic - numeric|  <=  atol + rtol |numeric| + FLOOR * scale + SAFETY * err

    scale = the largest |numeric| of the same input (the gradient's own size)
    err   = |vᵀ (D(h) - D(2h))|                                 truncation (D(2h)'s is 4x)
            + ulp Σ_k |v_k| (|f₊_k| + |f₋_k| + 2 max|x|) / (2h)  rounding of f

The rounding term assumes f's intermediate values are no larger than its output and
its inputs; FLOOR (1e-6) covers the cases where they are (an erf tail that is 1 - erf
in disguise): an entry a millionth of the gradient's largest is below what float64
differences resolve anyway. What is left is tight: a gradient must be right to within
`rtol` (0.1% by default), so a zeroed gradient, one scaled by 1.01 or one with a flipped
element fails wherever the gradient is measurable at all. Whether that holds for a
given check is itself tested: `numpyllm.autograd.mutation` corrupts each input's
gradient in turn and requires the check to fail.

The check needs float64: in float32, rounding error (~1e-7 / h) swamps the
difference quotient.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import no_grad
from .tensor import Tensor

__all__ = ["gradcheck", "gradcheck_report", "GradcheckError", "GradcheckResult"]

_ULP = float(np.finfo(np.float64).eps)
# How far above the estimated finite-difference error a difference must be to fail. The
# estimate is a single sample of a noisy quantity; 4 keeps correct gradients passing
# with room to spare (the suite runs every registered check) while staying far below the
# 1% a scaled gradient shows.
SAFETY = 4.0
# The share of a gradient's largest entry below which differences are float64 noise.
FLOOR = 1e-6


class GradcheckError(AssertionError):
    """Raised by `gradcheck` when an analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckResult:
    """What `gradcheck_report` found. Truthy when every comparison passed."""

    ok: bool
    mode: str                     # "jacobian" (every element) or "projection" (vᵀJu)
    max_abs_err: float            # the largest |analytic - numeric|
    max_rel_err: float            # the largest |analytic - numeric| / |numeric|
    max_err_ratio: float = 0.0    # the largest error / tolerance: below 1 passes
    failures: list = field(default_factory=list)   # one message per failed comparison

    def __bool__(self) -> bool:
        return self.ok


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 0.0, rtol: float = 1e-3,
              raise_exception: bool = True, max_jacobian: int = 256,
              n_projections: int = 3, seed: int = 0) -> bool:
    """Check the gradients of ``fn(*inputs)`` with respect to every input Tensor that has
    ``requires_grad=True``. Other arguments are passed through unchanged.

    Inputs that are checked must be float64. A comparison passes when
    ``|analytic - numeric| <= atol + rtol * |numeric| + FLOOR * scale + SAFETY * err``,
    where ``scale`` is the largest ``|numeric|`` of the same input and ``err`` the finite
    difference's own truncation and rounding error, estimated from the values (see the
    module docstring). When the inputs and the output each have at most
    `max_jacobian` elements the full Jacobian is compared; otherwise `n_projections`
    random projections vᵀJu are, per input. The caller's arrays are never written to:
    the perturbations are made on copies.

    Returns True on success. On failure raises `GradcheckError` naming the input, the
    worst element, the analytic and numeric values and the errors; or, with
    ``raise_exception=False``, returns False.

    >>> import numpy as np, numpyllm as nl
    >>> x = nl.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    >>> gradcheck(lambda t: (t.tanh() * t).sum(axis=1), x)
    True
    """
    result = gradcheck_report(fn, *inputs, eps=eps, atol=atol, rtol=rtol,
                              max_jacobian=max_jacobian, n_projections=n_projections, seed=seed)
    if not result.ok and raise_exception:
        raise GradcheckError("gradcheck failed:\n  " + "\n  ".join(result.failures))
    return result.ok


def gradcheck_report(fn, *inputs, eps: float = 1e-6, atol: float = 0.0, rtol: float = 1e-3,
                     max_jacobian: int = 256, n_projections: int = 3,
                     seed: int = 0) -> GradcheckResult:
    """Like `gradcheck`, but returns a `GradcheckResult` with the largest errors seen
    (what ``numpyllm gradcheck`` prints) instead of raising."""
    return measure(fn, *inputs, eps=eps, max_jacobian=max_jacobian,
                   n_projections=n_projections, seed=seed).judge(atol=atol, rtol=rtol)


def measure(fn, *inputs, eps: float = 1e-6, max_jacobian: int = 256, n_projections: int = 3,
            seed: int = 0) -> "Measurements":
    """Run backward and the finite differences once; `Measurements.judge` compares them.

    The split lets `numpyllm.autograd.mutation` ask how the same measurements would be
    judged had backward returned a corrupted gradient, without measuring again.
    """
    targets = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not targets:
        raise ValueError("gradcheck: no input Tensor has requires_grad=True")
    for i, t in targets:
        if not t.is_leaf:
            raise ValueError(f"gradcheck: input {i} was made by an operation "
                             f"({type(t._ctx).__name__}); gradients accumulate on leaf tensors "
                             "only: pass Tensor(t.data, requires_grad=True) instead")
        if t.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} has dtype {t.dtype}; finite differences "
                             "need float64 inputs")
    saved = [(t, t.data, t.grad) for _, t in targets]
    try:
        for _, t in targets:          # work on private copies: the caller's arrays stay as they are
            t.data = np.array(t.data, dtype=np.float64, copy=True)
        m = Measurements(fn, inputs, targets, eps)
        out_size = m.output_size()
        in_size = sum(t.size for _, t in targets)
        if in_size <= max_jacobian and out_size <= max_jacobian:
            m.measure_jacobian()
        else:
            m.measure_projections(n_projections, np.random.default_rng(seed))
    finally:
        for t, data, grad in saved:
            t.data, t.grad = data, grad
    m.fn = m.inputs = None            # the measurements hold arrays only, not the graph
    return m


class Measurements:
    """Backward's gradients and the finite differences they are compared with.

    `calls` holds what backward returned, one list per backward call (per cotangent v),
    one array per checked input. `comparisons` pairs each input with the numbers each
    call's gradient must reproduce:
    - "jacobian": call k used v = e_k; for input n, row k of the analytic Jacobian is
      calls[k][n] and is compared with the numeric row, element by element;
    - "projection": call p used a random v_p; the analytic vᵀJu is calls[p][n] · u.
    """

    def __init__(self, fn, inputs, targets, eps):
        self.fn, self.inputs, self.eps = fn, inputs, eps
        self.indices = [i for i, _ in targets]                 # argument positions
        self.shapes = [t.shape for _, t in targets]
        self._tensors = [t for _, t in targets]
        # the size of f's intermediate values, at least: the inputs' own (for rounding)
        self.input_scale = max(float(np.max(np.abs(t.data), initial=0.0)) for t in self._tensors)
        self.calls: list = []
        self.mode = ""
        self.problems: list = []      # shape/dtype mismatches found while measuring

    # ------------------------------------------------------------------ evaluation
    def _call(self) -> Tensor:
        out = self.fn(*self.inputs)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        return out

    def output_size(self) -> int:
        out = self._call()
        if out.dtype != np.float64:
            raise ValueError(f"gradcheck: fn returned dtype {out.dtype} from float64 inputs")
        self.out_shape = out.shape
        return out.size

    def _value(self) -> np.ndarray:
        with no_grad():
            return np.array(self._call().data, dtype=np.float64)

    def _backward(self, v: np.ndarray) -> list:
        """The gradient of vᵀ f with respect to each checked input, by backward."""
        for t in self._tensors:
            t.grad = None
        out = self._call()
        if not out.requires_grad:
            raise ValueError("gradcheck: fn's output does not depend on any input "
                             "that requires grad")
        out.backward(v)
        grads = []
        for i, t in zip(self.indices, self._tensors):
            g = t.grad
            if g is None:          # the output does not depend on this input
                g = np.zeros_like(t.data)
            elif g.shape != t.shape or g.dtype != t.dtype:
                self.problems.append(f"input {i}: gradient has shape {g.shape} and dtype "
                                     f"{g.dtype}, the input has shape {t.shape} and dtype {t.dtype}")
                g = np.zeros_like(t.data)
            grads.append(np.array(g, dtype=np.float64, copy=True))
        return grads

    def _difference(self, t: Tensor, direction: np.ndarray):
        """D(h) along `direction`, D(h) - D(2h), and D(h)'s rounding error, per output
        element.

        Four evaluations: f(x ± h d) for the quotient, f(x ± 2h d) for the truncation
        estimate (D(h) - D(2h) is three times D(h)'s h² term, plus rounding of the same
        size as D(h)'s own). t's data is restored afterwards.
        """
        base, h = t.data.copy(), self.eps
        values = []
        for step in (h, -h, 2 * h, -2 * h):
            t.data[...] = base + step * direction
            values.append(self._value())
        t.data[...] = base
        plus, minus, plus2, minus2 = values
        d1 = (plus - minus) / (2 * h)
        d2 = (plus2 - minus2) / (4 * h)
        rounding = _ULP * (np.abs(plus) + np.abs(minus) + 2 * self.input_scale) / (2 * h)
        return d1, d1 - d2, rounding

    # ------------------------------------------------------------------ measuring
    def measure_jacobian(self) -> None:
        self.mode = "jacobian"
        out_size = int(np.prod(self.out_shape, dtype=np.int64))
        for k in range(out_size):                      # row k of J: backward with v = e_k
            v = np.zeros(out_size)
            v[k] = 1.0
            self.calls.append(self._backward(v.reshape(self.out_shape)))
        # numeric[n] is [out, in_n]: column j from the difference along input element j
        self.numeric, self.error = [], []
        for t in self._tensors:
            numeric = np.empty((out_size, t.size))
            error = np.empty((out_size, t.size))
            for j in range(t.size):
                e = np.zeros(t.size)
                e[j] = 1.0
                d1, spread, rounding = self._difference(t, e.reshape(t.shape))
                numeric[:, j] = d1.ravel()
                error[:, j] = (np.abs(spread) + rounding).ravel()
            self.numeric.append(numeric)
            self.error.append(error)

    def measure_projections(self, n_projections: int, rng: np.random.Generator) -> None:
        self.mode = "projection"
        self.directions = []              # [p][n]: u for input n in projection p
        self.numeric, self.error = [], []  # [p][n]: vᵀ D(h) u, and its error estimate
        for _ in range(n_projections):
            v = rng.standard_normal(self.out_shape)
            self.calls.append(self._backward(v))
            us, nums, errs = [], [], []
            for t in self._tensors:
                u = rng.standard_normal(t.shape)
                d1, spread, rounding = self._difference(t, u)
                us.append(u)
                nums.append(float(np.sum(v * d1)))
                errs.append(float(abs(np.sum(v * spread)) + np.sum(np.abs(v) * rounding)))
            self.directions.append(us)
            self.numeric.append(nums)
            self.error.append(errs)

    # ------------------------------------------------------------------ judging
    def judge(self, *, atol: float = 0.0, rtol: float = 1e-3, corrupt=None) -> GradcheckResult:
        """Compare backward's gradients with the finite differences.

        `corrupt(n, grad) -> grad`, when given, replaces what backward returned for
        checked input n in every call: how the check would have judged a wrong backward.
        """
        failures = list(self.problems)
        worst = {"abs": 0.0, "rel": 0.0, "ratio": 0.0}

        def grads_of(n):
            for call in self.calls:
                g = call[n]
                yield g if corrupt is None else corrupt(n, g)

        for n, (i, shape) in enumerate(zip(self.indices, self.shapes)):
            if self.mode == "jacobian":
                analytic = np.array([g.ravel() for g in grads_of(n)]).reshape(-1, int(np.prod(shape)))
                numeric, error = self.numeric[n], self.error[n]

                def describe(w, i=i, shape=shape):
                    k, j = w
                    out_idx = [int(x) for x in np.unravel_index(k, self.out_shape)]
                    in_idx = [int(x) for x in np.unravel_index(j, shape)]
                    return f"input {i} (shape {shape}), d output{out_idx} / d input{in_idx}"
            else:
                analytic = np.array([np.sum(g * self.directions[p][n])
                                     for p, g in enumerate(grads_of(n))])
                numeric = np.array([row[n] for row in self.numeric])
                error = np.array([row[n] for row in self.error])

                def describe(w, i=i, shape=shape):
                    return f"input {i} (shape {shape}), random projection {w[0]} (vᵀJu)"
            scale = float(np.max(np.abs(numeric), initial=0.0))
            tol = atol + rtol * np.abs(numeric) + FLOOR * scale + SAFETY * error
            failure = _compare(analytic, numeric, tol, describe, worst)
            if failure:
                failures.append(failure + f" (atol {atol:g}, rtol {rtol:g}, "
                                          f"estimated finite-difference error included)")
        return GradcheckResult(not failures, self.mode, worst["abs"], worst["rel"],
                               worst["ratio"], failures)


def _compare(analytic, numeric, tol, describe, worst) -> str:
    """One message for the worst failing element of `analytic` (or "" when all pass);
    updates `worst` with the largest errors seen."""
    err = np.abs(analytic - numeric)
    if not err.size:
        return ""
    rel = err / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
    ratio = err / np.maximum(tol, np.finfo(np.float64).tiny)
    worst["abs"] = max(worst["abs"], float(err.max()))
    worst["rel"] = max(worst["rel"], float(np.where(np.abs(numeric) > 0, rel, 0).max()))
    worst["ratio"] = max(worst["ratio"], float(ratio.max()))
    bad = err > tol
    if not bad.any():
        return ""
    w = np.unravel_index(np.argmax(np.where(bad, ratio, -np.inf)), err.shape)
    if err.ndim == 1:
        w = (int(w[0]),)
    return (f"{describe(w)}: analytic {analytic[w]:.10g}, numeric {numeric[w]:.10g}, "
            f"abs err {err[w]:.3g}, rel err {rel[w]:.3g}, tolerance {tol[w]:.3g} "
            f"({int(bad.sum())} of {bad.size} failed)")
