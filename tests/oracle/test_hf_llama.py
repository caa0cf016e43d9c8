"""The LLaMA-family decoder against Hugging Face's own models (LlamaForCausalLM,
Qwen2ForCausalLM, MistralForCausalLM) holding the same weights: logits, loss and the
gradient of every parameter in float64 to 1e-10, the cached decoding steps, and greedy
tokens. Tiny random models, built on the spot: nothing is downloaded.

Details of the comparison: Hugging Face stores a Linear's weight ``[out, in]`` and ours
``[in, out]`` (transposed here); its rotary embedding computes the angles, its RMSNorm
the normalisation and its eager attention the softmax in float32 even in a float64 model,
so for a 1e-10 comparison those three are replaced by the same formulas in float64 (the
model's math is unchanged; the float32 test compares the unpatched model).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from numpyllm import no_grad  # noqa: E402
from numpyllm.generate import generate  # noqa: E402
from numpyllm.nn import Llama, LlamaConfig  # noqa: E402

ARCHS = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, {}),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, {}),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM,
                {"sliding_window": 3}),
}


@pytest.fixture
def pair(hf_float64):
    """``pair(arch, n_kv=2, tie=False, dtype="float64")``: (Hugging Face model, our
    model) with the same random weights; in float64, transformers' float32 steps are
    made float64 (tests/oracle/conftest.py)."""
    for arch in ARCHS:
        hf_float64.softmax(arch)
    return lambda *args, **kw: _pair(hf_float64, *args, **kw)


def _pair(hf_float64, arch, n_kv=2, tie=False, dtype="float64"):
    config_cls, model_cls, extra = ARCHS[arch]
    hf_cfg = config_cls(vocab_size=23, hidden_size=16, intermediate_size=24,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=n_kv,
                        max_position_embeddings=32, rope_theta=500.0, rms_norm_eps=1e-6,
                        tie_word_embeddings=tie, attn_implementation="eager", **extra)
    torch.manual_seed(0)
    hf = model_cls(hf_cfg).double() if dtype == "float64" else model_cls(hf_cfg).float()
    with torch.no_grad():                       # away from the tiny initial values
        for p in hf.parameters():
            p.add_(0.3 * torch.randn_like(p))
    hf.generation_config.eos_token_id = None         # generate the full length, as ours
    if dtype == "float64":
        hf_float64.rope(hf.model.rotary_emb, 500.0, 4)
        hf_float64.rms_norms(hf)
    ours = Llama(LlamaConfig(vocab_size=23, block_size=32, n_layer=2, n_head=4, n_kv_head=n_kv,
                             n_embd=16, intermediate_size=24, rope_theta=500.0,
                             rms_norm_eps=1e-6, attention_bias=arch == "qwen2",
                             sliding_window=extra.get("sliding_window"), tie_weights=tie,
                             dtype=dtype), rng=0)
    theirs = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        t = theirs["lm_head.weight" if name == "lm_head.weight" else "model." + name]
        w = t.detach().double().numpy()
        p.data[...] = w.T if p.data.ndim == 2 and name != "embed_tokens.weight" else w
    return hf, ours, theirs


@pytest.mark.parametrize("arch, n_kv, tie", [("llama", 2, False), ("llama", 1, True),
                                             ("llama", 4, False), ("qwen2", 2, False),
                                             ("mistral", 2, False)])
def test_logits_loss_and_every_gradient_match(pair, arch, n_kv, tie):
    hf, ours, theirs = pair(arch, n_kv, tie)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 23, size=(3, 9))                 # 9 > the sliding window of 3
    y = rng.integers(0, 23, size=(3, 9))
    logits, loss = ours(ids, targets=y)
    loss.backward()
    out = hf(torch.as_tensor(ids))
    t_loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 23),
                                               torch.as_tensor(y).reshape(-1))
    t_loss.backward()
    np.testing.assert_allclose(logits.data, out.logits.detach().numpy(), rtol=1e-10, atol=1e-10)
    assert abs(loss.item() - t_loss.item()) < 1e-10
    for name, p in ours.named_parameters():
        t = theirs["lm_head.weight" if name == "lm_head.weight" else "model." + name]
        g = t.grad.numpy()
        g = g.T if p.data.ndim == 2 and name != "embed_tokens.weight" else g
        np.testing.assert_allclose(p.grad, g, rtol=1e-9, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_every_cached_step_matches_and_greedy_tokens_agree(pair, arch):
    hf, ours, _ = pair(arch)
    prompt = np.array([[3, 1, 4, 1, 5]])
    cache = ours.new_cache()
    with no_grad():
        first = ours.forward_cached(prompt, cache).data
    out = hf(torch.as_tensor(prompt), use_cache=True)
    np.testing.assert_allclose(first, out.logits.detach().numpy(), atol=1e-10)
    past, token = out.past_key_values, np.array([[7]])
    for _ in range(6):                                   # past the window of 3 for mistral
        with no_grad():
            mine = ours.forward_cached(token, cache).data
        out = hf(torch.as_tensor(token), past_key_values=past, use_cache=True)
        np.testing.assert_allclose(mine, out.logits.detach().numpy(), atol=1e-10)
        past, token = out.past_key_values, np.array([[int(np.argmax(mine[0, -1]))]])
    hf_tokens = hf.generate(torch.as_tensor(prompt), max_new_tokens=30, do_sample=False,
                            attention_mask=torch.ones_like(torch.as_tensor(prompt)),
                            pad_token_id=0)
    np.testing.assert_array_equal(generate(ours, prompt[0], 30, greedy=True),
                                  hf_tokens[0].numpy())


def test_a_left_padded_batch_matches_each_prompt_alone_and_hugging_face(pair):
    hf, ours, _ = pair("llama")
    prompts = [np.array([3, 1, 4, 1, 5, 9]), np.array([2, 7])]
    batch = generate(ours, prompts, 8, greedy=True)
    for prompt, out in zip(prompts, batch):
        np.testing.assert_array_equal(out, generate(ours, prompt, 8, greedy=True))
        theirs = hf.generate(torch.as_tensor(prompt[None]), max_new_tokens=8, do_sample=False,
                             attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             pad_token_id=0)
        np.testing.assert_array_equal(out, theirs[0].numpy())


def test_float32_matches_to_about_1e_5(pair):
    hf, ours, _ = pair("qwen2", dtype="float32")
    ids = np.random.default_rng(2).integers(0, 23, size=(2, 8))
    with no_grad():
        mine = ours(ids)[0].data
    theirs = hf(torch.as_tensor(ids)).logits.detach().numpy()
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=2e-5)
