"""Layers: thin Modules that hold Parameters and call `numpyllm.functional`.

Weights are stored ``[in, out]`` so a linear layer is ``x @ W + b`` with no transpose,
and GPT-2's checkpoint tensors load as they are. Initial values come from an explicit
`np.random.Generator` (``rng``); they are drawn in float64 and then cast, so a float32
and a float64 model built from the same seed hold the same numbers (up to rounding).

``rng`` may also be a seed (an int); ``rng=None`` is a convenience for interactive use:
a fresh ``np.random.default_rng()`` (seeded from the OS, so not reproducible). Library
models always pass one.

    >>> import numpy as np
    >>> from numpyllm import Tensor
    >>> mlp = MLP(8, rng=np.random.default_rng(0))
    >>> mlp(Tensor(np.ones((2, 3, 8), dtype=np.float32))).shape
    (2, 3, 8)
    >>> [name for name, _ in mlp.named_parameters()]
    ['c_fc.weight', 'c_fc.bias', 'c_proj.weight', 'c_proj.bias']
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..validation import as_generator, positive_int
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "LayerNorm", "Dropout", "ReLU", "GELU", "MLP", "FeedForward",
           "uninitialized_weights"]


_init = threading.local()             # .skip: inside `uninitialized_weights` (this thread)


@contextmanager
def uninitialized_weights():
    """Inside this block, `Linear` and `Embedding` weights are allocated but not drawn
    (``np.empty``): for a loader that overwrites every weight at once
    (`numpyllm.hub.load_pretrained`). Drawing GPT-2 small's 124M numbers in float64 and
    casting them takes seconds; copying the file's takes a fraction of one. Biases and
    norms (zeros, ones) are set as usual; the random generator is left untouched."""
    before = getattr(_init, "skip", False)
    _init.skip = True
    try:
        yield
    finally:
        _init.skip = before


def _normal(rng: np.random.Generator, shape: tuple, std: float, dtype) -> Parameter:
    """A Parameter drawn from N(0, std²) in float64, then cast to `dtype` (allocated only,
    inside `uninitialized_weights`)."""
    if getattr(_init, "skip", False):
        return Parameter.empty(shape, dtype)
    return Parameter(rng.normal(0.0, std, shape), dtype=dtype)


def _last_axis(layer: str, expected: int, what: str, x) -> None:
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if not shape or shape[-1] != expected:
        raise ValueError(f"{layer}: input of shape {shape} must have {what}={expected} "
                         "as its last axis")


class Linear(Module):
    """``y = x @ weight + bias``, with ``weight [in_features, out_features]`` drawn from
    N(0, std²) and ``bias [out_features]`` zeros (None when ``bias=False``).

    `x` has any number of leading axes: ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: np.random.Generator | None = None, dtype=np.float32, std: float = 0.02):
        super().__init__()
        self.in_features = positive_int("Linear in_features", in_features)
        self.out_features = positive_int("Linear out_features", out_features)
        self.weight = _normal(as_generator(rng), (self.in_features, self.out_features), std, dtype)
        self.bias = Parameter(np.zeros(self.out_features), dtype=dtype) if bias else None

    def forward(self, x):
        _last_axis(f"Linear({self.in_features}, {self.out_features})", self.in_features,
                   "in_features", x)
        # one fused node: a single 2-D GEMM over all leading axes, the bias added in place
        return F.linear(x, self.weight, self.bias)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """`forward` on an array, for inference (no graph): one 2-D matrix product over
        the leading axes. [..., in] -> [..., out]. (A LoRA layer adds its adapter here.)"""
        w = self.weight.data
        y = x.reshape(-1, w.shape[0]) @ w                            # [N, out]
        if self.bias is not None:
            y += self.bias.data
        return y.reshape(*x.shape[:-1], w.shape[1])

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, dtype={self.weight.dtype}")


