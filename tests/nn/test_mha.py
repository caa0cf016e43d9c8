"""MultiHeadAttention: gradients w.r.t. input and every parameter, equality with the
unfused composition, causality, padding, batch independence, cross-attention."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck, no_grad
from numpyllm.functional import causal_mask, padding_mask, scaled_dot_product_attention
from numpyllm.nn import ALiBi, MultiHeadAttention, RotaryEmbedding, alibi_bias, apply_rope

POSITIONS = [None, "rope", "alibi"]


def make(n_embd=4, n_head=2, seed=0, dtype=np.float64, **kwargs):
    """A float64 MHA whose weights are large enough for attention to be far from uniform."""
    m = MultiHeadAttention(n_embd, n_head, rng=np.random.default_rng(seed), dtype=dtype, **kwargs)
    rng = np.random.default_rng(seed + 1)
    for p in m.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.7
    return m


def inputs(rng, B, T, C):
    return Tensor(rng.standard_normal((B, T, C)), requires_grad=True)


@st.composite
def configs(draw):
    B, T = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    n_head, hs = draw(st.integers(1, 2)), 2
    return B, T, n_head, n_head * hs, draw(st.integers(0, 2**16))


def reference(m, x, context=None, mask=None):
    """MHA from separate steps: the projections, heads by reshape/transpose/indexing,
    RoPE and sdpa as separate nodes, heads merged by transpose/reshape."""
    B, Tq, C = x.shape
    nh, hs = m.n_head, m.head_size
    split = lambda t, T: t.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)   # [B, T, C] -> [B, nh, T, hs]
    if m.cross:
        Tk = context.shape[1]
        q = split(m.q_proj(x), Tq)
        kv = m.kv_proj(context)
        k, v = split(kv[:, :, :C], Tk), split(kv[:, :, C:], Tk)
    else:
        Tk = Tq
        qkv = m.c_attn(x)
        q, k, v = (split(qkv[:, :, i * C:(i + 1) * C], Tq) for i in range(3))
    bias = None
    if m.rope is not None:
        q, k = m.rope(q), m.rope(k)
    if m.alibi is not None:
        bias = alibi_bias(nh, Tq, Tk, x.dtype)
    y = scaled_dot_product_attention(q, k, v, mask=mask, causal=m.causal, bias=bias)
    return m.c_proj(y.transpose(0, 2, 1, 3).reshape(B, Tq, C))


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("causal", [True, False])
@given(config=configs())
def test_self_attention_gradcheck_input_and_parameters(positions, causal, config):
    B, T, nh, C, seed = config
    m = make(C, nh, seed, causal=causal, positions=positions)
    x = inputs(np.random.default_rng(seed), B, T, C)
    kpm = np.random.default_rng(seed).random((B, T)) < 0.7
    assert gradcheck(lambda x, *params: m(x, key_padding_mask=kpm), x, *m.parameters())


@given(config=configs(), Tk=st.integers(1, 3))
def test_cross_attention_gradcheck_input_context_and_parameters(config, Tk):
    B, Tq, nh, C, seed = config
    m = make(C, nh, seed, cross=True)
    rng = np.random.default_rng(seed)
    x, ctx = inputs(rng, B, Tq, C), inputs(rng, B, Tk, C)
    kpm = padding_mask(rng.integers(1, Tk + 1, size=B), Tk)[:, 0, 0]
    assert gradcheck(lambda x, c, *params: m(x, c, key_padding_mask=kpm), x, ctx, *m.parameters())
    # the context alone (an encoder output computed elsewhere), and the queries alone
    assert gradcheck(lambda c: m(x.data, c), ctx)
    assert gradcheck(lambda x: m(x, ctx.data), x)


@pytest.mark.parametrize("positions", POSITIONS)
def test_gradcheck_with_dropout_in_training_mode(positions):
    m = make(4, 2, 3, causal=True, positions=positions, dropout=0.3)
    x = inputs(np.random.default_rng(3), 2, 3, 4)

    def fn(x, *params):
        m.rng = m.resid_dropout.rng = np.random.default_rng(11)   # the same masks every call
        return m(x)
    assert gradcheck(fn, x, *m.parameters())


def assert_same_values_and_grads(fused, composed, args, params, seed=0):
    """fused(*args) and composed(*args) agree in value and in the gradient of every arg
    and parameter, under one random cotangent."""
    results = []
    for fn in (fused, composed):
        for t in (*args, *params):
            t.grad = None
        out = fn(*args)
        out.backward(np.random.default_rng(seed).standard_normal(out.shape))
        results.append((out.data.copy(), [t.grad.copy() for t in (*args, *params)]))
    (value_f, grads_f), (value_c, grads_c) = results
    np.testing.assert_allclose(value_f, value_c, rtol=1e-10, atol=1e-12)
    for i, (a, b) in enumerate(zip(grads_f, grads_c)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"leaf {i}")


@pytest.mark.parametrize("kind, positions", [("self", None), ("self", "rope"), ("self", "alibi"),
                                              ("cross", None)])
def test_equals_the_unfused_composition(kind, positions):
    rng = np.random.default_rng(4)
    m = make(6, 3, 4, causal=kind == "self", cross=kind == "cross", positions=positions)
    x = inputs(rng, 2, 4, 6)
    ctx = [inputs(rng, 2, 5, 6)] if kind == "cross" else []
    mask = rng.random((2, 1, 4, 5 if ctx else 4)) < 0.8
    assert_same_values_and_grads(lambda x, *c: m(x, *c, mask=mask),
                                 lambda x, *c: reference(m, x, *c, mask=mask),
                                 [x, *ctx], list(m.parameters()))


# ----------------------------------------------------------------------------- semantics
@pytest.mark.parametrize("positions", POSITIONS)
@given(config=configs(), data=st.data())
def test_causality_later_tokens_do_not_change_earlier_outputs(positions, config, data):
    B, T, nh, C, seed = config
    m = make(C, nh, seed, causal=True, positions=positions)
    t = data.draw(st.integers(0, T - 1), label="t")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, C))
    x2 = x.copy()
    x2[:, t + 1:] = rng.standard_normal(x2[:, t + 1:].shape)
    with no_grad():
        np.testing.assert_allclose(m(x2).data[:, :t + 1], m(x).data[:, :t + 1], rtol=0, atol=1e-13)


@pytest.mark.parametrize("positions", POSITIONS)
@given(config=configs())
def test_padded_tokens_do_not_change_the_other_outputs(positions, config):
    B, T, nh, C, seed = config
    m = make(C, nh, seed, positions=positions)                  # a bidirectional encoder layer
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    valid = padding_mask(lengths, T)[:, 0, 0]                   # [B, T]
    x = rng.standard_normal((B, T, C))
    x2 = np.where(valid[..., None], x, 100 * rng.standard_normal(x.shape))
    with no_grad():
        out, out2 = m(x, key_padding_mask=valid).data, m(x2, key_padding_mask=valid).data
    np.testing.assert_allclose(out2[valid], out[valid], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["causal", "cross"])
@given(config=configs())
def test_each_sequence_is_computed_independently(kind, config):
    B, T, nh, C, seed = config
    m = make(C, nh, seed, causal=kind == "causal", cross=kind == "cross",
             positions="rope" if kind == "causal" else None)
    rng = np.random.default_rng(seed)
    x, ctx = rng.standard_normal((B, T, C)), rng.standard_normal((B, T + 1, C))
    args = (lambda b: (x[b:b + 1], ctx[b:b + 1])) if kind == "cross" else (lambda b: (x[b:b + 1],))
    with no_grad():
        whole = m(*((x, ctx) if kind == "cross" else (x,))).data
        for b in range(B):
            np.testing.assert_allclose(m(*args(b)).data[0], whole[b], rtol=1e-12, atol=1e-14)


def test_cross_attention_queries_come_from_x_and_keys_values_from_context():
    rng = np.random.default_rng(5)
    m = make(4, 2, 5, cross=True)
    x, ctx = rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 5, 4))
    with no_grad():
        out = m(x, ctx).data
        assert out.shape == (1, 3, 4)                          # one output per query (x)
        # each output depends on its own query token and on the whole context only
        x2 = x.copy()
        x2[:, 1:] += 1.0
        np.testing.assert_allclose(m(x2, ctx).data[:, 0], out[:, 0], rtol=1e-13)
        assert not np.allclose(m(x, ctx + 1.0).data[:, 0], out[:, 0])
        # permuting the context (keys with their values) changes nothing
        np.testing.assert_allclose(m(x, ctx[:, ::-1]).data, out, rtol=1e-12)
    _, w = m(x, ctx, return_weights=True)
    assert w.shape == (1, 2, 3, 5)


def test_return_weights():
    m = make(4, 2, 6, causal=True)
    out, w = m(np.random.default_rng(6).standard_normal((2, 3, 4)), return_weights=True)
    assert out.shape == (2, 3, 4) and w.shape == (2, 2, 3, 3) and not w.flags.writeable
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert (w[..., ~causal_mask(3)] == 0).all()


def test_dropout_only_in_training_mode():
    x = np.random.default_rng(7).standard_normal((2, 4, 4))
    m, plain = make(4, 2, 7, dropout=0.5), make(4, 2, 7)
    with no_grad():
        assert not np.allclose(m(x).data, plain(x).data)
        m.eval()
        np.testing.assert_array_equal(m(x).data, plain(x).data)


def test_float32_stays_float32():
    m = MultiHeadAttention(8, 2, causal=True, positions="rope", rng=np.random.default_rng(0))
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32),
               requires_grad=True)
    out = m(x)
    assert out.dtype == np.float32
    out.backward(np.ones(out.shape, np.float32))
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in m.parameters())
    m = MultiHeadAttention(8, 2, positions="alibi", rng=np.random.default_rng(0))
    assert m(x).dtype == np.float32


def test_parameter_names_and_shapes_follow_gpt2():
    shapes = {n: p.shape for n, p in MultiHeadAttention(8, 2).named_parameters()}
    assert shapes == {"c_attn.weight": (8, 24), "c_attn.bias": (24,),
                      "c_proj.weight": (8, 8), "c_proj.bias": (8,)}
    shapes = {n: p.shape for n, p in MultiHeadAttention(8, 2, cross=True, bias=False)
              .named_parameters()}
    assert shapes == {"q_proj.weight": (8, 8), "kv_proj.weight": (8, 16), "c_proj.weight": (8, 8)}
    std = MultiHeadAttention(64, 4, proj_std=0.001, rng=np.random.default_rng(0)).c_proj.weight.data.std()
    assert std == pytest.approx(0.001, rel=0.1)


def test_positions_helpers():
    m = MultiHeadAttention(8, 2, positions="rope")
    assert isinstance(m.rope, RotaryEmbedding) and m.rope.head_dim == 4 and m.alibi is None
    m = MultiHeadAttention(8, 2, positions="alibi")
    assert isinstance(m.alibi, ALiBi) and m.alibi.n_head == 2 and m.rope is None
    shared = RotaryEmbedding(4, base=500.0)
    assert MultiHeadAttention(8, 2, positions=shared).rope is shared
    # an ALiBi model runs on any length
    assert MultiHeadAttention(8, 2, positions="alibi", causal=True)(np.ones((1, 300, 8))).shape \
        == (1, 300, 8)


def test_rope_inside_attention_sees_only_relative_positions():
    # with RoPE and no mask, shifting every position by the same offset changes nothing:
    # rotate q and k at positions 5.. instead of 0.. and the scores are the same
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal((1, 2, 4, 6)) for _ in range(3))
    rope = RotaryEmbedding(6)
    at = lambda t, offset: rope(Tensor(t), offset=offset)
    np.testing.assert_allclose(scaled_dot_product_attention(at(q, 5), at(k, 5), v).data,
                               scaled_dot_product_attention(at(q, 0), at(k, 0), v).data,
                               rtol=1e-12)
    cos, sin = rope.cos_sin(4, dtype=np.float64)
    np.testing.assert_array_equal(apply_rope(q, cos, sin).data, at(q, 0).data)


@pytest.mark.parametrize("make_bad, words", [
    (lambda: MultiHeadAttention(10, 3), ["n_embd=10", "n_head=3"]),
    (lambda: MultiHeadAttention(0, 1), ["n_embd"]),
    (lambda: MultiHeadAttention(6, 2, positions="rope"), ["even", "3"]),
    (lambda: MultiHeadAttention(8, 2, positions="learned"), ["positions", "learned"]),
    (lambda: MultiHeadAttention(8, 2, cross=True, positions="rope"), ["self-attention"]),
    (lambda: MultiHeadAttention(8, 2, positions=RotaryEmbedding(8)), ["head_dim=8"]),
    (lambda: MultiHeadAttention(8, 2, positions=ALiBi(4)), ["n_head=4"]),
    (lambda: MultiHeadAttention(8, 2, dropout=1.5), ["dropout"]),
    (lambda: MultiHeadAttention(8, 2)(np.ones((2, 3, 4))), ["n_embd=8", "(2, 3, 4)"]),
    (lambda: MultiHeadAttention(8, 2)(np.ones((3, 8))), ["[B, T, n_embd=8]"]),
    (lambda: MultiHeadAttention(8, 2)(np.ones((1, 3, 8)), np.ones((1, 3, 8))), ["cross=True"]),
    (lambda: MultiHeadAttention(8, 2, cross=True)(np.ones((1, 3, 8))), ["context"]),
    (lambda: MultiHeadAttention(8, 2, cross=True)(np.ones((1, 3, 8)), np.ones((2, 3, 8))),
     ["batch 1", "2"]),
    (lambda: MultiHeadAttention(8, 2)(np.ones((1, 3, 8)), key_padding_mask=np.ones((1, 4), bool)),
     ["key_padding_mask", "(1, 4)"]),
    (lambda: MultiHeadAttention(8, 2)(np.ones((1, 3, 8)), mask=np.ones((4, 4), bool)),
     ["mask of shape (4, 4)"]),
])
def test_errors_name_the_problem(make_bad, words):
    with pytest.raises(ValueError) as info:
        make_bad()
    assert all(w in str(info.value) for w in words), str(info.value)
