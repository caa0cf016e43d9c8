"""SequenceClassifier: pooling sees only real tokens, rows are independent, the config is
checked, a given backbone is wrapped (its LM head dropped)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.nn import (GPT, ClassifierConfig, GPTConfig, SequenceClassifier,
                         TransformerEncoderConfig)
from numpyllm.nn.heads import pool

GPT_CFG = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8,
                    dtype="float64", tie_weights=False)
ENC_CFG = TransformerEncoderConfig(vocab_size=11, d_model=8, n_head=2, n_layers=1, d_ff=12,
                                   dropout=0.0, max_len=8, dtype="float64")


def model(backbone="GPT", pooling=None):
    inner = GPT_CFG if backbone == "GPT" else ENC_CFG
    return SequenceClassifier(ClassifierConfig(backbone, inner.to_dict(), n_classes=3,
                                               pooling=pooling), rng=0).eval()


CASES = [("GPT", "last"), ("GPT", "mean"), ("TransformerEncoderModel", "first"),
         ("TransformerEncoderModel", "mean")]


@pytest.mark.parametrize("backbone, pooling", CASES)
@given(data=st.data())
def test_padding_changes_nothing_and_rows_are_independent(backbone, pooling, data):
    m = model(backbone, pooling)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    B = data.draw(st.integers(1, 4))
    lengths = rng.integers(1, 9, size=B)
    ids = rng.integers(0, 11, size=(B, 8))
    other = np.where(np.arange(8)[None, :] < lengths[:, None], ids, rng.integers(0, 11, (B, 8)))
    with no_grad():
        a = m(ids, lengths)[0].data
        b = m(other, lengths)[0].data                 # different padding tokens
        single = [m(ids[i:i + 1, :lengths[i]], lengths[i:i + 1])[0].data[0] for i in range(B)]
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, np.array(single), atol=1e-12)


def test_pooling_by_hand():
    h = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    from numpyllm import Tensor
    valid = np.array([[True, True, False], [True, True, True]])
    np.testing.assert_array_equal(pool(Tensor(h), valid, "first").data, h[:, 0])
    np.testing.assert_array_equal(pool(Tensor(h), valid, "last").data, [h[0, 1], h[1, 2]])
    np.testing.assert_allclose(pool(Tensor(h), valid, "mean").data,
                               [h[0, :2].mean(0), h[1].mean(0)])
    left = np.array([[False, True, True]])          # left padding: the last real is last
    np.testing.assert_array_equal(pool(Tensor(h[:1]), left, "last").data, h[:1, 2])


def test_the_backbone_head_is_dropped_and_a_given_backbone_wrapped():
    names = [n for n, _ in model().named_parameters()]
    assert not any("lm_head" in n for n in names) and names[-2:] == ["score.weight",
                                                                   "score.bias"]
    backbone = GPT(GPT_CFG, rng=3)
    wrapped = SequenceClassifier(ClassifierConfig("GPT", GPT_CFG.to_dict(), 3), backbone=backbone)
    assert wrapped.backbone is backbone
    np.testing.assert_array_equal(wrapped.backbone.wte.weight.data, GPT(GPT_CFG, rng=3).wte.weight.data)


@pytest.mark.parametrize("kwargs, match", [
    (dict(backbone="BERT"), "backbone must be one of"),
    (dict(backbone="GPT", pooling="first"), "pooling for a GPT"),
    (dict(backbone="TransformerEncoderModel", backbone_config=ENC_CFG.to_dict(),
          pooling="last"), "pooling for a TransformerEncoderModel"),
    (dict(backbone="GPT", n_classes=0), "n_classes"),
    (dict(backbone="GPT", backbone_config={"vocab_size": 11, "nope": 1}), "unknown fields"),
    (dict(backbone="GPT", backbone_config=[1]), "must be a dict"),
    (dict(backbone="GPT", dropout=1.5), "dropout"),
])
def test_config_errors(kwargs, match):
    kwargs.setdefault("backbone_config", GPT_CFG.to_dict())
    with pytest.raises(ValueError, match=match):
        ClassifierConfig(**kwargs)


def test_call_errors():
    m = model()
    with pytest.raises(ValueError, match="lengths must be integers"):
        m(np.zeros((2, 4), dtype=np.int64), np.array([5, 1]))
    with pytest.raises(ValueError, match="labels must have shape"):
        m(np.zeros((2, 4), dtype=np.int64), np.array([4, 1]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="not the GPT its config describes"):
        SequenceClassifier(ClassifierConfig("GPT", GPT_CFG.to_dict(), 3),
                           backbone=GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1,
                                                  n_head=1, n_embd=4)))
    assert ClassifierConfig.from_dict(m.config.to_dict()) == m.config


# ---------------------------------------------------------------------------- any padding side
def test_doctests():
    import doctest

    from numpyllm.nn import classifier
    assert doctest.testmod(classifier).failed == 0


def backbone_cfg(kind, positions="learned"):
    from numpyllm.nn.llama import LlamaConfig
    if kind == "GPT":
        return GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=8,
                         dtype="float64", positions=positions)
    if kind == "Llama":
        return LlamaConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_kv_head=1,
                           n_embd=8, intermediate_size=16, dtype="float64")
    return TransformerEncoderConfig(vocab_size=11, d_model=8, n_head=2, n_layers=2, d_ff=12,
                                    dropout=0.0, max_len=12, dtype="float64",
                                    positions=positions, norm="pre")


SIDES = [("GPT", "learned", "last"), ("GPT", "sinusoidal", "last"), ("GPT", "rope", "last"),
         ("GPT", "alibi", "mean"), ("Llama", None, "last"), ("Llama", None, "mean"),
         ("TransformerEncoderModel", "learned", "first"),
         ("TransformerEncoderModel", "sinusoidal", "mean")]


@pytest.mark.parametrize("backbone, positions, pooling", SIDES)
@given(data=st.data())
def test_the_pooled_token_is_the_last_real_one_under_left_and_right_padding(
        backbone, positions, pooling, data):
    """Padding on the left, the right or both sides, with the mask the classifier takes,
    gives the logits of the unpadded sequence: the pool reads the last real token (or the
    first, or the mean over real ones), at the position it has without padding."""
    cfg = backbone_cfg(backbone, positions or "learned")
    m = SequenceClassifier(ClassifierConfig(backbone, cfg.to_dict(), n_classes=3,
                                            pooling=pooling), rng=1).eval()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    B = data.draw(st.integers(1, 4))
    T = 12
    lengths = [data.draw(st.integers(1, T)) for _ in range(B)]
    seqs = [rng.integers(0, 11, size=n) for n in lengths]
    lefts = [data.draw(st.integers(0, T - n)) for n in lengths]
    ids = rng.integers(0, 11, size=(B, T))                     # padding: any token at all
    mask = np.zeros((B, T), dtype=bool)
    for b, (s, left) in enumerate(zip(seqs, lefts)):
        ids[b, left:left + len(s)] = s
        mask[b, left:left + len(s)] = True
    with no_grad():
        padded = m(ids, mask=mask)[0].data
        as_ints = m(ids, mask=mask.astype(np.int64))[0].data
        alone = np.stack([m(s[None, :])[0].data[0] for s in seqs])
    np.testing.assert_allclose(padded, alone, atol=1e-10)
    np.testing.assert_array_equal(padded, as_ints)


def test_left_padding_trains_as_right_padding():
    """The gradient through a left-padded batch (mask) is the right-padded one's (lengths)."""
    cfg = backbone_cfg("GPT")
    seqs = [np.array([3, 4, 5]), np.array([6, 7, 8, 9, 1])]
    right, left = np.zeros((2, 5), np.int64), np.zeros((2, 5), np.int64)
    right[0, :3], right[1] = seqs
    left[0, 2:], left[1] = seqs
    grads = []
    for ids, kw in ((right, dict(lengths=np.array([3, 5]))),
                    (left, dict(mask=left != 0))):
        m = SequenceClassifier(ClassifierConfig("GPT", cfg.to_dict(), 3), rng=0)
        if "lengths" in kw:
            logits, loss = m(ids, kw["lengths"], np.array([2, 0]))
        else:
            logits, loss = m(ids, labels=np.array([2, 0]), mask=kw["mask"])
        loss.backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    for name, g in grads[0].items():
        np.testing.assert_allclose(grads[1][name], g, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kwargs, match", [
    (dict(mask=np.array([[1, 0, 1, 1]])), "row 0 has padding between real tokens"),
    (dict(mask=np.array([[0, 0, 0, 0]])), "row 0 has no real token"),
    (dict(mask=np.array([[2, 1, 1, 1]])), "mask must be bool or 0/1"),
    (dict(mask=np.ones((1, 3), bool)), r"of shape \[B, T\] = \(1, 4\)"),
    (dict(mask=np.ones((1, 4), bool), lengths=np.array([4])), "not both"),
])
def test_mask_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        model()(np.zeros((1, 4), dtype=np.int64), **kwargs)


