"""Layers: values, dtypes, errors, and float64 gradient checks over small shapes
(with respect to the input and every parameter)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import Tensor, gradcheck
from numpyllm.nn import (GELU, MLP, Dropout, Embedding, FeedForward, LayerNorm, Linear, Module,
                         ReLU)

F64 = np.float64
lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
sizes = st.integers(1, 4)
seeds = st.integers(0, 2 ** 16)


def tensor(rng, shape, dtype=F64, grad=True):
    return Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=grad)


def away_from_zero(rng, shape):
    """Values with |x| >= 0.1, so finite differences never straddle ReLU's kink."""
    x = rng.standard_normal(shape)
    return Tensor(np.sign(x) * (0.1 + np.abs(x)), requires_grad=True)


# ---------------------------------------------------------------------- Linear
def test_linear_is_x_at_w_plus_b_in_float32():
    rng = np.random.default_rng(0)
    lin = Linear(4, 3, rng=rng)
    lin.bias.data[...] = [0.5, -1.0, 2.0]
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    y = lin(Tensor(x))
    assert y.dtype == np.float32 and y.shape == (2, 5, 3)
    np.testing.assert_allclose(y.data, x @ lin.weight.data + lin.bias.data, rtol=1e-6)
    assert lin.weight.shape == (4, 3) and lin.bias.shape == (3,)   # stored [in, out]
    assert np.array_equal(lin(x).data, y.data)                     # a plain array works too
    y.sum().backward()
    assert lin.weight.grad.dtype == np.float32
    np.testing.assert_allclose(lin.weight.grad, x.reshape(-1, 4).sum(0)[:, None] * np.ones(3),
                               rtol=1e-5)
    np.testing.assert_allclose(lin.bias.grad, [10.0] * 3)


def test_linear_init_is_reproducible_normal_with_std():
    a = Linear(64, 128, rng=np.random.default_rng(7))
    b = Linear(64, 128, rng=np.random.default_rng(7), dtype=F64)
    assert a.weight.dtype == np.float32 and b.weight.dtype == F64
    np.testing.assert_allclose(a.weight.data, b.weight.data, rtol=1e-6)   # same draws
    assert abs(b.weight.data.std() - 0.02) < 0.001 and abs(b.weight.data.mean()) < 0.001
    assert np.all(a.bias.data == 0)
    wide = Linear(64, 128, rng=np.random.default_rng(0), std=0.5)
    assert abs(wide.weight.data.std() - 0.5) < 0.02
    assert Linear(2, 2).weight.shape == (2, 2)                              # rng=None works


def test_linear_without_bias_and_errors():
    lin = Linear(3, 2, bias=False, rng=np.random.default_rng(0))
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match=r"in_features=3.*\(2, 5\)|\(2, 5\).*in_features=3"):
        lin(Tensor(np.ones((2, 5))))
    with pytest.raises(ValueError, match="in_features"):
        lin(Tensor(np.float64(1.0)))
    with pytest.raises(ValueError, match="positive"):
        Linear(0, 3)
    with pytest.raises(TypeError, match="Generator"):
        Linear(2, 2, rng="0")
    np.testing.assert_array_equal(Linear(2, 2, rng=5).weight.data,             # a seed
                                  Linear(2, 2, rng=np.random.default_rng(5)).weight.data)
    assert repr(lin) == "Linear(in_features=3, out_features=2, bias=False, dtype=float32)"


@given(lead=lead_shapes, n_in=sizes, n_out=sizes, bias=st.booleans(), seed=seeds)
def test_linear_gradcheck(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    lin = Linear(n_in, n_out, bias, rng=rng, dtype=F64, std=1.0)
    x = tensor(rng, lead + (n_in,))
    params = [lin.weight] + ([lin.bias] if bias else [])
    assert gradcheck(lambda x, *ps: lin(x), x, *params)


# ---------------------------------------------------------------------- Embedding
def test_embedding_lookup_and_errors():
    emb = Embedding(5, 3, rng=np.random.default_rng(0))
    ids = np.array([[4, 0, 4]])
    out = emb(ids)
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    assert np.array_equal(out.data, emb.weight.data[ids])
    out.sum().backward()
    assert emb.weight.grad[4].tolist() == [2.0] * 3 and emb.weight.grad[1].tolist() == [0.0] * 3
    with pytest.raises(IndexError):
        emb(np.array([5]))
    assert repr(emb) == "Embedding(5, 3, dtype=float32)"
    assert abs(Embedding(100, 50, rng=np.random.default_rng(0), std=0.1).weight.data.std()
               - 0.1) < 0.005


@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
       V=st.integers(1, 5), C=sizes, seed=seeds)
