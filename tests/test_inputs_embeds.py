"""``inputs_embeds``: every model takes vectors in place of its token lookup.

Feeding ``model.token_embeddings(ids)`` must compute exactly what ``ids`` computes (the
positions, masks, padding and pooling all still apply), and the gradient must reach the
vectors (gradient-checked in numpyllm/checks/models.py: "... (inputs_embeds)").
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numpyllm.autograd import Tensor
from numpyllm.checks.case import perturb
from numpyllm.nn import (ClassifierConfig, SequenceClassifier, TransformerEncoderConfig,
                         TransformerEncoderModel)
from numpyllm.nn.gpt import GPT, POSITIONS, GPTConfig
from numpyllm.nn.llama import Llama, LlamaConfig

V, C = 13, 8


def _gpt(positions="learned", seed=0):
    return GPT(GPTConfig(vocab_size=V, block_size=6, n_layer=2, n_head=2, n_embd=C,
                         dropout=0.0, positions=positions, dtype="float64"), rng=seed)


def _llama(seed=0):
    return Llama(LlamaConfig(vocab_size=V, block_size=6, n_layer=2, n_head=2, n_kv_head=1,
                             n_embd=C, intermediate_size=12, dtype="float64"), rng=seed)


def _encoder(seed=0, positions="learned"):
    return TransformerEncoderModel(TransformerEncoderConfig(
        vocab_size=V, d_model=C, n_head=2, n_layers=2, d_ff=12, dropout=0.0, max_len=6,
        positions=positions, dtype="float64"), rng=seed)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), T=st.integers(1, 6), B=st.integers(1, 3),
       positions=st.sampled_from(POSITIONS))
def test_gpt_embeds_of_ids_compute_what_ids_compute(seed, T, B, positions):
    model = _gpt(positions, seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))
    y = rng.integers(0, V, size=(B, T))
    lengths = rng.integers(1, T + 1, size=B)
    a, la = model(ids, y, prefix_lengths=lengths)
    b, lb = model(inputs_embeds=model.token_embeddings(ids), targets=y, prefix_lengths=lengths)
    np.testing.assert_array_equal(a.data, b.data)
    assert la.item() == lb.item()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), T=st.integers(1, 6))
def test_llama_and_encoder_embeds_of_ids_compute_what_ids_compute(seed, T):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(2, T))
    llama = _llama(seed)
    np.testing.assert_array_equal(llama(ids)[0].data,
                                  llama(inputs_embeds=llama.token_embeddings(ids))[0].data)
    enc = _encoder(seed)
    lengths = np.array([T, max(1, T - 1)])
    np.testing.assert_array_equal(
        enc(ids, lengths)[0].data,
        enc(inputs_embeds=enc.token_embeddings(ids), key_padding_mask=lengths)[0].data)


def test_seq2seq_source_embeds_compute_what_source_ids_compute():
    from numpyllm.nn import Transformer, TransformerConfig
    model = Transformer(TransformerConfig(src_vocab_size=V, tgt_vocab_size=V, d_model=C,
                                          n_head=2, n_encoder_layers=2, n_decoder_layers=1,
                                          d_ff=12, dropout=0.0, pad_id=0, dtype="float64"),
                        rng=0)
    src = np.array([[3, 4, 5, 6], [7, 8, 9, 0]])                # the second row padded
    tgt, y = np.array([[1, 2, 3], [1, 4, 5]]), np.array([[2, 3, 4], [4, 5, 0]])
    lengths = np.array([4, 3])                                   # no ids: padding given
    a, la = model(src, tgt, y)
    b, lb = model(None, tgt, y, inputs_embeds=model.token_embeddings(src), src_lengths=lengths)
    np.testing.assert_array_equal(a.data, b.data)
    assert la.item() == lb.item()
    np.testing.assert_array_equal(model.encode(src).data,
                                  model.encode(inputs_embeds=model.token_embeddings(src),
                                               src_lengths=lengths).data)
    with pytest.raises(ValueError, match="Transformer: give token ids or inputs_embeds"):
        model.encode()


@pytest.mark.parametrize("backbone", ["GPT", "Llama", "TransformerEncoderModel"])
def test_classifier_embeds_follow_left_padding(backbone):
    inner = {"GPT": _gpt, "Llama": _llama, "TransformerEncoderModel": _encoder}[backbone]()
    model = perturb(SequenceClassifier(ClassifierConfig(backbone, inner.config.to_dict(),
                                                        n_classes=3), rng=1),
                    np.random.default_rng(2))         # weights where every path matters
    ids = np.array([[0, 0, 4, 5, 6], [7, 8, 9, 10, 11]])
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)      # row 0 left-padded
    a = model(ids, mask=mask)[0].data
    emb = model.token_embeddings(ids)
    b = model(inputs_embeds=emb, mask=mask)[0].data
    np.testing.assert_array_equal(a, b)
    # the padded slots' vectors do not matter; the real ones do
    noisy = emb.data.copy()
    noisy[0, :2] += 100.0
    np.testing.assert_allclose(model(inputs_embeds=noisy, mask=mask)[0].data, a, atol=1e-12)
    noisy[0, 3] += np.random.default_rng(0).standard_normal(C)   # (a constant shift: LN's)
    assert np.abs(model(inputs_embeds=noisy, mask=mask)[0].data[0] - a[0]).max() > 1e-3


def test_gradient_reaches_the_input_and_matches_the_table_gradient():
    """d loss / d inputs_embeds, summed by token id, is d loss / d wte (the lookup's
    backward) when the head is untied: the vectors are exactly where the table's rows were."""
    model = GPT(GPTConfig(vocab_size=V, block_size=6, n_layer=1, n_head=2, n_embd=C,
                          tie_weights=False, dtype="float64"), rng=3)
    ids = np.array([[1, 2, 1, 5], [3, 3, 4, 1]])
    y = np.array([[2, 1, 5, 3], [3, 4, 1, 2]])
    model(ids, y)[1].backward()
    table_grad = model.wte.weight.grad.copy()
    model.zero_grad()
    e = Tensor(model.wte.weight.data[ids], requires_grad=True)
    model(inputs_embeds=e, targets=y)[1].backward()
    summed = np.zeros_like(table_grad)
    np.add.at(summed, ids, e.grad)
    np.testing.assert_allclose(summed, table_grad, rtol=1e-12, atol=1e-14)
    assert model.wte.weight.grad is None or not np.any(model.wte.weight.grad)


