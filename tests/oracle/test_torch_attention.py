"""Oracle: attention against PyTorch, values and gradients.

scaled_dot_product_attention against ``torch.nn.functional.scaled_dot_product_attention``
with each kind of mask, MultiHeadAttention against ``torch.nn.MultiheadAttention`` with
the same weights, and RoPE / ALiBi attention against a hand-written torch equivalent.
float64 to 1e-10, float32 to about 1e-5.

Conventions that differ: torch's boolean ``attn_mask`` of F.sdpa means "may attend"
like ours, but nn.MultiheadAttention's ``attn_mask`` and ``key_padding_mask`` mean
"must not attend" (so they get ``~mask``); torch's ``is_causal`` is top-left aligned, so
for Tq != Tk the bottom-right mask is passed explicitly.
"""
import numpy as np
import pytest

from numpyllm import Tensor
from numpyllm.functional import (causal_mask, padding_mask, prefix_lm_mask,
                                 scaled_dot_product_attention, sliding_window_mask)
from numpyllm.nn import MultiHeadAttention

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-5, atol=1e-5)}
B, NH, T, HS = 2, 3, 5, 4


def mask_for(kind, Tq, Tk):
    """(our keyword arguments, torch keyword arguments) for one kind of mask."""
    if kind == "none":
        return {}, {}
    if kind == "causal":
        if Tq == Tk:
            return {"causal": True}, {"is_causal": True}
        return {"causal": True}, {"attn_mask": torch.tensor(causal_mask(Tq, Tk))}
    mask = {
        "padding": lambda: padding_mask([Tk, 2], Tk),
        "padding, one empty": lambda: padding_mask([0, Tk], Tk),
        "prefix_lm": lambda: prefix_lm_mask(Tq, np.array([2, 0])),
        "sliding_window": lambda: sliding_window_mask(Tq, 2, Tk),
        "random": lambda: np.random.default_rng(0).random((B, 1, Tq, Tk)) < 0.6,
    }[kind]()
    return {"mask": mask}, {"attn_mask": torch.tensor(mask)}


def leaves(rng, shapes, dtype):
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def assert_same(ours_out, theirs_out, ours_leaves, theirs_leaves, dtype, transpose=()):
    """Same value and, under one random cotangent, the same gradient of every leaf
    (leaves listed in `transpose` are torch's [out, in] weights of our [in, out] ones)."""
    g = np.random.default_rng(1).standard_normal(ours_out.shape).astype(dtype)
    ours_out.backward(g)
    theirs_out.backward(torch.tensor(g))
    np.testing.assert_allclose(ours_out.data, theirs_out.detach().numpy(), **TOL[dtype])
    for i, (a, b) in enumerate(zip(ours_leaves, theirs_leaves)):
        tg = b.grad.numpy().T if i in transpose else b.grad.numpy()
        np.testing.assert_allclose(a.grad, tg, **TOL[dtype], err_msg=f"leaf {i}")


# ----------------------------------------------------------------------------- sdpa
KINDS = ["none", "causal", "padding", "padding, one empty", "prefix_lm", "sliding_window", "random"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, Tq", [(kind, T) for kind in KINDS]
                         + [(kind, 3) for kind in KINDS if kind != "prefix_lm"])   # Tq < Tk
def test_sdpa_matches_torch(kind, Tq, dtype):
    ours_kw, theirs_kw = mask_for(kind, Tq, T)
    rng = np.random.default_rng(2)
    ours, theirs = leaves(rng, [(B, NH, Tq, HS), (B, NH, T, HS), (B, NH, T, HS + 1)], dtype)
    assert_same(scaled_dot_product_attention(*ours, **ours_kw),
                F.scaled_dot_product_attention(*theirs, **theirs_kw), ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sdpa_with_a_float_bias_matches_torchs_additive_mask(dtype):
    rng = np.random.default_rng(3)
    ours, theirs = leaves(rng, [(B, NH, T, HS)] * 3 + [(NH, T, T)], dtype)
    mask = padding_mask([T, 3], T)
    out = scaled_dot_product_attention(*ours[:3], bias=ours[3], mask=mask, scale=0.3)
    # torch takes one additive mask: the bias, with -inf where our boolean mask forbids
    additive = theirs[3].masked_fill(~torch.tensor(mask), float("-inf"))
    assert_same(out, F.scaled_dot_product_attention(*theirs[:3], attn_mask=additive, scale=0.3),
                ours, theirs, dtype)


# ----------------------------------------------------------------------------- MHA
def torch_mha(ours: MultiHeadAttention):
    """torch.nn.MultiheadAttention with the weights of `ours` (transposed: torch stores
    [out, in]); returns it and the list of its weights in the order of ours."""
    C = ours.n_embd
    dtype = torch.float64 if ours.c_proj.weight.dtype == np.float64 else torch.float32
    mha = torch.nn.MultiheadAttention(C, ours.n_head, batch_first=True, dtype=dtype)
    in_w = ours.c_attn.weight.data if not ours.cross else np.concatenate(
        [ours.q_proj.weight.data, ours.kv_proj.weight.data], axis=1)
    in_b = ours.c_attn.bias.data if not ours.cross else np.concatenate(
        [ours.q_proj.bias.data, ours.kv_proj.bias.data])
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.tensor(in_w.T))
        mha.in_proj_bias.copy_(torch.tensor(in_b))
        mha.out_proj.weight.copy_(torch.tensor(ours.c_proj.weight.data.T))
        mha.out_proj.bias.copy_(torch.tensor(ours.c_proj.bias.data))
    return mha


