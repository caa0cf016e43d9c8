"""Quantized checkpoints: a bit-exact round trip (codes, scales, logits), LoRA over a
quantized base saved and resumed, and hostile files (a consistent manifest over damaged
tensors or a damaged record) refused with a one-line CheckpointError, never a crash or
a silently wrong model; plus the command line: quantize, eval, sample."""
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpyllm.hub.safetensors import load_file, save_file
from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig
from numpyllm.nn.lora import apply_lora, lora_layers
from numpyllm.quantize import QuantizedLoRALinear, quantize, quantized_layers
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training.checkpoint import (CheckpointError, _sha256, load_model,
                                          save_checkpoint)

FORMATS = ["int8", "q8_0", "q4_0"]
TEXT = "ROMEO: But soft, what light through yonder window breaks?\n" * 30


def _gpt():
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32), rng=0)


def _llama():
    return Llama(LlamaConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_kv_head=1,
                             n_embd=32, intermediate_size=64), rng=0)


def _same_quantized(a, b):
    la, lb = quantized_layers(a), quantized_layers(b)
    assert [n for n, _ in la] == [n for n, _ in lb]
    for (_, x), (_, y) in zip(la, lb):
        assert x.format == y.format
        assert np.array_equal(x.qweight.q, y.qweight.q)
        assert np.array_equal(x.qweight.scale.view(np.uint8), y.qweight.scale.view(np.uint8))


@pytest.mark.parametrize("build", [_gpt, _llama])
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_bit_exact(tmp_path, build, fmt):
    model = quantize(build(), fmt)
    step_dir = save_checkpoint(tmp_path, step=7, model=model)
    tensors, meta = load_file(step_dir / "model.safetensors", with_metadata=True)
    assert meta["quantization"] == fmt
    name = quantized_layers(model)[0][0]
    assert tensors[f"{name}.weight.q"].dtype == (np.uint8 if fmt == "q4_0" else np.int8)
    assert tensors[f"{name}.weight.scale"].dtype == (np.float32 if fmt == "int8" else np.float16)
    assert f"{name}.weight" not in tensors
    loaded, _, ckpt = load_model(tmp_path)
    assert ckpt.model_config["quantization"]["format"] == fmt
    _same_quantized(model, loaded)
    idx = np.arange(12)[None] % 40
    assert np.array_equal(model(idx)[0].data, loaded(idx)[0].data)


def test_lora_over_a_quantized_base_round_trips(tmp_path):
    model = apply_lora(quantize(_gpt(), "q4_0"), r=2, alpha=4, rng=0)
    for _, layer in lora_layers(model):
        layer.lora_B.data[:] = 0.05
    save_checkpoint(tmp_path, step=1, model=model)
    loaded, _, _ = load_model(tmp_path)
    assert all(isinstance(m, QuantizedLoRALinear) for _, m in lora_layers(loaded))
    _same_quantized(model, loaded)
    idx = np.arange(10)[None]
    assert np.array_equal(model(idx)[0].data, loaded(idx)[0].data)
    trainable = [n for n, p in loaded.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)


# ---------------------------------------------------------------- hostile files
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantized") / "ckpt"
    save_checkpoint(root, step=1, model=quantize(_gpt(), "q4_0"),
                    tokenizer=CharTokenizer.from_text(TEXT))
    return root


def _rewrite(step_dir: Path, tensors=None, record=None):
    """Replace the tensors and/or the quantization record, and re-sign the manifest: a
    file made hostile on purpose, which the hashes do not catch."""
    manifest = json.loads((step_dir / "manifest.json").read_text())
    if tensors is not None:
        save_file(tensors, step_dir / "model.safetensors")
    if record is not None:
        manifest["model"]["quantization"] = record
    f = step_dir / "model.safetensors"
    manifest["files"]["model.safetensors"] = {"bytes": f.stat().st_size, "sha256": _sha256(f)}
    (step_dir / "manifest.json").write_text(json.dumps(manifest))


LAYER = "h.0.attn.c_attn.weight"


