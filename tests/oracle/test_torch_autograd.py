"""Random compositions of ops, run in numpyllm and in PyTorch: same values, same gradients.

Hypothesis writes a small program: a pool of float64 leaves with shapes that broadcast
together, then a sequence of ops, each taking operands from the pool and adding its
result to it. The loss is a weighted sum of the last result. Both engines run the
program; values and the gradient of every leaf must agree to 1e-10.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyllm as nl

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (4,), (1, 4), (3, 1)]   # all broadcast to (3, 4)

# name -> (arity, numpyllm fn, torch fn); every result broadcasts to (3, 4)
OPS = {
    "add": (2, lambda a, b: a + b, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b, lambda a, b: a * b),
    "div": (2, lambda a, b: a / (b * b + 1), lambda a, b: a / (b * b + 1)),
    "pow": (1, lambda a: (a * a + 1) ** 1.5, lambda a: (a * a + 1) ** 1.5),
    "tanh": (1, lambda a: a.tanh(), torch.tanh),
    "sigmoid": (1, lambda a: a.sigmoid(), torch.sigmoid),
    "exp_tanh": (1, lambda a: a.tanh().exp(), lambda a: torch.exp(torch.tanh(a))),
    "log": (1, lambda a: (a * a + 1).log(), lambda a: torch.log(a * a + 1)),
    "sqrt": (1, lambda a: (a * a + 1).sqrt(), lambda a: torch.sqrt(a * a + 1)),
    "relu": (1, lambda a: a.relu(), torch.relu),
    "abs": (1, lambda a: a.abs(), torch.abs),
    "neg": (1, lambda a: -a, lambda a: -a),
    "rowsum": (1, lambda a: a.sum(axis=-1, keepdims=True), lambda a: a.sum(-1, keepdim=True)),
    "colmean": (1, lambda a: a.mean(axis=0, keepdims=True), lambda a: a.mean(0, keepdim=True)),
    "rowmax": (1, lambda a: a.max(axis=-1, keepdims=True), lambda a: a.amax(-1, keepdim=True)),
    "rowvar": (1, lambda a: a.var(axis=-1, keepdims=True),
               lambda a: a.var(-1, keepdim=True, unbiased=False)),
    "maximum": (2, lambda a, b: a.maximum(b), torch.maximum),
    "minimum": (2, lambda a, b: a.minimum(b), torch.minimum),
    "where": (2, lambda a, b: nl.where(a.data > 0, a, b), lambda a, b: torch.where(a > 0, a, b)),
    "matmul": (1, None, None),   # x @ W with the shared square weight; see below
    "clip": (1, lambda a: a.clip(-0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5)),
}


@st.composite
def programs(draw):
    n_leaves = draw(st.integers(2, 4))
    shapes = [draw(st.sampled_from(SHAPES)) for _ in range(n_leaves)]
    steps = []
    for i in range(draw(st.integers(1, 8))):
        name = draw(st.sampled_from(sorted(OPS)))
        arity = OPS[name][0]
        pool = n_leaves + i
        steps.append((name, [draw(st.integers(0, pool - 1)) for _ in range(arity)]))
    return shapes, steps, draw(st.integers(0, 2**16))


def run(shapes, steps, seed, lib):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes] + [rng.standard_normal((4, 4)) * 0.5]
    if lib == "nl":
        leaves = [nl.Tensor(a, requires_grad=True) for a in arrays]
    else:
        leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    weight = leaves.pop()                      # the matmul weight [4, 4]
    pool = list(leaves)
    for name, operands in steps:
        args = [pool[i] for i in operands]
        if name == "matmul":
            x = args[0].broadcast_to((3, 4)) if lib == "nl" else args[0].expand(3, 4)
            y = x @ weight                      # [3, 4] @ [4, 4]
        else:
            fn = OPS[name][1] if lib == "nl" else OPS[name][2]
            y = fn(*args)
        pool.append(y)
    out = pool[-1]
    w = np.linspace(-1, 1, int(np.prod(out.shape))).reshape(tuple(out.shape))
    loss = (out * (nl.Tensor(w) if lib == "nl" else torch.tensor(w))).sum()
    loss.backward()
    grads = [(t.grad if lib == "nl" else (t.grad.numpy() if t.grad is not None else None))
             for t in leaves + [weight]]
    value = loss.data if lib == "nl" else loss.detach().numpy()
    return value, grads


@given(programs())
def test_random_programs_match_torch(program):
    shapes, steps, seed = program
    value_nl, grads_nl = run(shapes, steps, seed, "nl")
    value_t, grads_t = run(shapes, steps, seed, "torch")
    np.testing.assert_allclose(value_nl, value_t, rtol=1e-10, atol=1e-12)
    for g_nl, g_t in zip(grads_nl, grads_t):
        if g_t is None:
            assert g_nl is None or not np.any(g_nl)
        else:
            np.testing.assert_allclose(g_nl, g_t, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)),
                                    ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4,))])
def test_matmul_matches_torch(shapes):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s) for s in shapes)
    x, y = nl.Tensor(a, requires_grad=True), nl.Tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (x @ y).sum().backward()
    (tx @ ty).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-12)


def test_indexing_matches_torch():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 3))
    idx = np.array([0, 4, 4, 1, 0, 0])
    x, t = nl.Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (x[idx] * 2 + x[1:4, ::2].sum()).sum().backward()
    (t[torch.tensor(idx)] * 2 + t[1:4, ::2].sum()).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)
