"""LoRA adapters move between PEFT and numpyllm with equal logits, both ways, and merge to
the same weights (`numpyllm.hub.peft`, `numpyllm.nn.lora`).

Tiny random Hugging Face models are built on the spot (nothing is downloaded), saved with
``save_pretrained`` and loaded with `numpyllm.hub.load_pretrained`. In float64 the logits
are compared to 1e-10, with transformers' float32 steps (RoPE angles, RMSNorm, eager
softmax) made float64 as tests/oracle/conftest.py explains; GPT-NeoX exercises the output
permutation of its fused q/k/v rows.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from numpyllm import no_grad  # noqa: E402
from numpyllm.hub import load_pretrained, save_pretrained  # noqa: E402
from numpyllm.hub.peft import load_adapter, save_adapter  # noqa: E402
from numpyllm.hub.safetensors import load_file  # noqa: E402
from numpyllm.nn import apply_lora, lora_layers, merge_lora, unload_lora  # noqa: E402

V = 29
MODELS = {
    "gpt2": (lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=V, n_positions=32, n_embd=16, n_layer=2, n_head=4)),
        ["c_attn", "c_proj", "c_fc"], None),
    "llama": (lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=V, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        rope_theta=500.0, rms_norm_eps=1e-6)),
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ("llama", 500.0)),
    "gpt-neox": (lambda: transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=V, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=32, use_parallel_residual=False,
        hidden_act="gelu_new", rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 1.0})),
        ["query_key_value", "dense"], ("gpt_neox", 10000.0)),
}
IDS = np.random.default_rng(1).integers(0, V, size=(2, 9))


def hf_model(kind, hf_float64=None):
    torch.manual_seed(0)
    model = MODELS[kind][0]()
    with torch.no_grad():                       # away from the tiny initial values
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model = model.double().eval()
    rotary = MODELS[kind][2]
    if hf_float64 is not None and rotary:
        arch, theta = rotary
        hf_float64.softmax(arch)
        base = model.gpt_neox if arch == "gpt_neox" else model.model
        hf_float64.rope(base.rotary_emb, theta, 4)
        hf_float64.rms_norms(model)
    return model


def hf_logits(model):
    with torch.no_grad():
        return model(torch.as_tensor(IDS)).logits.double().numpy()


def our_logits(model):
    with no_grad():
        return model(IDS)[0].data


def ours_from(hf, tmp_path):
    hf.save_pretrained(tmp_path / "base")
    return load_pretrained(tmp_path / "base", "float64")[0]


def peft_config(kind, **kw):
    return peft.LoraConfig(r=3, lora_alpha=5, target_modules=MODELS[kind][1],
                           fan_in_fan_out=kind == "gpt2", **kw)


def peft_adapter(hf, kind, directory, seed=1, **kw):
    """A PEFT LoRA model on `hf` with random non-zero B (the adapters change the logits),
    saved to `directory`."""
    torch.manual_seed(seed)
    model = peft.get_peft_model(hf, peft_config(kind, **kw))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.3 * torch.randn_like(p))
    model.save_pretrained(directory)
    return model


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("rslora", [False, True])
def test_an_adapter_peft_saved_loads_into_numpyllm_with_equal_logits(kind, rslora, tmp_path,
                                                                     hf_float64):
    hf = hf_model(kind, hf_float64)
    ours = ours_from(hf, tmp_path)
    np.testing.assert_allclose(our_logits(ours), hf_logits(hf), rtol=1e-10, atol=1e-10)
    model = peft_adapter(hf, kind, tmp_path / "adapter", use_rslora=rslora)
    expected = hf_logits(model)
    assert np.abs(expected - our_logits(ours)).max() > 1e-3
    load_adapter(ours, tmp_path / "adapter")
    np.testing.assert_allclose(our_logits(ours), expected, rtol=1e-10, atol=1e-10)
    assert ours.num_parameters(trainable=True) == sum(
        p.numel() for n, p in model.named_parameters() if "lora_" in n)


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_numpyllm_adapter_loads_into_peft_with_equal_logits(kind, tmp_path, hf_float64):
    hf = hf_model(kind, hf_float64)
    ours = ours_from(hf, tmp_path)
    base = hf_logits(hf)
    apply_lora(ours, r=2, alpha=6, rng=0)
    rng = np.random.default_rng(2)
    for _, layer in lora_layers(ours):
        layer.lora_B.data = 0.3 * rng.standard_normal(layer.lora_B.shape)
    save_adapter(ours, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 2 and config["lora_alpha"] == 6
    model = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter")
    n_adapted = sum(1 for n, _ in model.named_parameters() if "lora_A" in n)
    assert n_adapted == len(lora_layers(ours))
    assert np.abs(our_logits(ours) - base).max() > 1e-3          # the adapters matter
    np.testing.assert_allclose(hf_logits(model), our_logits(ours), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", list(MODELS))
def test_merged_weights_equal_peft_merge_and_unload(kind, tmp_path):
    hf = hf_model(kind)
    ours = ours_from(hf, tmp_path)
    model = peft_adapter(hf, kind, tmp_path / "adapter", seed=3)
    load_adapter(ours, tmp_path / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp_path / "theirs", safe_serialization=True)
    save_pretrained(unload_lora(merge_lora(ours)), None, tmp_path / "ours", dtype="float64")
    theirs = load_file(tmp_path / "theirs" / "model.safetensors")
    mine = load_file(tmp_path / "ours" / "model.safetensors")
    assert set(mine) <= set(theirs)
    for name, array in mine.items():
        np.testing.assert_allclose(array, theirs[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_float32_logits_agree_both_ways(tmp_path):
    """The float32 path (the one users train in): PEFT's adapter in numpyllm to ~1e-5."""
    hf = hf_model("gpt2").float()
    hf.save_pretrained(tmp_path / "base")
    ours = load_pretrained(tmp_path / "base", "float32")[0]
    model = peft_adapter(hf, "gpt2", tmp_path / "adapter")
    load_adapter(ours, tmp_path / "adapter")
    np.testing.assert_allclose(our_logits(ours), hf_logits(model), rtol=1e-4, atol=1e-4)
