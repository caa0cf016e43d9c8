"""Hugging Face model directories against transformers itself: directories that
transformers writes (float32, float16, bfloat16, sharded) load into numpyllm with every
weight equal to transformers' own and the same logits and greedy tokens; directories that
numpyllm writes load into ``AutoModelForCausalLM`` with no missing or unexpected weight
and the same logits. Tiny random models, built on the spot: nothing is downloaded.

(Logits are compared in float32 to about 1e-5: transformers computes RoPE's angles, its
RMSNorm and its softmax in float32 even in a float64 model. The model's math itself is
checked against transformers at 1e-10 in test_hf_llama.py and test_hf_generate.py; here
what is proven is the files: the weights must be *equal*.)
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from numpyllm import no_grad  # noqa: E402
from numpyllm.generate import generate  # noqa: E402
from numpyllm.hub import load_pretrained, save_pretrained  # noqa: E402
from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig  # noqa: E402

V = 29
SMALL = dict(vocab_size=V, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
             rope_theta=500.0, rms_norm_eps=1e-6)
HF_MODELS = {
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=V, n_positions=64, n_embd=16, n_layer=2, n_head=4)),
    "gpt2-untied": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=V, n_positions=64, n_embd=16, n_layer=2, n_head=4,
        tie_word_embeddings=False, activation_function="relu")),
    "llama": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(**SMALL)),
    "llama-tied-mqa": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        **(SMALL | dict(num_key_value_heads=1, tie_word_embeddings=True)))),
    "qwen2": lambda: transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
        **SMALL, use_sliding_window=True, sliding_window=3, max_window_layers=0)),
    "mistral": lambda: transformers.MistralForCausalLM(transformers.MistralConfig(
        **SMALL, sliding_window=3)),
    "gpt-neox": lambda: transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=V, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=32, use_parallel_residual=False,
        hidden_act="gelu_new", rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 1.0})),
}
IDS = np.random.default_rng(1).integers(0, V, size=(2, 11))    # 11 > the window of 3


def hf_model(kind, dtype=torch.float32):
    torch.manual_seed(0)
    model = HF_MODELS[kind]()
    with torch.no_grad():                       # away from the tiny initial values
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.generation_config.eos_token_id = None     # generate the full length, as ours
    return model.to(dtype).eval()


def hf_logits(model, ids=IDS):
    with torch.no_grad():
        return model(torch.as_tensor(ids)).logits.float().numpy()


def our_logits(model, ids=IDS):
    with no_grad():
        return model(ids)[0].data


def same_weights(ours, theirs):
    """Every parameter of ours equals transformers' tensor of the same role exactly
    (nn.Linear's [out, in] transposed to ours [in, out]; GPT-2's Conv1D is [in, out])."""
    state = {k: v.float().numpy() for k, v in theirs.state_dict().items()}
    if type(theirs).__name__ == "GPTNeoXForCausalLM":
        return same_neox_weights(ours, state)
    gpt2 = isinstance(ours, GPT)
    for name, p in ours.named_parameters():
        if gpt2:
            key = name if name == "lm_head.weight" else "transformer." + name
            expected = state[key].T if name == "lm_head.weight" else state[key]
        else:
            key = name if name == "lm_head.weight" else "model." + name
            expected = state[key] if name == "embed_tokens.weight" or p.data.ndim == 1 \
                else state[key].T
        np.testing.assert_array_equal(p.data, expected, err_msg=name)


NEOX = {"wte.weight": "gpt_neox.embed_in.weight", "ln_f": "gpt_neox.final_layer_norm",
        "ln_1": "input_layernorm", "ln_2": "post_attention_layernorm",
        "attn.c_proj": "attention.dense", "mlp.c_fc": "mlp.dense_h_to_4h",
        "mlp.c_proj": "mlp.dense_4h_to_h", "lm_head.weight": "embed_out.weight"}


def same_neox_weights(ours, state):
    """A RoPE GPT against GPT-NeoX: names renamed, Linears transposed; the fused q/k/v
    rows of GPT-NeoX are head-major ([n_head, 3, hs]) and its rotary pairs are (j, j+hs/2)
    where ours are (2j, 2j+1): so its q_h row j+hs/2·b is our q_h feature 2j+b."""
    C, nh = ours.config.n_embd, ours.config.n_head
    hs = C // nh
    for name, p in ours.named_parameters():
        if name == "lm_head.weight":    # embed_out.weight in the file, lm_head in memory
            key = "lm_head.weight" if "lm_head.weight" in state else "embed_out.weight"
        elif name in NEOX:
            key = NEOX[name]
        elif name.startswith("ln_f"):
            key = NEOX["ln_f"] + name[4:]
        else:
            layer, rest = name.split(".")[1], ".".join(name.split(".")[2:])
            module, kind = rest.rsplit(".", 1)
            key = (f"gpt_neox.layers.{layer}.attention.query_key_value.{kind}"
                   if module == "attn.c_attn" else
                   f"gpt_neox.layers.{layer}.{NEOX[module]}.{kind}")
        theirs = state[key]
        if "c_attn" in name:
            theirs = theirs.reshape(nh, 3, hs, *theirs.shape[1:])
            ours_ = p.data.T.reshape(3, nh, hs, *theirs.shape[3:])   # [3, nh, hs, (C)]
            for h in range(nh):
                for part in range(3):
                    for j in range(hs):
                        row = j if part == 2 else (j // 2 + (j % 2) * (hs // 2))
                        np.testing.assert_array_equal(ours_[part, h, j], theirs[h, part, row],
                                                      err_msg=f"{name} {part} {h} {j}")
            continue
        expected = theirs.T if theirs.ndim == 2 and name != "wte.weight" else theirs
        np.testing.assert_array_equal(p.data, expected, err_msg=name)


@pytest.mark.parametrize("kind", HF_MODELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_directory_transformers_wrote_loads_with_equal_weights_and_logits(kind, dtype,
                                                                          tmp_path):
    theirs = hf_model(kind, dtype)
    theirs.save_pretrained(tmp_path)
    ours, tokenizer = load_pretrained(tmp_path, "float32")
    assert tokenizer is None
    same_weights(ours, theirs)
    # the stored values computed in float32, by a fresh load (theirs.float() would keep
    # RoPE's inverse frequencies as rounded by the cast to half precision)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, dtype=torch.float32, attn_implementation="eager").eval()
    np.testing.assert_allclose(our_logits(ours), hf_logits(theirs), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("kind", HF_MODELS)
def test_sharded_directories_load_and_greedy_tokens_agree(kind, tmp_path):
    theirs = hf_model(kind)
    theirs.save_pretrained(tmp_path, max_shard_size="4KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours, _ = load_pretrained(tmp_path, "float64")
    same_weights(ours, theirs)
    prompt = np.array([3, 1, 4, 1, 5])
    expected = theirs.generate(torch.as_tensor(prompt[None]), max_new_tokens=12,
                               do_sample=False, attention_mask=torch.ones(1, 5, dtype=torch.long),
                               pad_token_id=0)[0].numpy()
    np.testing.assert_array_equal(generate(ours, prompt, 12, greedy=True), expected)


OURS = {
    "gpt2": lambda: GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=16),
                        rng=0),
    "gpt2-untied-relu": lambda: GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                              n_embd=16, tie_weights=False, activation="relu"),
                                    rng=0),
    "llama": lambda: Llama(LlamaConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                       n_kv_head=2, n_embd=16, intermediate_size=24,
                                       rope_theta=500.0, tie_weights=False), rng=0),
    "llama-tied": lambda: Llama(LlamaConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                            n_kv_head=1, n_embd=16, intermediate_size=24),
                                rng=0),
    "qwen2-window": lambda: Llama(LlamaConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                              n_kv_head=2, n_embd=16, intermediate_size=24,
                                              attention_bias=True, sliding_window=3), rng=0),
    "mistral": lambda: Llama(LlamaConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                         n_kv_head=2, n_embd=16, intermediate_size=24,
                                         sliding_window=3), rng=0),
    "gpt-rope": lambda: GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                      n_embd=16, positions="rope", tie_weights=False), rng=0),
    "gpt-rope-tied": lambda: GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=2,
                                           n_embd=16, positions="rope"), rng=0),
}
EXPECTED_CLASS = {"gpt2": "GPT2LMHeadModel", "gpt2-untied-relu": "GPT2LMHeadModel",
                  "llama": "LlamaForCausalLM", "llama-tied": "LlamaForCausalLM",
                  "qwen2-window": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM",
                  "gpt-rope": "GPTNeoXForCausalLM", "gpt-rope-tied": "GPTNeoXForCausalLM"}


def ours_model(kind):
    model = OURS[kind]()
    rng = np.random.default_rng(2)
    for _, p in model.named_parameters():        # every weight matters, the norms too
        p.data += 0.3 * rng.standard_normal(p.data.shape).astype(p.data.dtype)
    return model


@pytest.mark.parametrize("kind", OURS)
@pytest.mark.parametrize("dtype, shard", [("float32", None), ("bfloat16", None),
                                          ("float32", "3KB")])
def test_a_directory_numpyllm_wrote_loads_into_transformers(kind, dtype, shard, tmp_path):
    ours = ours_model(kind)
    save_pretrained(ours, None, tmp_path, dtype=dtype, max_shard_size=shard)
    theirs, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, output_loading_info=True, attn_implementation="eager")
    assert type(theirs).__name__ == EXPECTED_CLASS[kind]
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == dtype
    if dtype == "bfloat16":                      # ours, rounded as transformers rounds
        back, _ = load_pretrained(tmp_path, "float32")
        for (name, p), (_, q) in zip(ours.named_parameters(), back.named_parameters()):
            rounded = torch.from_numpy(p.data.copy()).to(torch.bfloat16).float().numpy()
            np.testing.assert_array_equal(q.data, rounded, err_msg=name)
        ours = back
    same_weights(ours, theirs)
    np.testing.assert_allclose(hf_logits(theirs.float().eval()), our_logits(ours),
                               rtol=1e-4, atol=2e-5)


ROTARY = {"llama": ("llama", 500.0), "llama-tied-mqa": ("llama", 500.0),
          "qwen2": ("qwen2", 500.0), "mistral": ("mistral", 500.0),
          "gpt-neox": ("gpt_neox", 10000.0)}


@pytest.mark.parametrize("kind", HF_MODELS)
def test_float64_directories_give_the_same_logits_to_1e_10_and_30_greedy_tokens(
        kind, tmp_path, hf_float64):
    """A float64 directory transformers wrote, loaded by numpyllm: the logits of full
    sequences to 1e-10 against transformers in float64 (its float32 steps made float64,
    tests/oracle/conftest.py), and 30 greedy tokens identical."""
    theirs = hf_model(kind, torch.float64)
    theirs.save_pretrained(tmp_path)
    ours, _ = load_pretrained(tmp_path, "float64")
    if kind in ROTARY:
        arch, theta = ROTARY[kind]
        hf_float64.softmax(arch)
        base = theirs.gpt_neox if arch == "gpt_neox" else theirs.model
        hf_float64.rope(base.rotary_emb, theta, 4)
        hf_float64.rms_norms(theirs)
    with torch.no_grad():
        expected = theirs(torch.as_tensor(IDS)).logits.numpy()
    np.testing.assert_allclose(our_logits(ours), expected, rtol=1e-10, atol=1e-10)
    prompt = np.array([3, 1, 4, 1, 5])
    tokens = theirs.generate(torch.as_tensor(prompt[None]), max_new_tokens=30, do_sample=False,
                             attention_mask=torch.ones(1, 5, dtype=torch.long),
                             pad_token_id=0)[0].numpy()
    np.testing.assert_array_equal(generate(ours, prompt, 30, greedy=True), tokens)
