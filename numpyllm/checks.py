"""Gradient checks of the fused functions, layers and models, for ``numpyllm gradcheck``.

The primitive ops are listed in `numpyllm.autograd.optable`. Everything built on top
of them (fused functions with a hand-written backward, layers, whole models) registers
a check here: a builder that, given a random generator, returns ``(fn, inputs)`` with
float64 inputs, where ``fn(*inputs)`` is a Tensor to check against finite differences.
Parameters of a layer or model take part by being among the inputs (a Parameter is a
Tensor): `gradcheck` perturbs their data in place and restores it.

    @register("layer_norm", "x [2, 3, 8]")
    def _layer_norm(rng):
        x = Tensor(rng.standard_normal((2, 3, 8)), requires_grad=True)
        ...
        return (lambda x, w, b: F.layer_norm(x, w, b)), (x, w, b)

The test suite runs every registered check too (tests/test_checks.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


__all__ = ["Check", "CHECKS", "register", "all_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    build: Callable          # build(rng) -> (fn, inputs)
    shapes: str = ""         # a short description of the shapes, for the table
    options: tuple = ()      # extra keyword arguments for gradcheck, as (key, value) pairs


CHECKS: list = []


def register(name: str, shapes: str = "", **gradcheck_options):
    """Decorator: add a check builder under `name`."""
    def deco(build):
        CHECKS.append(Check(name, build, shapes, tuple(sorted(gradcheck_options.items()))))
        return build
    return deco


def all_checks() -> list:
    """Every registered check (importing the modules that define them)."""
    from . import _registered_checks  # noqa: F401  (registers on import)
    return list(CHECKS)
