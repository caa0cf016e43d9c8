"""GPT: names, initialisation, gradients, causality, batch independence, errors, learning."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.autograd import gradcheck
from numpyllm.checks import perturb
from numpyllm.nn.gpt import GPT, POSITIONS, GPTConfig


def tiny(**kw):
    base = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8, dtype="float64")
    base.update(kw)
    return GPT(GPTConfig(**base), rng=np.random.default_rng(kw.pop("seed", 0)))


def ids(rng, B, T, V=13):
    return rng.integers(0, V, size=(B, T))


# ------------------------------------------------------------------ structure
def test_parameter_names_follow_gpt2():
    model = tiny(n_layer=2)
    names = [n for n, _ in model.named_parameters()]
    expected = ["wte.weight", "wpe.weight"]
    for i in range(2):
        expected += [f"h.{i}.{n}" for n in (
            "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
            "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
            "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")]
    expected += ["ln_f.weight", "ln_f.bias"]
    assert names == expected
    shapes = dict((n, p.shape) for n, p in model.named_parameters())
    C = 8
    assert shapes["h.0.attn.c_attn.weight"] == (C, 3 * C)      # [in, out], as GPT-2 stores it
    assert shapes["h.0.mlp.c_fc.weight"] == (C, 4 * C)
    assert shapes["wte.weight"] == (13, C) and shapes["wpe.weight"] == (8, C)


def test_untied_head_and_position_choices_change_the_parameters():
    names = {n for n, _ in tiny(tie_weights=False).named_parameters()}
    assert "lm_head.weight" in names
    for positions in ("sinusoidal", "rope", "alibi"):
        names = {n for n, _ in tiny(positions=positions).named_parameters()}
        assert "wpe.weight" not in names


def test_gpt2_initialisation():
    cfg = GPTConfig(vocab_size=500, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(cfg, rng=np.random.default_rng(0))
    params = dict(model.named_parameters())
    assert params["wte.weight"].dtype == np.float32
    assert abs(params["wte.weight"].data.std() - 0.02) < 0.002
    assert abs(params["h.0.attn.c_attn.weight"].data.std() - 0.02) < 0.002
    proj = 0.02 / math.sqrt(2 * cfg.n_layer)
    assert abs(params["h.3.mlp.c_proj.weight"].data.std() - proj) < 0.1 * proj
    assert abs(params["h.3.attn.c_proj.weight"].data.std() - proj) < 0.1 * proj
    assert not params["h.0.attn.c_attn.bias"].data.any()
    assert (params["ln_f.weight"].data == 1).all()


def test_initial_loss_is_close_to_ln_vocab():
    cfg = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = GPT(cfg, rng=np.random.default_rng(0))
    x = ids(np.random.default_rng(1), 4, 32, V=65)
    with no_grad():
        _, loss = model(x, targets=np.roll(x, -1, axis=1))
    assert abs(loss.item() - math.log(65)) < 0.05


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_whole_model_gradcheck(positions, norm):
    """At weights moved away from the init (std 0.02 hides wrong gradients: the check
    would pass a zeroed layer-norm gain there under a loose tolerance); T = block_size,
    so every position embedding has a gradient. tests/test_checks.py mutation-tests
    the same kind of check."""
    rng = np.random.default_rng(2)
    model = perturb(tiny(positions=positions, norm=norm, tie_weights=positions != "alibi"), rng)
    x, y = ids(rng, 2, 8), ids(rng, 2, 8)
    params = list(model.parameters())

    def loss_fn(*_):
        return model(x, targets=y)[1]
    assert gradcheck(loss_fn, *params, n_projections=2)


# ------------------------------------------------------------------ semantics
@given(positions=st.sampled_from(POSITIONS), T=st.integers(2, 8), data=st.data())
def test_causality(positions, T, data):
    """Changing tokens after position t leaves the logits at positions <= t unchanged."""
    model = tiny(positions=positions)
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    x = ids(rng, 2, T)
    t = data.draw(st.integers(0, T - 2))
    x2 = x.copy()
    x2[:, t + 1:] = ids(rng, 2, T - t - 1)
    with no_grad():
        a, _ = model(x)
        b, _ = model(x2)
    np.testing.assert_allclose(a.data[:, :t + 1], b.data[:, :t + 1], rtol=0, atol=1e-12)


@given(positions=st.sampled_from(POSITIONS), B=st.integers(1, 4))
def test_batch_independence(positions, B):
    model = tiny(positions=positions)
    x = ids(np.random.default_rng(B), B, 6)
    with no_grad():
        together = model(x)[0].data
        for b in range(B):
            np.testing.assert_allclose(together[b], model(x[b:b + 1])[0].data[0], atol=1e-12)


@pytest.mark.parametrize("positions", ["sinusoidal", "rope", "alibi"])
def test_relative_and_sinusoidal_positions_run_past_block_size(positions):
    model = tiny(positions=positions)
    with no_grad():
        logits, _ = model(ids(np.random.default_rng(0), 1, 20))
    assert logits.shape == (1, 20, 13) and np.isfinite(logits.data).all()


def test_float32_by_default_and_float64_on_request():
    m32 = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8),
              rng=np.random.default_rng(0))
    x = ids(np.random.default_rng(0), 2, 4)
    logits, loss = m32(x, targets=x)
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in m32.parameters())
    assert tiny()(x)[0].dtype == np.float64


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw, match", [
    (dict(n_embd=10, n_head=3), r"n_embd \(10\).*n_head \(3\)"),
    (dict(positions="absolute"), "positions"),
    (dict(n_layer=0), "n_layer"),
    (dict(dropout=1.0), "dropout"),
    (dict(norm="middle"), "norm"),
])
def test_config_errors(kw, match):
    base = dict(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8)
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        GPTConfig(**base)


def test_input_errors():
    model = tiny()
    with pytest.raises(ValueError, match="block_size 8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(IndexError, match="13"):
        model(np.array([[1, 13]]))
    with pytest.raises(TypeError, match="integer"):
        model(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="targets"):
        model(np.zeros((2, 4), dtype=np.int64), targets=np.zeros((2, 3), dtype=np.int64))


def test_config_round_trips_through_a_dict():
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8, positions="rope")
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_heads": 3})


# ------------------------------------------------------------------ learning
def test_overfits_one_batch():
    from numpyllm.optim import AdamW
    cfg = GPTConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rng.integers(0, 16, size=(4, 16))
    y = rng.integers(0, 16, size=(4, 16))
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        _, loss = model(x, targets=y)
        model.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.05
