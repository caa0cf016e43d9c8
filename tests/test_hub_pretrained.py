"""Hugging Face model directories without Hugging Face: `save_pretrained` then
`load_pretrained` gives back the same model, every dtype and the sharded form included;
every model numpyllm cannot express, and every malformed or hostile directory, is refused
with one clear error. (The same directories against transformers: tests/oracle/
test_hf_pretrained.py.)"""
import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.hub import NotExpressible, PretrainedError, load_pretrained, save_pretrained
from numpyllm.hub.bfloat16 import bfloat16_to_float32, float32_to_bfloat16
from numpyllm.hub.safetensors import SafetensorsFile, load_file, save_file
from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig

IDS = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9, 3]])


def gpt(**kw):
    cfg = dict(vocab_size=17, block_size=16, n_layer=2, n_head=2, n_embd=8, dtype="float64")
    return GPT(GPTConfig(**(cfg | kw)), rng=0)


def llama(**kw):
    cfg = dict(vocab_size=17, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=8,
               intermediate_size=12, rope_theta=500.0, dtype="float64")
    model = Llama(LlamaConfig(**(cfg | kw)), rng=0)
    rng = np.random.default_rng(1)
    for _, p in model.named_parameters():        # the norms away from their initial ones
        p.data += 0.1 * rng.standard_normal(p.data.shape)
    return model


MODELS = {
    "gpt2": lambda: gpt(),
    "gpt2-untied-relu": lambda: gpt(tie_weights=False, activation="relu"),
    "llama": lambda: llama(),
    "llama-tied-mqa": lambda: llama(tie_weights=True, n_kv_head=1),
    "qwen2": lambda: llama(attention_bias=True),
    "qwen2-window": lambda: llama(attention_bias=True, sliding_window=3),
    "mistral": lambda: llama(sliding_window=3),
    "gpt-neox-rope": lambda: gpt(positions="rope", tie_weights=False),
    "gpt-neox-rope-tied-relu": lambda: gpt(positions="rope", activation="relu"),
}
ARCHITECTURE = {"gpt2": "GPT2LMHeadModel", "gpt2-untied-relu": "GPT2LMHeadModel",
                "llama": "LlamaForCausalLM", "llama-tied-mqa": "LlamaForCausalLM",
                "qwen2": "Qwen2ForCausalLM", "qwen2-window": "Qwen2ForCausalLM",
                "mistral": "MistralForCausalLM", "gpt-neox-rope": "GPTNeoXForCausalLM",
                "gpt-neox-rope-tied-relu": "GPTNeoXForCausalLM"}


def logits(model, ids=IDS):
    with no_grad():
        return model(ids)[0].data


