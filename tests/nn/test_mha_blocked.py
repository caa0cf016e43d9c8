"""MultiHeadAttention(block_size=n) and GPTConfig(attn_block_size=n): the memory-efficient
path gives the standard path's outputs and gradients (float64), for every variant."""
import numpy as np
import pytest

from numpyllm.autograd import Tensor, gradcheck
from numpyllm.nn import MultiHeadAttention
from numpyllm.nn.gpt import GPT, POSITIONS, GPTConfig


def pair(**kw):
    """The same weights twice: standard and blocked."""
    a = MultiHeadAttention(8, 2, rng=np.random.default_rng(0), dtype=np.float64, **kw)
    b = MultiHeadAttention(8, 2, rng=np.random.default_rng(0), dtype=np.float64, block_size=3, **kw)
    return a, b


def run(mha, x, context=None, **kw):
    xt = Tensor(x, requires_grad=True)
    ct = None if context is None else Tensor(context, requires_grad=True)
    y = mha(xt, context=ct, **kw)
    y.backward(np.cos(np.arange(y.size)).reshape(y.shape))
    grads = [xt.grad] + ([] if ct is None else [ct.grad]) + [p.grad for p in mha.parameters()]
    return y.data, grads


@pytest.mark.parametrize("kw", [dict(causal=True), dict(causal=False), dict(causal=True, positions="rope"),
                                dict(causal=True, positions="alibi")])
def test_self_attention_blocked_equals_standard(kw):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 8))
    pad = np.array([[True] * 7, [True] * 5 + [False] * 2])
    a, b = pair(**kw)
    ya, ga = run(a, x, key_padding_mask=pad)
    yb, gb = run(b, x, key_padding_mask=pad)
    np.testing.assert_allclose(yb, ya, rtol=1e-12, atol=1e-12)
    for u, w in zip(ga, gb):
        np.testing.assert_allclose(w, u, rtol=1e-10, atol=1e-12)


def test_cross_attention_blocked_equals_standard():
    rng = np.random.default_rng(2)
    x, ctx = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, 8))
    a, b = pair(cross=True)
    ya, ga = run(a, x, ctx, key_padding_mask=np.array([[True] * 6, [True] * 3 + [False] * 3]))
    yb, gb = run(b, x, ctx, key_padding_mask=np.array([[True] * 6, [True] * 3 + [False] * 3]))
    np.testing.assert_allclose(yb, ya, rtol=1e-12, atol=1e-12)
    for u, w in zip(ga, gb):
        np.testing.assert_allclose(w, u, rtol=1e-10, atol=1e-12)


def test_blocked_gradcheck():
    _, b = pair(causal=True, positions="rope")
    x = Tensor(np.random.default_rng(3).standard_normal((1, 5, 8)), requires_grad=True)
    assert gradcheck(lambda t, *_: b(t), x, *b.parameters())


@pytest.mark.parametrize("positions", POSITIONS)
def test_gpt_blocked_equals_standard(positions):
    results = []
    for block in (None, 4):
        cfg = GPTConfig(vocab_size=11, block_size=10, n_layer=2, n_head=2, n_embd=8,
                        dtype="float64", positions=positions, attn_block_size=block)
        model = GPT(cfg, rng=np.random.default_rng(0))
        x = np.random.default_rng(1).integers(0, 11, size=(2, 10))
        _, loss = model(x, targets=np.roll(x, -1, axis=1))
        loss.backward()
        results.append([loss.data] + [p.grad for p in model.parameters()])
    for u, w in zip(*results):
        np.testing.assert_allclose(w, u, rtol=1e-10, atol=1e-12)


def test_bad_block_size():
    with pytest.raises(ValueError, match="attn_block_size"):
        GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4, attn_block_size=0)
    with pytest.raises(ValueError, match="block_size"):
        MultiHeadAttention(8, 2, block_size=-1)
