"""Q8_0 and Q4_0 against the `gguf` package's reference quantizers (gguf/quants.py, the
NumPy port of ggml-quants.c that llama.cpp's conversion scripts use): the same bytes, block
for block, on hypothesis-generated arrays (zeros, ties, repeated maxima of both signs,
huge and tiny values) and on a trained model's weights; and the same dequantized values."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

quants = pytest.importorskip("gguf.quants")
from gguf import GGMLQuantizationType  # noqa: E402

from numpyllm.quantize import q4_0, q8_0  # noqa: E402

FORMATS = {"q8_0": (q8_0, GGMLQuantizationType.Q8_0), "q4_0": (q4_0, GGMLQuantizationType.Q4_0)}


def _ours(x, fmt):
    module, _ = FORMATS[fmt]
    return module.to_ggml(*module.quantize(x))


def _theirs(x, fmt):
    return quants.quantize(x, FORMATS[fmt][1])


def _matrices(limit):
    """[rows, 32k] float32: ordinary values, exact ties of the rounding (k + 1/2 times a
    power of two), zeros of both signs, a block's extreme repeated with either sign,
    tiny (subnormal) and huge values (up to the largest whose scale float16 holds)."""
    special = st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 127.0, -127.0, 8.0,
                               -8.0, 1e-40, -1e-40, 6e-8, limit, -limit])
    elements = st.one_of(st.floats(-limit, limit, width=32), special,
                         st.integers(-300, 300).map(lambda k: (k + 0.5) / 64))
    shape = st.tuples(st.integers(1, 4), st.integers(1, 3).map(lambda k: 32 * k))
    return shape.flatmap(lambda s: arrays(np.float32, s, elements=elements))


@pytest.mark.parametrize("fmt,limit", [("q8_0", 8.3e6), ("q4_0", 5.2e5)])
@given(data=st.data())
def test_bytes_identical_on_generated_arrays(fmt, limit, data):
    x = data.draw(_matrices(limit))
    if fmt == "q4_0":
        # gguf's Q4_0 takes the sign of the first element for an all-zero block; ggml's C
        # (and numpyllm) give d = -0.0 always: compare blocks that are not all zeros
        blocks = x.reshape(x.shape[0], -1, 32)
        blocks[(np.abs(blocks).max(axis=-1) == 0)] = 1.0
    assert np.array_equal(_ours(x, fmt), _theirs(x, fmt))


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
@given(data=st.data())
def test_bytes_identical_on_exact_ties(fmt, data):
    """Blocks whose scale is exactly 1 (absmax 127 for Q8_0, a max of -8 for Q4_0), so
    x * id is x itself and every half-integer is a tie of the rounding: roundf takes it
    away from zero (numpy's np.round would take it to even), Q4_0's trunc(x + 8.5) up."""
    rows = data.draw(st.integers(1, 3))
    if fmt == "q8_0":
        x = data.draw(arrays(np.float32, (rows, 32), elements=st.integers(-254, 254).map(
            lambda k: k / 2)))
        x[:, 7] = data.draw(st.sampled_from([127.0, -127.0]))
    else:
        x = data.draw(arrays(np.float32, (rows, 32), elements=st.integers(-15, 15).map(
            lambda k: k / 2)))
        x[:, 3] = -8.0
    assert np.array_equal(_ours(x, fmt), _theirs(x, fmt))


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
def test_dequantized_values_identical(fmt):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((16, 128)) * rng.lognormal(0, 2, (16, 1))).astype(np.float32)
    module, qtype = FORMATS[fmt]
    raw = _theirs(x, fmt)
    ours = module.dequantize(*module.from_ggml(raw))
    assert np.array_equal(ours, quants.dequantize(raw, qtype).reshape(x.shape))


def test_zero_blocks_as_the_c_reference():
    """The one difference: for an all-zero block whose first element is -0.0, gguf's
    NumPy port stores d = +0.0; ggml's C (max starts at +0.0, replaced only when |x| >
    amax) stores -0.0 / 8 = -0.0 (0x8000), as numpyllm does. Values are 0 either way."""
    x = np.zeros((2, 32), np.float32)
    x[1] = -0.0
    ours, theirs = _ours(x, "q4_0"), _theirs(x, "q4_0")
    assert ours[:, :2].view(np.uint16).ravel().tolist() == [0x8000, 0x8000]
    assert theirs[0, :2].view(np.uint16)[0] == 0x8000 and theirs[1, :2].view(np.uint16)[0] == 0
    assert np.array_equal(ours[:, 2:], theirs[:, 2:])           # the packed codes agree
    assert np.array_equal(_ours(x, "q8_0"), _theirs(x, "q8_0"))


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
def test_bytes_identical_on_model_weights(fmt):
    """Real weights: a GPT trained for a few steps on Tiny Shakespeare-like text (every
    projection, in ggml's [out, in] layout), and GPT-2-shaped random ones."""
    from numpyllm.nn import GPT, GPTConfig
    from numpyllm.training import TrainConfig, Trainer
    text = np.frombuffer(b"ROMEO: But soft, what light through yonder window breaks? " * 40,
                         np.uint8).astype(np.int64) % 64
    model = GPT(GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=64), rng=0)
    cfg = TrainConfig(batch_size=4, max_iters=5, warmup_iters=1, lr_decay_iters=5,
                      learning_rate=1e-2)
    trainer = Trainer(model, text, text, cfg)
    for _ in range(5):
        trainer.train_step()
    weights = [p.data.T for name, p in model.named_parameters()
               if name.endswith("weight") and p.ndim == 2 and "wpe" not in name]
    weights.append(np.random.default_rng(1).normal(0, 0.02, (768, 768)).astype(np.float32))
    for w in weights:
        w = np.ascontiguousarray(w, dtype=np.float32)
        assert np.array_equal(_ours(w, fmt), _theirs(w, fmt))