class Embedding(Module):
    """A table ``weight [num_embeddings, embedding_dim]`` (N(0, std²)); ``forward(ids)``
    looks up rows: integer ids ``[...]`` -> ``[..., embedding_dim]``. An id outside
    ``[0, num_embeddings)`` raises IndexError; repeated ids accumulate their gradients.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *,
                 rng: np.random.Generator | None = None, dtype=np.float32, std: float = 0.02):
        super().__init__()
        self.num_embeddings = positive_int("Embedding num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("Embedding embedding_dim", embedding_dim)
        self.weight = _normal(as_generator(rng), (self.num_embeddings, self.embedding_dim), std,
                              dtype)

    def forward(self, ids):
        return F.embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, dtype={self.weight.dtype}"


class LayerNorm(Module):
    """Layer normalization over the last axis (of size `n`), then ``* weight + bias``;
    ``weight`` starts at ones, ``bias`` at zeros (None with ``bias=False``, as nanoGPT
    allows). One fused node: `numpyllm.functional.layer_norm`.
    """

    def __init__(self, n: int, eps: float = 1e-5, *, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.n = positive_int("LayerNorm n", n)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(self.n), dtype=dtype)
        self.bias = Parameter(np.zeros(self.n), dtype=dtype) if bias else None

    def forward(self, x):
        _last_axis(f"LayerNorm({self.n})", self.n, "n", x)
        return F.layer_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.n}, eps={self.eps:g}, bias={self.bias is not None}, dtype={self.weight.dtype}"


class Dropout(Module):
    """Inverted dropout with probability `p` while training; the identity in eval mode
    and at ``p == 0``. The mask comes from `rng`, which ``p > 0`` requires (no hidden
    global random state): ``Dropout(0.1, rng=np.random.default_rng(seed))``.
    """

    def __init__(self, p: float = 0.0, *, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        if p > 0 and not isinstance(rng, np.random.Generator):
            raise TypeError(f"Dropout(p={p}) needs rng=np.random.Generator "
                            f"(np.random.default_rng(seed)); got {type(rng).__name__}")
        self.p = float(p)
        self.rng = rng

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    """The GELU activation; ``approximate="tanh"`` is GPT-2's form, ``"none"`` the exact
    erf form."""

    def __init__(self, approximate: str = "tanh"):
        super().__init__()
        if approximate not in ("tanh", "none"):
            raise ValueError(f"GELU: approximate must be 'tanh' or 'none', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


_ACTIVATIONS = {"gelu": GELU, "relu": ReLU}


class MLP(Module):
    """The transformer's position-wise feed-forward block, with GPT-2's names:
    ``c_fc`` (n_embd -> hidden), the activation, ``c_proj`` (hidden -> n_embd), dropout.
    `hidden` defaults to ``4 * n_embd``.

    `activation` is ``"gelu"`` (tanh form, GPT-2), ``"relu"`` (the original Transformer)
    or a Module such as ``GELU("none")``. ``c_proj``'s initial std is `proj_std` (GPT-2
    scales it by 1/sqrt(2 * n_layer); the model passes that in). One `rng` initializes
    both Linears and drives the dropout.
    """

    def __init__(self, n_embd: int, hidden: int | None = None, *, activation="gelu",
                 dropout: float = 0.0, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 proj_std: float = 0.02):
        super().__init__()
        hidden = 4 * positive_int("MLP n_embd", n_embd) if hidden is None else hidden
        rng = as_generator(rng)
        if isinstance(activation, Module):
            act = activation
        elif activation in _ACTIVATIONS:
            act = _ACTIVATIONS[activation]()
        else:
            raise ValueError(f"MLP: activation must be 'gelu', 'relu' or a Module, "
                             f"got {activation!r}")
        self.c_fc = Linear(n_embd, hidden, bias, rng=rng, dtype=dtype)
        self.act = act
        self.c_proj = Linear(hidden, n_embd, bias, rng=rng, dtype=dtype, std=proj_std)
        self.dropout = Dropout(dropout, rng=rng)

    def forward(self, x):
        # [..., C] -> [..., hidden] -> [..., C]
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


FeedForward = MLP
