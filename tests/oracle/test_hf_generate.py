"""Generation against Hugging Face `transformers`' GPT-2 with the same weights: logits of
the full forward and of every cached decoding step, and greedy tokens (one prompt, and a
left-padded batch with an attention mask)."""
import numpy as np
import pytest

from numpyllm.generate import generate
from numpyllm.nn import GPT, GPTConfig

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

V, BLOCK = 97, 48


def hf_to_numpyllm(hf_model, dtype: str) -> GPT:
    """The HF GPT-2's weights in a numpyllm GPT. Conv1D weights are already [in, out];
    names lose the ``transformer.`` prefix; ``lm_head`` is tied to ``wte``."""
    c = hf_model.config
    model = GPT(GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions,
                          n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                          layer_norm_eps=c.layer_norm_epsilon, dtype=dtype),
                rng=np.random.default_rng(0))
    state = {k.removeprefix("transformer."): v.detach().cpu().numpy()
             for k, v in hf_model.state_dict().items() if k != "lm_head.weight"}
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module", params=["float32", "float64"])
def pair(request):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=BLOCK, n_embd=32, n_layer=2,
                                  n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=0, eos_token_id=None, pad_token_id=0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    # random init is small: scale the weights up so the logits are far from ties
    with torch.no_grad():
        for p in hf.parameters():
            if p.ndim == 2:
                p.mul_(8.0)
    if request.param == "float64":
        hf = hf.double()
    tol = 1e-10 if request.param == "float64" else 2e-5
    return hf, hf_to_numpyllm(hf, request.param), tol


def test_full_forward_logits_match(pair):
    hf, ours, tol = pair
    ids = np.random.default_rng(0).integers(0, V, size=(2, 20))
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours(ids)[0].data, ref, rtol=0, atol=tol * np.abs(ref).max())


def test_greedy_tokens_and_step_logits_match(pair):
    hf, ours, tol = pair
    prompt = np.random.default_rng(1).integers(0, V, size=7)
    n = 25
    with torch.no_grad():
        out = hf.generate(torch.tensor(prompt[None]), attention_mask=torch.ones(1, 7,
                          dtype=torch.long), max_new_tokens=n, do_sample=False,
                          output_logits=True, return_dict_in_generate=True)
    ref_tokens = out.sequences[0].numpy()
    np.testing.assert_array_equal(generate(ours, prompt, n, greedy=True), ref_tokens)
    # the logits of every decoding step, through numpyllm's KV cache
    cache = ours.new_cache()
    step_input = prompt[None]
    for t, ref_logits in enumerate(out.logits):
        ref_logits = ref_logits.numpy()
        step_tol = tol if ref_logits.dtype == np.float64 else 2e-5   # HF keeps them float32
        logits = ours.forward_cached(step_input, cache, last_only=True).data[:, -1]
        np.testing.assert_allclose(logits, ref_logits, rtol=0,
                                   atol=step_tol * np.abs(ref_logits).max())
        step_input = ref_tokens[None, 7 + t:8 + t]


def test_left_padded_batch_matches(pair):
    hf, ours, _ = pair
    rng = np.random.default_rng(2)
    prompts = [rng.integers(1, V, size=n) for n in (3, 9, 5)]
    T = max(len(p) for p in prompts)
    ids = np.zeros((3, T), dtype=np.int64)
    mask = np.zeros((3, T), dtype=np.int64)
    for b, p in enumerate(prompts):
        ids[b, T - len(p):], mask[b, T - len(p):] = p, 1
    with torch.no_grad():
        ref = hf.generate(torch.tensor(ids), attention_mask=torch.tensor(mask),
                          max_new_tokens=12, do_sample=False).numpy()
    ours_out = generate(ours, prompts, 12, greedy=True)
    for b, p in enumerate(prompts):
        np.testing.assert_array_equal(ours_out[b], ref[b, T - len(p):])
