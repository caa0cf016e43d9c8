"""LoRA (`numpyllm.nn.lora`, `numpyllm.functional.lora_linear`, `numpyllm.hub.peft`): the
adapted model starts equal to the base, merges exactly, gradient-checks, trains only the
adapters, and its files round-trip and refuse malformed input. PEFT itself is the oracle
in tests/oracle/test_peft_lora.py."""
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck, no_grad
from numpyllm.functional import linear, lora_linear
from numpyllm.hub import PretrainedError
from numpyllm.hub.peft import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_adapter, save_adapter
from numpyllm.hub.safetensors import load_file, save_file
from numpyllm.nn import (GPT, GPTConfig, Linear, Llama, LlamaConfig, LoRALinear, apply_lora,
                         disable_lora, enable_lora, load_lora_state_dict, lora_layers,
                         lora_state_dict, merge_lora, unload_lora, unmerge_lora)
from numpyllm.nn import TransformerEncoderConfig, TransformerEncoderModel
from numpyllm.optim import AdamW

IDS = np.random.default_rng(0).integers(0, 11, size=(2, 6))
GPT_TARGETS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def gpt(dtype="float64", seed=0, **kw):
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8,
                         dtype=dtype, **kw), rng=seed)


def llama(dtype="float64", seed=0):
    return Llama(LlamaConfig(vocab_size=11, block_size=8, n_layer=2, n_head=4, n_kv_head=2,
                             n_embd=8, intermediate_size=12, dtype=dtype), rng=seed)


def logits(model, ids=IDS):
    with no_grad():
        return model(ids)[0].data


def randomize_b(model, seed=1, std=0.5):
    rng = np.random.default_rng(seed)
    for _, layer in lora_layers(model):
        layer.lora_B.data = (std * rng.standard_normal(layer.lora_B.shape)).astype(
            layer.lora_B.dtype)
    return model


# --------------------------------------------------------------------------- the fused op
def test_lora_linear_equals_its_composition_from_primitives_and_gradients():
    rng = np.random.default_rng(0)

    def leaves():
        r = np.random.default_rng(5)
        return [Tensor(r.standard_normal(s), requires_grad=True)
                for s in ((2, 3, 4), (4, 5), (5,), (4, 2), (2, 5))]
    mask = (rng.random((2, 3, 4)) >= 0.5) * 2.0
    fused = leaves()
    y = lora_linear(*fused, 0.7, mask)
    composed = leaves()
    x, w, b, a, bb = composed
    z = linear(x, w, b) + ((x * Tensor(mask)) @ a @ bb) * 0.7
    np.testing.assert_allclose(y.data, z.data, rtol=1e-13, atol=1e-13)
    g = rng.standard_normal(y.shape)
    (y * Tensor(g)).sum().backward()
    (z * Tensor(g)).sum().backward()
    for f, c in zip(fused, composed):
        np.testing.assert_allclose(f.grad, c.grad, rtol=1e-12, atol=1e-12)


def test_lora_linear_gradcheck_of_x_A_B_with_a_frozen_base():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w, b = Tensor(rng.standard_normal((4, 6))), Tensor(rng.standard_normal(6))
    a = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    bb = Tensor(rng.standard_normal((3, 6)), requires_grad=True)
    assert gradcheck(lambda x, a, bb: lora_linear(x, w, b, a, bb, 2.0), x, a, bb)
    x.grad = a.grad = None
    lora_linear(x, w, b, a, bb, 2.0).sum().backward()
    assert w.grad is None and b.grad is None


def test_lora_linear_refuses_misshapen_factors():
    x, w = Tensor(np.ones((2, 4))), Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match="lora_A"):
        lora_linear(x, w, None, Tensor(np.ones((4, 2))), Tensor(np.ones((3, 5))), 1.0)
    with pytest.raises(ValueError, match="mask"):
        lora_linear(x, w, None, Tensor(np.ones((4, 2))), Tensor(np.ones((2, 5))), 1.0,
                    np.ones((2, 3)))


