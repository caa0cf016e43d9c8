"""Quantized token tables (``quantize(..., embeddings=True)``): the lookup returns exactly
the dequantized rows and reads no others, the tied head equals the product with the
dequantized table, the blocks are ggml's, nothing float of the table's size is ever
allocated, QLoRA trains through the quantized tied head, checkpoints round-trip bit for
bit and refuse damaged records, and the command line quantizes, evaluates and samples."""
import json
import shutil
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numpyllm.autograd import Tensor, gradcheck_report
from numpyllm.checks import all_checks
from numpyllm.generate import generate
from numpyllm.hub.safetensors import load_file, save_file
from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig
from numpyllm.nn.layers import Embedding
from numpyllm.nn.lora import apply_lora, lora_layers
from numpyllm.optim import AdamW
from numpyllm.quantize import (FORMATS, QuantizedBackwardError, QuantizedEmbedding,
                               QuantizedWeight, quantization_record, quantize,
                               quantized_embeddings)
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training.checkpoint import CheckpointError, _sha256, load_model, save_checkpoint

FMTS = ["int8", "q8_0", "q4_0"]
TEXT = "ROMEO: But soft, what light through yonder window breaks?\n" * 30


def _rewrite(step_dir, tensors=None, record=None):
    """Replace the tensors and/or the quantization record and re-sign the manifest (as
    tests/quantize/test_checkpoint.py): a file made hostile on purpose."""
    manifest = json.loads((step_dir / "manifest.json").read_text())
    if tensors is not None:
        save_file(tensors, step_dir / "model.safetensors")
    if record is not None:
        manifest["model"]["quantization"] = record
    f = step_dir / "model.safetensors"
    manifest["files"]["model.safetensors"] = {"bytes": f.stat().st_size, "sha256": _sha256(f)}
    (step_dir / "manifest.json").write_text(json.dumps(manifest))


def _model(kind, seed=0, **kw):
    if kind == "gpt":
        return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=64,
                             **kw), rng=seed)
    return Llama(LlamaConfig(vocab_size=40, block_size=16, n_layer=2, n_head=4, n_kv_head=2,
                             n_embd=64, intermediate_size=96, **kw), rng=seed)


def _table(model):
    return model.wte if isinstance(model, GPT) else model.embed_tokens


# ---------------------------------------------------------------- lookup and tied head
@pytest.mark.parametrize("kind", ["gpt", "llama"])
@pytest.mark.parametrize("fmt", FMTS)
def test_lookup_is_the_dequantized_rows_exactly(kind, fmt):
    model = quantize(_model(kind), fmt, embeddings=True)
    table = _table(model)
    assert isinstance(table, QuantizedEmbedding) and table.format == fmt
    assert quantization_record(model)["embeddings"] == [
        "wte" if kind == "gpt" else "embed_tokens"]
    ids = np.array([[0, 39, 5, 5], [7, 1, 0, 12]])
    E = table.qweight.dequantize()                                       # [V, C]
    np.testing.assert_array_equal(model.token_embeddings(ids).data, E[ids])
    np.testing.assert_array_equal(table.lookup(ids[0, 1]), E[39])        # a scalar id
    with pytest.raises(IndexError, match="out of range"):
        table.lookup(np.array([40]))
    with pytest.raises(TypeError, match="integers"):
        table.lookup(np.array([1.0]))
    with pytest.raises(AttributeError, match="no float table"):
        table.weight


