"""Quantized layers and models: the tiled product equals the float product on the
dequantized weight, logits stay close to the float model's, generation with the KV cache
works, backward is refused except on the adapter path (QLoRA), and misuse is refused."""
import numpy as np
import pytest

from numpyllm.autograd import Tensor
from numpyllm.generate import generate
from numpyllm.optim import AdamW
from numpyllm.nn import GPT, GPTConfig, Linear, Llama, LlamaConfig
from numpyllm.nn.lora import apply_lora, lora_layers, merge_lora, unload_lora
from numpyllm.quantize import (QuantizedBackwardError, QuantizedLinear, QuantizedLoRALinear,
                               quantization_record, quantize, quantized_layers)

FORMATS = ["int8", "q8_0", "q4_0"]
GPT_CFG = GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=64)
LLAMA_CFG = LlamaConfig(vocab_size=40, block_size=16, n_layer=2, n_head=4, n_kv_head=2,
                        n_embd=64, intermediate_size=96)


def _model(kind, seed=0):
    return GPT(GPT_CFG, rng=seed) if kind == "gpt" else Llama(LLAMA_CFG, rng=seed)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tile", [None, 1, 3])
def test_tiled_product_is_the_float_product_on_the_dequantized_weight(fmt, tile):
    rng = np.random.default_rng(0)
    lin = Linear(64, 7, rng=rng)
    lin.bias.data[:] = rng.standard_normal(7)
    q = QuantizedLinear.from_linear(lin, fmt, tile=tile)
    x = rng.standard_normal((2, 3, 64)).astype(np.float32)
    w = q.qweight.dequantize().T                                   # [in, out]
    expected = x @ w + lin.bias.data
    np.testing.assert_allclose(q.infer(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q(Tensor(x)).data, expected, rtol=1e-5, atol=1e-5)
    assert q.qweight.q.dtype == (np.uint8 if fmt == "q4_0" else np.int8)
    assert not hasattr(q, "weight")                 # no float copy kept


@pytest.mark.parametrize("kind", ["gpt", "llama"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_quantized_logits_close_to_float(kind, fmt):
    """The logits' error shrinks with the bits: relative to the logits' own size, below
    1% for the 8-bit formats and 15% for Q4_0 at init-scale random weights."""
    idx = np.random.default_rng(1).integers(0, 40, (2, 12))
    ref = _model(kind)(idx)[0].data
    model = quantize(_model(kind), fmt)
    out = model(idx)[0].data
    err = np.abs(out - ref).max() / np.abs(ref).max()
    assert err < (0.15 if fmt == "q4_0" else 0.01), err
    assert err > 0                                  # the weights did change
    names = [n for n, _ in quantized_layers(model)]
    expected = 2 * (4 if kind == "gpt" else 7)      # every projection, the head kept float
    assert len(names) == expected and not any("lm_head" in n for n in names)


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_generation_with_the_kv_cache(kind):
    """Greedy decoding of a quantized model: the cached path gives the same tokens as
    recomputing the whole sequence each step."""
    model = quantize(_model(kind), "q4_0").eval()
    prompt = np.array([[1, 2, 3]])
    cached = generate(model, prompt, 8, greedy=True, use_cache=True)
    full = generate(model, prompt, 8, greedy=True, use_cache=False)
    assert np.array_equal(cached, full) and cached.shape == (1, 11)


def test_head_flag_and_the_record():
    model = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=32,
                          tie_weights=False), rng=0)
    quantize(model, "q8_0", head=True)
    assert isinstance(model.lm_head, QuantizedLinear)
    record = quantization_record(model)
    assert record["format"] == "q8_0" and record["layers"][-1] == "lm_head"
    assert model.wte.weight.dtype == np.float32     # embeddings stay float


def test_backward_is_refused_outside_the_adapter_path():
    model = quantize(_model("gpt"), "int8")
    idx = np.array([[1, 2, 3, 4]])
    _, loss = model(idx, targets=idx)
    with pytest.raises(QuantizedBackwardError, match="LoRA adapters"):
        loss.backward()


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_qlora_trains_the_adapters_through_the_quantized_base(kind, tmp_path):
    """Adapters on some layers only: the gradient reaches the first block's adapter
    through the second block's quantized layers; a few steps of SGD lower the loss; the
    adapters trained over the quantized base save in PEFT's layout and load onto the
    float model (QLoRA's use: train over 4 bits, apply to the full model)."""
    model = quantize(_model(kind), "q4_0")
    targets = ["attn.c_attn"] if kind == "gpt" else ["q_proj", "v_proj"]
    apply_lora(model, r=4, alpha=8, targets=targets, rng=0)
    assert all(isinstance(m, QuantizedLoRALinear) for _, m in lora_layers(model))
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all(p.shape[0] in (4, 64) for p in params)        # A [in, r], B [r, out]
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 40, (4, 12))
    opt = AdamW(params, lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        _, loss = model(idx[:, :-1], targets=idx[:, 1:])
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < losses[0] - 0.05, losses
    first = lora_layers(model)[0][1]
    assert np.abs(first.lora_B.data).max() > 0      # layer 0's adapter was reached
    from numpyllm.hub.peft import load_adapter, save_adapter
    save_adapter(model, tmp_path / "adapter")
    float_model = load_adapter(_model(kind), tmp_path / "adapter")
    for (name, a), (_, b) in zip(lora_layers(model), lora_layers(float_model)):
        np.testing.assert_array_equal(a.lora_A.data, b.lora_A.data, err_msg=name)
        np.testing.assert_array_equal(a.lora_B.data, b.lora_B.data, err_msg=name)
    with pytest.raises(ValueError, match="quantized"):
        merge_lora(model)
    unload_lora(model, merge=False)                 # back to the quantized base alone
    assert not lora_layers(model)
    assert all(isinstance(m, QuantizedLinear) for _, m in quantized_layers(model))
    model.requires_grad_(True)                      # (apply_lora froze the float part)
    _, loss = model(idx[:, :-1], targets=idx[:, 1:])
    with pytest.raises(QuantizedBackwardError):
        loss.backward()


def test_refusals():
    with pytest.raises(ValueError, match="unknown quantization format"):
        quantize(_model("gpt"), "q5_1")
    odd = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8), rng=0)
    with pytest.raises(ValueError, match="h.0.attn.c_attn.weight.*multiple of 32"):
        quantize(odd, "q4_0")
    quantize(odd, "int8")                           # one scale per row: any width
    with pytest.raises(ValueError, match="already quantized"):
        quantize(odd, "int8")
    lora = apply_lora(_model("gpt"), r=2, rng=0)
    with pytest.raises(ValueError, match="LoRA adapters"):
        quantize(lora, "q8_0")
    layer = QuantizedLinear.from_linear(Linear(32, 4, rng=0), "q8_0")
    with pytest.raises(ValueError, match="in_features=32"):
        layer(Tensor(np.ones((2, 16), np.float32)))


