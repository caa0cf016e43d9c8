"""Reverse-mode automatic differentiation over NumPy.

- engine.py: graph nodes (`Function`), the iterative backward pass, `sum_to`, `no_grad`
- tensor.py: `Tensor` and its operators
- ops.py: the primitive operations, forward and backward side by side
- gradcheck.py: the public finite-difference checker, with its tolerance model
- mutation.py: does a check fail on wrong gradients? (each input's gradient corrupted)
- optable.py: the table of every op with the inputs it is checked on
- dot.py: `to_dot`, the graph as Graphviz DOT text
"""
# engine first: it defines Function, then imports tensor (whose operators are Functions).
from .engine import Function, backward, enable_grad, is_grad_enabled, no_grad, sum_to
from .tensor import Tensor, concat, split, stack, where
from .gradcheck import GradcheckError, GradcheckResult, gradcheck, gradcheck_report
from .mutation import gradcheck_mutants
from .dot import to_dot

__all__ = [
    "Function", "Tensor", "backward", "no_grad", "enable_grad", "is_grad_enabled", "sum_to",
    "concat", "stack", "split", "where",
    "gradcheck", "gradcheck_report", "GradcheckError", "GradcheckResult", "gradcheck_mutants",
    "to_dot",
]
