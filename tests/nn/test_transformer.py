"""The encoder-decoder Transformer and the encoder-only model: configs, structure,
gradients, what the masks mean (causality, source padding, batch independence),
errors at the boundary, and learning."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm import Tensor, no_grad
from numpyllm import functional as F
from numpyllm.autograd import gradcheck
from numpyllm.checks import perturb
from numpyllm.nn.encoder import TransformerEncoderConfig, TransformerEncoderModel
from numpyllm.nn.transformer import Transformer, TransformerConfig

V = 9          # tiny vocabularies: 0 is PAD where a pad_id is used


def seq2seq(seed=0, dtype="float64", **kw):
    base = dict(src_vocab_size=V, tgt_vocab_size=V + 2, d_model=8, n_head=2,
                n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, dtype=dtype)
    base.update(kw)
    return Transformer(TransformerConfig(**base), rng=seed)


def encoder_only(seed=0, dtype="float64", **kw):
    base = dict(vocab_size=V, d_model=8, n_head=2, n_layers=2, dropout=0.0, max_len=16,
                dtype=dtype)
    base.update(kw)
    return TransformerEncoderModel(TransformerEncoderConfig(**base), rng=seed)


def logits_of(model, *args, **kw):
    with no_grad():
        return model(*args, **kw)[0].data


# small configurations: layers 1-2, heads 1-2, d_model 4-8, sequences 1-4
@st.composite
def small_configs(draw):
    n_head = draw(st.sampled_from([1, 2]))
    d_model = draw(st.sampled_from([d for d in range(4, 9) if d % n_head == 0]))
    return dict(d_model=d_model, n_head=n_head,
                n_encoder_layers=draw(st.integers(1, 2)), n_decoder_layers=draw(st.integers(1, 2)),
                d_ff=draw(st.sampled_from([None, 6])), norm=draw(st.sampled_from(["post", "pre"])),
                activation=draw(st.sampled_from(["relu", "gelu"])))


def random_batch(rng, B, S, T, src_vocab=V, tgt_vocab=V + 2):
    src = rng.integers(1, src_vocab, size=(B, S))
    lengths = rng.integers(1, S + 1, size=B)
    tgt = rng.integers(1, tgt_vocab, size=(B, T))
    targets = rng.integers(0, tgt_vocab, size=(B, T))
    return src, lengths, tgt, targets


# ------------------------------------------------------------------ configs
def test_config_defaults_are_the_papers_base_model():
    cfg = TransformerConfig(src_vocab_size=100, tgt_vocab_size=200)
    assert (cfg.d_model, cfg.n_head, cfg.n_encoder_layers, cfg.n_decoder_layers) == (512, 8, 6, 6)
    assert (cfg.d_ff, cfg.dropout, cfg.norm, cfg.activation) == (2048, 0.1, "post", "relu")
    assert TransformerConfig(src_vocab_size=5, tgt_vocab_size=5, d_model=64, n_head=4).d_ff == 256
    assert TransformerEncoderConfig(vocab_size=5, d_model=16, n_head=2).n_outputs == 5


@pytest.mark.parametrize("kw, field", [
    (dict(d_model=10, n_head=4), "d_model"),
    (dict(d_model=0), "d_model"),
    (dict(n_head=0), "n_head"),
    (dict(src_vocab_size=0), "src_vocab_size"),
    (dict(tgt_vocab_size=2.5), "tgt_vocab_size"),
    (dict(n_encoder_layers=0), "n_encoder_layers"),
    (dict(n_decoder_layers=-1), "n_decoder_layers"),
    (dict(d_ff=0), "d_ff"),
    (dict(max_len=0), "max_len"),
    (dict(dropout=1.0), "dropout"),
    (dict(norm="sandwich"), "norm"),
    (dict(activation="tanh"), "activation"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
    (dict(share_embeddings=True, tgt_vocab_size=12), "share_embeddings"),
    (dict(pad_id=11), "pad_id"),
    (dict(pad_id=1.0), "pad_id"),
])
def test_config_errors_name_the_field(kw, field):
    base = dict(src_vocab_size=11, tgt_vocab_size=11, d_model=8, n_head=2)
    base.update(kw)
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**base)


@pytest.mark.parametrize("kw, field", [
    (dict(vocab_size=0), "vocab_size"),
    (dict(n_layers=0), "n_layers"),
    (dict(d_model=6, n_head=4), "d_model"),
    (dict(positions="rope"), "positions"),
    (dict(n_outputs=3, tie_embeddings=True), "tie_embeddings"),
    (dict(pad_id=9), "pad_id"),
])
def test_encoder_config_errors_name_the_field(kw, field):
    base = dict(vocab_size=9, d_model=8, n_head=2)
    base.update(kw)
    with pytest.raises(ValueError, match=field):
        TransformerEncoderConfig(**base)


def test_config_round_trips_through_a_dict():
    cfg = TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, d_model=8, n_head=2,
                            share_embeddings=True, pad_id=0, norm="pre")
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        TransformerConfig.from_dict({**cfg.to_dict(), "n_layer": 3})
    enc = TransformerEncoderConfig(vocab_size=9, d_model=8, n_head=2, positions="learned")
    assert TransformerEncoderConfig.from_dict(enc.to_dict()) == enc


# ------------------------------------------------------------------ structure
def test_parameter_names_and_layouts():
    model = seq2seq(n_encoder_layers=1, n_decoder_layers=1, d_ff=12)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    names = list(shapes)
    assert names[0] == "encoder.embed.weight" and names[-1] == "lm_head.weight"
    enc = [n for n in names if n.startswith("encoder.layers.0.")]
    assert [n.split(".")[3] for n in enc[::2]] == ["self_attn", "self_attn", "ln_1", "mlp",
                                                  "mlp", "ln_2"]
    assert shapes["encoder.layers.0.self_attn.c_attn.weight"] == (8, 24)          # [in, out]
    assert shapes["decoder.layers.0.cross_attn.q_proj.weight"] == (8, 8)
    assert shapes["decoder.layers.0.cross_attn.kv_proj.weight"] == (8, 16)
    assert shapes["decoder.layers.0.mlp.c_fc.weight"] == (8, 12)
    assert "decoder.layers.0.ln_3.weight" in shapes
    assert shapes["encoder.embed.weight"] == (V, 8) and shapes["decoder.embed.weight"] == (V + 2, 8)
    assert shapes["lm_head.weight"] == (8, V + 2)
    assert not any("ln_f" in n for n in names)                      # post-LN: no final norm
    pre = {n for n, _ in seq2seq(norm="pre").named_parameters()}
    assert {"encoder.ln_f.weight", "decoder.ln_f.bias"} <= pre


def test_shared_embeddings_are_one_parameter():
    model = seq2seq(tgt_vocab_size=V, share_embeddings=True)
    names = [n for n, _ in model.named_parameters()]
    assert "encoder.embed.weight" in names
    assert not any(n.startswith(("decoder.embed", "lm_head")) for n in names)
    assert len(names) == len(set(id(p) for p in model.parameters()))
    assert model.decoder.embed.weight is model.encoder.embed.weight
    unshared = seq2seq(tgt_vocab_size=V)
    E = V * 8
    assert unshared.num_parameters() - model.num_parameters() == 2 * E      # tgt embed + head
    # the one matrix gets its gradient from all three uses
    rng = np.random.default_rng(0)
    src, _, tgt, y = random_batch(rng, 2, 3, 3, tgt_vocab=V)
    model(src, tgt, y)[1].backward()
    assert model.encoder.embed.weight.grad is not None
    assert np.abs(model.encoder.embed.weight.grad).sum() > 0


def test_embeddings_are_scaled_to_unit_variance_and_initial_loss_is_near_ln_vocab():
    cfg = TransformerConfig(src_vocab_size=50, tgt_vocab_size=50, d_model=64, n_head=4,
                            n_encoder_layers=1, n_decoder_layers=1, dropout=0.0)
    model = Transformer(cfg, rng=0)
    w = model.encoder.embed.weight.data
    assert abs(w.std() * math.sqrt(64) - 1.0) < 0.05
    rng = np.random.default_rng(1)
    src, _, tgt, y = random_batch(rng, 4, 6, 6, 50, 50)
    with no_grad():
        _, loss = model(src, tgt, y)
    assert abs(loss.item() - math.log(50)) < 0.3


@pytest.mark.parametrize("model_cls, cfg", [
    (Transformer, TransformerConfig(src_vocab_size=5, tgt_vocab_size=5, d_model=4, n_head=1,
                                    n_encoder_layers=1, n_decoder_layers=1)),
    (TransformerEncoderModel, TransformerEncoderConfig(vocab_size=5, d_model=4, n_head=1,
                                                       n_layers=1))])
def test_a_seed_or_a_generator_and_seeds_reproduce(model_cls, cfg):
    with pytest.raises(TypeError, match="rng must be"):
        model_cls(cfg, rng=1.5)
    a, b = model_cls(cfg, rng=3), model_cls(cfg, rng=np.random.default_rng(3))
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.data, pb.data)
    other = TransformerEncoderConfig(vocab_size=5, d_model=4, n_head=1) \
        if model_cls is Transformer else TransformerConfig(5, 5, d_model=4, n_head=1)
    with pytest.raises(TypeError, match="takes a " + type(cfg).__name__):
        model_cls(other)


# ------------------------------------------------------------------ gradients
@settings(max_examples=max(4, settings.default.max_examples // 2))
@given(small_configs(), st.integers(1, 2), st.integers(1, 4), st.integers(1, 4),
       st.booleans(), st.integers(0, 2**16))
def test_encoder_decoder_gradcheck(cfg, B, S, T, share, seed):
    """The loss's gradient with respect to every parameter, by random projections."""
    rng = np.random.default_rng(seed)
    model = perturb(seq2seq(seed=seed, **cfg, share_embeddings=share,
                            tgt_vocab_size=V if share else V + 2, pad_id=0), rng)
    src, lengths, tgt, y = random_batch(rng, B, S, T, V, V if share else V + 2)
    y[0, -1] = 0                                    # a pad target, ignored
    params = list(model.parameters())
    assert gradcheck(lambda *p: model(src, tgt, y, src_lengths=lengths)[1], *params,
                     max_jacobian=0, n_projections=2)