@pytest.mark.parametrize("kind", ["gpt", "llama"])
@pytest.mark.parametrize("fmt", FMTS)
def test_tied_head_is_the_dequantized_tables_product(kind, fmt):
    """The model with the quantized table == the same (quantized-layer) model whose float
    table is set to the dequantized one: lookup and tied head both, to float rounding."""
    a = quantize(_model(kind), fmt, embeddings=True)
    b = quantize(_model(kind), fmt)                                      # table float
    _table(b).weight.data[...] = _table(a).qweight.dequantize()
    idx = np.random.default_rng(1).integers(0, 40, (2, 12))
    np.testing.assert_allclose(a(idx)[0].data, b(idx)[0].data, rtol=1e-5, atol=1e-5)
    x = np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)
    expected = x @ _table(a).qweight.dequantize().T
    for tile in (None, 1, 7):                                            # tiles of rows
        _table(a).tile = tile
        np.testing.assert_allclose(_table(a).tied_logits(Tensor(x)).data, expected,
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(_table(a).tied_logits_array(x), expected,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_generation_with_the_kv_cache(kind):
    """The decode step reads one row per token and multiplies by the quantized table: the
    cached path gives the tokens a full recomputation gives."""
    model = quantize(_model(kind), "q4_0", embeddings=True).eval()
    prompt = np.array([[1, 2, 3]])
    cached = generate(model, prompt, 8, greedy=True, use_cache=True)
    full = generate(model, prompt, 8, greedy=True, use_cache=False)
    assert np.array_equal(cached, full) and cached.shape == (1, 11)


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_untied_head_follows_the_head_flag(kind):
    idx = np.array([[1, 2, 3]])
    for head in (False, True):
        model = quantize(_model(kind, tie_weights=False), "q8_0", embeddings=True, head=head)
        assert isinstance(_table(model), QuantizedEmbedding)
        assert ("lm_head" in quantization_record(model)["layers"]) == head
        assert hasattr(model.lm_head, "qweight") == head
        cache = model.new_cache()                                       # the decode path too
        np.testing.assert_allclose(model.forward_cached(idx, cache).data, model(idx)[0].data,
                                   rtol=1e-4, atol=1e-5)
    assert model.wpe.weight.dtype == np.float32 if kind == "gpt" else True   # positions float


# ---------------------------------------------------------------- layout and memory
@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
def test_blocks_are_ggmls_token_embd_rows(fmt):
    """The table's codes and scales are to_ggml's blocks of the same [V, C] matrix, and
    each token's row is its own contiguous run of C/32 blocks (ggml's token_embd, ne =
    [C, V]: ggml_get_rows reads one row's bytes)."""
    table = Embedding(40, 64, rng=np.random.default_rng(3), std=1.0)
    emb = QuantizedEmbedding.from_embedding(table, fmt)
    m = FORMATS[fmt]
    direct = QuantizedWeight.from_float(table.weight.data, fmt)
    raw = m.to_ggml(emb.qweight.q, emb.qweight.scale)
    assert np.array_equal(raw, m.to_ggml(direct.q, direct.scale))
    assert raw.shape == (40, 64 // 32 * m.BLOCK_BYTES)
    for r in (0, 17, 39):                                  # a row alone: the same bytes
        q, d = m.quantize(table.weight.data[r:r + 1])
        assert np.array_equal(raw[r:r + 1], m.to_ggml(q, d))
        np.testing.assert_array_equal(emb.lookup(np.array([r]))[0],
                                      m.dequantize(*m.from_ggml(raw[r:r + 1]))[0])


@settings(max_examples=40, deadline=None)
@given(fmt=st.sampled_from(FMTS), data=st.data())
def test_the_lookup_never_reads_other_rows(fmt, data):
    """Poison every row the ids do not name (garbage codes, NaN scales): the lookup of the
    named rows does not change, bit for bit."""
    emb = QuantizedEmbedding.from_embedding(Embedding(12, 32, rng=np.random.default_rng(0)),
                                            fmt)
    ids = np.array(data.draw(st.lists(st.integers(0, 11), min_size=1, max_size=8)))
    before = emb.lookup(ids)
    other = np.setdiff1d(np.arange(12), ids)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    emb.qweight.q[other] = rng.integers(0, 256, emb.qweight.q[other].shape).astype(np.uint8) \
        .view(emb.qweight.q.dtype)
    emb.qweight.scale[other] = np.nan
    after = emb.lookup(ids)
    assert np.array_equal(before.view(np.uint32), after.view(np.uint32))


def test_no_float_table_is_ever_materialised():
    """GPT-2's table in Q4_0 (a float copy would be 154 MB): looking up a decode step's
    tokens allocates about their rows, the tied head one ~4 MB tile and the logits."""
    V, C = 50257, 768
    rng = np.random.default_rng(0)
    qw = QuantizedWeight.from_arrays("q4_0", (V, C), rng.integers(0, 256, (V, C // 2), np.uint8),
                                     np.full((V, C // 32), 0.01, np.float16))
    emb = QuantizedEmbedding(qw)
    x = rng.standard_normal((1, 1, C)).astype(np.float32)
    tracemalloc.start()
    try:
        rows = emb.lookup(np.array([[5, 50256]]))                       # [1, 2, C]
        _, lookup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        logits = emb.tied_logits_array(x)                               # [1, 1, V]
        _, head_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows.shape == (1, 2, C) and logits.shape == (1, 1, V)
    assert lookup_peak < 64 * C * 4, lookup_peak                        # a few rows' worth
    assert head_peak < 16 * 2**20, head_peak                            # vs 154 MB float


# ---------------------------------------------------------------- gradients
def test_backward_is_refused_without_adapters():
    model = quantize(_model("gpt"), "q8_0", embeddings=True)
    assert not any(p.requires_grad is False for p in model.ln_f.parameters())
    idx = np.array([[1, 2, 3, 4]])
    _, loss = model(idx, targets=idx)
    with pytest.raises(QuantizedBackwardError, match="LoRA adapters"):
        loss.backward()
    x = Tensor(np.ones((2, 64), np.float32), requires_grad=True)       # the head alone
    with pytest.raises(QuantizedBackwardError, match="LoRA adapters"):
        model.wte.tied_logits(x).sum().backward()


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_qlora_trains_through_the_quantized_tied_head(kind):
    """Adapters in the first block only: every gradient enters through the quantized tied
    head, so the first block's adapter receiving one proves the head passes dL/dx; a few
    AdamW steps lower the loss; the table itself never changes."""
    model = quantize(_model(kind), "q4_0", embeddings=True)
    targets = ["h.0.attn.c_attn"] if kind == "gpt" else ["layers.0.self_attn.v_proj"]
    apply_lora(model, r=4, alpha=8, targets=targets, rng=0)
    table = _table(model)
    assert table.adapter_path
    codes = table.qweight.q.copy()
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == 2                                             # A and B only
    idx = np.random.default_rng(0).integers(0, 40, (4, 12))
    opt = AdamW(params, lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        _, loss = model(idx[:, :-1], targets=idx[:, 1:])
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < losses[0] - 0.05, losses
    assert np.abs(lora_layers(model)[0][1].lora_B.data).max() > 0
    assert np.array_equal(table.qweight.q, codes)


def test_the_registered_gradient_checks_pass():
    checks = {c.name: c for c in all_checks()}
    for name in ("QuantizedEmbedding tied head (q4_0, adapter path)",
                 "GPT QLoRA, quantized tied embedding (q8_0)"):
        case = checks[name].make(np.random.default_rng(0))
        assert gradcheck_report(case.fn, *case.inputs).ok, name


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
def test_embedding_size_not_a_multiple_of_32(fmt):
    model = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=48), rng=0)
    with pytest.raises(ValueError, match=r"wte \[40, 48\]: .*blocks of 32 along the "
                                         r"embedding dimension"):
        quantize(model, fmt, embeddings=True)
    assert isinstance(model.wte, Embedding)                             # left untouched
    assert not hasattr(model.h[0].attn.c_attn, "qweight")


def test_other_refusals():
    model = quantize(_model("gpt"), "int8", embeddings=True)
    with pytest.raises(ValueError, match="already quantized"):
        quantize(model, "int8", embeddings=True)
    with pytest.raises(ValueError, match="already quantized"):
        quantize(model, "int8")
    with pytest.raises(ValueError, match="LLM.int8"):
        quantize(_model("gpt"), "int8", embeddings=True, threshold=6.0)
    assert not quantized_embeddings(quantize(_model("gpt"), "q4_0"))   # opt-in only


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("kind", ["gpt", "llama"])
@pytest.mark.parametrize("fmt", FMTS)
def test_round_trip_is_bit_exact(tmp_path, kind, fmt):
    model = quantize(_model(kind), fmt, embeddings=True)
    save_checkpoint(tmp_path / "ckpt", step=1, model=model)
    loaded, _, ckpt = load_model(tmp_path / "ckpt")
    name = "wte" if kind == "gpt" else "embed_tokens"
    assert ckpt.model_config["quantization"]["embeddings"] == [name]
    a, b = _table(model), _table(loaded)
    assert isinstance(b, QuantizedEmbedding) and b.format == fmt
    assert np.array_equal(a.qweight.q, b.qweight.q)
    assert np.array_equal(a.qweight.scale.view(np.uint8), b.qweight.scale.view(np.uint8))
    idx = np.array([[3, 1, 4, 1, 5]])
    assert np.array_equal(model(idx)[0].data, loaded(idx)[0].data)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("qemb") / "ckpt"
    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=32), rng=0)
    save_checkpoint(root, step=1, model=quantize(model, "q4_0", embeddings=True),
                    tokenizer=CharTokenizer.from_text(TEXT))
    return root


def _record(root):
    return json.loads((root / "step-000001" / "manifest.json").read_text())["model"][
        "quantization"]


@pytest.mark.parametrize("change,message", [
    (lambda r: {**r, "embeddings": ["h.0.ln_1"]}, "embeddings: expected a non-empty list"),
    (lambda r: {**r, "embeddings": ["wpe"]}, "token tables"),
    (lambda r: {**r, "embeddings": "wte"}, "embeddings: expected"),
    (lambda r: {**r, "embeddings": []}, "embeddings: expected"),
    (lambda r: {**r, "embeddings": ["wte", "wte"]}, "distinct"),
    (lambda r: {**r, "embeddings": [{"__class__": "os.system"}]}, "embeddings: expected"),
    (lambda r: {**r, "embeddings": ["h.wte"]}, "wte.weight: expected shape .* no such tensor"),
    (lambda r: {**r, "format": "int8", "threshold": 6.0}, "threshold with quantized"),
    (lambda r: {k: v for k, v in r.items() if k != "embeddings"}, "do not fit"),
])
def test_damaged_records_are_refused(template, tmp_path, change, message):
    root = tmp_path / "ckpt"
    shutil.copytree(template, root)
    _rewrite(root / "step-000001", record=change(_record(root)))
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("damage,message", [
    (lambda t: t.update({"wte.weight.q": t["wte.weight.q"][:, :-1]}), "got \\[40, 30\\]: the weights do"),
    (lambda t: t.update({"wte.weight.q": t["wte.weight.q"][:-1]}), "got \\[39, 32\\]: the weights"),
    (lambda t: t["wte.weight.scale"].__setitem__((0, 0), np.inf), "NaN or infinite"),
    (lambda t: t.pop("wte.weight.scale"), "expected both tensors of a quantized embedding"),
    (lambda t: t.update({"wte.weight": np.zeros((40, 32), np.float32)}), "no float table"),
])
def test_damaged_tensors_are_refused(template, tmp_path, damage, message):
    root = tmp_path / "ckpt"
    shutil.copytree(template, root)
    tensors = load_file(root / "step-000001" / "model.safetensors")
    damage(tensors)
    _rewrite(root / "step-000001", tensors=tensors)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(root)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- the command line
def test_cli_embeddings_quantize_eval_sample_and_refusals(tmp_path, capsys, one_line_error):
    from numpyllm.cli import main
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--n_layer", "1",
                 "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--batch_size",
                 "4", "--max_iters", "2", "--eval_interval", "2", "--eval_iters", "1",
                 "--samples", "0", "--no_plot", "--quiet"]) == 0
    out = tmp_path / "q"
    assert main(["quantize", "--ckpt", str(tmp_path / "run" / "ckpt"), "--format", "q4_0",
                 "--embeddings", "--out", str(out)]) == 0
    assert "positions kept float" in capsys.readouterr().out
    model, _, ckpt = load_model(out)
    assert isinstance(model.wte, QuantizedEmbedding)
    assert main(["eval", "--ckpt", str(out), "--split", "val"]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["sample", "--ckpt", str(out), "--prompt", "ROMEO", "--max_new_tokens", "5",
                 "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO")
    wide = tmp_path / "wide"                       # n_embd 48: no whole blocks of 32
    save_checkpoint(wide, step=1, model=GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1,
                                                      n_head=2, n_embd=48), rng=0),
                    tokenizer=CharTokenizer.from_text(TEXT))
    one_line_error(capsys, ["quantize", "--ckpt", str(wide), "--format", "q8_0", "--embeddings",
                            "--out", str(tmp_path / "o")], "wte [40, 48]", "multiple of 32")


def test_restore_names_only_token_tables():
    """Defence in depth behind the size checks: restore_quantized itself refuses a record
    naming anything but a token table of the model."""
    from numpyllm.quantize.checkpoint import restore_quantized
    model = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=32), rng=0)
    with pytest.raises(ValueError, match="'h.0.wte' is not a token table of this GPT"):
        restore_quantized(model, {"format": "q8_0", "layers": [], "embeddings": ["h.0.wte"]}, {})