@pytest.mark.parametrize("damage,message", [
    (lambda t: t.update({f"{LAYER}.q": t[f"{LAYER}.q"].view(np.int8)}), "expected uint8"),
    (lambda t: t.update({f"{LAYER}.q": t[f"{LAYER}.q"][:, :-1]}), "expected uint8 of shape"),
    (lambda t: t.update({f"{LAYER}.scale": t[f"{LAYER}.scale"].astype(np.float32)}),
     "expected float16"),
    (lambda t: t[f"{LAYER}.scale"].__setitem__((0, 0), np.nan), "NaN or infinite scales"),
    (lambda t: t.pop(f"{LAYER}.scale"), "expected both tensors"),
    (lambda t: t.update({LAYER: np.zeros((32, 96), np.float32)}), "stores no float weight"),
    (lambda t: t.update({"h.1.mlp.c_fc.weight.q": t.pop("h.1.mlp.c_fc.weight.q")[:8]}),
     "expected uint8 of shape"),
])
def test_damaged_tensors_are_refused(template, tmp_path, damage, message):
    root = tmp_path / "ckpt"
    shutil.copytree(template, root)
    step_dir = root / "step-000001"
    tensors = load_file(step_dir / "model.safetensors")
    damage(tensors)
    _rewrite(step_dir, tensors=tensors)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("record,message", [
    ({"format": "q5_k", "layers": ["h.0.attn.c_attn"]}, "format"),
    ({"format": "q4_0", "layers": []}, "layers"),
    ({"format": "q4_0", "layers": ["h.0.attn.c_attn", "h.0.attn.c_attn"]}, "distinct"),
    ({"format": "q4_0", "layers": ["h.0.attn.c_attn"]}, "do not fit the config"),
    ({"format": "q4_0"}, "quantization"),
    ("q4_0", "quantization"),
])
def test_damaged_records_are_refused(template, tmp_path, record, message):
    root = tmp_path / "ckpt"
    shutil.copytree(template, root)
    _rewrite(root / "step-000001", record=record)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("change,message", [
    (lambda r: {**r, "layers": r["layers"] + ["h.0.ln_1"]},
     "'h.0.ln_1' is not a Linear layer of this GPT"),
    # the codes are q4_0's: read as int8 or q8_0 they imply a matrix half as wide
    (lambda r: {**r, "format": "int8"}, "got \\[16, 128\\]: the weights do not fit"),
    (lambda r: {**r, "format": "q8_0"}, "got \\[16, 128\\]: the weights do not fit"),
])
def test_a_record_that_lies_about_the_tensors_is_refused(template, tmp_path, change, message):
    root = tmp_path / "ckpt"
    shutil.copytree(template, root)
    manifest = json.loads((root / "step-000001" / "manifest.json").read_text())
    _rewrite(root / "step-000001", record=change(manifest["model"]["quantization"]))
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(root)
    assert "\n" not in str(info.value)


HOSTILE_ARRAYS = st.sampled_from([
    np.zeros((0,), np.uint8), np.zeros((2, 2, 2), np.uint8), np.full((96, 16), 255, np.uint8),
    np.full((96, 1), np.inf, np.float16), np.zeros((96, 1), np.float16),
    np.zeros((10 ** 3, 16), np.uint8), np.array(True), np.zeros((96, 16), np.int64),
    np.full((96, 1), -0.0, np.float16), np.full((96, 1), 65504, np.float16)])