@settings(max_examples=max(3, settings.default.max_examples // 3))
@given(small_configs(), st.integers(1, 2), st.integers(1, 4),
       st.sampled_from(["sinusoidal", "learned"]), st.booleans(), st.integers(0, 2**16))
def test_encoder_only_gradcheck(cfg, B, T, positions, tie, seed):
    rng = np.random.default_rng(seed)
    model = perturb(encoder_only(seed=seed, d_model=cfg["d_model"], n_head=cfg["n_head"],
                                 n_layers=cfg["n_encoder_layers"], norm=cfg["norm"],
                                 activation=cfg["activation"], positions=positions,
                                 tie_embeddings=tie), rng)
    ids = rng.integers(0, V, size=(B, T))
    y = np.where(rng.random((B, T)) < 0.5, rng.integers(0, V, size=(B, T)), -100)
    y[:, 0] = 1                                     # at least one target counts
    lengths = rng.integers(1, T + 1, size=B)
    params = list(model.parameters())
    assert gradcheck(lambda *p: model(ids, lengths, y)[1], *params,
                     max_jacobian=0, n_projections=2)


def test_gradients_reach_every_parameter():
    model = seq2seq(norm="pre")
    rng = np.random.default_rng(0)
    src, lengths, tgt, y = random_batch(rng, 2, 4, 3)
    model(src, tgt, y, src_lengths=lengths)[1].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.abs(p.grad).sum() > 0, name


# ------------------------------------------------------------------ semantics
@given(small_configs(), st.integers(1, 4), st.integers(2, 6), st.data())
def test_decoder_is_causal(cfg, S, T, data):
    """Changing target tokens after position t leaves the logits at <= t unchanged."""
    model = seq2seq(**cfg)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    src, lengths, tgt, _ = random_batch(rng, 2, S, T)
    t = data.draw(st.integers(0, T - 2))
    changed = tgt.copy()
    changed[:, t + 1:] = rng.integers(1, V + 2, size=(2, T - t - 1))
    a = logits_of(model, src, tgt, src_lengths=lengths)
    b = logits_of(model, src, changed, src_lengths=lengths)
    np.testing.assert_array_equal(a[:, :t + 1], b[:, :t + 1])


@given(small_configs(), st.integers(2, 5), st.integers(1, 4), st.data())
def test_padded_source_positions_change_nothing(cfg, S, T, data):
    model = seq2seq(**cfg)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    src, lengths, tgt, _ = random_batch(rng, 3, S, T)
    lengths[0] = data.draw(st.integers(1, S - 1))          # at least one padded row
    other = src.copy()
    for b, n in enumerate(lengths):
        other[b, n:] = rng.integers(0, V, size=S - n)
    a = logits_of(model, src, tgt, src_lengths=lengths)
    b = logits_of(model, other, tgt, src_lengths=lengths)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # the same mask as bool, and derived from pad_id, give the same logits
    valid = np.arange(S)[None, :] < lengths[:, None]
    np.testing.assert_allclose(logits_of(model, src, tgt, src_mask=valid), a, atol=1e-12)
    padded = np.where(valid, src, 0)
    with_pad = seq2seq(**cfg, pad_id=0)
    np.testing.assert_allclose(logits_of(with_pad, padded, tgt), a, atol=1e-12)


def test_real_source_tokens_do_matter():
    model = seq2seq()
    rng = np.random.default_rng(0)
    src, _, tgt, _ = random_batch(rng, 1, 4, 3)
    other = src.copy()
    other[0, 0] = src[0, 0] % (V - 1) + 1
    assert not np.allclose(logits_of(model, src, tgt), logits_of(model, other, tgt))


@given(small_configs(), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**16))
def test_batch_independence(cfg, S, T, seed):
    """Each sequence's logits are what it gets alone."""
    model = seq2seq(**cfg)
    rng = np.random.default_rng(seed)
    src, lengths, tgt, _ = random_batch(rng, 3, S, T)
    together = logits_of(model, src, tgt, src_lengths=lengths)
    for b in range(3):
        alone = logits_of(model, src[b:b + 1], tgt[b:b + 1], src_lengths=lengths[b:b + 1])
        np.testing.assert_allclose(together[b:b + 1], alone, rtol=1e-10, atol=1e-12)


def test_encode_then_decode_equals_forward():
    model = seq2seq(pad_id=0)
    rng = np.random.default_rng(0)
    src, lengths, tgt, _ = random_batch(rng, 2, 5, 4)
    src = np.where(np.arange(5)[None] < lengths[:, None], src, 0)
    full = logits_of(model, src, tgt)
    with no_grad():
        mask = model.source_mask(src)
        memory = model.encode(src)
        step = model.decode(tgt, memory, mask).data
        by_lengths = model.decode(tgt, memory, src_lengths=lengths).data
    assert memory.shape == (2, 5, 8)
    np.testing.assert_array_equal(full, step)
    np.testing.assert_allclose(full, by_lengths, atol=1e-12)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_embedding_offset_continues_the_positions(positions):
    """What a decoder fed one new token at a time will need: rows offset.. of the table."""
    stack = encoder_only(positions=positions).encoder
    ids = np.array([[1, 2, 3, 4, 5]])
    with no_grad():
        whole = stack.embed_tokens(ids).data
        tail = stack.embed_tokens(ids[:, 2:], offset=2).data
    np.testing.assert_array_equal(whole[:, 2:], tail)


@given(small_configs(), st.integers(2, 4), st.data())
def test_encoder_only_is_bidirectional_and_ignores_padding(cfg, T, data):
    model = encoder_only(d_model=cfg["d_model"], n_head=cfg["n_head"],
                         n_layers=cfg["n_encoder_layers"], norm=cfg["norm"])
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    ids = rng.integers(1, V, size=(2, T))
    # bidirectional: the last token changes the first position's output
    later = ids.copy()
    later[:, -1] = ids[:, -1] % (V - 1) + 1
    assert not np.allclose(logits_of(model, ids)[:, 0], logits_of(model, later)[:, 0])
    # padded positions change nothing at the real ones
    n = data.draw(st.integers(1, T - 1))
    lengths = np.array([n, T])
    other = ids.copy()
    other[0, n:] = rng.integers(0, V, size=T - n)
    a, b = logits_of(model, ids, lengths), logits_of(model, other, lengths)
    np.testing.assert_allclose(a[0, :n], b[0, :n], atol=1e-12)
    np.testing.assert_array_equal(a[1], b[1])


def test_post_and_pre_ln_differ_and_both_normalise_where_they_should():
    rng = np.random.default_rng(0)
    src, _, tgt, _ = random_batch(rng, 2, 4, 3)
    for norm in ("post", "pre"):
        model = seq2seq(norm=norm)
        with no_grad():
            h = model.decoder(tgt, model.encode(src)).data       # [B, T, C], before the head
        # both end in a LayerNorm with weight 1, bias 0: zero mean, unit variance
        np.testing.assert_allclose(h.mean(-1), 0, atol=1e-10)
        np.testing.assert_allclose(h.var(-1), 1, atol=1e-3)
    assert not np.allclose(logits_of(seq2seq(norm="post"), src, tgt),
                           logits_of(seq2seq(norm="pre"), src, tgt))


# ------------------------------------------------------------------ the loss
def test_loss_ignores_pad_and_minus_100_targets_without_touching_the_callers_array():
    model = seq2seq(pad_id=0)
    rng = np.random.default_rng(0)
    src, _, tgt, y = random_batch(rng, 2, 4, 5)
    y[0, 3:] = 0
    y[1, 4] = -100
    y_before = y.copy()
    logits, loss = model(src, tgt, y)
    keep = (y != 0) & (y != -100)
    lp = logits.data - logits.data.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    expected = -lp[keep, y[keep]].mean()
    assert abs(loss.item() - expected) < 1e-12
    np.testing.assert_array_equal(y, y_before)
    with pytest.raises(ValueError, match="targets"):
        model(src, tgt, y[:, :-1])


def test_encoder_only_loss_skips_padded_positions():
    model = encoder_only(pad_id=0)
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 1]])
    y = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    logits, loss = model(ids, targets=y)
    y_real = np.where(ids != 0, y, -100)
    assert abs(loss.item() - F.cross_entropy(logits, y_real).item()) < 1e-12