def test_embedding_gradcheck(lead, V, C, seed):
    rng = np.random.default_rng(seed)
    emb = Embedding(V, C, rng=rng, dtype=F64, std=1.0)
    ids = rng.integers(0, V, size=lead)                       # repeats are likely
    assert gradcheck(lambda w: emb(ids), emb.weight)


# ---------------------------------------------------------------------- LayerNorm
def test_layer_norm_values_dtype_and_no_bias():
    ln = LayerNorm(6)
    x = np.random.default_rng(0).standard_normal((2, 3, 6)).astype(np.float32) * 3 + 1
    y = ln(Tensor(x))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, ref, atol=1e-5)
    assert np.all(ln.weight.data == 1) and np.all(ln.bias.data == 0)
    nb = LayerNorm(6, bias=False, eps=1e-6)
    assert nb.bias is None and [n for n, _ in nb.named_parameters()] == ["weight"]
    assert "bias=False" in repr(nb) and "eps=1e-06" in repr(nb)
    with pytest.raises(ValueError, match="n=6"):
        ln(Tensor(np.ones((2, 5))))


@given(lead=lead_shapes, n=st.integers(2, 5), bias=st.booleans(), seed=seeds)
def test_layer_norm_gradcheck(lead, n, bias, seed):
    rng = np.random.default_rng(seed)
    ln = LayerNorm(n, bias=bias, dtype=F64)
    ln.weight.data[...] = rng.standard_normal(n)
    if bias:
        ln.bias.data[...] = rng.standard_normal(n)
    x = tensor(rng, lead + (n,))
    params = [ln.weight] + ([ln.bias] if bias else [])
    assert gradcheck(lambda x, *ps: ln(x), x, *params)


# ---------------------------------------------------------------------- Dropout
def test_dropout_identity_in_eval_and_at_zero_and_scaled_in_training():
    x = Tensor(np.ones((200, 50), dtype=np.float32))
    d = Dropout(0.25, rng=np.random.default_rng(0))
    y = d(x)
    assert y.dtype == np.float32
    assert set(np.unique(y.data).tolist()) <= {0.0, np.float32(1 / 0.75)}
    assert abs(y.data.mean() - 1.0) < 0.02 and abs((y.data == 0).mean() - 0.25) < 0.02
    d.eval()
    assert d(x) is x
    assert Dropout(0.0)(x) is x and Dropout()(x) is x
    assert repr(d) == "Dropout(p=0.25)"
    with pytest.raises(TypeError, match="rng"):
        Dropout(0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0, rng=np.random.default_rng(0))


@given(lead=lead_shapes, n=sizes, seed=seeds)
def test_dropout_gradcheck(lead, n, seed):
    rng = np.random.default_rng(seed)
    x = tensor(rng, lead + (n,))
    # a fresh generator with the same seed each call: the same mask for every evaluation
    assert gradcheck(lambda x: Dropout(0.4, rng=np.random.default_rng(seed))(x), x)


# ---------------------------------------------------------------------- activations
def test_activations_values_and_dtype():
    x = Tensor(np.array([-1.0, 0.0, 2.0], dtype=np.float32))
    assert ReLU()(x).data.tolist() == [0.0, 0.0, 2.0] and ReLU()(x).dtype == np.float32
    g = GELU()(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.data, [-0.158808, 0.0, 1.954597], atol=1e-6)
    np.testing.assert_allclose(GELU("none")(x).data, [-0.158655, 0.0, 1.954500], atol=1e-6)
    assert repr(GELU()) == "GELU(approximate='tanh')" and repr(ReLU()) == "ReLU()"
    with pytest.raises(ValueError, match="approximate"):
        GELU("fast")


@given(shape=lead_shapes.map(lambda s: s + (3,)), approximate=st.sampled_from(["tanh", "none"]),
       seed=seeds)
def test_activation_gradchecks(shape, approximate, seed):
    rng = np.random.default_rng(seed)
    assert gradcheck(GELU(approximate), tensor(rng, shape))
    assert gradcheck(ReLU(), away_from_zero(rng, shape))


