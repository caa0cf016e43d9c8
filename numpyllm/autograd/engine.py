"""The engine of reverse-mode autograd: graph nodes, `sum_to`, `no_grad`, `backward`.

A forward computation builds a directed acyclic graph. Each operation is a `Function`
node that remembers its input tensors (`parents`) and whatever arrays its backward
needs (`saved`). A `Tensor` that an operation produced points at its node (`_ctx`);
a leaf tensor (a parameter, an input) has no node.

`backward` walks that graph once, from the output back to the leaves, in reverse
topological order. At each node it turns the gradient of the node's output into a
gradient for each input: the vector-Jacobian product `g_in = g_out · d out / d in`.
Three rules are applied here, once, so that no single operation can forget them:

1. **Broadcasting**: an input of shape (3, 1) that was broadcast to (2, 3, 4) receives a
   gradient of shape (2, 3, 4); `sum_to` sums it back to (3, 1).
2. **Accumulation**: a tensor used twice (``x * x``, a residual connection) receives the
   sum of the gradients from every use; gradients are added, never assigned.
3. **Freeing**: after a node's backward has run, its saved arrays and its references to
   its inputs are dropped (unless ``retain_graph=True``), so activations are released as
   the backward pass moves down the network.

The graph holds no reference cycles (a node never points at its own output), so it
is freed by reference counting alone, with `gc` disabled.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

__all__ = ["Function", "no_grad", "enable_grad", "is_grad_enabled", "sum_to", "backward"]


# --------------------------------------------------------------------------------------
# Grad mode: whether operations record the graph. Thread-local, so one thread's
# no_grad() does not switch off recording in another.
# --------------------------------------------------------------------------------------
class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when operations record the graph for backward (the default)."""
    return _grad_mode.enabled


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores it on exit."""

    _mode = True

    def __enter__(self):
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc_info):
        # __exit__ runs whatever happens in the block, like a `finally`.
        _grad_mode.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_SetGradMode):
    """Inside ``with no_grad():`` operations build no graph: outputs do not require grad
    and nothing is saved for backward. Use it for evaluation and generation.

    >>> import numpyllm as nl
    >>> w = nl.Tensor([1.0, 2.0], requires_grad=True)
    >>> with nl.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_SetGradMode):
    """Turn graph recording back on inside a `no_grad` block."""

    _mode = True


