"""Every objective: what its batches mean (masks, selections, spans) as properties, and
that the Trainer runs each one the same way: data parallel == one thread, exact resume,
the loss going down."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm import no_grad
from numpyllm.data.examples import Labelled, Pairs
from numpyllm.nn import (GPT, ClassifierConfig, GPTConfig, SequenceClassifier, Transformer,
                         TransformerConfig, TransformerEncoderConfig, TransformerEncoderModel)
from numpyllm.training import (CausalLM, Classification, MaskedLM, PrefixLM, Seq2Seq,
                               SpanCorruption, TrainConfig, Trainer, objective_from_dict)
from numpyllm.training.objectives import InstructionTuning
from numpyllm.training.data_parallel import DataParallel

V = 20                                       # ids 16..19 are special in these tests
MASK, PAD, BOS, EOS = 16, 17, 18, 19
SENTINELS = (12, 13, 14, 15)
STREAM = np.random.default_rng(0).integers(0, 12, size=600)


# ------------------------------------------------------------------ models and data
def gpt(T=8, dtype="float64", **kw):
    return GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=8,
                         dtype=dtype, **kw), rng=0)


def encoder(T=8, dtype="float64"):
    return TransformerEncoderModel(TransformerEncoderConfig(
        vocab_size=V, d_model=8, n_head=2, n_layers=2, d_ff=16, dropout=0.0, max_len=T,
        positions="learned", activation="gelu", mlm_head=True, dtype=dtype), rng=0)


def seq2seq_model(dtype="float64", max_len=16):
    return Transformer(TransformerConfig(
        src_vocab_size=V, tgt_vocab_size=V, d_model=8, n_head=2, n_encoder_layers=1,
        n_decoder_layers=1, d_ff=16, dropout=0.0, max_len=max_len, share_embeddings=True,
        pad_id=PAD, dtype=dtype), rng=0)


def classifier(backbone="GPT", dtype="float64"):
    inner = GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8, dtype=dtype) \
        if backbone == "GPT" else TransformerEncoderConfig(
            vocab_size=V, d_model=8, n_head=2, n_layers=1, d_ff=16, dropout=0.0, max_len=8,
            dtype=dtype)
    return SequenceClassifier(ClassifierConfig(backbone, inner.to_dict(), n_classes=3), rng=0)


def pairs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    src = [rng.integers(0, 12, size=rng.integers(1, 7)) for _ in range(n)]
    return Pairs(src, [s[::-1] for s in src])                # the reversal task


def labelled(n=40, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 12, size=rng.integers(1, 8)) for _ in range(n)]
    return Labelled(seqs, [int(s.sum()) % 3 for s in seqs], 3)


def instructions(n=40, seed=0):
    """Prompts of 1-5 tokens whose response is the prompt reversed, then EOS."""
    from numpyllm.data.instruction import Instructions
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, 12, size=rng.integers(1, 6)) for _ in range(n)]
    responses = [np.append(p[::-1], EOS) for p in prompts]
    return Instructions(prompts, responses, [{}] * n)


CASES = {
    "clm": (lambda dtype="float64": gpt(dtype=dtype), lambda: CausalLM(8), STREAM),
    "prefix_lm": (lambda dtype="float64": gpt(dtype=dtype), lambda: PrefixLM(8), STREAM),
    "mlm": (lambda dtype="float64": encoder(dtype=dtype),
            lambda: MaskedLM(8, MASK, V, special_ids=(PAD, BOS, EOS) + SENTINELS), STREAM),
    "span": (lambda dtype="float64": seq2seq_model(dtype),
             lambda: SpanCorruption(12, SENTINELS, eos_id=EOS, bos_id=BOS), STREAM),
    "seq2seq": (lambda dtype="float64": seq2seq_model(dtype),
                lambda: Seq2Seq(PAD, BOS, EOS, label_smoothing=0.1), pairs()),
    "classify": (lambda dtype="float64": classifier(dtype=dtype),
                 lambda: Classification(3, PAD), labelled()),
    "sft": (lambda dtype="float64": gpt(T=16, dtype=dtype),
            lambda: InstructionTuning(pad_id=PAD), instructions()),
    "sft-packed": (lambda dtype="float64": gpt(T=16, dtype=dtype),
                   lambda: InstructionTuning(pad_id=PAD, max_length=16, pack=1),
                   instructions()),
}


# ------------------------------------------------------------------ prefix LM
@given(T=st.integers(2, 8), data=st.data())
def test_prefix_lm_mask_sees_the_prefix_both_ways_and_nothing_later(T, data):
    """Changing a token after the prefix changes no output before it; changing a prefix
    token changes the outputs of every position, earlier prefix positions included."""
    model = gpt(T=8).eval()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    P = data.draw(st.integers(1, T), label="prefix")
    x = rng.integers(0, 12, size=(1, T))
    with no_grad():
        base = model(x, prefix_lengths=np.array([P]))[0].data
    j = data.draw(st.integers(0, T - 1), label="changed position")
    x2 = x.copy()
    x2[0, j] = (x2[0, j] + 1) % 12
    with no_grad():
        other = model(x2, prefix_lengths=np.array([P]))[0].data
    changed = np.abs(other - base).max(axis=-1)[0] > 1e-12       # [T]
    if j < P:          # a prefix token: everyone sees it
        assert changed.all()
    else:              # after the prefix: only j and later
        assert not changed[:j].any() and changed[j:].all()


@given(seed=st.integers(0, 2**16))
def test_prefix_lm_counts_only_the_tokens_after_the_prefix(seed):
    obj = PrefixLM(8)
    rng = np.random.default_rng(seed)
    batch = obj.sample(obj.dataset(STREAM), 16, rng)
    x, y, prefix = batch["x"], batch["y"], batch["prefix"]
    assert ((1 <= prefix) & (prefix <= 7)).all()
    for b in range(16):
        P = prefix[b]
        assert (y[b, :P - 1] == -100).all()                      # inside the prefix
        np.testing.assert_array_equal(y[b, P - 1:-1], x[b, P:])   # the tokens after it
    np.testing.assert_array_equal(batch.counts, 8 - (prefix - 1))


def test_prefix_length_zero_or_none_is_the_causal_model():
    model = gpt().eval()
    x = np.random.default_rng(1).integers(0, 12, size=(2, 8))
    with no_grad():
        causal = model(x)[0].data
        np.testing.assert_array_equal(model(x, prefix_lengths=np.array([0, 1]))[0].data, causal)


# ------------------------------------------------------------------ masked LM
@given(seed=st.integers(0, 2**16))
def test_mlm_targets_exactly_the_selected_positions(seed):
    obj = CASES["mlm"][1]()
    tokens = np.random.default_rng(seed).integers(0, 12, size=(6, 8))
    inputs, targets = obj.corrupt(tokens, np.random.default_rng(seed))
    selected = targets != -100
    np.testing.assert_array_equal(targets[selected], tokens[selected])
    np.testing.assert_array_equal(inputs[~selected], tokens[~selected])    # untouched
    replaced = inputs[selected]
    assert not np.isin(replaced[replaced != tokens[selected]],
                       [PAD, BOS, EOS] + list(SENTINELS)).any()    # never a special id


def test_mlm_selects_15_percent_and_splits_80_10_10_within_binomial_bounds():
    obj = CASES["mlm"][1]()
    tokens = np.random.default_rng(0).integers(0, 12, size=(400, 100))
    inputs, targets = obj.corrupt(tokens, np.random.default_rng(1))
    n = tokens.size
    selected = targets != -100
    k = int(selected.sum())

    def within(count, total, p):             # 5 standard deviations of a binomial
        return abs(count - total * p) <= 5 * math.sqrt(total * p * (1 - p))
    assert within(k, n, 0.15)
    masked = int((inputs[selected] == MASK).sum())
    kept = int((inputs[selected] == tokens[selected]).sum())
    # a random replacement can draw the token itself (1 in 12 here): part of "kept"
    assert within(masked, k, 0.8)
    assert within(kept, k, 0.1 + 0.1 / 12)
    assert within(k - masked - kept, k, 0.1 * 11 / 12)


def test_mlm_counts_only_selected_positions_in_the_loss():
    obj = CASES["mlm"][1]()
    model = encoder()
    batch = obj.sample(obj.dataset(STREAM), 4, np.random.default_rng(3))
    logits, _ = model(batch["x"])
    y = batch["y"]
    z = logits.data - logits.data.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    sel = y != -100
    by_hand = -logp[sel, y[sel]].mean()
    assert np.isclose(obj.loss(model, batch).item(), by_hand)
    assert batch.counts.sum() == sel.sum()


# ------------------------------------------------------------------ span corruption
@given(T=st.integers(2, 40), seed=st.integers(0, 2**16),
       density=st.sampled_from([0.15, 0.3, 0.5]))
def test_span_corruption_round_trips(T, seed, density):
    obj = SpanCorruption(T, tuple(range(100, 130)), eos_id=99, bos_id=98, noise_density=density)
    windows = np.random.default_rng(seed).integers(0, 50, size=(3, T))
    src, tgt = obj.corrupt(windows, np.random.default_rng(seed))
    assert src.shape == (3, T - obj.n_noise + obj.n_spans + 1)     # one length for all rows
    assert tgt.shape == (3, obj.n_noise + obj.n_spans + 1)
    for b in range(3):
        np.testing.assert_array_equal(obj.restore(src[b], tgt[b]), windows[b])
        sentinels_in = [t for t in src[b] if t >= 100]
        assert sentinels_in == list(range(100, 100 + obj.n_spans))   # in order, once each
        assert tgt[b][0] == 100 and tgt[b][-1] == 99 and src[b][-1] == 99


def test_span_lengths_average_near_the_mean():
    obj = SpanCorruption(200, tuple(range(300, 400)), eos_id=0, bos_id=1)
    lengths = []
    rng = np.random.default_rng(0)
    for _ in range(200):
        noise = obj.noise_mask(rng)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], noise.astype(int), [0]])))
        lengths += list(edges[1::2] - edges[::2])
        assert noise.sum() == 30                                  # 15% of 200
    assert abs(np.mean(lengths) - 3.0) < 0.05


# ------------------------------------------------------------------ seq2seq, classification
def test_seq2seq_batches_teacher_force_with_bos_and_eos():
    obj = Seq2Seq(PAD, BOS, EOS)
    batch = obj.make_batch(Pairs([[5, 6, 7], [8]], [[7, 6, 5], [8]]), np.array([0, 1]))
    np.testing.assert_array_equal(batch["src"], [[5, 6, 7], [8, PAD, PAD]])
    np.testing.assert_array_equal(batch["tgt_in"], [[BOS, 7, 6, 5], [BOS, 8, PAD, PAD]])
    np.testing.assert_array_equal(batch["y"], [[7, 6, 5, EOS], [8, EOS, -100, -100]])
    np.testing.assert_array_equal(batch.counts, [4, 2])


def test_classification_batches_pad_right_and_count_one_per_row():
    obj = Classification(3, PAD)
    batch = obj.make_batch(Labelled([[1, 2, 3], [4]], [2, 0], 3), np.array([1, 0]))
    np.testing.assert_array_equal(batch["ids"], [[4, PAD, PAD], [1, 2, 3]])
    np.testing.assert_array_equal(batch["lengths"], [1, 3])
    np.testing.assert_array_equal(batch.counts, [1, 1])


# ------------------------------------------------------------------ the Trainer, for each
def trainer(name, dtype="float64", **train):
    make_model, make_obj, data = CASES[name]
    settings_ = dict(batch_size=6, max_iters=40, warmup_iters=2, lr_decay_iters=40,
                     eval_iters=2, eval_interval=1000, learning_rate=1e-2, dropout=None)
    settings_.pop("dropout")
    settings_.update(train)
    return Trainer(make_model(dtype), data, data, TrainConfig(**settings_),
                   objective=make_obj())


@pytest.mark.parametrize("name", CASES)
def test_data_parallel_equals_one_thread(name):
    make_model, make_obj, data = CASES[name]
    obj = make_obj()
    grads = []
    for threads in (1, 3):
        model = make_model()
        batch = obj.sample(obj.dataset(data), 7, np.random.default_rng(4))
        value = DataParallel(model, threads=threads).run(batch, obj.loss)
        grads.append((value, {n: p.grad.copy() for n, p in model.named_parameters()
                              if p.grad is not None}))
    (a, ga), (b, gb) = grads
    assert math.isclose(a, b, rel_tol=1e-12)
    assert ga.keys() == gb.keys() and ga
    for n in ga:
        np.testing.assert_allclose(gb[n], ga[n], rtol=1e-10, atol=1e-13, err_msg=n)


@pytest.mark.parametrize("name", CASES)
def test_resume_equals_uninterrupted(name, tmp_path):
    straight = trainer(name)
    losses = [straight.train_step()["loss"] for _ in range(6)]
    first = trainer(name)
    for _ in range(3):
        first.train_step()
    first.save(tmp_path)
    resumed, _ = Trainer.resume(tmp_path, CASES[name][2], CASES[name][2])
    assert type(resumed.objective) is type(first.objective)
    assert resumed.objective.to_dict() == first.objective.to_dict()
    again = [resumed.train_step()["loss"] for _ in range(3)]
    assert again == losses[3:]


@pytest.mark.parametrize("name", CASES)
def test_the_loss_goes_down(name):
    t = trainer(name, dtype="float32", max_iters=60)
    first = np.mean([t.train_step()["loss"] for _ in range(5)])
    for _ in range(50):
        last = t.train_step()["loss"]
    assert last < first - 0.2, (first, last)


@pytest.mark.parametrize("name", CASES)
def test_an_objective_round_trips_through_its_record(name):
    obj = CASES[name][1]()
    again = objective_from_dict(obj.to_dict())
    assert again == obj and again.to_dict() == obj.to_dict()


@pytest.mark.parametrize("name, wrong", [("clm", lambda: encoder()),
                                         ("mlm", lambda: gpt()),
                                         ("seq2seq", lambda: gpt()),
                                         ("classify", lambda: seq2seq_model())])
def test_an_objective_refuses_a_model_it_does_not_train(name, wrong):
    with pytest.raises(ValueError, match=f"the {CASES[name][1]().name} objective trains a"):
        Trainer(wrong(), CASES[name][2], objective=CASES[name][1]())


@pytest.mark.parametrize("record, match", [({"name": "nope"}, "name among"),
                                           ({"name": "clm"}, "context_length"),
                                           ({"name": "clm", "context_length": 0}, "positive"),
                                           ([1], "name among")])
def test_a_bad_objective_record_is_a_clear_error(record, match):
    with pytest.raises(ValueError, match=match):
        objective_from_dict(record)