def with_weights(dtype, seed=4, **kwargs):
    """Our layer, [in, out] weights of std 0.3 (attention far from uniform)."""
    rng = np.random.default_rng(seed)
    m = MultiHeadAttention(12, 3, rng=rng, dtype=dtype, **kwargs)
    for p in m.parameters():
        p.data[...] = 0.3 * rng.standard_normal(p.shape)
    return m


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_self_attention_matches_torch_multihead_attention(dtype):
    m = with_weights(dtype, causal=True)
    mha = torch_mha(m)
    (x,), (tx,) = leaves(np.random.default_rng(5), [(B, T, 12)], dtype)
    valid = padding_mask([T, 3], T)[:, 0, 0]
    out, w = m(x, key_padding_mask=valid, return_weights=True)
    tout, tw = mha(tx, tx, tx, attn_mask=torch.tensor(~causal_mask(T)),
                   key_padding_mask=torch.tensor(~valid), average_attn_weights=False)
    np.testing.assert_allclose(w, tw.detach().numpy(), **TOL[dtype])
    assert_same(out, tout, [x, m.c_attn.weight, m.c_attn.bias, m.c_proj.weight, m.c_proj.bias],
                [tx, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias],
                dtype, transpose=(1, 3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_attention_matches_torch_multihead_attention(dtype):
    m = with_weights(dtype, cross=True)
    mha = torch_mha(m)
    (x, ctx), (tx, tctx) = leaves(np.random.default_rng(6), [(B, 3, 12), (B, T, 12)], dtype)
    valid = padding_mask([T, 2], T)[:, 0, 0]
    out = m(x, ctx, key_padding_mask=valid)
    tout, _ = mha(tx, tctx, tctx, key_padding_mask=torch.tensor(~valid), need_weights=False)
    # torch's in_proj_weight stacks q, k, v rows: its gradient is q_proj's and kv_proj's
    assert_same(out, tout, [x, ctx, m.c_proj.weight], [tx, tctx, mha.out_proj.weight], dtype,
                transpose=(2,))
    in_grad = mha.in_proj_weight.grad.numpy().T
    np.testing.assert_allclose(m.q_proj.weight.grad, in_grad[:, :12], **TOL[dtype])
    np.testing.assert_allclose(m.kv_proj.weight.grad, in_grad[:, 12:], **TOL[dtype])


def torch_rope(x, base=10000.0, offset=0):
    """RoPE on interleaved pairs, written independently in torch: x [..., T, hs]."""
    T, hs = x.shape[-2:]
    theta = base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angle = torch.arange(offset, offset + T, dtype=torch.float64)[:, None] * theta
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def torch_self_attention(m, x, positions):
    """A hand-written torch equivalent of our causal self-attention layer."""
    Bx, Tx, C = x.shape
    nh, hs = m.n_head, m.head_size
    w = {n: torch.tensor(p.data, requires_grad=True) for n, p in m.named_parameters()}
    qkv = x @ w["c_attn.weight"] + w["c_attn.bias"]
    q, k, v = (t.reshape(Bx, Tx, nh, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))
    attn_mask = torch.tensor(causal_mask(Tx))
    if positions == "rope":
        q, k = torch_rope(q), torch_rope(k)
    else:   # ALiBi: -slope * distance. The paper's slopes for 3 heads (not a power of 2):
        # those of 2 heads (2^-4, 2^-8), then every other slope of 4 heads (2^-2, ...)
        assert nh == 3
        slopes = torch.tensor([2.0 ** -4, 2.0 ** -8, 2.0 ** -2], dtype=x.dtype)
        pos = torch.arange(Tx)
        distance = (pos[:, None] - pos[None, :]).abs().to(x.dtype)
        attn_mask = (-slopes[:, None, None] * distance).masked_fill(~attn_mask, float("-inf"))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    y = y.transpose(1, 2).reshape(Bx, Tx, C)
    return y @ w["c_proj.weight"] + w["c_proj.bias"], list(w.values())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_rope_and_alibi_attention_match_a_torch_equivalent(positions, dtype):
    m = with_weights(dtype, causal=True, positions=positions)   # head size 4, 3 heads
    (x,), (tx,) = leaves(np.random.default_rng(7), [(B, T, 12)], dtype)
    tout, tparams = torch_self_attention(m, tx, positions)
    assert_same(m(x), tout, [x, *m.parameters()], [tx, *tparams], dtype)