# --------------------------------------------------------------------------------------
# Broadcasting, undone in one place.
# --------------------------------------------------------------------------------------
def sum_to(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`.

    If ``y = x + b`` broadcast ``b`` of shape (3, 1) to (2, 3, 4), every element of ``b``
    was used 2 * 4 times, so its gradient is the sum over those uses:
    ``sum_to(g, (3, 1)) == g.sum(axis=(0, 2)).reshape(3, 1)``.

    >>> sum_to(np.ones((2, 3, 4)), (3, 1)).ravel().tolist()
    [8.0, 8.0, 8.0]
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead < 0 or any(s != 1 and s != g for s, g in zip(shape, grad.shape[lead:])):
        raise ValueError(f"cannot sum a gradient of shape {grad.shape} to shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes).reshape(shape)


# --------------------------------------------------------------------------------------
# Function: one node of the graph. Built-in operations and user operations alike.
# --------------------------------------------------------------------------------------
class Function:
    """A differentiable operation: subclass it, write `forward` and `backward`, call `apply`.

    ``forward(ctx, *args, **kwargs)`` receives the inputs as NumPy arrays (a `Tensor`
    argument arrives as its ``.data``; anything else arrives unchanged) and returns one
    array. ``backward(ctx, grad)`` receives the gradient of the loss with respect to that
    output and returns one gradient per positional argument of forward (a tuple, or a
    single array when there is one argument); return None for an argument that is not
    differentiable. The engine sums each gradient back to its input's shape, so backward
    may return a broadcast shape.

    `ctx` is the node itself: store what backward needs with ``ctx.save_for_backward``
    (read it back as ``ctx.saved``) or as attributes. Save arrays, never Tensors, and
    only what backward needs. ``ctx.needs_input_grad[i]`` tells whether argument i needs
    a gradient, so backward can skip work.

    >>> import numpy as np, numpyllm as nl
    >>> class Cube(nl.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         x, = ctx.saved
    ...         return grad * 3 * x ** 2          # d/dx x^3 = 3x^2
    >>> x = nl.Tensor([1.0, 2.0], requires_grad=True)
    >>> Cube.apply(x).sum().backward()
    >>> x.grad.tolist()
    [3.0, 12.0]
    >>> nl.autograd.gradcheck(Cube.apply, nl.Tensor(np.random.rand(3), requires_grad=True))
    True
    """

    # parents: the argument list, Tensor or None per position (None: not a Tensor).
    parents: tuple | None = None
    saved: tuple = ()
    needs_input_grad: tuple = ()
    freed = False

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on `args` and, when any input requires grad, record the node."""
        record = False
        raw = []
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.data)
                record = record or a.requires_grad
            else:
                raw.append(a)
        record = record and _grad_mode.enabled
        ctx = cls()
        if record:
            ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        else:
            ctx.needs_input_grad = (False,) * len(args)
        try:
            data = cls.forward(ctx, *raw, **kwargs)
        except ValueError as exc:
            shapes = ", ".join(str(np.shape(r)) for r in raw if isinstance(r, np.ndarray))
            raise ValueError(f"{cls.__name__} with input shapes {shapes}: {exc}") from None
        if type(data) is not np.ndarray:
            data = np.asarray(data)
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        if record:
            ctx.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
            out.requires_grad = True
            out._ctx = ctx
        else:
            out.requires_grad = False
            out._ctx = None
        return out

    def release(self) -> None:
        """Drop saved arrays and input references (called by backward once used)."""
        self.__dict__.clear()  # saved arrays, input references, anything backward stored
        self.freed = True


# --------------------------------------------------------------------------------------
# The backward pass.
# --------------------------------------------------------------------------------------
def _topological_order(root: Function) -> list:
    """Nodes reachable from `root`, each after all the nodes that consume its output.

    Iterative depth-first search with an explicit stack, so a chain of 10,000 ops needs no
    recursion. Returns the post-order (inputs first); backward walks it in reverse.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        if node.freed:
            raise RuntimeError(
                f"backward through a graph that was already freed (at {type(node).__name__}):"
                " a second backward needs retain_graph=True on the first call")
        visited.add(node)
        stack.append((node, True))
        for parent in node.parents:
            if parent is not None and parent._ctx is not None and parent._ctx not in visited:
                stack.append((parent._ctx, False))
    return order


def backward(tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

    `grad` is the gradient of some scalar with respect to `tensor` (the "upstream"
    vector of the vector-Jacobian product); it may be omitted when `tensor` has one
    element, and is then 1.
    """
    if not tensor.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad "
                           "(no input had requires_grad=True, or it was made under no_grad)")
    if not _runtime._malloc_settled:       # once per process: malloc keeps freed memory
        _runtime.keep_freed_memory_for_training()      # (numpyllm/runtime.py says why)
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {tensor.shape} needs a grad argument of that "
                "shape; only a tensor with one element has an implicit gradient of 1")
        grad = np.ones_like(tensor.data)
    else:
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=tensor.dtype)
        if grad.shape != tensor.shape:
            raise ValueError(f"backward(): grad has shape {grad.shape}, "
                             f"but the tensor has shape {tensor.shape}")

    if tensor._ctx is None:  # a leaf: d tensor / d tensor = identity
        _accumulate_leaf(tensor, grad)
        return

    grads = {tensor._ctx: grad}   # node -> gradient of the loss w.r.t. the node's output
    owned = set()                 # nodes whose gradient array we allocated (safe to += into)
    for node in reversed(_topological_order(tensor._ctx)):
        g = grads.pop(node, None)
        if g is None:  # the output of this node does not reach the loss
            if not retain_graph:
                node.release()
            continue
        in_grads = type(node).backward(node, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        parents = node.parents
        if len(in_grads) != len(parents):
            raise RuntimeError(f"{type(node).__name__}.backward returned {len(in_grads)} "
                               f"gradients for {len(parents)} inputs")
        for parent, pg in zip(parents, in_grads):
            if pg is None or parent is None or not parent.requires_grad:
                continue
            pdata = parent.data
            if pg.shape != pdata.shape:
                try:
                    pg = sum_to(pg, pdata.shape)
                except ValueError:
                    raise RuntimeError(
                        f"{type(node).__name__}.backward returned a gradient of shape "
                        f"{pg.shape} for an input of shape {pdata.shape}") from None
            if pg.dtype != pdata.dtype:
                pg = pg.astype(pdata.dtype)
            pnode = parent._ctx
            if pnode is None:
                _accumulate_leaf(parent, pg)
            elif pnode not in grads:
                grads[pnode] = pg        # may alias another array: do not write into it
            elif pnode in owned:
                grads[pnode] += pg
            else:
                grads[pnode] = grads[pnode] + pg
                owned.add(pnode)
        if not retain_graph:
            node.release()


def _accumulate_leaf(leaf, g: np.ndarray) -> None:
    """leaf.grad += g, keeping leaf.grad a writable array that nobody else holds."""
    if leaf.grad is None:
        leaf.grad = np.array(g, dtype=leaf.data.dtype, copy=True)
    else:
        leaf.grad += g


# Tensor and Function refer to each other (operators are Functions, Functions make
# Tensors), so the import sits below Function's definition.
from .tensor import Tensor  # noqa: E402
from .. import runtime as _runtime  # noqa: E402
