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