def params(model) -> dict:
    return {n: p.data for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", MODELS)
def test_save_then_load_gives_back_the_same_model(kind, tmp_path):
    model = MODELS[kind]()
    save_pretrained(model, None, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURE[kind]] and config["dtype"] == "float64"
    back, tokenizer = load_pretrained(tmp_path, "float64")
    assert tokenizer is None and type(back) is type(model)
    for name, value in params(model).items():
        np.testing.assert_array_equal(params(back)[name], value, err_msg=name)
    assert back.config.to_dict() == model.config.to_dict()
    np.testing.assert_array_equal(logits(back), logits(model))


@pytest.mark.parametrize("kind", ["gpt2", "llama", "qwen2-window"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_weights_stored_in_half_precision_come_back_rounded_to_nearest_even(kind, dtype,
                                                                          tmp_path):
    model = MODELS[kind]()
    save_pretrained(model, None, tmp_path, dtype=dtype)
    code = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]
    with SafetensorsFile(tmp_path / "model.safetensors") as stored:
        assert {stored.dtype(name) for name in stored.names()} == {code}
    back, _ = load_pretrained(tmp_path, "float32")
    for name, value in params(model).items():
        if dtype == "bfloat16":
            expected = bfloat16_to_float32(float32_to_bfloat16(value))
        else:
            expected = value.astype(dtype).astype(np.float32)
        np.testing.assert_array_equal(params(back)[name], expected, err_msg=name)
        assert params(back)[name].dtype == np.float32


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_sharded_weights_load_like_one_file_and_a_new_save_removes_stale_shards(kind,
                                                                                tmp_path):
    model = MODELS[kind]()
    save_pretrained(model, None, tmp_path, max_shard_size=600)
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 3 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == shards
    back, _ = load_pretrained(tmp_path, "float64")
    np.testing.assert_array_equal(logits(back), logits(model))
    save_pretrained(model, None, tmp_path)                       # one file again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


@given(kind=st.sampled_from(sorted(MODELS)), shard=st.integers(200, 5000),
       dtype=st.sampled_from(["float32", "float64"]))
def test_any_shard_size_round_trips(kind, shard, dtype, tmp_path_factory):
    model, path = MODELS[kind](), tmp_path_factory.mktemp("shards")
    save_pretrained(model, None, path, max_shard_size=shard, dtype=dtype)
    back, _ = load_pretrained(path, dtype)
    for name, value in params(model).items():
        np.testing.assert_array_equal(params(back)[name], value.astype(dtype), err_msg=name)


# ------------------------------------------------------------------ what cannot be saved
@pytest.mark.parametrize("kw, gpt2, neox", [
    (dict(positions="alibi"), "positions='alibi': GPT-2 learns its positions",
     "positions='alibi': GPT-NeoX rotates"),
    (dict(positions="sinusoidal"), "positions='sinusoidal'", "positions='sinusoidal'"),
    (dict(norm="post"), "norm='post'", "positions='learned'"),
    (dict(positions="rope", norm="post"), "positions='rope'", "norm='post'"),
    (dict(bias=False), "bias=False", "positions='learned'"),
    (dict(positions="rope", bias=False), "positions='rope'", "bias=False"),
])
def test_a_gpt_no_architecture_expresses_is_refused_saying_why_for_each(kw, gpt2, neox,
                                                                       tmp_path):
    with pytest.raises(NotExpressible) as info:
        save_pretrained(gpt(**kw), None, tmp_path)
    assert f"GPT2LMHeadModel: {gpt2}" in str(info.value)
    assert f"GPTNeoXForCausalLM: {neox}" in str(info.value)
    assert list(tmp_path.iterdir()) == []                       # nothing half-written


def test_a_model_without_a_hugging_face_form_is_refused(tmp_path):
    from numpyllm.nn import Transformer, TransformerConfig
    model = Transformer(TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, d_model=8,
                                          n_head=2, n_encoder_layers=1, n_decoder_layers=1),
                        rng=0)
    with pytest.raises(NotExpressible, match="numpyllm exports GPT, Llama"):
        save_pretrained(model, None, tmp_path)


def test_bad_save_arguments_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        save_pretrained(gpt(), None, tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="max_shard_size"):
        save_pretrained(gpt(), None, tmp_path, max_shard_size="lots")


# ------------------------------------------------------------------ what cannot be loaded
@pytest.fixture
def saved(tmp_path):
    """A saved Llama directory, and a function that rewrites its config.json."""
    save_pretrained(llama(), None, tmp_path)

    def edit(**changes):
        config = json.loads((tmp_path / "config.json").read_text())
        for key, value in changes.items():
            if value is _DELETE:
                config.pop(key, None)
            else:
                config[key] = value
        (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path, edit


_DELETE = object()


def load_error(path, match, error=PretrainedError):
    with pytest.raises(error) as info:
        load_pretrained(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert match in message, message
    return message


def test_directories_that_are_not_model_directories(tmp_path):
    load_error(tmp_path / "nowhere", "it does not exist")
    (tmp_path / "file").write_text("x")
    load_error(tmp_path / "file", "got a file")
    load_error(tmp_path, "holds no safetensors weights")
    (tmp_path / "model.safetensors").write_bytes(b"")
    load_error(tmp_path, "no config.json")


def test_pickled_weights_are_refused_without_being_opened(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    payload = tmp_path / "pytorch_model.bin"
    payload.write_bytes(b"\x80\x04cos\nsystem\n(S'touch pwned'\ntR.")   # a pickle that runs code
    message = load_error(tmp_path, "PyTorch pickles (pytorch_model.bin)")
    assert "runs code" in message and "safe_serialization=True" in message


@pytest.mark.parametrize("changes, match, error", [
    (dict(architectures=["BertModel"]), "numpyllm reads GPT2LMHeadModel, LlamaForCausalLM",
     PretrainedError),
    (dict(architectures="LlamaForCausalLM"), "architectures: expected a non-empty list",
     PretrainedError),
    (dict(architectures=_DELETE, model_type="qwen2"), "(Qwen2ForCausalLM, 26 tensors "
     "expected): missing (6): model.layers.0.self_attn.q_proj.bias", PretrainedError),
    (dict(model_type="gpt2"), "model_type: expected 'llama'", PretrainedError),
    (dict(hidden_size=8.0), "hidden_size: expected a positive integer, got 8.0",
     PretrainedError),
    (dict(num_hidden_layers=True), "num_hidden_layers: expected a positive integer",
     PretrainedError),
    (dict(num_hidden_layers=2 ** 41), "num_hidden_layers: expected a positive integer of "
     "at most 2**40", PretrainedError),
    (dict(num_hidden_layers=3), "model.layers: config.json says 3 layers (0..2), the "
     "weights hold 2 (0, 1)", PretrainedError),
    (dict(num_attention_heads=3), "the config is invalid", PretrainedError),
    (dict(rms_norm_eps=-1), "rms_norm_eps: expected a number > 0", PretrainedError),
    (dict(hidden_act="gelu"), "hidden_act: numpyllm can express only 'silu'", NotExpressible),
    (dict(rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}),
     "rope_type 'llama3' scales the positions", NotExpressible),
    (dict(rope_parameters=_DELETE, rope_scaling={"type": "linear", "factor": 2.0}),
     "rope_scaling", NotExpressible),
    (dict(attention_bias=True), "also puts a bias on o_proj", NotExpressible),
    (dict(mlp_bias=True), "numpyllm's SwiGLU has no biases", NotExpressible),
    (dict(quantization_config={"quant_method": "gptq"}), "quantized weights",
     NotExpressible),
])
def test_a_config_that_is_malformed_or_inexpressible_is_refused_naming_the_field(
        saved, changes, match, error):
    path, edit = saved
    edit(**changes)
    load_error(path, match, error)


def test_a_config_must_be_strict_json_of_bounded_size(saved):
    path, _ = saved
    (path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "x": NaN}')
    load_error(path, "expected strict JSON")
    (path / "config.json").write_text("[1, 2]")
    load_error(path, "expected a JSON object")
    (path / "config.json").write_bytes(b" " * (17 * 2 ** 20))
    load_error(path, "too large for the model's config")


def test_every_missing_unexpected_misshapen_and_integer_tensor_is_listed_at_once(saved):
    path, _ = saved
    tensors = load_file(path / "model.safetensors")
    del tensors["model.layers.0.mlp.up_proj.weight"], tensors["model.norm.weight"]
    tensors["model.layers.1.self_attn.q_proj.weight"] = np.zeros((8, 9), np.float32)
    tensors["model.layers.0.post_attention_layernorm.weight"] = np.zeros(8, np.int32)
    tensors["model.extra.weight"] = np.zeros(2, np.float32)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.zeros(1, np.float32)  # ignored
    save_file(tensors, path / "model.safetensors")
    message = load_error(path, "the weights do not fit config.json (LlamaForCausalLM, 20 "
                         "tensors expected): missing (2): model.layers.0.mlp.up_proj.weight, "
                         "model.norm.weight; unexpected (1): model.extra.weight; misshapen (1): "
                         "model.layers.1.self_attn.q_proj.weight [8, 9] (expected [8, 8]); "
                         "not floating-point (1): "
                         "model.layers.0.post_attention_layernorm.weight I32")
    assert "inv_freq" not in message


@pytest.mark.parametrize("changes, match", [
    (dict(use_parallel_residual=True), "use_parallel_residual: True cannot be expressed"),
    (dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                           "partial_rotary_factor": 0.25}), "rotates every dimension"),
    (dict(rope_parameters={"rope_type": "default", "rope_theta": 500.0}), "base 10000"),
    (dict(hidden_act="gelu"), "hidden_act: numpyllm can express only"),
    (dict(intermediate_size=40), "4 * hidden_size = 32"),
    (dict(attention_bias=False), "biases in every Linear or in none"),
])
def test_gpt_neox_settings_a_rope_gpt_lacks_are_refused(tmp_path, changes, match):
    save_pretrained(gpt(positions="rope"), None, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | changes))
    load_error(tmp_path, match, NotExpressible)


