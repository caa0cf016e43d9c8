"""The encoder-decoder and the encoder-only model against PyTorch's own layers
(`nn.TransformerEncoderLayer`, `nn.TransformerDecoderLayer`) holding the same weights:
logits, loss and the gradient of every parameter, float64 to 1e-10, float32 to ~1e-5.

Layouts: PyTorch stores Linear weights ``[out, in]`` (ours are ``[in, out]``) and fuses
the q, k, v input projections in ``in_proj_weight`` ``[3C, C]``; our cross-attention's
``q_proj`` and ``kv_proj`` are its first C rows and the last 2C. `nn.Transformer` always
ends each stack in a LayerNorm, which the post-LN model of the paper has not, so the
stacks are built from `nn.TransformerEncoder` / `nn.TransformerDecoder` with
``norm=None`` (post-LN) or a LayerNorm (pre-LN). Embedding scaling and the sinusoidal
table are written here from the paper's formulas, independently of the library.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from numpyllm.nn import (Transformer, TransformerConfig,  # noqa: E402
                                     TransformerEncoderConfig, TransformerEncoderModel)


def sinusoids(T, d):
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)
    angle = pos / 10000.0 ** (i / d)                       # pos / 10000^(2i/d)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe


# ------------------------------------------------------------------ weight mapping
def _linear(ours, theirs, rows=slice(None)):
    """(our Parameter, their tensor, rows of it) pairs for a Linear's weight and bias."""
    pairs = [(ours.weight, theirs[0], rows, True)]
    if ours.bias is not None:
        pairs.append((ours.bias, theirs[1], rows, False))
    return pairs


def _attention(ours, theirs, cross=False):
    C = ours.n_embd
    if cross:
        pairs = _linear(ours.q_proj, (theirs.in_proj_weight, theirs.in_proj_bias), slice(0, C))
        pairs += _linear(ours.kv_proj, (theirs.in_proj_weight, theirs.in_proj_bias),
                         slice(C, 3 * C))
    else:
        pairs = _linear(ours.c_attn, (theirs.in_proj_weight, theirs.in_proj_bias))
    return pairs + _linear(ours.c_proj, (theirs.out_proj.weight, theirs.out_proj.bias))


def _norm(ours, theirs):
    return [(ours.weight, theirs.weight, slice(None), False),
            (ours.bias, theirs.bias, slice(None), False)]


def _ffn(ours, theirs):
    return (_linear(ours.c_fc, (theirs.linear1.weight, theirs.linear1.bias))
            + _linear(ours.c_proj, (theirs.linear2.weight, theirs.linear2.bias)))


def _stack(ours, theirs, decoder):
    pairs = []
    for a, b in zip(ours.layers, theirs.layers):
        pairs += _attention(a.self_attn, b.self_attn) + _norm(a.ln_1, b.norm1)
        if decoder:
            pairs += _attention(a.cross_attn, b.multihead_attn, cross=True) + _norm(a.ln_2, b.norm2)
            pairs += _ffn(a.mlp, b) + _norm(a.ln_3, b.norm3)
        else:
            pairs += _ffn(a.mlp, b) + _norm(a.ln_2, b.norm2)
    if ours.ln_f is not None:
        pairs += _norm(ours.ln_f, theirs.norm)
    return pairs


def _torch_stack(cfg, n_layers, decoder, dtype):
    kw = dict(d_model=cfg.d_model, nhead=cfg.n_head, dim_feedforward=cfg.d_ff, dropout=0.0,
              activation=cfg.activation, layer_norm_eps=cfg.layer_norm_eps, batch_first=True,
              norm_first=cfg.norm == "pre", dtype=dtype)
    final = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, dtype=dtype) \
        if cfg.norm == "pre" else None
    if decoder:
        return nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), n_layers, norm=final)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), n_layers, norm=final,
                                 enable_nested_tensor=False)


def _copy(pairs, dtype):
    with torch.no_grad():
        for ours, theirs, rows, transpose in pairs:
            w = torch.tensor(ours.data, dtype=dtype)
            theirs[rows] = w.T if transpose else w


def _compare_grads(pairs, tol):
    for ours, theirs, rows, transpose in pairs:
        g = theirs.grad[rows]
        g = (g.T if transpose else g).numpy()
        np.testing.assert_allclose(ours.grad, g, rtol=tol, atol=tol)