HOSTILE = st.sampled_from([
    np.zeros((0,), np.uint8), np.zeros((2, 2, 2), np.uint8), np.full((40, 16), 255, np.uint8),
    np.full((40, 1), np.inf, np.float16), np.zeros((40, 1), np.float16), np.array(True),
    np.zeros((40, 16), np.int64), np.full((40, 1), 65504, np.float16),
    np.zeros((10 ** 3, 16), np.uint8), np.zeros((40, 32), np.float32)])


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fuzz_the_tables_tensors(template, data):
    """The table's codes or scales replaced by a hostile array, or dropped, or a float
    table added: a working model (finite outputs) or one CheckpointError line."""
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ckpt"
        shutil.copytree(template, root)
        tensors = load_file(root / "step-000001" / "model.safetensors")
        for _ in range(data.draw(st.integers(1, 2))):
            name = data.draw(st.sampled_from(["wte.weight.q", "wte.weight.scale", "wte.weight"]))
            if data.draw(st.booleans()):
                tensors[name] = data.draw(HOSTILE)
            else:
                tensors.pop(name, None)
        _rewrite(root / "step-000001", tensors=tensors)
        try:
            model, _, _ = load_model(root)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            return
        assert np.isfinite(model(np.array([[1, 2, 3]]))[0].data).all()


