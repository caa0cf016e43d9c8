"""What a gradient check is: a `Check` names a builder; the builder makes a `Case`.

A `Case` is what `gradcheck` takes: a function and its inputs (float64 Tensors, a
layer's or model's Parameters among them; `gradcheck` perturbs their data in place and
restores it), plus names for the inputs, so that a report can say
``h.0.ln_1.weight`` rather than ``input 3``.

A gradient check is only as good as the point it is made at. At a model's initial
weights (std 0.02) attention is nearly uniform and every layer norm's gain is 1, so
many paths carry gradients too small to tell right from wrong. `perturb` moves the
weights away from there first, which is what every model and layer check here does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..autograd import Tensor

__all__ = ["Case", "Check", "leaf", "module_case", "perturb"]


@dataclass
class Case:
    """One concrete check: ``fn(*inputs)`` is a Tensor to compare with finite differences."""

    fn: Callable
    inputs: tuple
    names: dict = field(default_factory=dict)   # argument position -> name, for reports
    module: object = None                        # the layer or model checked, if any


@dataclass(frozen=True)
class Check:
    """A named check. ``build(rng)`` returns a `Case` (or a plain ``(fn, inputs)`` pair)."""

    name: str
    build: Callable
    shapes: str = ""         # a short description of the shapes, for the table
    options: tuple = ()      # extra keyword arguments for gradcheck, as (key, value) pairs
    kind: str = "check"      # "op", "function", "layer", "model": where it comes from

    def make(self, rng: np.random.Generator) -> Case:
        built = self.build(rng)
        return built if isinstance(built, Case) else Case(*built)


def leaf(rng: np.random.Generator, *shape) -> Tensor:
    """A standard-normal float64 Tensor that requires grad."""
    return Tensor(rng.standard_normal(shape), requires_grad=True)


def perturb(module, rng: np.random.Generator, std: float = 0.3):
    """Add N(0, std²) noise to every parameter of `module`, in place; returns it.

    Moves a freshly initialised model to weights where every path matters: attention
    far from uniform, layer-norm gains and biases away from 1 and 0, each residual
    branch as large as the skip it joins.
    """
    for p in module.parameters():
        p.data += std * rng.standard_normal(p.shape)
    return module


def module_case(module, fn, *inputs) -> Case:
    """A Case for ``fn(*inputs)`` with respect to `inputs` (those that require grad)
    and every trainable parameter of `module`, named by its dotted name."""
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    n = len(inputs)
    names = {n + k: name for k, (name, _) in enumerate(named)}
    names.update({k: f"input {k}" for k in range(n)})
    return Case(lambda *args: fn(*args[:n]), tuple(inputs) + tuple(p for _, p in named), names,
                module)
