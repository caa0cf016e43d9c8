"""`numpyllm attention` and the recording of attention weights it rests on
(numpyllm/inspect.py, numpyllm/plots.py: plot_attention)."""
import doctest
import sys

import numpy as np
import pytest

import numpyllm.inspect as inspect_module
from numpyllm import Tensor
from numpyllm.training.checkpoint import save_checkpoint
from numpyllm.cli import main
from numpyllm.inspect import attention_maps, record_attention
from numpyllm.nn import GPT, GPTConfig, MultiHeadAttention, Transformer, TransformerConfig
from numpyllm.tokenizers import CharTokenizer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_gpt(**overrides):
    cfg = dict(vocab_size=12, block_size=16, n_layer=2, n_head=2, n_embd=8)
    cfg.update(overrides)
    return GPT(GPTConfig(**cfg), rng=np.random.default_rng(0))


@pytest.fixture
def ckpt(tmp_path):
    tokenizer = CharTokenizer.from_text("hello world, ho!\n")
    model = tiny_gpt(vocab_size=tokenizer.vocab_size)
    save_checkpoint(tmp_path / "ckpt", step=3, model=model, tokenizer=tokenizer)
    return tmp_path / "ckpt"


# ------------------------------------------------------------------ recording
@pytest.mark.parametrize("positions", ["learned", "rope", "alibi"])
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_recorded_weights_are_the_layers_own(positions, norm):
    model = tiny_gpt(positions=positions, norm=norm).eval()
    idx = np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
    plain, _ = model(idx)
    with record_attention(model) as maps:
        recorded, _ = model(idx)
    np.testing.assert_array_equal(plain.data, recorded.data)       # the output is untouched
    assert list(maps) == ["h.0.attn", "h.1.attn"]
    # the first layer's weights, recomputed from its own input
    x = model.wte(idx) + (model.wpe(np.arange(5)) if positions == "learned" else 0)
    block = model.h[0]
    _, expected = block.attn(block.ln_1(x) if norm == "pre" else x, return_weights=True)
    (weights,) = maps["h.0.attn"]
    np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=1e-7)
    assert weights.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(weights, k=1) == 0)                       # causal: no future


def test_layers_are_restored_even_after_an_error():
    model = tiny_gpt()
    with pytest.raises(RuntimeError, match="stop"):
        with record_attention(model):
            model(np.array([[1, 2]]))
            raise RuntimeError("stop")
    assert all("forward" not in vars(m) for _, m in model.named_modules())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in tiny_gpt().named_parameters()]


def test_a_caller_asking_for_weights_still_gets_them():
    mha = MultiHeadAttention(8, 2, causal=True, rng=np.random.default_rng(0))
    x = Tensor(np.random.default_rng(1).standard_normal((1, 3, 8)).astype(np.float32))
    with record_attention(mha) as maps:
        out, w = mha(x, return_weights=True)
        mha(x)
    assert out.shape == (1, 3, 8) and w.shape == (1, 2, 3, 3)
    assert len(maps[""]) == 2                                        # the module itself: ""


def test_attention_maps_keeps_the_mode_and_builds_no_graph():
    model = tiny_gpt(dropout=0.1)
    maps = attention_maps(model, np.array([[1, 2, 3]]))
    assert model.training                                            # restored
    again = attention_maps(model, np.array([[1, 2, 3]]))
    for name in maps:                                                # eval mode: no dropout
        np.testing.assert_array_equal(maps[name], again[name])


def test_encoder_decoder_cross_attention_has_source_columns():
    cfg = TransformerConfig(src_vocab_size=9, tgt_vocab_size=9, d_model=8, n_head=2,
                            n_encoder_layers=1, n_decoder_layers=1, dropout=0.0, pad_id=0)
    maps = attention_maps(Transformer(cfg, rng=0), np.array([[5, 6, 7, 0]]), np.array([[1, 7, 6]]))
    cross = maps["decoder.layers.0.cross_attn"]
    assert cross.shape == (1, 2, 3, 4)                               # target queries, source keys
    assert np.all(cross[..., 3] == 0)                                # the padded source position


def test_no_attention_layer_is_an_error():
    from numpyllm.nn import Linear
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        with record_attention(Linear(2, 2)):
            pass


def test_inspect_doctest():
    assert doctest.testmod(inspect_module).failed == 0


# ------------------------------------------------------------------ the command
def test_attention_command_writes_a_png(ckpt, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "maps.png"
    assert main(["attention", "--ckpt", str(ckpt), "--text", "hello world", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert "2 layers x 2 heads, 11 tokens" in capsys.readouterr().out
    one = tmp_path / "layer1.png"
    assert main(["attention", "--ckpt", str(ckpt), "--text", "ho", "--out", str(one),
                 "--layer", "-1"]) == 0
    assert one.read_bytes().startswith(PNG_MAGIC)
    assert "1 layer x 2 heads, 2 tokens" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--layer", "2"], "--layer 2: the model has 2 layers (0..1)"),
    (["--text", "hello world, hello world, hello"], "more than the model's context of 16"),
    (["--text", ""], "encodes to no tokens"),
    (["--text", "xyz"], "error:"),                                    # not in the vocabulary
])
def test_attention_command_errors_are_one_line(ckpt, tmp_path, capsys, extra, message):
    pytest.importorskip("matplotlib")
    args = ["attention", "--ckpt", str(ckpt), "--text", "hello", "--out", str(tmp_path / "a.png")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_attention_command_without_a_checkpoint(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["attention", "--ckpt", str(tmp_path / "nope"), "--text", "a",
                 "--out", str(tmp_path / "a.png")]) == 2
    assert "numpyllm attention: error:" in capsys.readouterr().err


def test_attention_command_without_matplotlib(ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # import fails
    assert main(["attention", "--ckpt", str(ckpt), "--text", "hello",
                 "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err == ("numpyllm attention: error: matplotlib is not installed: pip install "
                   "matplotlib (or pip install numpyllm[plot])\n")
    assert not (tmp_path / "a.png").exists()
