"""Every gradient check in one list, and `register` for checks of your own."""
from __future__ import annotations

from .case import Check

__all__ = ["register", "all_checks", "USER_CHECKS"]

# Checks added with `register`, after the built-in ones. A list you can see and clear.
USER_CHECKS: list = []


def register(name: str, shapes: str = "", **gradcheck_options):
    """Decorator: add a check of your own, run by `all_checks`, the test suite's
    tests/test_checks.py and ``numpyllm gradcheck`` (when your module is imported).

    >>> import numpy as np
    >>> from numpyllm.checks import Case, leaf, register
    >>> @register("cube", "x [3]")
    ... def _cube(rng):
    ...     return Case(lambda x: x * x * x, (leaf(rng, 3),))
    >>> USER_CHECKS.pop().name
    'cube'
    """
    def deco(build):
        USER_CHECKS.append(Check(name, build, shapes, tuple(sorted(gradcheck_options.items())),
                                 kind="user"))
        return build
    return deco


def all_checks() -> list:
    """Every check: the op table's rows, the fused functions, the layers, the models,
    then the ones added with `register`."""
    from . import functional, layers, models, ops
    return ops.CHECKS + functional.CHECKS + layers.CHECKS + models.CHECKS + USER_CHECKS