def test_a_tied_head_stored_twice_must_hold_the_embedding(tmp_path):
    save_pretrained(llama(tie_weights=True), None, tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
    save_file(tensors, tmp_path / "model.safetensors")
    load_pretrained(tmp_path)                                   # the same values: accepted
    tensors["lm_head.weight"][0, 0] += 1
    save_file(tensors, tmp_path / "model.safetensors")
    load_error(tmp_path, "lm_head.weight is stored, and config.json ties it to "
               "model.embed_tokens.weight (one tensor), but their values differ")


def test_gpt2s_own_release_without_the_transformer_prefix_loads(tmp_path):
    model = gpt()
    save_pretrained(model, None, tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    renamed = {n.removeprefix("transformer."): a for n, a in tensors.items()}
    renamed["h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), np.float32))   # old mask buffer
    save_file(renamed, tmp_path / "model.safetensors")
    back, _ = load_pretrained(tmp_path, "float64")
    np.testing.assert_array_equal(logits(back), logits(model))


@pytest.mark.parametrize("weight_map, match", [
    ({"model.norm.weight": "../model-00001-of-00002.safetensors"}, "expected plain "
     ".safetensors file names"),
    ({"model.norm.weight": "/etc/passwd"}, "expected plain .safetensors file names"),
    ({"model.norm.weight": "missing.safetensors"}, "names 1 shard(s) that are not files"),
    ({}, "weight_map: expected a non-empty JSON object"),
])
def test_a_hostile_or_wrong_index_is_refused_before_a_shard_is_opened(tmp_path, weight_map,
                                                                      match):
    save_pretrained(llama(), None, tmp_path, max_shard_size=2000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"] = weight_map if not weight_map else index["weight_map"] | weight_map
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    load_error(tmp_path, match)


def test_shards_that_disagree_with_their_index_are_listed(tmp_path):
    save_pretrained(llama(), None, tmp_path, max_shard_size=2000)
    index_path = tmp_path / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first, second = sorted(set(index["weight_map"].values()))[:2]
    moved = next(n for n, f in index["weight_map"].items() if f == first)
    index["weight_map"][moved] = second
    index_path.write_text(json.dumps(index))
    load_error(tmp_path, f"the weight_map puts '{moved}' in {second}, which lacks it")


def test_loading_reads_through_memory_maps_one_tensor_at_a_time(tmp_path):
    """The peak of Python-visible allocations while loading is the model itself plus a
    small constant: the file is never read whole into memory, bfloat16 included."""
    model = llama(n_embd=128, intermediate_size=384, n_head=4, vocab_size=2000, n_layer=4,
                  dtype="float32")
    size = sum(p.data.nbytes for _, p in model.named_parameters())
    for dtype in ("float32", "bfloat16"):
        save_pretrained(model, None, tmp_path, dtype=dtype)
        tracemalloc.start()
        try:
            load_pretrained(tmp_path, "float32")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert size > 2 ** 21 and peak < 1.15 * size + 2 ** 21, (dtype, peak, size)


def test_a_loaded_model_generates_and_trains(saved):
    from numpyllm.generate import generate
    path, _ = saved
    model, _ = load_pretrained(path, "float64")
    assert not model.training
    out = generate(model, IDS[0, :3], 5, greedy=True)
    assert out.shape == (8,) and (out < 17).all()
    model.train()
    _, loss = model(IDS, targets=IDS)
    loss.backward()
    assert all(np.isfinite(p.grad).all() and p.grad.any() for _, p in model.named_parameters())


def test_dropout_is_chosen_when_gpt2s_three_rates_differ(tmp_path):
    save_pretrained(gpt(dropout=0.1), None, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["attn_pdrop"] = 0.0
    (tmp_path / "config.json").write_text(json.dumps(config))
    load_error(tmp_path, "choose one with load_pretrained(..., dropout=p)", NotExpressible)
    model, _ = load_pretrained(tmp_path, dropout=0.05)
    assert model.config.dropout == 0.05


def test_load_pretrained_refuses_a_dtype_it_cannot_compute_in(saved):
    path, _ = saved
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_pretrained(path, "float16")
