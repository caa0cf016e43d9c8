"""The primitive ops' checks: every example of every row of the op table
(`numpyllm.autograd.optable`), as `Check`s like all the others."""
from __future__ import annotations

from ..autograd.optable import OP_CASES, normalize_shapes, run_case
from .case import Case, Check

__all__ = ["CHECKS"]


def _op_check(case, shapes) -> Check:
    def build(rng):
        fn, tensors, _, _ = run_case(case, shapes, rng)
        return Case(fn, tuple(tensors))
    name = f"{case.name} ({case.variant})" if case.variant else case.name
    return Check(name, build, " ".join(str(list(s)) for s in shapes), kind="op")


CHECKS = [_op_check(case, normalize_shapes(case, example))
          for case in OP_CASES for example in case.examples]