def _embed(weight, ids, d_model, dtype):
    x = weight[torch.as_tensor(ids)] * math.sqrt(d_model)
    return x + sinusoids(ids.shape[1], d_model).to(dtype)


TOL = {np.float64: 1e-10, np.float32: 2e-5}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


# ------------------------------------------------------------------ encoder-decoder
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm, share", [("post", False), ("pre", False), ("post", True),
                                         ("pre", True)])
def test_encoder_decoder_matches_torch(norm, share, dtype):
    cfg = TransformerConfig(src_vocab_size=11, tgt_vocab_size=11 if share else 13, d_model=16,
                            n_head=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=24,
                            dropout=0.0, norm=norm, share_embeddings=share, pad_id=0,
                            dtype=np.dtype(dtype).name)
    model = Transformer(cfg, rng=1)
    rng = np.random.default_rng(2)
    for p in model.parameters():                          # away from the small initial values
        p.data += (0.2 * rng.standard_normal(p.shape)).astype(dtype)
    B, S, T = 3, 6, 5
    lengths = np.array([6, 3, 1])
    src = rng.integers(1, 11, size=(B, S))
    src[np.arange(S)[None, :] >= lengths[:, None]] = 0     # right-padded with PAD
    tgt = rng.integers(1, cfg.tgt_vocab_size, size=(B, T))
    y = rng.integers(1, cfg.tgt_vocab_size, size=(B, T))
    y[1, 3:] = 0                                          # padded targets, ignored

    logits, loss = model(src, tgt, y)
    loss.backward()

    tdt = TORCH_DTYPE[dtype]
    encoder = _torch_stack(cfg, cfg.n_encoder_layers, False, tdt)
    decoder = _torch_stack(cfg, cfg.n_decoder_layers, True, tdt)
    src_embed = nn.Parameter(torch.tensor(model.encoder.embed.weight.data))
    pairs = [(model.encoder.embed.weight, src_embed, slice(None), False)]
    if share:
        tgt_embed, head = src_embed, src_embed            # head: logits = x Eᵀ
    else:
        tgt_embed = nn.Parameter(torch.tensor(model.decoder.embed.weight.data))
        head = nn.Parameter(torch.tensor(model.lm_head.weight.data.T.copy()))   # [V, C]
        pairs += [(model.decoder.embed.weight, tgt_embed, slice(None), False),
                  (model.lm_head.weight, head, slice(None), True)]
    pairs += _stack(model.encoder, encoder, False) + _stack(model.decoder, decoder, True)
    _copy(pairs, tdt)

    pad = torch.as_tensor(src == 0)                       # PyTorch: True = padding
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)   # True = masked
    memory = encoder(_embed(src_embed, src, cfg.d_model, tdt), src_key_padding_mask=pad)
    h = decoder(_embed(tgt_embed, tgt, cfg.d_model, tdt), memory, tgt_mask=causal,
                tgt_is_causal=True, memory_key_padding_mask=pad)
    t_logits = h @ head.T
    t_loss = nn.functional.cross_entropy(t_logits.reshape(-1, t_logits.shape[-1]),
                                         torch.as_tensor(y).reshape(-1), ignore_index=0)
    t_loss.backward()

    tol = TOL[dtype]
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=tol, atol=tol)
    assert abs(loss.item() - t_loss.item()) < tol
    _compare_grads(pairs, tol)


