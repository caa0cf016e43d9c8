"""Packed sequences: several examples in one row, kept apart by `segment_ids`. Each
example's logits equal those it has alone, under every position scheme and for the
LLaMA family (grouped-query attention, a sliding window): nothing attends across a
boundary, and absolute positions start again at each example."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.functional import segment_mask, segment_positions
from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig

MODELS = {
    **{f"gpt-{p}": (lambda p=p: GPT(GPTConfig(vocab_size=13, block_size=24, n_layer=2, n_head=2,
                                               n_embd=8, positions=p, dtype="float64"), rng=0))
       for p in ("learned", "sinusoidal", "rope", "alibi")},
    "llama-gqa-window": lambda: Llama(LlamaConfig(
        vocab_size=13, block_size=24, n_layer=2, n_head=4, n_kv_head=2, n_embd=8,
        intermediate_size=12, sliding_window=3, dtype="float64"), rng=0),
}
_built = {}


def model_of(kind):
    if kind not in _built:
        _built[kind] = MODELS[kind]()
    return _built[kind]


@given(kind=st.sampled_from(sorted(MODELS)),
       lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_each_packed_example_computes_what_it_computes_alone(kind, lengths, seed):
    model = model_of(kind)
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, 13, size=n) for n in lengths]
    row = np.concatenate(parts)[None]                              # [1, T]
    seg = np.concatenate([np.full(n, k) for k, n in enumerate(lengths)])[None]
    with no_grad():
        packed = model(row, segment_ids=seg)[0].data[0]            # [T, V]
        start = 0
        for part in parts:
            alone = model(part[None])[0].data[0]
            np.testing.assert_allclose(packed[start:start + len(part)], alone, atol=1e-12)
            start += len(part)


def test_a_loss_over_packed_rows_is_the_loss_over_the_examples():
    model = model_of("gpt-learned")
    x = np.array([[1, 2, 3, 4, 5, 6]])
    y = np.array([[2, 3, -100, 5, 6, 7]])          # no target across the boundary
    seg = np.array([[0, 0, 0, 1, 1, 1]])
    _, packed = model(x, y, segment_ids=seg)
    _, a = model(x[:, :3], y[:, :3])
    _, b = model(x[:, 3:], y[:, 3:])
    assert abs(packed.item() - (2 * a.item() + 3 * b.item()) / 5) < 1e-12


def test_segments_are_runs_and_the_arguments_are_checked():
    assert segment_positions(np.array([[5, 5, 2, 2, 5]])).tolist() == [[0, 1, 0, 1, 0]]
    m = segment_mask(np.array([[1, 1, 2, 1]]))[0, 0]
    assert not m[3, 0] and m[3, 3]                 # a later run of 1s is another segment
    with pytest.raises(ValueError, match="segment_ids must be integers of shape"):
        segment_mask(np.array([0, 1]))
    model = model_of("gpt-learned")
    with pytest.raises(ValueError, match="segment_ids must have shape"):
        model(np.array([[1, 2, 3]]), segment_ids=np.array([[0, 0]]))
    with pytest.raises(ValueError, match="cannot be combined"):
        model(np.array([[1, 2, 3]]), segment_ids=np.array([[0, 0, 1]]),
              prefix_lengths=np.array([1]))