@pytest.mark.parametrize("call, match", [
    (lambda m: m(), "exactly one of them \\(got neither\\)"),
    (lambda m: m(np.array([[1]]), inputs_embeds=np.zeros((1, 1, C))), "got both"),
    (lambda m: m(inputs_embeds=np.zeros((1, 2, C + 1))), r"\[B, T, 8\]"),
    (lambda m: m(inputs_embeds=np.zeros((1, 0, C))), "T >= 1"),
    (lambda m: m(inputs_embeds=np.zeros((1, 2, C), np.int64)), "must be floats"),
    (lambda m: m(inputs_embeds=np.zeros((1, 2, C), np.float32)), "computes in float64"),
    (lambda m: m(inputs_embeds=np.full((1, 2, C), np.nan)), "NaN"),
    (lambda m: m(inputs_embeds=np.zeros((1, 7, C))), "longer than block_size"),
    (lambda m: m(inputs_embeds=np.zeros((1, 2, C)), targets=np.zeros((1, 3), int)),
     "the input has \\(1, 2\\)"),
])
def test_bad_inputs_embeds_get_one_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(_gpt())


def test_bad_inputs_embeds_on_the_other_models():
    with pytest.raises(ValueError, match="Llama: give token ids or inputs_embeds"):
        _llama()()
    with pytest.raises(ValueError, match="longer than max_len=6"):
        _encoder()(inputs_embeds=np.zeros((1, 7, C)))
    clf = SequenceClassifier(ClassifierConfig("GPT", _gpt().config.to_dict(), n_classes=2))
    with pytest.raises(ValueError, match="SequenceClassifier: inputs_embeds must have shape"):
        clf(inputs_embeds=np.zeros((2, 3)).reshape(1, 2, 3))
