"""The LLaMA-family decoder: shape and names, causality, grouped-query attention as
multi-head attention with shared heads, the sliding window, RoPE's half layout, the KV
cache, generation, training. (Against Hugging Face's models: tests/oracle/test_hf_llama.py;
gradient checks: numpyllm/checks/models.py, run by tests/test_checks.py.)"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, no_grad
from numpyllm.checks import perturb
from numpyllm.generate import generate
from numpyllm.nn import Llama, LlamaConfig
from numpyllm.nn.positional import RotaryEmbedding, apply_rope
from numpyllm.training import TrainConfig, Trainer
from numpyllm.training.data_parallel import DataParallel


def tiny(seed=0, **kw):
    base = dict(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                intermediate_size=24, rope_theta=100.0, dtype="float64")
    base.update(kw)
    rng = np.random.default_rng(seed)
    return perturb(Llama(LlamaConfig(**base), rng=rng), rng, std=0.2).eval()


def logits(model, ids, **kw):
    with no_grad():
        return model(ids, **kw)[0].data


# ------------------------------------------------------------------ structure
def test_the_default_is_smollm2_135m():
    model = Llama(LlamaConfig(), rng=0)
    assert model.num_parameters() == 134_515_008        # SmolLM2-135M's count
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert shapes["layers.0.self_attn.q_proj.weight"] == (576, 576)
    assert shapes["layers.0.self_attn.k_proj.weight"] == (576, 192)     # 3 kv heads of 64
    assert shapes["layers.0.mlp.gate_proj.weight"] == (576, 1536)
    assert "lm_head.weight" not in shapes                                # tied


def test_names_follow_hugging_face():
    names = [n for n, _ in tiny(attention_bias=True, tie_weights=False).named_parameters()]
    layer = ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
             "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight",
             "self_attn.v_proj.bias", "self_attn.o_proj.weight",
             "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
             "mlp.down_proj.weight"]
    assert names == (["embed_tokens.weight"] + [f"layers.{i}.{n}" for i in range(2)
                                                for n in layer] + ["norm.weight",
                                                                   "lm_head.weight"])


@pytest.mark.parametrize("kw, match", [
    (dict(n_head=4, n_kv_head=3), "must divide n_head"),
    (dict(n_embd=10, n_head=4), "divisible by n_head"),
    (dict(n_embd=12, n_head=4, head_dim=3), "even head_dim"),
    (dict(sliding_window=0), "sliding_window"),
    (dict(rope_theta=-1.0), "rope_theta"),
    (dict(dtype="float16"), "dtype"),
])
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        LlamaConfig(**{**dict(vocab_size=5, n_layer=1, n_head=4, n_kv_head=None, n_embd=8,
                              intermediate_size=8), **kw})


def test_input_errors():
    model = tiny()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(np.array([[1, 13]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="targets have shape"):
        model(np.array([[1, 2]]), targets=np.array([[1, 2, 3]]))
    with pytest.raises(TypeError, match="LlamaConfig"):
        Llama(object())


# ------------------------------------------------------------------ semantics
@given(n_kv=st.sampled_from([1, 2, 4]), window=st.sampled_from([None, 3]), data=st.data())
def test_causal_and_windowed(n_kv, window, data):
    """A token changes no output before it; with a sliding window of W and L layers, none
    after position j + L (W - 1) either."""
    model = tiny(n_kv_head=n_kv, sliding_window=window)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    T = 12
    ids = rng.integers(0, 13, size=(1, T))
    j = data.draw(st.integers(0, T - 1))
    other = ids.copy()
    other[0, j] = (other[0, j] + 1) % 13
    changed = np.abs(logits(model, ids) - logits(model, other)).max(-1)[0] > 1e-12
    assert not changed[:j].any() and changed[j]
    if window is not None:
        reach = j + model.config.n_layer * (window - 1)
        assert not changed[reach + 1:].any()


def test_grouped_query_attention_is_multi_head_attention_with_shared_heads():
    """A GQA model equals the multi-head model whose key and value projections repeat each
    shared head for its group (Hugging Face's repeat_kv, done to the weights)."""
    gqa = tiny(n_kv_head=2)
    mha = Llama(LlamaConfig(**{**gqa.config.to_dict(), "n_kv_head": 4}), rng=1)
    hs, group = gqa.config.head_dim, 2
    for (name, p), (_, q) in zip(gqa.named_parameters(), mha.named_parameters()):
        if name.endswith(("k_proj.weight", "v_proj.weight")):          # [C, nkv*hs]
            C = p.shape[0]
            q.data[...] = np.repeat(p.data.reshape(C, 2, 1, hs), group, axis=2).reshape(C, -1)
        else:
            q.data[...] = p.data
    ids = np.random.default_rng(3).integers(0, 13, size=(2, 9))
    np.testing.assert_allclose(logits(gqa, ids), logits(mha.eval(), ids), atol=1e-12)


def test_rope_half_layout_is_hugging_faces_rotate_half():
    rope = RotaryEmbedding(8, base=500.0, layout="half")
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    cos, sin = rope.cos_sin(5, offset=3, dtype=np.float64)
    ours = apply_rope(Tensor(x), cos, sin, "half").data
    c, s = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)   # [T, hs]
    rotate_half = np.concatenate([-x[..., 4:], x[..., :4]], -1)
    np.testing.assert_allclose(ours, x * c + rotate_half * s, atol=1e-14)