# ------------------------------------------------------------------ modes and dtypes
def test_dropout_is_random_in_training_and_off_in_eval():
    model = seq2seq(dropout=0.3, seed=1)
    rng = np.random.default_rng(0)
    src, _, tgt, _ = random_batch(rng, 2, 4, 3)
    a, b = logits_of(model, src, tgt), logits_of(model, src, tgt)
    assert not np.allclose(a, b)
    model.eval()
    np.testing.assert_array_equal(logits_of(model, src, tgt), logits_of(model, src, tgt))
    model.train()
    no_drop = seq2seq(dropout=0.0, seed=1).train()
    no_drop_eval = seq2seq(dropout=0.0, seed=1).eval()
    np.testing.assert_array_equal(logits_of(no_drop, src, tgt), logits_of(no_drop_eval, src, tgt))


def test_float32_by_default_float64_on_request_and_after_to():
    rng = np.random.default_rng(0)
    src, _, tgt, y = random_batch(rng, 2, 4, 3)
    m32 = seq2seq(dtype="float32")
    logits, loss = m32(src, tgt, y)
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    m64 = seq2seq(dtype="float64")
    np.testing.assert_allclose(logits_of(m64, src, tgt), logits.data, rtol=1e-4, atol=1e-5)
    m32.to(np.float64)
    assert logits_of(m32, src, tgt).dtype == np.float64
    enc = encoder_only(dtype="float32", positions="learned")
    assert logits_of(enc, np.array([[1, 2]])).dtype == np.float32


# ------------------------------------------------------------------ errors
def test_clear_errors_at_the_boundary():
    model = seq2seq(max_len=6)
    src, tgt = np.array([[1, 2, 3]]), np.array([[1, 2]])
    with pytest.raises(TypeError, match="src.*integer"):
        model(src.astype(np.float32), tgt)
    with pytest.raises(TypeError, match="tgt_in.*integer"):
        model(src, tgt * 1.0)
    with pytest.raises(IndexError, match=r"src: token id 9 .*\[0, 9\)"):
        model(np.array([[1, 9]]), tgt)
    with pytest.raises(IndexError, match=r"tgt_in: token id -1"):
        model(src, np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="batch size 2.*has 1"):
        model(np.array([[1, 2], [3, 4]]), tgt)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        model(np.array([1, 2, 3]), tgt)
    with pytest.raises(ValueError, match="max_len=6"):
        model(np.ones((1, 7), dtype=np.int64), tgt)
    with pytest.raises(ValueError, match="mask must be bool"):
        model(src, tgt, src_mask=np.ones((1, 2), dtype=bool))
    with pytest.raises(ValueError, match="not both"):
        model(src, tgt, src_mask=np.ones((1, 3), dtype=bool), src_lengths=[3])
    with pytest.raises(ValueError, match="lengths"):
        model(src, tgt, src_lengths=[4])
    with pytest.raises(ValueError, match="memory"):
        model.decode(tgt, Tensor(np.zeros((2, 3, 8))))
    enc = encoder_only()
    with pytest.raises(IndexError, match="ids: token id 9"):
        enc(np.array([[9]]))
    with pytest.raises(ValueError, match="key_padding_mask"):
        enc(np.array([[1, 2]]), np.ones((1, 3), dtype=bool))


# ------------------------------------------------------------------ learning
def test_tiny_encoder_decoder_overfits_a_handful_of_sequences():
    """Copy-reverse six fixed sequences: the loss falls far below its start."""
    from numpyllm.optim import AdamW
    rng = np.random.default_rng(0)
    PAD, BOS = 0, 1
    src = rng.integers(2, 8, size=(6, 4))
    tgt_in = np.concatenate([np.full((6, 1), BOS), src[:, ::-1][:, :-1]], axis=1)
    targets = src[:, ::-1]
    cfg = TransformerConfig(src_vocab_size=8, tgt_vocab_size=8, d_model=16, n_head=2,
                            n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0,
                            share_embeddings=True, pad_id=PAD)
    model = Transformer(cfg, rng=0)
    opt = AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    losses = []
    for _ in range(120):
        _, loss = model(src, tgt_in, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    model.eval()
    assert (logits_of(model, src, tgt_in).argmax(-1) == targets).all()


def test_learned_positions_start_at_the_scale_of_the_tokens_and_get_used():
    """The encoder adds learned positions to embeddings scaled by sqrt(d_model) (unit
    variance): at Embedding's default std of 0.02 they were 50 times smaller, and a task
    that needs positions (predict the token before each one) stayed near chance."""
    from numpyllm.optim import AdamW
    cfg = TransformerEncoderConfig(vocab_size=12, d_model=32, n_head=2, n_layers=1, d_ff=64,
                                   dropout=0.0, max_len=12, positions="learned", norm="pre",
                                   activation="gelu")
    model = TransformerEncoderModel(cfg, rng=0)
    tokens = model.encoder.embed.weight.data.std() * math.sqrt(32)
    positions = model.encoder.pos_embed.weight.data.std()
    assert 0.8 < positions / tokens < 1.25
    rng = np.random.default_rng(0)
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        x = rng.integers(0, 12, size=(16, 12))
        y = np.concatenate([np.full((16, 1), -100), x[:, :-1]], axis=1)
        _, loss = model(x, targets=y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.2          # chance: ln 12 = 2.48