# ---------------------------------------------------------------------------- train_blocks
def trainable(m):
    return {n for n, p in m.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("backbone, block, norm", [
    ("GPT", "backbone.h.{}.", ("backbone.ln_f.",)),
    ("Llama", "backbone.layers.{}.", ("backbone.norm.",)),
    ("TransformerEncoderModel", "backbone.encoder.layers.{}.", ("backbone.encoder.ln_f.",)),
])
@pytest.mark.parametrize("n_last", [0, 1, 2])
def test_train_blocks_unfreezes_exactly_the_last_blocks_the_final_norm_and_the_head(
        backbone, block, norm, n_last):
    from numpyllm.nn import train_blocks
    m = SequenceClassifier(ClassifierConfig(backbone, backbone_cfg(backbone).to_dict(), 3),
                           rng=0)
    assert train_blocks(m, n_last) is m
    prefixes = norm + ("score.",) + tuple(block.format(i) for i in range(2 - n_last, 2))
    expected = {n for n, _ in m.named_parameters() if n.startswith(prefixes)}
    assert trainable(m) == expected
    assert not any("embed" in n or "wte" in n or "wpe" in n for n in expected)
    logits, loss = m(np.array([[1, 2, 3]]), labels=np.array([1]))
    loss.backward()
    assert {n for n, p in m.named_parameters() if p.grad is not None} == expected
    train_blocks(m, None)
    assert trainable(m) == {n for n, _ in m.named_parameters()}


def test_train_blocks_on_a_post_ln_encoder_and_a_bare_gpt():
    from numpyllm.nn import train_blocks
    post = TransformerEncoderConfig(vocab_size=11, d_model=8, n_head=2, n_layers=2, d_ff=12,
                                    norm="post")
    m = train_blocks(SequenceClassifier(ClassifierConfig("TransformerEncoderModel",
                                                         post.to_dict(), 2), rng=0), 1)
    assert trainable(m) == {n for n, _ in m.named_parameters()
                            if n.startswith(("backbone.encoder.layers.1.", "score."))}
    gpt = train_blocks(GPT(GPT_CFG, rng=0), 0)                  # untied: lm_head trains
    assert trainable(gpt) == {"ln_f.weight", "ln_f.bias", "lm_head.weight"}
    with pytest.raises(ValueError, match=r"n_last must be an int in \[0, 1\]"):
        train_blocks(gpt, 2)
    with pytest.raises(TypeError, match="expected a SequenceClassifier"):
        train_blocks(object(), 1)