@given(data=st.data())
def test_rope_scores_depend_only_on_the_distance(data):
    rope = RotaryEmbedding(8, base=100.0, layout="half")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    q, k = rng.standard_normal(8), rng.standard_normal(8)
    m, n, shift = (data.draw(st.integers(0, 50)) for _ in range(3))

    def score(a, b):
        cos, sin = rope.cos_sin(max(a, b) + 1, dtype=np.float64)
        rq = apply_rope(Tensor(q[None]), cos[a:a + 1], sin[a:a + 1], "half").data[0]
        rk = apply_rope(Tensor(k[None]), cos[b:b + 1], sin[b:b + 1], "half").data[0]
        return rq @ rk
    assert np.isclose(score(m, n), score(m + shift, n + shift), atol=1e-10)


# ------------------------------------------------------------------ the cache, generation
@pytest.mark.parametrize("kw", [dict(n_kv_head=2), dict(n_kv_head=1, attention_bias=True),
                                dict(n_kv_head=4, sliding_window=3)])
def test_cache_equals_recompute(kw):
    model = tiny(**kw)
    ids = np.random.default_rng(5).integers(0, 13, size=(2, 11))
    full = logits(model, ids)
    cache = model.new_cache(4)                                  # it grows
    with no_grad():
        steps = [model.forward_cached(ids[:, :5], cache).data]
        steps += [model.forward_cached(ids[:, t:t + 1], cache).data for t in range(5, 11)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-12)
    assert cache.layers[0].k.shape[1] == model.config.n_kv_head      # only the kv heads


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_the_array_inference_path_equals_the_full_forward(dtype, tol):
    """forward_cached runs on arrays (no graph) with a path of its own for one new token
    (the query heads of a group as the rows of one attention): with grouped-query
    attention, q/k/v biases and a sliding window at once, a left-padded batch's prefill
    and every decoding step equal the full forward of each row alone."""
    model = tiny(n_kv_head=2, attention_bias=True, sliding_window=3, dtype=dtype)
    assert all(np.abs(model.layers[0].self_attn.q_proj.bias.data) > 0)
    rng = np.random.default_rng(7)
    rows = [rng.integers(0, 13, size=12), rng.integers(0, 13, size=9)]   # 3 pads before row 1
    prompt = np.zeros((2, 6), dtype=np.int64)
    prompt[0], prompt[1, 3:] = rows[0][:6], rows[1][:3]
    valid = np.ones((2, 6), dtype=bool)
    valid[1, :3] = False
    cache = model.new_cache(2)                                  # it grows
    steps = [model.forward_cached(prompt, cache, key_padding_mask=valid).data]
    for t in range(6):
        steps.append(model.forward_cached(np.array([[rows[0][6 + t]], [rows[1][3 + t]]]),
                                          cache).data)
    got = np.concatenate(steps, axis=1)                         # [2, 12, V]
    for row, alone in ((0, rows[0]), (1, rows[1])):
        want = logits(model, alone[None])[0]
        np.testing.assert_allclose(got[row, 12 - len(alone):], want, rtol=tol, atol=tol)
    assert got.dtype == np.dtype(dtype)


def test_left_padded_generation_gives_each_prompt_what_it_gets_alone():
    model = tiny(sliding_window=4)
    prompts = [np.array([3, 1, 4, 1, 5, 9]), np.array([2, 7]), np.array([8])]
    batch = generate(model, prompts, 10, greedy=True)
    for prompt, out in zip(prompts, batch):
        np.testing.assert_array_equal(out, generate(model, prompt, 10, greedy=True))
    assert len(generate(model, prompts[0], 30, greedy=True)) == 36   # past block_size: rope


def test_prefix_generation_reads_the_prompt_both_ways():
    model = tiny()
    prompt = np.array([3, 1, 4, 1, 5])
    out = generate(model, prompt, 6, greedy=True, prefix=True)
    seq = prompt.copy()
    for _ in range(6):
        seq = np.append(seq, np.argmax(logits(model, seq[None],
                                              prefix_lengths=np.array([5]))[0, -1]))
    np.testing.assert_array_equal(out, seq)


# ------------------------------------------------------------------ training
def test_trains_with_the_trainer_on_threads_and_resumes_exactly(tmp_path):
    tokens = np.tile(np.arange(13), 40)
    cfg = TrainConfig(batch_size=6, max_iters=60, warmup_iters=2, lr_decay_iters=60,
                      learning_rate=2e-2, eval_iters=2)

    def trainer():
        model = Llama(LlamaConfig(vocab_size=13, block_size=8, n_layer=1, n_head=4,
                                  n_kv_head=2, n_embd=16, intermediate_size=24), rng=0)
        return Trainer(model, tokens, tokens, cfg)
    straight = trainer()
    losses = [straight.train_step()["loss"] for _ in range(60)]
    assert losses[-1] < 0.2 * losses[0]             # a repeating sequence: learnable
    first = trainer()
    for _ in range(10):
        first.train_step()
    first.save(tmp_path)
    resumed, _ = Trainer.resume(tmp_path, tokens, tokens)
    assert type(resumed.model) is Llama
    assert [resumed.train_step()["loss"] for _ in range(5)] == losses[10:15]


def test_data_parallel_equals_one_thread():
    ids = np.random.default_rng(7).integers(0, 13, size=(6, 9))
    grads = []
    for threads in (1, 3):
        model = tiny()
        value = DataParallel(model, threads=threads).forward_backward(ids, np.roll(ids, -1, 1))
        grads.append((value, [p.grad.copy() for p in model.parameters()]))
    assert np.isclose(grads[0][0], grads[1][0], rtol=1e-12)
    for a, b in zip(grads[0][1], grads[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