@given(data=st.data())
def test_fuzz_quantized_tensors(template, data):
    """Any tensor of a quantized layer replaced by a hostile array, or dropped, or a
    layer name moved: a working model (whose outputs are finite) or one CheckpointError."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ckpt"
        shutil.copytree(template, root)
        step_dir = root / "step-000001"
        tensors = load_file(step_dir / "model.safetensors")
        names = sorted(k for k in tensors if k.endswith((".q", ".scale")))
        for _ in range(data.draw(st.integers(1, 3))):
            name = data.draw(st.sampled_from(names))
            if data.draw(st.booleans()):
                tensors[name] = data.draw(HOSTILE_ARRAYS)
            else:
                tensors.pop(name, None)
        _rewrite(step_dir, tensors=tensors)
        try:
            model, _, _ = load_model(root)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            return
        assert np.isfinite(model(np.array([[1, 2, 3]]))[0].data).all()


# ---------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A float checkpoint trained a few steps on a small text, with its data record."""
    from numpyllm.cli import main
    root = tmp_path_factory.mktemp("cli")
    data = root / "text.txt"
    data.write_text(TEXT)
    assert main(["train", "--data", str(data), "--out", str(root / "run"), "--n_layer", "1",
                 "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--batch_size",
                 "4", "--max_iters", "3", "--eval_interval", "3", "--eval_iters", "1",
                 "--samples", "0", "--no_plot", "--quiet"]) == 0
    return root


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_quantize_then_eval_and_sample(trained, fmt, capsys):
    from numpyllm.cli import main
    out = trained / f"q-{fmt}"
    assert main(["quantize", "--ckpt", str(trained / "run" / "ckpt"), "--format", fmt,
                 "--out", str(out)]) == 0
    assert f"{fmt}, weights" in capsys.readouterr().out
    model, _, ckpt = load_model(out)
    assert ckpt.model_config["quantization"]["format"] == fmt and ckpt.step == 3
    assert main(["eval", "--ckpt", str(out), "--split", "val"]) == 0      # its recorded text
    assert "perplexity" in capsys.readouterr().out
    assert main(["sample", "--ckpt", str(out), "--prompt", "ROMEO", "--max_new_tokens", "5",
                 "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO")


def test_cli_refusals(trained, one_line_error, tmp_path, capsys):
    from numpyllm.cli import main
    ckpt = str(trained / "run" / "ckpt")
    one_line_error(capsys, ["quantize", "--ckpt", str(tmp_path / "nothing"), "--format", "q8_0",
                    "--out", str(tmp_path / "o1")], "nothing")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    one_line_error(capsys, ["quantize", "--ckpt", ckpt, "--format", "q8_0", "--out",
                    str(tmp_path / "full")], "not an empty directory")
    assert main(["quantize", "--ckpt", ckpt, "--format", "int8", "--out",
                 str(tmp_path / "q")]) == 0
    one_line_error(capsys, ["quantize", "--ckpt", str(tmp_path / "q"), "--format", "q4_0", "--out",
                    str(tmp_path / "qq")], "already quantized")
    one_line_error(capsys, ["convert", "--ckpt", str(tmp_path / "q"), "--to",
                            str(tmp_path / "hf")], "a checkpoint quantized to int8")
    with pytest.raises(SystemExit):                  # argparse: an unknown format
        main(["quantize", "--ckpt", ckpt, "--format", "q5_k", "--out", str(tmp_path / "o")])


def test_llm_int8_round_trip_and_refusals(tmp_path, trained, capsys, one_line_error):
    from numpyllm.cli import main
    model = quantize(_gpt(), "int8", threshold=4.5)
    save_checkpoint(tmp_path / "a", step=1, model=model)
    loaded, _, ckpt = load_model(tmp_path / "a")
    assert ckpt.model_config["quantization"]["threshold"] == 4.5
    assert all(m.threshold == 4.5 for _, m in quantized_layers(loaded))
    idx = np.arange(10)[None]
    assert np.array_equal(model(idx)[0].data, loaded(idx)[0].data)
    for bad in (-1, 0, "6", True, None):
        root = tmp_path / f"bad-{bad}"
        shutil.copytree(tmp_path / "a", root)
        manifest = json.loads((root / "step-000001" / "manifest.json").read_text())
        _rewrite(root / "step-000001", record={**manifest["model"]["quantization"],
                                                "threshold": bad})
        with pytest.raises(CheckpointError, match="threshold"):
            load_model(root)
    ckpt_dir = str(trained / "run" / "ckpt")
    assert main(["quantize", "--ckpt", ckpt_dir, "--format", "int8", "--llm-int8", "--out",
                 str(tmp_path / "cli")]) == 0
    _, _, c = load_model(tmp_path / "cli")
    assert c.model_config["quantization"]["threshold"] == 6.0
    capsys.readouterr()
    one_line_error(capsys, ["quantize", "--ckpt", ckpt_dir, "--format", "q4_0", "--llm-int8",
                            "--out", str(tmp_path / "x")], "--llm-int8 needs --format int8")


def test_cli_quantize_a_hugging_face_directory(tmp_path, capsys):
    """--model DIR: a Hugging Face directory (here one numpyllm wrote) to a quantized
    checkpoint at step 0, whose logits are the quantized model's."""
    from numpyllm.cli import main
    from numpyllm.hub import save_pretrained
    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=32), rng=0)
    save_pretrained(model, None, tmp_path / "hf")
    assert main(["quantize", "--model", str(tmp_path / "hf"), "--format", "q8_0", "--out",
                 str(tmp_path / "q")]) == 0
    loaded, tokenizer, ckpt = load_model(tmp_path / "q")
    assert ckpt.step == 0 and tokenizer is None
    idx = np.arange(8)[None]
    assert np.array_equal(loaded(idx)[0].data, quantize(model, "q8_0")(idx)[0].data)


@pytest.mark.parametrize("fmt", ["q8_0", "int8"])
def test_other_models_quantize_and_round_trip(tmp_path, fmt):
    """An encoder-decoder (its cross-attention projections included) and a classifier
    over an encoder: quantized, close to the float model, and saved and loaded bit for bit."""
    from numpyllm.nn import (ClassifierConfig, SequenceClassifier, Transformer,
                             TransformerConfig, TransformerEncoderConfig)
    t5 = Transformer(TransformerConfig(40, 40, d_model=32, n_head=2, n_encoder_layers=1,
                                       n_decoder_layers=1, d_ff=64, max_len=16,
                                       share_embeddings=True, pad_id=39), rng=0).eval()
    clf = SequenceClassifier(ClassifierConfig("TransformerEncoderModel", TransformerEncoderConfig(
        vocab_size=40, d_model=32, n_head=2, n_layers=1, d_ff=64, max_len=8).to_dict(),
        n_classes=2), rng=0).eval()
    src, tgt = np.array([[1, 2, 3, 4]]), np.array([[5, 6, 7]])

    def run(model):
        out = model(src, tgt) if isinstance(model, Transformer) else model(src)
        return (out[0] if isinstance(out, tuple) else out).data
    for name, model in (("t5", t5), ("clf", clf)):
        ref = run(model)
        quantize(model, fmt)
        out = run(model)
        assert 0 < np.abs(out - ref).max() <= 0.01 * np.abs(ref).max() + 1e-3
        save_checkpoint(tmp_path / name, step=1, model=model)
        loaded, _, _ = load_model(tmp_path / name)
        assert np.array_equal(run(loaded), out)
    assert any("cross_attn" in n for n, _ in quantized_layers(t5))
    assert "score" not in [n for n, _ in quantized_layers(clf)]       # the head stays float