def test_llm_int8_layers():
    """threshold=6.0: each layer's product is llm_int8_matmul's (plus the bias); the
    model's logits stay close to the float ones; only int8 weights can do it."""
    from numpyllm.quantize import llm_int8_matmul
    rng = np.random.default_rng(0)
    lin = Linear(64, 8, rng=rng)
    lin.bias.data[:] = rng.standard_normal(8)
    model = quantize(_model("gpt"), "int8", threshold=6.0)
    layer = model.h[0].mlp.c_fc
    assert layer.threshold == 6.0 and "LLM.int8() threshold 6" in repr(layer)
    x = rng.standard_normal((5, 64)).astype(np.float32) * 3
    expected = llm_int8_matmul(x, layer.qweight, layer.bias.data, threshold=6.0)
    np.testing.assert_array_equal(layer.infer(x), expected)
    np.testing.assert_array_equal(layer(Tensor(x)).data, expected)
    idx = np.random.default_rng(1).integers(0, 40, (2, 12))
    ref = _model("gpt")(idx)[0].data
    err = np.abs(model(idx)[0].data - ref).max() / np.abs(ref).max()
    assert 0 < err < 0.02
    with pytest.raises(ValueError, match="format 'int8', not 'q8_0'"):
        quantize(_model("gpt"), "q8_0", threshold=6.0)
    with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
        quantize(_model("gpt"), "int8", threshold=-1)
