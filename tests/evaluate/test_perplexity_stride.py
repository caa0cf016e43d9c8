"""Sliding-window perplexity (`evaluate_tokens(stride=...)`): every token predicted once;
stride == context is the old non-overlapping figure; no window is longer than the
context; a model that looks only at the previous token gives the same figure at every
stride; the result equals the Hugging Face recipe transcribed as it is written, and a
token-by-token computation; bits per byte; GPT and Llama."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.autograd import Tensor
from numpyllm.functional import cross_entropy
from numpyllm.nn import GPT, GPTConfig
from numpyllm.nn.llama import Llama, LlamaConfig
from numpyllm.training.evaluate import bits_per_byte, evaluate_tokens, sliding_windows

V = 11


def gpt(T=8, seed=0):
    cfg = GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=16, dtype="float64")
    return GPT(cfg, rng=np.random.default_rng(seed))


def llama(T=8, seed=0):
    cfg = LlamaConfig(vocab_size=V, block_size=T, n_layer=1, n_head=4, n_kv_head=2, n_embd=16,
                      dtype="float64")
    return Llama(cfg, rng=np.random.default_rng(seed))


def text(n, seed=1):
    return np.random.default_rng(seed).integers(0, V, n)


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


class Recorder:
    """Wraps a model and records the length of every window it is given."""

    def __init__(self, model):
        self.model, self.config, self.lengths, self.training = model, model.config, [], False

    def eval(self):
        self.model.eval()

    def train(self, mode=True):
        self.model.train(mode)

    def __call__(self, x):
        self.lengths.append(x.shape[1])
        return self.model(x)


class Bigram:
    """A model whose prediction depends only on the current token (the previous one, for
    the token predicted): a table of logits, whatever comes before."""

    def __init__(self, T, seed=0):
        self.table = np.random.default_rng(seed).normal(size=(V, V))
        self.config = type("Config", (), {"block_size": T})()
        self.training = False

    def eval(self):
        pass

    def train(self, mode=True):
        pass

    def __call__(self, x):
        return Tensor(self.table[x]), None                       # [B, T] -> [B, T, V]


@given(n=st.integers(1, 60), T=st.integers(1, 12), data=st.data())
def test_windows_count_every_token_once_within_the_context(n, T, data):
    S = data.draw(st.integers(1, T))
    counted = []
    for begin, end, scored in sliding_windows(n, T, S):
        assert 0 < end - begin <= T and 1 <= scored <= end - begin
        counted += range(end - scored + 1, end + 1)               # the tokens it counts
        if begin > 0:        # after the first window: at least T - S + 1 tokens of context
            assert (end - scored + 1) - begin >= T - S + 1
    assert counted == list(range(1, n + 1))


@pytest.mark.parametrize("n", [2, 9, 17, 30, 41])
def test_stride_equal_to_the_context_is_the_non_overlapping_figure(n):
    model, tokens, T = gpt(), text(n), 8
    result = evaluate_tokens(model, tokens, batch_size=3, stride=T)
    assert result == evaluate_tokens(model, tokens, batch_size=3)        # the default
    total = 0.0                       # the old recipe: each window of T on its own
    for start in range(0, n - 1, T):
        x = tokens[start:min(start + T, n - 1)]
        y = tokens[start + 1:start + 1 + len(x)]
        total += cross_entropy(model(x[None])[0], y[None], reduction="sum").item()
    assert result["tokens"] == n - 1
    assert math.isclose(result["loss"], total / (n - 1), rel_tol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3, 5, 8])
def test_no_window_is_longer_than_the_context(stride):
    model = Recorder(gpt())
    result = evaluate_tokens(model, text(50), batch_size=4, stride=stride)
    assert max(model.lengths) <= 8 and result["tokens"] == 49
    assert result["windows"] == len(sliding_windows(49, 8, stride))


@given(n=st.integers(2, 60), T=st.integers(1, 10), data=st.data())
def test_a_previous_token_model_does_not_depend_on_the_stride(n, T, data):
    S = data.draw(st.integers(1, T))
    model, tokens = Bigram(T), text(n, seed=n)
    result = evaluate_tokens(model, tokens, batch_size=3, stride=S)
    direct = -log_softmax(model.table[tokens[:-1]])[np.arange(n - 1), tokens[1:]].sum()
    assert math.isclose(result["nats"], direct, rel_tol=1e-12)


def hugging_face_recipe(model, tokens, max_length, stride):
    """The recipe of huggingface.co/docs/transformers/perplexity: its windows and its -100
    labels as written there (the shift to next-token targets done here, where their model
    does it inside). The tokens are counted as scored: the guide's ``num_valid_tokens -
    batch_size`` is one short in every window after the first, whose first label is
    already -100 (docs/metrics.md)."""
    encodings = tokens[None]
    seq_len = encodings.shape[1]
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc
        input_ids = encodings[:, begin_loc:end_loc]
        target_ids = input_ids.copy()
        target_ids[:, :-trg_len] = -100
        logits, _ = model(input_ids[:, :-1])
        labels = target_ids[:, 1:]
        keep = labels != -100
        lp = log_softmax(logits.data)
        nll_sum += -lp[keep, labels[keep]].sum() if keep.any() else 0.0
        n_tokens += keep.sum()
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    return nll_sum / n_tokens, n_tokens


@pytest.mark.parametrize("make", [gpt, llama])
@pytest.mark.parametrize("n, stride", [(30, 1), (30, 3), (41, 4), (9, 2), (5, 3), (40, 8)])
def test_equals_the_hugging_face_recipe_and_token_by_token(make, n, stride):
    model, tokens, T = make(), text(n), 8
    result = evaluate_tokens(model, tokens, batch_size=2, stride=stride)
    # HF's max_length counts the window's tokens, one more than the inputs it predicts from
    hf_loss, hf_count = hugging_face_recipe(model, tokens, T + 1, stride)
    assert hf_count == result["tokens"] == n - 1
    assert math.isclose(result["loss"], hf_loss, rel_tol=1e-12)
    # token by token: token i is read from the start of the window that counts it,
    # 0 for i <= T, else the first multiple of the stride at least i - T
    nll = 0.0
    for i in range(1, n):
        b = stride * math.ceil(max(i - T, 0) / stride)
        logits, _ = model(tokens[b:i][None])
        nll -= log_softmax(logits.data[0, -1])[tokens[i]]
    assert math.isclose(result["nats"], nll, rel_tol=1e-12)


def test_the_model_is_left_in_the_mode_it_was_in():
    model = gpt()
    model.train()
    evaluate_tokens(model, text(20), stride=4)
    assert model.training                       # restored after the evaluation


def test_bits_per_byte_and_errors():
    assert bits_per_byte(8 * math.log(2), 8) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one byte"):
        bits_per_byte(1.0, 0)
    with pytest.raises(ValueError, match="1 <= stride <= context, got stride 9, context 8"):
        evaluate_tokens(gpt(), text(20), stride=9)
    with pytest.raises(ValueError, match="stride 0"):
        evaluate_tokens(gpt(), text(20), stride=0)