def test_a_non_finite_table_is_refused_before_anything_changes():
    model = _model("gpt")
    model.wte.weight.data[3, 5] = np.nan
    with pytest.raises(ValueError, match="wte.weight"):
        quantize(model, "q4_0", embeddings=True)
    assert isinstance(model.wte, Embedding) and not hasattr(model.h[0].attn.c_attn, "qweight")


def test_qlora_over_a_quantized_table_round_trips(tmp_path):
    """Adapters trained over a model whose table is quantized: saved and loaded, the
    adapters, the codes and the logits are the same, and the loaded model's tied head is
    on the adapter path again (its backward reaches the adapters)."""
    model = apply_lora(quantize(_model("gpt"), "q4_0", embeddings=True), r=2, alpha=4, rng=0)
    for _, layer in lora_layers(model):
        layer.lora_B.data[...] = 0.01                                   # as if trained
    save_checkpoint(tmp_path / "ckpt", step=1, model=model)
    loaded, _, _ = load_model(tmp_path / "ckpt")
    assert loaded.wte.adapter_path and np.array_equal(loaded.wte.qweight.q, model.wte.qweight.q)
    idx = np.array([[3, 1, 4, 1, 5]])
    assert np.array_equal(model(idx)[0].data, loaded(idx)[0].data)
    _, loss = loaded(idx[:, :-1], targets=idx[:, 1:])
    loss.backward()
    assert np.abs(lora_layers(loaded)[0][1].lora_A.grad).max() > 0
