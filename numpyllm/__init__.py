"""numpyllm: a transformer library in pure NumPy, with its own reverse-mode autograd.

    import numpyllm as nl
    x = nl.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 * x

Packages: `numpyllm.autograd` (Tensor, Function, gradcheck), and, as they land,
`numpyllm.nn`, `numpyllm.functional`, `numpyllm.tokenizers`, `numpyllm.data`,
`numpyllm.optim`, `numpyllm.train`, `numpyllm.generate`, `numpyllm.checkpoint`.
"""
from . import autograd
from .autograd import (Function, Tensor, concat, enable_grad, gradcheck, is_grad_enabled,
                       no_grad, split, stack, where)

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck",
           "concat", "stack", "split", "where", "autograd", "__version__"]
