"""`to_dot`: the autograd graph as Graphviz DOT text (numpyllm/autograd/dot.py)."""
import doctest
import re
import shutil
import subprocess

import numpy as np
import pytest

import numpyllm as nl
from numpyllm.autograd import dot as dot_module
from numpyllm.autograd import to_dot
from numpyllm.nn import GPT, GPTConfig

NODE = re.compile(r'^  (t\d+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r'^  (t\d+) -> (t\d+)(?: \[label="(\d+)"\])?;$')


def parse(text: str):
    """(nodes {name: label}, edges [(src, dst, position or None)]) of to_dot's output,
    failing on any line that is neither a header line, a node nor an edge."""
    lines = text.splitlines()
    assert lines[0] == "digraph autograd {" and lines[-1] == "}" and text.endswith("}\n")
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := NODE.match(line):
            assert m[1] not in nodes, f"node {m[1]} declared twice"
            nodes[m[1]] = m[2].replace("\\n", "\n")
        elif m := EDGE.match(line):
            edges.append((m[1], m[2], None if m[3] is None else int(m[3])))
        else:
            assert re.match(r"^  (rankdir=\w+|node \[.*\]|edge \[.*\]);$", line), line
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes, f"edge {src} -> {dst} names an undeclared node"
    return nodes, edges


def walk(tensor):
    """Every tensor of the graph and every (input, output) pair, by a plain recursive walk
    (independent of to_dot's)."""
    tensors, pairs = {id(tensor): tensor}, []

    def visit(t):
        if t._ctx is None:
            return
        for p in t._ctx.parents:
            if p is None:
                continue
            pairs.append((id(p), id(t)))
            if id(p) not in tensors:
                tensors[id(p)] = p
                visit(p)
    visit(tensor)
    return tensors, pairs


def tiny_gpt_loss():
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model = GPT(cfg, rng=np.random.default_rng(0))
    idx = np.array([[1, 2, 3, 4]])
    _, loss = model(idx, targets=np.array([[2, 3, 4, 5]]))
    return model, loss


def test_small_graph_exactly():
    w = nl.Tensor(np.ones((4, 3)), requires_grad=True)
    x = nl.Tensor(np.ones((2, 4)))
    b = nl.Tensor(np.zeros(3), requires_grad=True)
    y = ((x @ w + b).tanh()).sum()
    nodes, edges = parse(y.to_dot(names={"w": w, "b": b}))
    assert sorted(nodes.values()) == sorted([
        "Sum\n[]", "Tanh\n[2, 3]", "Add\n[2, 3]", "MatMul\n[2, 3]", "w\n[4, 3]",
        "const\n[2, 4]", "b\n[3]"])
    by_label = {label.split("\n")[0]: name for name, label in nodes.items()}
    assert set(edges) == {
        (by_label["Tanh"], by_label["Sum"], None), (by_label["Add"], by_label["Tanh"], None),
        (by_label["MatMul"], by_label["Add"], 0), (by_label["b"], by_label["Add"], 1),
        (by_label["const"], by_label["MatMul"], 0), (by_label["w"], by_label["MatMul"], 1)}
    assert nodes["t0"] == "Sum\n[]"            # the output is t0


def test_every_node_and_edge_of_a_gpt_is_drawn():
    model, loss = tiny_gpt_loss()
    params = dict(model.named_parameters())
    text = to_dot(loss, names=params)
    nodes, edges = parse(text)
    tensors, pairs = walk(loss)
    assert len(nodes) == len(tensors)
    assert len(edges) == len(pairs)
    labels = list(nodes.values())
    # every parameter appears once, by name, with its shape
    for name, p in params.items():
        shape = "[" + ", ".join(map(str, p.shape)) + "]"
        assert labels.count(f"{name}\n{shape}") == 1, name
    ops = {label.split("\n")[0] for label in labels}
    assert {"CrossEntropy", "LayerNorm", "Linear", "Embedding"} <= ops
    assert nodes["t0"] == "CrossEntropy\n[]"


def test_a_tensor_used_twice_has_one_node_and_two_edges():
    x = nl.Tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse((x * x).to_dot())
    assert sorted(nodes.values()) == ["Mul\n[2]", "leaf\n[2]"]
    assert sorted(edges) == [("t1", "t0", 0), ("t1", "t0", 1)]


def test_a_leaf_alone_and_dtype():
    x = nl.Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    nodes, edges = parse(x.to_dot(show_dtype=True))
    assert nodes == {"t0": "leaf\n[2, 3]\nfloat32"} and edges == []


def test_long_chain_is_iterative():
    x = nl.Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    nodes, edges = parse(y.to_dot())
    assert len(nodes) == 10_001 and len(edges) == 10_000


def test_freed_graph_is_an_error_and_retain_graph_keeps_it():
    x = nl.Tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    assert "Exp" in y.to_dot()
    y.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        y.to_dot()


def test_names_are_quoted_and_options_checked():
    x = nl.Tensor([1.0], requires_grad=True)
    nodes, _ = parse((x + 1).to_dot(names=[('say "hi"\\', x)], rankdir="LR"))
    assert 'say "hi"\\\n[1]' in [label.replace('\\"', '"').replace("\\\\", "\\")
                                  for label in nodes.values()]
    with pytest.raises(ValueError, match="rankdir"):
        to_dot(x, rankdir="up")


def test_function_and_method_agree_and_doctest():
    _, loss = tiny_gpt_loss()
    assert to_dot(loss) == loss.to_dot()
    assert doctest.testmod(dot_module, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot program")
def test_graphviz_accepts_it():
    model, loss = tiny_gpt_loss()
    done = subprocess.run(["dot", "-Tsvg"], input=to_dot(loss, dict(model.named_parameters())),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout
