"""The KV cache: decoding with it equals a full recompute, for every position scheme,
with padding, after cropping, in the encoder-decoder too; and the buffers behave."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.generate import generate
from numpyllm.nn import GPT, GPTConfig, MultiHeadAttention, Transformer, TransformerConfig
from numpyllm.nn.kv_cache import KVCache, LayerKVCache

TOL = 1e-10


@st.composite
def gpt_configs(draw):
    positions = draw(st.sampled_from(["learned", "sinusoidal", "rope", "alibi"]))
    n_head = draw(st.sampled_from([1, 2, 4]))
    head_size = draw(st.sampled_from([2, 4]))
    return GPTConfig(vocab_size=draw(st.integers(2, 30)), block_size=draw(st.integers(4, 24)),
                     n_layer=draw(st.integers(1, 2)), n_head=n_head, n_embd=n_head * head_size,
                     positions=positions, norm=draw(st.sampled_from(["pre", "post"])),
                     bias=draw(st.booleans()), tie_weights=draw(st.booleans()),
                     activation=draw(st.sampled_from(["gelu", "relu"])), dtype="float64")


def build(cfg, seed):
    return GPT(cfg, rng=np.random.default_rng(seed)).eval()


def cached_logits(model, ids, chunks):
    """Feed `ids` [B, T] through the cache in pieces of the given sizes; all logits."""
    cache, out, start = model.new_cache(1), [], 0      # capacity 1: growth is exercised
    for size in chunks:
        out.append(model.forward_cached(ids[:, start:start + size], cache).data)
        start += size
    assert cache.length == ids.shape[1]
    return np.concatenate(out, axis=1)


@given(cfg=gpt_configs(), seed=st.integers(0, 2**16), data=st.data())
def test_cached_logits_equal_a_full_recompute(cfg, seed, data):
    model = build(cfg, seed)
    T = data.draw(st.integers(1, cfg.block_size), label="T")
    B = data.draw(st.integers(1, 3), label="B")
    ids = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T))
    prefill = data.draw(st.integers(1, T), label="prefill")
    rest = T - prefill
    steps = data.draw(st.lists(st.integers(1, 3), max_size=rest), label="steps")
    chunks = [prefill]
    for s in steps:
        if sum(chunks) + s <= T:
            chunks.append(s)
    chunks += [1] * (T - sum(chunks))                   # the rest one token at a time
    full, _ = model(ids)
    np.testing.assert_allclose(cached_logits(model, ids, chunks), full.data, rtol=0, atol=TOL)


@given(cfg=gpt_configs(), seed=st.integers(0, 2**16), data=st.data())
def test_sampled_tokens_are_identical_with_and_without_the_cache(cfg, seed, data):
    model = build(cfg, seed)
    T = data.draw(st.integers(1, cfg.block_size), label="T")
    prompt = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=T)
    n = data.draw(st.integers(1, 2 * cfg.block_size), label="n")      # past the context too
    kw = dict(temperature=data.draw(st.sampled_from([0.7, 1.0, 1.5])),
              top_k=data.draw(st.sampled_from([None, 3])),
              top_p=data.draw(st.sampled_from([None, 0.9])))
    a = generate(model, prompt, n, rng=np.random.default_rng(seed), **kw)
    b = generate(model, prompt, n, rng=np.random.default_rng(seed), use_cache=False, **kw)
    np.testing.assert_array_equal(a, b)


@given(cfg=gpt_configs(), seed=st.integers(0, 2**16), data=st.data())
def test_left_padded_rows_get_the_logits_they_get_alone(cfg, seed, data):
    model = build(cfg, seed)
    rng = np.random.default_rng(seed)
    lengths = data.draw(st.lists(st.integers(1, cfg.block_size), min_size=2, max_size=3),
                        label="lengths")
    T = max(lengths)
    ids = rng.integers(0, cfg.vocab_size, size=(len(lengths), T))
    valid = np.arange(T)[None, :] >= T - np.array(lengths)[:, None]    # left padding
    cache = model.new_cache(T)
    logits = model.forward_cached(ids, cache, key_padding_mask=valid).data
    for b, n in enumerate(lengths):
        alone, _ = model(ids[b:b + 1, T - n:])
        np.testing.assert_allclose(logits[b, T - n:], alone.data[0], rtol=0, atol=TOL)
    if max(lengths) < cfg.block_size:                   # one more step, padding remembered
        nxt = rng.integers(0, cfg.vocab_size, size=(len(lengths), 1))
        step = model.forward_cached(nxt, cache).data
        for b, n in enumerate(lengths):
            alone, _ = model(np.concatenate([ids[b, T - n:], nxt[b]])[None])
            np.testing.assert_allclose(step[b, 0], alone.data[0, -1], rtol=0, atol=TOL)


@given(seed=st.integers(0, 2**16), data=st.data())
def test_encoder_decoder_cached_decoding_equals_decode(seed, data):
    cfg = TransformerConfig(src_vocab_size=data.draw(st.integers(3, 20)),
                            tgt_vocab_size=data.draw(st.integers(3, 20)),
                            d_model=8, n_head=data.draw(st.sampled_from([1, 2, 4])),
                            n_encoder_layers=data.draw(st.integers(1, 2)),
                            n_decoder_layers=data.draw(st.integers(1, 2)),
                            norm=data.draw(st.sampled_from(["post", "pre"])), dropout=0.0,
                            dtype="float64")
    model = Transformer(cfg, rng=seed).eval()
    rng = np.random.default_rng(seed)
    B, S, T = (data.draw(st.integers(1, n)) for n in (3, 6, 8))
    src = rng.integers(0, cfg.src_vocab_size, size=(B, S))
    lengths = rng.integers(1, S + 1, size=B)
    mask = model.source_mask(src, src_lengths=lengths)
    memory = model.encode(src, mask)
    tgt = rng.integers(0, cfg.tgt_vocab_size, size=(B, T))
    full = model.decode(tgt, memory, mask, tgt_mask=np.ones((B, T), bool)).data
    cache = model.new_cache(1)
    prefill = data.draw(st.integers(1, T))
    got = [model.decode_cached(tgt[:, :prefill], memory, cache, mask).data]
    got += [model.decode_cached(tgt[:, t:t + 1], memory, cache, mask).data
            for t in range(prefill, T)]
    np.testing.assert_allclose(np.concatenate(got, axis=1), full, rtol=0, atol=TOL)


# --------------------------------------------------------------------------- the layers
@pytest.mark.parametrize("positions", [None, "rope", "alibi"])
def test_attention_layer_with_a_cache_equals_the_full_layer(positions):
    rng = np.random.default_rng(0)
    mha = MultiHeadAttention(8, 2, causal=True, positions=positions, rng=rng,
                             dtype=np.float64).eval()
    x = rng.normal(size=(2, 7, 8))
    full, weights = mha(x, return_weights=True)
    cache = LayerKVCache(2)
    outs = [mha(x[:, :3], cache=cache).data]
    for t in range(3, 7):
        y, w = mha(x[:, t:t + 1], cache=cache, return_weights=True)
        outs.append(y.data)
        np.testing.assert_allclose(w[:, :, 0], weights[:, :, t, :t + 1], atol=TOL)
    np.testing.assert_allclose(np.concatenate(outs, 1), full.data, atol=TOL)


def test_cross_attention_projects_the_encoder_output_once():
    rng = np.random.default_rng(0)
    mha = MultiHeadAttention(8, 2, cross=True, rng=rng, dtype=np.float64).eval()
    memory = rng.normal(size=(2, 5, 8))
    x = rng.normal(size=(2, 4, 8))
    calls = []
    original = mha.kv_proj.forward
    mha.kv_proj.forward = lambda h: calls.append(1) or original(h)
    cache = LayerKVCache(1)
    outs = [mha(x[:, t:t + 1], context=memory, cache=cache).data for t in range(4)]
    assert calls == [1]
    np.testing.assert_allclose(np.concatenate(outs, 1), mha(x, context=memory).data, atol=TOL)
    with pytest.raises(ValueError, match="needs context"):
        mha(x, cache=LayerKVCache(1))


def test_the_cached_path_builds_no_graph():
    model = build(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8,
                            dtype="float64"), 0)
    logits = model.forward_cached(np.array([[1, 2, 3]]), model.new_cache())
    assert not logits.requires_grad and logits._ctx is None


# --------------------------------------------------------------------------- the buffers
def test_appends_write_in_place_and_grow_by_doubling():
    cache = LayerKVCache(4)
    k = np.arange(2 * 1 * 3 * 2, dtype=np.float32).reshape(2, 1, 3, 2)
    keys, values = cache.append(k, -k)
    buffer = cache.k
    assert buffer.shape == (2, 1, 4, 2) and keys.base is buffer     # views, not copies
    cache.append(k[:, :, :1], -k[:, :, :1])
    assert cache.k is buffer and cache.length == 4                  # still in place
    keys, values = cache.append(k, -k)                              # 7 > 4: doubled
    assert cache.k.shape[2] == 8 and cache.length == 7
    np.testing.assert_array_equal(keys, np.concatenate([k, k[:, :, :1], k], axis=2))
    np.testing.assert_array_equal(values, -keys)


def test_many_steps_reallocate_only_logarithmically_often():
    cache, buffers = LayerKVCache(1), set()
    one = np.zeros((1, 1, 1, 2))
    for _ in range(1000):
        cache.append(one, one)
        buffers.add(id(cache.k))
    assert cache.length == 1000 and len(buffers) <= 11              # 1, 2, 4, ..., 1024


def test_layer_cache_errors_and_reset():
    cache = LayerKVCache(3)
    with pytest.raises(ValueError, match="empty"):
        cache.keys_values()
    cache.append(np.zeros((1, 2, 1, 4)), np.zeros((1, 2, 1, 4)))
    with pytest.raises(ValueError, match="do not fit"):
        cache.append(np.zeros((2, 2, 1, 4)), np.zeros((2, 2, 1, 4)))
    cache.reset()
    assert cache.length == 0 and cache.keys_values()[0].shape == (1, 2, 0, 4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="capacity"):
            LayerKVCache(bad)


def test_step_counts_positions_per_row_and_remembers_padding():
    cache = KVCache(1, 2)
    valid = np.array([[False, False, True], [True, True, True]])
    positions, kpm = cache.step(2, 3, valid)
    assert positions.tolist() == [[0, 0, 0], [0, 1, 2]]
    assert kpm.tolist() == valid.tolist()
    cache.layers[0].length = 3                      # as the attention layer would have done
    positions, kpm = cache.step(2, 1)
    assert positions.tolist() == [[1], [3]]
    assert kpm.tolist() == [[False, False, True, True], [True, True, True, True]]
    with pytest.raises(ValueError, match="batch of 3"):
        cache.step(3, 1)
    with pytest.raises(ValueError, match="key_padding_mask"):
        KVCache(1, 2).step(2, 3, valid.astype(int))


def test_reorder_and_reset():
    model = build(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8,
                            dtype="float64"), 0)
    ids = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    cache = model.new_cache()
    model.forward_cached(ids, cache)
    cache.reorder([2, 0])
    step = model.forward_cached(np.array([[1], [2]]), cache).data
    full, _ = model(np.array([[7, 8, 9, 1], [1, 2, 3, 2]]))
    np.testing.assert_allclose(step[:, 0], full.data[:, -1], atol=TOL)
    cache.reset()
    assert cache.length == 0 and cache.batch_size is None
    np.testing.assert_allclose(model.forward_cached(ids, cache).data, model(ids)[0].data,
                               atol=TOL)
    assert "KVCache(n_layer=2, length=3" in repr(cache)


def test_learned_positions_refuse_to_run_past_the_context():
    model = build(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8,
                            dtype="float64"), 0)
    cache = model.new_cache()
    model.forward_cached(np.array([[1, 2, 3, 4]]), cache)
    with pytest.raises(ValueError, match="past block_size 4"):
        model.forward_cached(np.array([[5]]), cache)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.forward_cached(np.array([[11]]), model.new_cache())


def test_rope_and_alibi_decode_past_block_size():
    for positions in ("rope", "alibi", "sinusoidal"):
        model = build(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8,
                                positions=positions, dtype="float64"), 0)
        ids = np.random.default_rng(0).integers(0, 11, size=(2, 10))
        np.testing.assert_allclose(cached_logits(model, ids, [4] + [1] * 6),
                                   model(ids)[0].data, atol=TOL)


def test_decode_cached_checks_its_inputs():
    cfg = TransformerConfig(11, 11, d_model=8, n_head=2, n_encoder_layers=1,
                            n_decoder_layers=1, dropout=0.0, max_len=4)
    model = Transformer(cfg, rng=0)
    memory = model.encode(np.array([[1, 2]]))
    cache = model.new_cache()
    with pytest.raises(ValueError, match="memory must be"):
        model.decode_cached(np.array([[1], [2]]), memory, cache)
    model.decode_cached(np.array([[1, 2, 3]]), memory, cache)
    with pytest.raises(ValueError, match="exceed max_len=4"):
        model.decode_cached(np.array([[1, 2]]), memory, cache)


# ------------------------------------------------------------------ a prefix decoder's prompt
@given(positions=st.sampled_from(["learned", "sinusoidal", "rope", "alibi"]), data=st.data())
def test_prefix_generation_equals_recomputing_with_the_prompt_as_prefix(positions, data):
    """generate(prefix=True): the prompt read both ways (prefilled into the cache at once),
    the new tokens causally; each step's greedy token equals the argmax of a full forward
    with prefix_lengths = the prompt's length."""
    from numpyllm.generate import generate
    from numpyllm.nn.gpt import GPT, GPTConfig
    from numpyllm.checks import perturb
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    model = perturb(GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=8,
                                  positions=positions, dtype="float64"), rng=rng), rng, std=0.5)
    P = data.draw(st.integers(1, 6), label="prompt length")
    prompt = rng.integers(0, 13, size=P)
    out = generate(model, prompt, 6, greedy=True, prefix=True)
    seq = prompt.copy()
    with no_grad():
        for _ in range(6):
            logits = model(seq[None], prefix_lengths=np.array([P]))[0].data[0, -1]
            seq = np.append(seq, np.argmax(logits))
    np.testing.assert_array_equal(out, seq)
    # a batch of prompts of different lengths (left-padded) gives each row its own result
    other = rng.integers(0, 13, size=P + 2)
    batch = generate(model, [prompt, other], 6, greedy=True, prefix=True)
    np.testing.assert_array_equal(batch[0], out)
    np.testing.assert_array_equal(batch[1], generate(model, other, 6, greedy=True, prefix=True))


def test_prefix_generation_differs_from_causal_and_needs_the_cache():
    from numpyllm.generate import generate
    from numpyllm.nn.gpt import GPT, GPTConfig
    from numpyllm.checks import perturb
    model = perturb(GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16),
                        rng=0), np.random.default_rng(1), std=0.5)
    prompt = np.array([3, 1, 4, 1, 5, 9, 2])
    prompts = np.random.default_rng(2).integers(0, 13, size=(10, 6))
    assert any((generate(model, p, 8, greedy=True, prefix=True)
                != generate(model, p, 8, greedy=True)).any() for p in prompts)
    with no_grad():
        both = model.forward_cached(prompt[None], model.new_cache(), prefix=True).data
        causal = model.forward_cached(prompt[None], model.new_cache()).data
    assert not np.allclose(both[0, 0], causal[0, 0])      # position 0 sees the whole prompt
    with pytest.raises(ValueError, match="needs the KV cache"):
        generate(model, prompt, 2, greedy=True, prefix=True, use_cache=False)
    cache = model.new_cache()
    model.forward_cached(prompt[None], cache)
    with pytest.raises(ValueError, match="needs an empty cache"):
        model.forward_cached(prompt[None, :1], cache, prefix=True)