# --------------------------------------------------------------------------- the layer
def test_lora_layer_init_matches_peft_and_shares_the_base_parameters():
    base = Linear(64, 10, rng=0)
    layer = LoRALinear(base, r=4, alpha=8, rng=0)
    assert layer.weight is base.weight and layer.bias is base.bias
    assert layer.lora_A.shape == (64, 4) and layer.lora_B.shape == (4, 10)
    assert (layer.lora_B.data == 0).all() and layer.scale == 2.0
    assert np.abs(layer.lora_A.data).max() <= 1 / 8 and np.abs(layer.lora_A.data).max() > 0.1
    assert LoRALinear(base, r=4, alpha=8, use_rslora=True, rng=0).scale == 4.0


@pytest.mark.parametrize("family", ["gpt", "llama"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_adapted_model_starts_equal_to_the_base_exactly(family, dtype):
    base = (gpt if family == "gpt" else llama)(dtype)
    expected = logits(base)
    model = apply_lora(base, r=4, alpha=8, rng=0)
    assert len(lora_layers(model)) == (4 if family == "gpt" else 7) * 2
    np.testing.assert_array_equal(logits(model), expected)


def test_merged_equals_unmerged_and_unmerge_restores_the_weights():
    model = randomize_b(apply_lora(gpt(), r=3, alpha=5, rng=0))
    weights = {n: p.data.copy() for n, p in model.named_parameters()}
    expected = logits(model)
    merge_lora(model)
    merged = {n: np.abs(p.data).max() for n, p in model.named_parameters()}
    assert all(layer.merged for _, layer in lora_layers(model))
    np.testing.assert_allclose(logits(model), expected, rtol=1e-12, atol=1e-12)
    merge_lora(model)                                        # a second merge does nothing
    np.testing.assert_allclose(logits(model), expected, rtol=1e-12, atol=1e-12)
    unmerge_lora(model)
    for name, p in model.named_parameters():   # to an ulp or so of the merged weights
        ulp = np.finfo(np.float64).eps * merged[name]
        np.testing.assert_allclose(p.data, weights[name], rtol=0, atol=2 * ulp, err_msg=name)
    np.testing.assert_allclose(logits(model), expected, rtol=1e-12, atol=1e-12)


def test_float32_merge_agrees_to_float32_rounding():
    model = randomize_b(apply_lora(gpt("float32"), r=3, alpha=5, rng=0))
    expected = logits(model)
    merge_lora(model)
    np.testing.assert_allclose(logits(model), expected, rtol=1e-5, atol=1e-5)


def test_disable_lora_gives_the_base_model_and_restores_on_exit():
    base = logits(gpt())
    model = randomize_b(apply_lora(gpt(), rng=0))
    adapted = logits(model)
    assert np.abs(adapted - base).max() > 1e-3
    with disable_lora(model):
        np.testing.assert_array_equal(logits(model), base)
    np.testing.assert_array_equal(logits(model), adapted)
    disable_lora(model)                                      # without `with`: it stays off
    np.testing.assert_array_equal(logits(model), base)
    enable_lora(model)
    np.testing.assert_array_equal(logits(model), adapted)
    merge_lora(model)
    with pytest.raises(ValueError, match="unmerge_lora first"):
        disable_lora(model)


def test_only_the_adapters_train_and_the_optimizer_holds_state_for_them_alone():
    model = apply_lora(gpt(), r=2, alpha=4, rng=0)
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert len(trainable) == 2 * len(lora_layers(model))
    opt = AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(3):
        model.zero_grad()
        _, loss = model(IDS, targets=IDS)
        loss.backward()
        for name, p in model.named_parameters():
            assert (p.grad is None) == (name in frozen), name
        opt.step()
    params = list(model.parameters())
    assert {i for i in opt.state} == {i for i, p in enumerate(params) if p.requires_grad}
    for name, p in model.named_parameters():
        if name in frozen:
            np.testing.assert_array_equal(p.data, frozen[name], err_msg=name)
    assert all(np.abs(layer.lora_B.data).max() > 0 for _, layer in lora_layers(model))


def test_gradcheck_of_a_whole_model_with_adapters():
    model = randomize_b(apply_lora(llama(), r=2, alpha=3, rng=0), std=0.3)
    params = [p for p in model.parameters() if p.requires_grad]
    assert gradcheck(lambda *ps: model(IDS, targets=IDS)[1], *params)


def test_dropout_acts_on_the_adapter_input_only_and_not_in_eval():
    base = Linear(6, 4, rng=0, dtype=np.float64)
    layer = LoRALinear(base, r=2, alpha=2, dropout=0.5, rng=np.random.default_rng(3))
    x = Tensor(np.random.default_rng(4).standard_normal((5, 6)))
    np.testing.assert_array_equal(layer(x).data, base(x).data)     # B = 0: dropout is moot
    layer.lora_B.data[:] = 1.0
    layer.rng = np.random.default_rng(7)
    y = layer(x).data
    mask = np.random.default_rng(7).random((5, 6)) >= 0.5
    expected = base(x).data + ((x.data * mask * 2.0) @ layer.lora_A.data) @ layer.lora_B.data
    np.testing.assert_allclose(y, expected, rtol=1e-13)
    layer.eval()
    np.testing.assert_allclose(layer(x).data, base(x).data + x.data @ layer.delta(), rtol=1e-12)


def test_llama_cached_decoding_sees_the_adapters():
    model = randomize_b(apply_lora(llama(), r=2, alpha=4, rng=0))
    full = logits(model)
    cache = model.new_cache(8)
    with no_grad():
        a = model.forward_cached(IDS[:, :4], cache)
        b = model.forward_cached(IDS[:, 4:], cache)
    np.testing.assert_allclose(np.concatenate([a.data, b.data], axis=1), full, rtol=1e-10,
                               atol=1e-10)


def test_apply_lora_refuses_bad_settings_and_patterns_that_match_nothing():
    with pytest.raises(ValueError, match=r"\['attn.q_proj'\] match no Linear"):
        apply_lora(gpt(), targets=["attn.c_attn", "attn.q_proj"])
    for bad in ({"r": 0}, {"r": True}, {"alpha": "16"}, {"alpha": float("nan")},
                {"dropout": 1.0}):
        with pytest.raises(ValueError):
            apply_lora(gpt(), **bad)
    with pytest.raises(TypeError):
        apply_lora(gpt(), targets=[3])
    model = apply_lora(gpt(), targets=["c_attn"], rng=0)
    with pytest.raises(ValueError, match="already carry LoRA"):
        apply_lora(model, targets=["c_attn"])
    encoder = TransformerEncoderModel(TransformerEncoderConfig(
        vocab_size=7, d_model=8, n_head=2, n_layers=1, d_ff=12, max_len=5), rng=0)
    with pytest.raises(ValueError, match="no default targets"):
        apply_lora(encoder)
    with pytest.raises(ValueError, match="no LoRA layers"):
        merge_lora(gpt())


def test_target_patterns_suffix_wildcard_and_regex():
    names = lambda m: [n for n, _ in lora_layers(m)]                          # noqa: E731
    assert names(apply_lora(gpt(), targets=["c_proj"], rng=0)) == ["h.0.attn.c_proj",
                                                                   "h.0.mlp.c_proj",
                                                                   "h.1.attn.c_proj",
                                                                   "h.1.mlp.c_proj"]
    assert names(apply_lora(gpt(), targets=["h.1.*"], rng=0)) == [
        "h.1.attn.c_attn", "h.1.attn.c_proj", "h.1.mlp.c_fc", "h.1.mlp.c_proj"]
    assert names(apply_lora(gpt(), targets=[re.compile(r"h\.0\.mlp\..*")], rng=0)) == [
        "h.0.mlp.c_fc", "h.0.mlp.c_proj"]


def test_state_dict_round_trip_and_unload():
    model = randomize_b(apply_lora(gpt(), r=2, alpha=4, rng=0))
    state = lora_state_dict(model)
    assert sorted(state)[:2] == ["h.0.attn.c_attn.lora_A", "h.0.attn.c_attn.lora_B"]
    other = apply_lora(gpt(), r=2, alpha=4, rng=9)
    load_lora_state_dict(other, state)
    np.testing.assert_array_equal(logits(other), logits(model))
    with pytest.raises(ValueError, match="missing"):
        load_lora_state_dict(other, {k: v for k, v in state.items() if "h.1" not in k})
    expected = logits(model)
    unload_lora(model)
    assert not lora_layers(model)
    assert sorted(dict(model.named_parameters())) == sorted(dict(gpt().named_parameters()))
    np.testing.assert_allclose(logits(model), expected, rtol=1e-12, atol=1e-12)


def test_parameter_counts():
    model = apply_lora(gpt(), r=8, alpha=16, targets=["attn.c_attn"], rng=0)
    assert model.num_parameters(trainable=True) == 2 * 8 * (8 + 24)


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("family", ["gpt", "llama", "neox"])
def test_adapter_files_round_trip(family, tmp_path):
    make = {"gpt": gpt, "llama": llama,
            "neox": lambda: gpt(positions="rope")}[family]
    model = randomize_b(apply_lora(make(), r=3, alpha=7, rng=0, use_rslora=True))
    save_adapter(model, tmp_path)
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 3 and config["use_rslora"] is True
    names = sorted(load_file(tmp_path / ADAPTER_WEIGHTS))
    prefix = {"gpt": "base_model.model.transformer.h.0.attn.c_attn",
              "llama": "base_model.model.model.layers.0.mlp.down_proj",
              "neox": "base_model.model.gpt_neox.layers.0.attention.dense"}[family]
    assert f"{prefix}.lora_A.weight" in names and f"{prefix}.lora_B.weight" in names
    back = load_adapter(make(), tmp_path)
    np.testing.assert_array_equal(logits(back), logits(model))
    assert back.num_parameters(trainable=True) == model.num_parameters(trainable=True)
    again = load_adapter(randomize_b(apply_lora(make(), r=3, alpha=1, rng=5,
                                                use_rslora=True), seed=9), tmp_path)
    np.testing.assert_array_equal(logits(again), logits(model))


def test_saved_target_modules_are_short_when_unambiguous(tmp_path):
    save_adapter(apply_lora(gpt(), targets=["attn.c_proj"], rng=0), tmp_path / "a")
    assert json.loads((tmp_path / "a" / ADAPTER_CONFIG).read_text())["target_modules"] == [
        "transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"]
    save_adapter(apply_lora(gpt(), targets=["c_attn", "c_fc"], rng=0), tmp_path / "b")
    assert json.loads((tmp_path / "b" / ADAPTER_CONFIG).read_text())["target_modules"] == [
        "c_attn", "c_fc"]


@pytest.fixture
def adapter(tmp_path):
    save_adapter(randomize_b(apply_lora(gpt(), r=2, alpha=4, targets=["c_attn"], rng=0)),
                 tmp_path)
    return tmp_path


def _edit_config(directory, **changes):
    path = directory / ADAPTER_CONFIG
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DELETE:
            del config[key]
        else:
            config[key] = value
    path.write_text(json.dumps(config))


_DELETE = object()


@pytest.mark.parametrize("changes, field", [
    ({"r": True}, "r"), ({"r": 2.0}, "r"), ({"r": _DELETE}, "r"),
    ({"lora_alpha": "4"}, "lora_alpha"),
    ({"lora_alpha": -1}, "lora_alpha"), ({"lora_dropout": 1.5}, "lora_dropout"),
    ({"use_rslora": "yes"}, "use_rslora"), ({"peft_type": "IA3"}, "peft_type"),
    ({"use_dora": True}, "use_dora"), ({"bias": "all"}, "bias"),
    ({"rank_pattern": {"c_attn": 4}}, "rank_pattern"), ({"modules_to_save": ["lm_head"]},
                                                          "modules_to_save"),
    ({"target_modules": []}, "target_modules"), ({"target_modules": "(("}, "target_modules"),
    ({"target_modules": ["c_attn", "c_fc"]}, "target_modules"),
    ({"r": 3}, "r = 3"),
])
def test_malformed_configs_are_one_clear_error(adapter, changes, field):
    _edit_config(adapter, **changes)
    with pytest.raises(PretrainedError, match=re.escape(field)) as info:
        load_adapter(gpt(), adapter)
    assert "adapter_" in str(info.value)


def test_malformed_json_and_tensors_are_one_clear_error(adapter):
    (adapter / ADAPTER_CONFIG).write_text('{"r": 2, "r": 3}')
    with pytest.raises(PretrainedError, match=ADAPTER_CONFIG):
        load_adapter(gpt(), adapter)
    (adapter / ADAPTER_CONFIG).write_text("[1, 2]")
    with pytest.raises(PretrainedError, match="JSON object"):
        load_adapter(gpt(), adapter)


@pytest.mark.parametrize("edit, message", [
    (lambda t, k: t.__setitem__(k, t[k][:1]), "expected shape"),
    (lambda t, k: t.__setitem__(k, np.full_like(t[k], np.nan)), "NaN"),
    (lambda t, k: t.__setitem__(k, t[k].astype(np.int32)), "floating-point"),
    (lambda t, k: t.pop(k), "is missing"),
    (lambda t, k: t.__setitem__(k.replace("c_attn", "c_zzz"), t[k]), "not a LoRA tensor"),
    (lambda t, k: t.__setitem__("lm_head.weight", t[k]), "not a LoRA tensor"),
])
def test_malformed_tensors_are_one_clear_error(adapter, edit, message):
    tensors = load_file(adapter / ADAPTER_WEIGHTS)
    edit(tensors, "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")
    save_file(tensors, adapter / ADAPTER_WEIGHTS)
    model = gpt()
    before = model.state_dict()
    with pytest.raises(PretrainedError, match=message) as info:
        load_adapter(model, adapter)
    assert ADAPTER_WEIGHTS in str(info.value)
    assert not lora_layers(model)                         # nothing written before the checks
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_loading_into_a_model_with_other_adapters_is_refused(adapter):
    with pytest.raises(PretrainedError, match="unload_lora first"):
        load_adapter(apply_lora(gpt(), r=4, targets=["c_attn"], rng=0), adapter)


# --------------------------------------------------------------------------- properties
@settings(max_examples=20, deadline=None)
@given(r=st.integers(1, 6), alpha=st.floats(0.5, 64), rslora=st.booleans(),
       targets=st.sets(st.sampled_from(GPT_TARGETS), min_size=1), seed=st.integers(0, 99))
def test_property_start_equals_base_merge_is_exact_and_counts_add_up(r, alpha, rslora,
                                                                     targets, seed):
    base = logits(gpt(seed=seed))
    model = apply_lora(gpt(seed=seed), r=r, alpha=alpha, targets=sorted(targets),
                       use_rslora=rslora, rng=seed)
    np.testing.assert_array_equal(logits(model), base)
    layers = lora_layers(model)
    assert len(layers) == 2 * len(targets)
    assert model.num_parameters(trainable=True) == sum(
        r * (layer.in_features + layer.out_features) for _, layer in layers)
    randomize_b(model, seed)
    adapted = logits(model)
    merge_lora(model)
    np.testing.assert_allclose(logits(model), adapted, rtol=1e-11, atol=1e-11)
    unmerge_lora(model)
    with disable_lora(model):
        np.testing.assert_allclose(logits(model), base, rtol=1e-12, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(r=st.integers(1, 4), targets=st.sets(st.sampled_from(LLAMA_TARGETS), min_size=1),
       seed=st.integers(0, 99))
def test_property_llama_adapter_files_round_trip(tmp_path_factory, r, targets, seed):
    directory = tmp_path_factory.mktemp("adapter")
    model = randomize_b(apply_lora(llama(seed=seed), r=r, alpha=2 * r, targets=sorted(targets),
                                   rng=seed), seed)
    save_adapter(model, directory)
    np.testing.assert_array_equal(logits(load_adapter(llama(seed=seed), directory)),
                                  logits(model))


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_a_lora_run_resumes_exactly_with_its_base_frozen(tmp_path, dropout):
    """A checkpoint records the adapters (r, alpha, dropout, the layers adapted, rsLoRA)
    and which parameters train; `build_model` puts the adapters back before loading, so a
    resumed LoRA run is the uninterrupted one, step for step, and trains the same ones."""
    from numpyllm.training import TrainConfig, Trainer
    from numpyllm.training.checkpoint import load_checkpoint, load_model
    tokens = np.tile(np.arange(11), 40)
    cfg = TrainConfig(batch_size=4, max_iters=30, warmup_iters=2, lr_decay_iters=30,
                      learning_rate=1e-2, eval_iters=2)

    def trainer():
        model = apply_lora(gpt("float32", dropout=0.1), r=2, alpha=3, dropout=dropout,
                           targets=["attn.c_attn", "h.1.mlp.c_fc"], use_rslora=True, rng=1)
        model.ln_f.requires_grad_(True)           # a layer that trains too (modules_to_save)
        return Trainer(model, tokens, tokens, cfg)
    straight = trainer()
    losses = [straight.train_step()["loss"] for _ in range(12)]
    first = trainer()
    for _ in range(6):
        first.train_step()
    first.save(tmp_path)
    record = load_checkpoint(tmp_path).model_config
    assert record["lora"] == [{"r": 2, "alpha": 3.0, "dropout": dropout, "use_rslora": True,
                               "merged": False, "targets": ["h.0.attn.c_attn",
                                                            "h.1.attn.c_attn", "h.1.mlp.c_fc"]}]
    resumed, _ = Trainer.resume(tmp_path, tokens, tokens)
    trains = sorted(n for n, p in resumed.model.named_parameters() if p.requires_grad)
    assert trains == sorted(n for n, p in first.model.named_parameters() if p.requires_grad)
    assert "h.0.attn.c_attn.weight" not in trains and "ln_f.weight" in trains
    assert [resumed.train_step()["loss"] for _ in range(6)] == losses[6:]
    model, _, _ = load_model(tmp_path)                      # for use: the same model
    assert len(lora_layers(model)) == 3


@pytest.mark.parametrize("field, value", [
    ("lora", [{"r": 0, "alpha": 1, "dropout": 0, "use_rslora": False, "merged": False,
               "targets": ["h.0.attn.c_attn"]}]),
    ("lora", [{"r": 2, "alpha": 1, "dropout": 0, "use_rslora": False, "merged": False,
               "targets": ["h.9.attn.c_attn"]}]),
    ("lora", [{"r": 2, "alpha": 1, "dropout": 0, "use_rslora": False, "merged": False,
               "targets": ["../etc"]}]),
    ("lora", {"r": 2}),
    ("trainable", ["no.such.param"]),
    ("trainable", "ln_f.weight"),
])
def test_a_hostile_lora_record_is_a_checkpoint_error(tmp_path, field, value):
    from numpyllm.training.checkpoint import CheckpointError, load_model, save_checkpoint
    model = apply_lora(gpt("float32"), r=2, alpha=4, targets=["attn.c_attn"], rng=0)
    step_dir = save_checkpoint(tmp_path, step=1, model=model)
    manifest = json.loads((step_dir / "manifest.json").read_text())
    manifest["model"][field] = value
    (step_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=f"model.{field}"):
        load_model(tmp_path)
