"""Mutation testing of a gradient check: does it fail when a gradient is wrong?

A gradient check that passes proves something only if it would have failed on a wrong
gradient. `gradcheck_mutants` takes a check (the same ``fn, *inputs`` as `gradcheck`)
and, for every checked input in turn, judges three corrupted versions of the gradient
backward returns for it:

    zeroed          g -> 0                 (a backward that forgot an input)
    scaled          g -> 1.01 g            (a constant slightly wrong)
    sign flipped    g[j] -> -g[j]          (one element wrong; j where |g| is largest)

Each corrupted gradient must make the check fail: the mutant is "caught". The
measurements (backward's gradients and the finite differences) are taken once and the
same comparison that `gradcheck` makes is repeated with the corrupted gradient in
place of the true one, in every backward call, exactly as a wrong backward would
have returned it (`numpyllm.autograd.gradcheck.Measurements.judge`).

An input whose true gradient is zero everywhere the check looks cannot tell a wrong
gradient from a right one: its mutants are reported as not caught, with the reason,
so a check that leaves part of a model untested scores below 100%.

>>> import numpy as np, numpyllm as nl
>>> from numpyllm.autograd.mutation import gradcheck_mutants
>>> x = nl.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
>>> report = gradcheck_mutants(lambda t: (t.tanh() * t).sum(axis=1), x)
>>> report.score, len(report.mutants)
(1.0, 3)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gradcheck import measure

__all__ = ["Mutant", "MutationReport", "gradcheck_mutants", "score_measurements", "MUTATIONS"]

MUTATIONS = ("zeroed", "scaled by 1.01", "sign flipped")


@dataclass
class Mutant:
    """One corrupted gradient and how the check judged it."""

    input: int            # the argument position of the input
    name: str             # its name (a parameter's dotted name) or "input i"
    mutation: str         # one of MUTATIONS, with the flipped element for "sign flipped"
    caught: bool          # the check failed, as it must
    err_ratio: float      # the largest error / tolerance the mutant produced (> 1: caught)
    why: str = ""         # why a mutant could not be caught (a zero gradient)


@dataclass
class MutationReport:
    """Every mutant of one check. `score` is the share caught; 1.0 is the only pass."""

    mode: str                                   # the check's mode: "jacobian" / "projection"
    clean_ok: bool                              # the uncorrupted check passed
    mutants: list = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(m.caught for m in self.mutants) / len(self.mutants) if self.mutants else 0.0

    @property
    def survivors(self) -> list:
        return [m for m in self.mutants if not m.caught]

    def describe_survivors(self) -> str:
        return "; ".join(f"{m.name} {m.mutation}" + (f" ({m.why})" if m.why else
                                                     f" (error/tolerance {m.err_ratio:.2g})")
                         for m in self.survivors)


def _flip_element(calls, n) -> int:
    """The flat index of input n's largest gradient element over all backward calls."""
    total = sum(np.abs(call[n]).ravel() for call in calls)
    return int(np.argmax(total))


def gradcheck_mutants(fn, *inputs, names=None, eps: float = 1e-6, atol: float = 0.0,
                      rtol: float = 1e-3, max_jacobian: int = 256, n_projections: int = 3,
                      seed: int = 0) -> MutationReport:
    """Judge three corruptions of each checked input's gradient (see the module doc).

    `names` maps an argument position to a name for the report (a model's parameter
    names, say). The other options are `gradcheck`'s, and must be the ones the check
    itself uses. Raises nothing for a failing clean check: `clean_ok` says so, and the
    score of a check that fails clean means nothing.
    """
    m = measure(fn, *inputs, eps=eps, max_jacobian=max_jacobian,
                n_projections=n_projections, seed=seed)
    return score_measurements(m, names=names, atol=atol, rtol=rtol)


def score_measurements(m, *, names=None, atol: float = 0.0, rtol: float = 1e-3) -> MutationReport:
    """The mutants of measurements already taken (`numpyllm.autograd.gradcheck.measure`)."""
    report = MutationReport(m.mode, m.judge(atol=atol, rtol=rtol).ok)
    names = names or {}
    for n, (i, shape) in enumerate(zip(m.indices, m.shapes)):
        name = names.get(i, f"input {i}")
        j = _flip_element(m.calls, n)
        flat = np.unravel_index(j, shape) if shape else ()
        zero_everywhere = not any(np.any(call[n]) for call in m.calls)

        def flipped(g, j=j):
            g = g.copy().reshape(-1)
            g[j] = -g[j]
            return g.reshape(m.shapes[n])

        corruptions = {"zeroed": lambda g: np.zeros_like(g),
                       "scaled by 1.01": lambda g: 1.01 * g,
                       "sign flipped": flipped}
        for label, corrupt in corruptions.items():
            result = m.judge(atol=atol, rtol=rtol,
                             corrupt=lambda k, g, n=n, c=corrupt: c(g) if k == n else g)
            mutation = label if label != "sign flipped" else \
                f"sign of element {[int(x) for x in flat]} flipped"
            report.mutants.append(Mutant(i, name, mutation, not result.ok,
                                         result.max_err_ratio,
                                         "its true gradient is zero wherever the check looks"
                                         if zero_everywhere else ""))
    return report
