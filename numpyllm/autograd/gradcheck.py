"""`gradcheck`: compare backward's gradients with central finite differences.

For a function f of inputs x_1..x_n and an output cotangent v, backward computes
vᵀ J_i, the vector-Jacobian product, for each input. Central differences estimate the
Jacobian from values alone:

    d f / d x_ij  ≈  (f(x + eps e_ij) - f(x - eps e_ij)) / (2 eps)      error O(eps²)

For small inputs the whole Jacobian is compared element by element (one backward per
output element, two evaluations per input element). For larger ones that costs too
much, so random directions are compared instead: for random v and u,
vᵀ J u from backward (the dot product of the gradient with u) must equal
vᵀ (f(x + eps u) - f(x - eps u)) / (2 eps). A wrong backward almost surely fails this.

The check needs float64: in float32, rounding error (~1e-7 / eps) swamps the
difference quotient.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import no_grad
from .tensor import Tensor

__all__ = ["gradcheck", "gradcheck_report", "GradcheckError", "GradcheckResult"]


class GradcheckError(AssertionError):
    """Raised by `gradcheck` when an analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckResult:
    """What `gradcheck_report` found. Truthy when every comparison passed."""

    ok: bool
    mode: str                     # "jacobian" (every element) or "projection" (vᵀJu)
    max_abs_err: float
    max_rel_err: float
    failures: list = field(default_factory=list)   # one message per failed comparison

    def __bool__(self) -> bool:
        return self.ok


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, max_jacobian: int = 256,
              n_projections: int = 3, seed: int = 0) -> bool:
    """Check the gradients of ``fn(*inputs)`` with respect to every input Tensor that has
    ``requires_grad=True``. Other arguments are passed through unchanged.

    Inputs that are checked must be float64. An element passes when
    ``|analytic - numeric| <= atol + rtol * |numeric|``. When the inputs and the output
    each have at most `max_jacobian` elements the full Jacobian is compared; otherwise
    `n_projections` random projections vᵀJu are, per input. The caller's arrays are
    never written to: the perturbations are made on copies.

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


def gradcheck_report(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                     max_jacobian: int = 256, n_projections: int = 3,
                     seed: int = 0) -> GradcheckResult:
    """Like `gradcheck`, but returns a `GradcheckResult` with the largest errors seen
    (what ``numpyllm gradcheck`` prints) instead of raising."""
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
        checker = _Checker(fn, inputs, targets, eps, atol, rtol)
        out_size = checker.output_shape_size()
        in_size = sum(t.size for _, t in targets)
        if in_size <= max_jacobian and out_size <= max_jacobian:
            checker.compare_jacobians()
            mode = "jacobian"
        else:
            checker.compare_projections(n_projections, np.random.default_rng(seed))
            mode = "projection"
    finally:
        for t, data, grad in saved:
            t.data, t.grad = data, grad
    return GradcheckResult(not checker.failures, mode, checker.max_abs, checker.max_rel,
                           checker.failures)


class _Checker:
    """The comparisons, with the bookkeeping of the largest errors seen."""

    def __init__(self, fn, inputs, targets, eps, atol, rtol):
        self.fn, self.inputs, self.targets = fn, inputs, targets
        self.eps, self.atol, self.rtol = eps, atol, rtol
        self.failures, self.max_abs, self.max_rel = [], 0.0, 0.0

    # ------------------------------------------------------------------ evaluation
    def _call(self) -> Tensor:
        out = self.fn(*self.inputs)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        return out

    def output_shape_size(self) -> int:
        out = self._call()
        if out.dtype != np.float64:
            raise ValueError(f"gradcheck: fn returned dtype {out.dtype} from float64 inputs")
        self.out_shape = out.shape
        return out.size

    def value(self) -> np.ndarray:
        with no_grad():
            return np.array(self._call().data, dtype=np.float64)

    def analytic(self, v: np.ndarray) -> list:
        """The gradient of vᵀ f with respect to each target input, by backward."""
        for _, t in self.targets:
            t.grad = None
        out = self._call()
        if not out.requires_grad:
            raise ValueError("gradcheck: fn's output does not depend on any input "
                             "that requires grad")
        out.backward(v)
        grads = []
        for i, t in self.targets:
            g = t.grad
            if g is None:          # the output does not depend on this input
                g = np.zeros_like(t.data)
            elif g.shape != t.shape or g.dtype != t.dtype:
                self.failures.append(f"input {i}: gradient has shape {g.shape} and dtype "
                                     f"{g.dtype}, the input has shape {t.shape} and dtype {t.dtype}")
            grads.append(g)
        return grads

    def _perturbed_difference(self, t: Tensor, direction: np.ndarray) -> np.ndarray:
        """(f(x + eps d) - f(x - eps d)) / (2 eps), with t's data restored afterwards."""
        base = t.data.copy()
        t.data[...] = base + self.eps * direction
        plus = self.value()
        t.data[...] = base - self.eps * direction
        minus = self.value()
        t.data[...] = base
        return (plus - minus) / (2 * self.eps)

    # ------------------------------------------------------------------ comparisons
    def _record(self, analytic: np.ndarray, numeric: np.ndarray, tol: np.ndarray, describe):
        err = np.abs(analytic - numeric)
        rel = err / np.maximum(np.abs(numeric), self.atol)
        if err.size:
            self.max_abs = max(self.max_abs, float(err.max()))
            self.max_rel = max(self.max_rel, float(rel.max()))
        bad = err > tol
        if bad.any():
            worst = np.unravel_index(np.argmax(np.where(bad, err - tol, -np.inf)), err.shape)
            self.failures.append(
                f"{describe(worst)}: analytic {analytic[worst]:.10g}, numeric {numeric[worst]:.10g}, "
                f"abs err {err[worst]:.3g}, rel err {rel[worst]:.3g} "
                f"(atol {self.atol:g}, rtol {self.rtol:g}; {int(bad.sum())} of {bad.size} failed)")

    def compare_jacobians(self) -> None:
        out_size = int(np.prod(self.out_shape, dtype=np.int64))
        # analytic Jacobian, one row per output element: backward with v = e_k
        rows = []
        for k in range(out_size):
            v = np.zeros(out_size)
            v[k] = 1.0
            rows.append([g.ravel().copy() for g in self.analytic(v.reshape(self.out_shape))])
        for n, (i, t) in enumerate(self.targets):
            analytic = np.array([row[n] for row in rows]).reshape(out_size, t.size)
            numeric = np.empty_like(analytic)
            for j in range(t.size):
                e = np.zeros(t.size)
                e[j] = 1.0
                numeric[:, j] = self._perturbed_difference(t, e.reshape(t.shape)).ravel()
            tol = self.atol + self.rtol * np.abs(numeric)

            def describe(worst, i=i, t=t):
                k, j = worst
                out_idx = [int(n) for n in np.unravel_index(k, self.out_shape)]
                in_idx = [int(n) for n in np.unravel_index(j, t.shape)]
                return f"input {i} (shape {t.shape}), d output{out_idx} / d input{in_idx}"
            self._record(analytic, numeric, tol, describe)

    def compare_projections(self, n_projections: int, rng: np.random.Generator) -> None:
        for p in range(n_projections):
            v = rng.standard_normal(self.out_shape)
            grads = self.analytic(v)
            for (i, t), g in zip(self.targets, grads):
                u = rng.standard_normal(t.shape)
                analytic = np.array([np.sum(g * u)])
                numeric = np.array([np.sum(v * self._perturbed_difference(t, u))])
                # vᵀJu sums t.size * out.size terms: allow rounding to grow with sqrt of that
                scale = np.sqrt(t.size * max(v.size, 1))
                tol = self.atol * scale + self.rtol * np.abs(numeric)
                self._record(analytic, numeric, tol,
                             lambda _w, i=i, t=t, p=p: f"input {i} (shape {t.shape}), "
                                                       f"random projection {p} (vᵀJu)")