# ------------------------------------------------------------------ encoder-only
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_encoder_only_matches_torch(norm):
    cfg = TransformerEncoderConfig(vocab_size=10, d_model=12, n_head=3, n_layers=2, d_ff=20,
                                   dropout=0.0, norm=norm, activation="gelu", max_len=8,
                                   positions="learned", n_outputs=4, dtype="float64")
    model = TransformerEncoderModel(cfg, rng=3)
    rng = np.random.default_rng(4)
    for p in model.parameters():
        p.data += 0.2 * rng.standard_normal(p.shape)
    ids = rng.integers(0, 10, size=(2, 7))
    lengths = np.array([7, 4])
    y = rng.integers(0, 4, size=(2, 7))
    y[0, ::2] = -100
    logits, loss = model(ids, lengths, y)
    loss.backward()

    encoder = _torch_stack(cfg, cfg.n_layers, False, torch.float64)
    # GELU: PyTorch's "gelu" activation is the exact erf form; ours (MLP "gelu") is the tanh
    # approximation, as GPT-2. Give PyTorch's layers the tanh form.
    for layer in encoder.layers:
        layer.activation = nn.GELU(approximate="tanh")
    embed = nn.Parameter(torch.tensor(model.encoder.embed.weight.data))
    pos = nn.Parameter(torch.tensor(model.encoder.pos_embed.weight.data))
    head = nn.Linear(12, 4, dtype=torch.float64)
    pairs = [(model.encoder.embed.weight, embed, slice(None), False),
             (model.encoder.pos_embed.weight, pos, slice(None), False)]
    pairs += _stack(model.encoder, encoder, False)
    pairs += _linear(model.head, (head.weight, head.bias))
    _copy(pairs, torch.float64)

    valid = np.arange(7)[None, :] < lengths[:, None]
    x = embed[torch.as_tensor(ids)] * math.sqrt(12) + pos[:7]
    t_logits = head(encoder(x, src_key_padding_mask=torch.as_tensor(~valid)))
    t_y = torch.as_tensor(np.where(valid, y, -100))      # padded positions count for nothing
    t_loss = nn.functional.cross_entropy(t_logits.reshape(-1, 4), t_y.reshape(-1))
    t_loss.backward()

    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-10, atol=1e-10)
    assert abs(loss.item() - t_loss.item()) < 1e-10
    _compare_grads(pairs, 1e-10)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_masked_lm_logits_loss_and_gradients_match_torch(norm):
    """The masked-LM objective on the encoder with BERT's MLM head (dense, exact GELU,
    LayerNorm, the tied embedding read backwards, a bias), against the same head and
    encoder built from PyTorch's layers: logits, the loss over the masked positions, and
    every gradient, float64 to 1e-10."""
    from numpyllm.training import MaskedLM
    cfg = TransformerEncoderConfig(vocab_size=14, d_model=12, n_head=3, n_layers=2, d_ff=20,
                                   dropout=0.0, norm=norm, activation="gelu", max_len=9,
                                   positions="learned", mlm_head=True, dtype="float64")
    model = TransformerEncoderModel(cfg, rng=5)
    rng = np.random.default_rng(6)
    for p in model.parameters():
        p.data += 0.2 * rng.standard_normal(p.shape)
    objective = MaskedLM(9, mask_id=13, vocab_size=14, special_ids=(12,), mask_prob=0.3)
    batch = objective.sample(objective.dataset(rng.integers(0, 12, size=200)), 3, rng)
    ids, y = batch["x"], batch["y"]
    assert (y != -100).any()
    logits, _ = model(ids)
    loss = objective.loss(model, batch)
    loss.backward()

    encoder = _torch_stack(cfg, cfg.n_layers, False, torch.float64)
    for layer in encoder.layers:
        layer.activation = nn.GELU(approximate="tanh")   # our MLP's GELU (see above)
    embed = nn.Parameter(torch.tensor(model.encoder.embed.weight.data))
    pos = nn.Parameter(torch.tensor(model.encoder.pos_embed.weight.data))
    dense = nn.Linear(12, 12, dtype=torch.float64)
    ln = nn.LayerNorm(12, eps=cfg.layer_norm_eps, dtype=torch.float64)
    bias = nn.Parameter(torch.zeros(14, dtype=torch.float64))
    head = model.mlm_head
    pairs = [(model.encoder.embed.weight, embed, slice(None), False),
             (model.encoder.pos_embed.weight, pos, slice(None), False)]
    pairs += _stack(model.encoder, encoder, False)
    pairs += _linear(head.dense, (dense.weight, dense.bias)) + _norm(head.ln, ln)
    pairs += [(head.bias, bias, slice(None), False)]
    _copy(pairs, torch.float64)

    x = embed[torch.as_tensor(ids)] * math.sqrt(12) + pos[:9]
    h = ln(nn.functional.gelu(dense(encoder(x))))        # BERT's transform: exact GELU
    t_logits = h @ embed.T + bias                         # the tied decoder
    t_loss = nn.functional.cross_entropy(t_logits.reshape(-1, 14),
                                         torch.as_tensor(y).reshape(-1))
    t_loss.backward()

    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-10, atol=1e-10)
    assert abs(loss.item() - t_loss.item()) < 1e-10
    _compare_grads(pairs, 1e-10)
