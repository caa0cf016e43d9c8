"""`Module`, `Parameter`, `ModuleList`: the state of a network, named and walked.

A `Parameter` is a `Tensor` that a module owns and an optimizer updates. A `Module`
holds Parameters and other Modules as plain attributes; nothing registers them. The
walk looks at the instance's attributes in the order they were first assigned
(``vars(self)``), descends into Modules, `ModuleList`s and plain lists or tuples of
Modules, and names what it finds with dots, as GPT-2's checkpoint does::

    h.0.attn.c_attn.weight      # self.h[0].attn.c_attn.weight

Every object is visited once: a Parameter shared by two modules (weight tying: the LM
head reusing ``wte.weight``) is listed once, under the first name the walk meets.
A state dict is therefore just ``{name: array copy}``.

>>> import numpy as np
>>> class Affine(Module):
...     def __init__(self):
...         self.weight = Parameter(np.ones((2, 3)))
...         self.bias = Parameter(np.zeros(3))
...     def forward(self, x):
...         return x @ self.weight + self.bias
>>> class Net(Module):
...     def __init__(self):
...         self.layers = ModuleList([Affine(), Affine()])
>>> [name for name, _ in Net().named_parameters()]
['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..autograd import Tensor

__all__ = ["Parameter", "Module", "ModuleList"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad (unless frozen with `requires_grad_(False)`): a
    weight of a Module.

    `data` is copied (into `dtype` when given), so the Parameter owns its array: the
    optimizers update that array in place, and must not write into the caller's.
    Only floating-point data is accepted.

    >>> Parameter([1.0, 2.0], dtype=np.float32)
    Parameter([1., 2.], dtype=float32)
    """

    __slots__ = ()   # Tensor uses __slots__; a subclass may add none

    def __init__(self, data, dtype=None):
        data = np.array(data.data if isinstance(data, Tensor) else data, dtype=dtype, copy=True)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"a Parameter must be floating-point; got dtype {data.dtype} "
                            "(pass dtype=np.float32 or np.float64)")
        super().__init__(data, requires_grad=True)

    @classmethod
    def empty(cls, shape: tuple, dtype) -> "Parameter":
        """A Parameter of `shape` whose values are whatever the memory held (a loader
        fills it next): allocated, never written, so its pages cost nothing until then."""
        param = cls.__new__(cls)
        Tensor.__init__(param, np.empty(shape, dtype=np.dtype(dtype)), requires_grad=True)
        return param

    def __repr__(self) -> str:
        body = np.array2string(self.data, prefix="Parameter(", separator=", ")
        return f"Parameter({body}, dtype={self.dtype})"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of layers and models: subclass it, assign Parameters and Modules as
    attributes in ``__init__``, and write ``forward``. Calling the module calls forward.

    Calling ``super().__init__()`` is optional: the only state a Module keeps of its own
    is ``training`` (True until `eval()` or ``train(False)``), and the class provides
    that default.
    """

    training = True

    def __init__(self):
        self.training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ the walk
    def _members(self) -> Iterator[tuple]:
        """This module's own Parameters and child Modules as ``(name, object)``, in
        attribute order; items of a list or tuple attribute are named ``attr.index``."""
        for key, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield key, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Parameter, Module)):
                        yield f"{key}.{i}", item

    def _walk(self, prefix: str = "") -> Iterator[tuple]:
        """Depth-first, in definition order: ``(name, obj)`` for this module, then each
        member (a Parameter, or a Module followed by everything under it). Each object
        is yielded once, under the first name met (shared weights, cycles)."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield name, obj
            if isinstance(obj, Module):
                members = [(_join(name, n), m) for n, m in obj._members()]
                stack.extend(reversed(members))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple]:
        """``(dotted_name, Parameter)`` for every Parameter, each once, in definition order."""
        for name, obj in self._walk(prefix):
            if isinstance(obj, Parameter):
                yield name, obj

    def parameters(self) -> Iterator[Parameter]:
        """Every Parameter once, in the order of `named_parameters`."""
        for _, p in self.named_parameters():
            yield p

    def named_modules(self, prefix: str = "") -> Iterator[tuple]:
        """``(dotted_name, Module)`` for this module (named `prefix`, "" by default) and
        every module under it, each once."""
        for name, obj in self._walk(prefix):
            if isinstance(obj, Module):
                yield name, obj

    def named_children(self) -> Iterator[tuple]:
        """The direct child Modules as ``(name, Module)`` (list items as ``attr.i``)."""
        seen = set()
        for name, obj in self._members():
            if isinstance(obj, Module) and id(obj) not in seen:
                seen.add(id(obj))
                yield name, obj

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def num_parameters(self, trainable: bool = False) -> int:
        """The number of scalars in all Parameters (a shared one counted once); with
        ``trainable=True`` only in those that require grad (not frozen)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze every Parameter of this module and those under it;
        returns self. A frozen Parameter gets no gradient (backward skips its products),
        and optimizers neither update it nor hold state for it:

            model.requires_grad_(False)                  # freeze everything...
            model.head.requires_grad_(True)              # ...but the head
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def parameter_summary(self) -> str:
        """One line: how many parameters train, of how many (shared ones counted once)."""
        total, trainable = self.num_parameters(), self.num_parameters(trainable=True)
        share = 100.0 * trainable / total if total else 0.0
        return (f"trainable parameters: {trainable:,} of {total:,} ({share:.2f}%), "
                f"{total - trainable:,} frozen")

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Set training mode on this module and every module under it; returns self."""
        for _, m in self.named_modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off), recursively; returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every Parameter's gradient (``.grad`` becomes None)."""
        for p in self.parameters():
            p.grad = None

    def to(self, dtype) -> "Module":
        """Convert every Parameter to `dtype` (float32 or float64) in place; returns self.

        The Parameter objects stay the same (so do tied weights), their arrays are
        replaced, gradients are cast along. Floating-point buffers (array or Tensor
        attributes that are not Parameters, such as a sinusoidal position table) are
        converted too. An optimizer created before `to` holds moments of the old dtype:
        convert first, then build the optimizer.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"Module.to: dtype must be float32 or float64, got {dtype}")
        for _, obj in self._walk():
            if isinstance(obj, Parameter):
                obj.data = obj.data.astype(dtype, copy=False)
                if obj.grad is not None:
                    obj.grad = obj.grad.astype(dtype, copy=False)
            else:
                for key, value in list(vars(obj).items()):
                    if isinstance(value, Parameter):
                        continue
                    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
                        setattr(obj, key, value.astype(dtype, copy=False))
                    elif (isinstance(value, Tensor) and not value.requires_grad
                          and np.issubdtype(value.dtype, np.floating)):
                        value.data = value.data.astype(dtype, copy=False)
        return self

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """``{dotted_name: np.ndarray}``: a copy of every Parameter, in walk order."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict: bool = True) -> dict:
        """Copy the arrays of `state` (any mapping of name -> array or Tensor, such as an
        ``np.load`` of an .npz) into this module's Parameters, in place, cast to each
        Parameter's dtype. No reference to the caller's arrays is kept.

        Everything is checked before anything is written. With ``strict=True``, missing
        and unexpected keys are errors; a shape mismatch (or a value that is not numeric)
        is always an error. One ValueError lists every problem found. Returns
        ``{"missing_keys": [...], "unexpected_keys": [...]}`` (both empty when strict).
        """
        own = dict(self.named_parameters())
        keys = list(state.keys())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in keys if k not in own]
        arrays, mismatched = {}, []
        for k in keys:
            if k not in own:
                continue
            value = state[k]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            if value.dtype.kind not in "fiub":
                mismatched.append(f"{k}: dtype {value.dtype} is not numeric")
            elif value.shape != own[k].shape:
                mismatched.append(f"{k}: expected shape {own[k].shape}, got {value.shape}")
            else:
                arrays[k] = value
        problems = []
        if strict and missing:
            problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            problems.append(f"mismatched values ({len(mismatched)}): " + "; ".join(mismatched))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed:\n  "
                             + "\n  ".join(problems))
        for k, value in arrays.items():
            p = own[k]
            if p.data.flags.writeable:
                np.copyto(p.data, value, casting="unsafe")
            else:                     # e.g. a read-only memory map: give it its own array
                p.data = np.array(value, dtype=p.dtype, copy=True)
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """The text inside this module's parentheses (override to describe a layer).
        By default: its own Parameters with their shapes."""
        return ", ".join(f"{n}: {list(p.shape)}" for n, p in self._members()
                         if isinstance(p, Parameter))

    def __repr__(self) -> str:
        lines = []
        for key, value in vars(self).items():
            if isinstance(value, Module):
                lines.append(f"({key}): {_indent(repr(value))}")
            elif isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
                items = [f"({i}): {_indent(repr(v))}" for i, v in enumerate(value)
                         if isinstance(v, Module)]
                lines.append(f"({key}): {_indent(_render(type(value).__name__, '', items))}")
        return _render(type(self).__name__, self.extra_repr(), lines)


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


def _render(name: str, extra: str, lines: list) -> str:
    if not lines:
        return f"{name}({extra})"
    head = [extra] if extra else []
    return f"{name}(" + "".join("\n  " + s for s in head + lines) + "\n)"


class ModuleList(Module):
    """A list of Modules whose Parameters are named by index: ``h.0.attn...``.

    (A plain Python list or tuple attribute of Modules is walked the same way;
    ModuleList adds `append`, `extend` and indexing that returns a ModuleList for
    slices.)
    """

    def __init__(self, modules=()):
        super().__init__()
        self._list = []
        self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules; got {type(module).__name__}")
        self._list.append(module)
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(self._list[index])
        return self._list[index]

    def __setitem__(self, index: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules; got {type(module).__name__}")
        self._list[index] = module

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self):
        return iter(self._list)

    def _members(self):
        for i, m in enumerate(self._list):
            yield str(i), m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over its modules")

    def __repr__(self) -> str:
        return _render("ModuleList", "", [f"({i}): {_indent(repr(m))}"
                                          for i, m in enumerate(self._list)])
