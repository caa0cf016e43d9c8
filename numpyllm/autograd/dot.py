"""`to_dot`: the computation graph behind a Tensor, as Graphviz DOT text.

Every tensor of the graph is one node: a tensor made by an operation is labelled with
the operation (the `Function` class that made it, ``MatMul``, ``LayerNorm``, ...) and its
shape; a leaf is labelled with its name, when one is given, and its shape. An edge runs
from each input to the tensor computed from it, so the picture reads in the direction
of the forward pass; backward walks it the other way. When an operation has several
tensor inputs, each edge is labelled with the argument's position (``a - b``: 0 is a).

    >>> import numpyllm as nl
    >>> w = nl.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> x = nl.Tensor([[3.0], [4.0]])
    >>> print((w @ x).sum().to_dot(names={"w": w, "x": x}), end="")   # doctest: +ELLIPSIS
    digraph autograd {
    ...
      t0 [label="Sum\\n[]", ...];
      t1 [label="MatMul\\n[1, 1]", ...];
      t2 [label="w\\n[1, 2]", ...];
      t3 [label="x\\n[2, 1]", ...];
      t1 -> t0;
      t2 -> t1 [label="0"];
      t3 -> t1 [label="1"];
    }

Producing the text needs nothing but Python; drawing it needs Graphviz
(``dot -Tpng graph.dot -o graph.png``). The graph must still exist: backward frees it
(unless called with ``retain_graph=True``), so take the picture before backward.
"""
from __future__ import annotations

from typing import Iterable, Mapping

__all__ = ["to_dot"]

# Fill colours: the output, leaves that receive a gradient, constants, computed tensors.
_STYLES = {
    "output": 'shape=box, style="rounded,filled", fillcolor="#fde2b8"',
    "param": 'shape=box, style="filled", fillcolor="#cfe3f7"',
    "const": 'shape=box, style="dashed"',
    "op": 'shape=box, style="rounded,filled", fillcolor="#eeeeee"',
}


def _quote(text: str) -> str:
    """A DOT string literal; a line break becomes DOT's ``\\n``."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n") + '"'


def _shape(tensor) -> str:
    return "[" + ", ".join(str(n) for n in tensor.shape) + "]"


def _name_table(names) -> dict:
    """``id(tensor) -> name`` from a mapping name -> Tensor or (name, Tensor) pairs."""
    if names is None:
        return {}
    pairs = names.items() if isinstance(names, Mapping) else names
    return {id(t): str(n) for n, t in pairs}


def to_dot(tensor, names: Mapping | Iterable | None = None, *, rankdir: str = "BT",
           show_dtype: bool = False) -> str:
    """The graph that computed `tensor`, as Graphviz DOT source text.

    - names: labels for leaves, as a mapping ``name -> Tensor`` or ``(name, Tensor)``
      pairs, e.g. ``dict(model.named_parameters())``. Unnamed leaves that require grad
      are called ``leaf``; leaves that do not (inputs, constants) ``const``, drawn dashed.
    - rankdir: Graphviz's layout direction; "BT" (the default) puts the inputs at the
      bottom and `tensor` at the top, "LR" left to right.
    - show_dtype: add the dtype under each shape.

    The walk is iterative (a chain of 10,000 operations is fine) and visits each tensor
    once; nodes are numbered ``t0`` (`tensor` itself), ``t1``, ... in the order the walk
    meets them. Raises RuntimeError for a graph already freed by backward.
    """
    if rankdir not in ("BT", "TB", "LR", "RL"):
        raise ValueError(f"to_dot: rankdir must be BT, TB, LR or RL, got {rankdir!r}")
    labels = _name_table(names)
    ids: dict = {}             # id(tensor) -> node name (the graph keeps every tensor alive)
    nodes, edges = [], []

    def node_of(t) -> tuple:
        """(node name, first visit?) for tensor t."""
        key = id(t)
        if key in ids:
            return ids[key], False
        ids[key] = f"t{len(ids)}"
        return ids[key], True

    node_of(tensor)
    stack = [tensor]
    while stack:
        t = stack.pop()
        name = ids[id(t)]
        ctx = t._ctx
        if ctx is not None and ctx.freed:
            raise RuntimeError(
                f"to_dot: the graph was freed by backward (at {type(ctx).__name__}); draw it "
                "before calling backward, or call backward(retain_graph=True)")
        if ctx is None:
            default = "leaf" if t.requires_grad else "const"
            title = labels.get(id(t), default)
            kind = "param" if t.requires_grad else "const"
        else:
            title = type(ctx).__name__
            kind = "op"
        if t is tensor:
            kind = "output"
        label = f"{title}\n{_shape(t)}" + (f"\n{t.dtype}" if show_dtype else "")
        nodes.append(f"  {name} [label={_quote(label)}, {_STYLES[kind]}];")
        if ctx is None:
            continue
        inputs = [p for p in ctx.parents if p is not None]
        new = []
        for position, parent in enumerate(ctx.parents):
            if parent is None:
                continue
            pname, first = node_of(parent)
            mark = f' [label="{position}"]' if len(inputs) > 1 else ""
            edges.append(f"  {pname} -> {name}{mark};")
            if first:
                new.append(parent)
        stack.extend(reversed(new))        # visit the inputs in argument order
    nodes.sort(key=lambda line: int(line.split()[0][1:]))
    header = ["digraph autograd {", f"  rankdir={rankdir};",
              '  node [fontname="Helvetica", fontsize=10];',
              '  edge [fontname="Helvetica", fontsize=8, color="#555555"];']
    return "\n".join(header + nodes + edges + ["}"]) + "\n"