# ---------------------------------------------------------------------- MLP
def test_mlp_names_shapes_init_and_options():
    rng = np.random.default_rng(0)
    mlp = MLP(16, rng=rng, proj_std=0.005)
    assert [(n, p.shape) for n, p in mlp.named_parameters()] == [
        ("c_fc.weight", (16, 64)), ("c_fc.bias", (64,)),
        ("c_proj.weight", (64, 16)), ("c_proj.bias", (16,))]
    assert abs(mlp.c_fc.weight.data.std() - 0.02) < 0.002
    assert abs(mlp.c_proj.weight.data.std() - 0.005) < 0.0005
    x = Tensor(rng.standard_normal((2, 3, 16)).astype(np.float32))
    y = mlp(x)
    assert y.shape == (2, 3, 16) and y.dtype == np.float32
    ref = mlp.c_proj(GELU()(mlp.c_fc(x)))
    np.testing.assert_array_equal(y.data, ref.data)
    assert FeedForward is MLP
    relu = MLP(4, hidden=6, activation="relu", bias=False, rng=rng, dtype=F64)
    assert isinstance(relu.act, ReLU) and relu.c_fc.weight.shape == (4, 6) and relu.c_fc.bias is None
    assert isinstance(MLP(4, activation=GELU("none"), rng=rng).act, GELU)
    with pytest.raises(ValueError, match="activation"):
        MLP(4, activation="swish", rng=rng)
    with pytest.raises(ValueError, match="in_features=4"):
        MLP(4, rng=rng)(np.ones((1, 5)))


def test_mlp_dropout_uses_the_rng_and_eval_turns_it_off():
    mlp = MLP(8, dropout=0.5, rng=np.random.default_rng(0))
    x = Tensor(np.ones((4, 8), dtype=np.float32))
    a, b = mlp(x).data, mlp(x).data
    assert not np.array_equal(a, b)                            # training: random masks
    mlp.eval()
    assert not mlp.dropout.training
    np.testing.assert_array_equal(mlp(x).data, mlp.c_proj(mlp.act(mlp.c_fc(x))).data)
    assert "(dropout): Dropout(p=0.5)" in repr(mlp)


@given(lead=lead_shapes, n=st.integers(1, 3), hidden=st.integers(1, 5),
       activation=st.sampled_from(["gelu", "relu"]), seed=seeds)
def test_mlp_gradcheck(lead, n, hidden, activation, seed):
    rng = np.random.default_rng(seed)
    mlp = MLP(n, hidden, activation=activation, rng=rng, dtype=F64, proj_std=1.0)
    if activation == "gelu":
        mlp.c_fc.weight.data[...] = rng.standard_normal((n, hidden))
        mlp.c_fc.bias.data[...] = rng.standard_normal(hidden)
        x = tensor(rng, lead + (n,))
    else:
        # keep every pre-activation at least 0.2 from ReLU's kink: |x @ W| <= 3 * 2 * 0.3
        mlp.c_fc.weight.data[...] = rng.uniform(-0.3, 0.3, (n, hidden))
        mlp.c_fc.bias.data[...] = rng.choice([-2.0, 2.0], hidden)
        x = Tensor(rng.uniform(-2, 2, lead + (n,)), requires_grad=True)
    assert gradcheck(lambda x, *ps: mlp(x), x, *mlp.parameters())


def test_every_layer_keeps_float32_and_is_a_module():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 4)).astype(np.float32), requires_grad=True)
    layers = [Linear(4, 4, rng=rng), LayerNorm(4), Dropout(0.1, rng=rng), ReLU(), GELU(),
              MLP(4, rng=rng)]
    for layer in layers:
        assert isinstance(layer, Module)
        y = layer(x)
        assert y.dtype == np.float32, type(layer).__name__
        y.sum().backward()
        for p in layer.parameters():
            assert p.dtype == np.float32 and p.grad.dtype == np.float32
    assert x.grad.dtype == np.float32
    assert Embedding(4, 4, rng=rng)(np.array([1, 2])).dtype == np.float32


def test_uninitialized_weights_allocates_without_drawing_and_ends_with_the_block():
    from numpyllm.nn.layers import uninitialized_weights
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with uninitialized_weights():
        layer = Linear(3, 4, rng=rng, dtype=np.float32)
        emb = Embedding(5, 2, rng=rng, dtype=np.float64)
    assert rng.bit_generator.state == state                 # nothing drawn
    assert layer.weight.shape == (3, 4) and layer.weight.dtype == np.float32
    assert emb.weight.shape == (5, 2) and layer.weight.requires_grad
    np.testing.assert_array_equal(layer.bias.data, 0)         # zeros are still zeros
    drawn = Linear(3, 4, rng=np.random.default_rng(0), dtype=np.float32)
    assert rng.bit_generator.state == state and drawn.weight.data.std() > 0
    np.testing.assert_array_equal(
        drawn.weight.data, Linear(3, 4, rng=np.random.default_rng(0), dtype=np.float32).weight.data)
