"""numpyllm.generate for decoder-only models: results, sampling semantics, stopping,
streaming, batches of prompts of different lengths, context overflow, errors."""
import numpy as np
import pytest

from numpyllm.autograd import is_grad_enabled
from numpyllm.generate import generate, probabilities, sample, stream, warp_logits
from numpyllm.nn import GPT, GPTConfig

POSITIONS = ("learned", "sinusoidal", "rope", "alibi")


def tiny(positions="learned", block_size=16, vocab_size=23, dtype="float64", seed=0, **kw):
    cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2,
                    n_embd=16, positions=positions, dtype=dtype, **kw)
    return GPT(cfg, rng=np.random.default_rng(seed))


def greedy_reference(model, prompt, n, window=None):
    """Greedy decoding the slow, obvious way: the full forward pass every step."""
    ids = list(prompt)
    for _ in range(n):
        ctx = ids if window is None else ids[-window:]
        logits, _ = model(np.array([ctx]))
        ids.append(int(logits.data[0, -1].argmax()))
    return np.array(ids)


@pytest.fixture(scope="module")
def model():
    return tiny()


# --------------------------------------------------------------------------- results
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_equals_the_obvious_loop(positions, use_cache):
    m = tiny(positions)
    out = generate(m, np.array([3, 1, 4, 1, 5]), 8, greedy=True, use_cache=use_cache)
    np.testing.assert_array_equal(out, greedy_reference(m, [3, 1, 4, 1, 5], 8))


def test_shapes_and_types(model):
    one = generate(model, np.array([1, 2, 3]), 4, greedy=True)
    assert one.shape == (7,) and one.dtype == np.int64
    batch = generate(model, np.array([[1, 2, 3], [4, 5, 6]]), 4, greedy=True)
    assert batch.shape == (2, 7)
    from_list = generate(model, [1, 2, 3], 4, greedy=True)       # a list of ints: one prompt
    np.testing.assert_array_equal(from_list, one)
    ragged = generate(model, [[1, 2, 3], [4]], 4, greedy=True)   # a list of prompts
    assert isinstance(ragged, list) and [len(r) for r in ragged] == [7, 5]
    np.testing.assert_array_equal(ragged[0], one)
    assert generate(model, np.array([1, 2]), 0).tolist() == [1, 2]


def test_never_mutates_the_callers_array_and_returns_a_new_one(model):
    prompt = np.array([[1, 2, 3]])
    before = prompt.copy()
    out = generate(model, prompt, 3, rng=0)
    np.testing.assert_array_equal(prompt, before)
    out[0, 0] = 99
    np.testing.assert_array_equal(prompt, before)
    assert generate(model, prompt, 0) is not prompt


def test_a_seed_gives_the_same_tokens_every_time(model):
    runs = [generate(model, np.array([1, 2]), 20, temperature=1.5, top_k=10, top_p=0.9,
                     rng=np.random.default_rng(7)) for _ in range(3)]
    assert all((r == runs[0]).all() for r in runs)
    seeded = generate(model, np.array([1, 2]), 20, temperature=1.5, top_k=10, top_p=0.9, rng=7)
    np.testing.assert_array_equal(seeded, runs[0])       # an int seed: default_rng(seed)
    other = generate(model, np.array([1, 2]), 20, temperature=1.5, top_k=10, top_p=0.9,
                     rng=np.random.default_rng(8))
    assert not (other == runs[0]).all()


def test_runs_under_no_grad_in_eval_mode_and_restores_the_mode(model):
    seen = []
    original = model.forward_cached

    def spy(*args, **kwargs):
        seen.append((is_grad_enabled(), model.training, model.h[0].training))
        return original(*args, **kwargs)

    model.forward_cached = spy
    try:
        model.train()
        generate(model, np.array([1, 2]), 3, rng=0)
    finally:
        del model.forward_cached
    assert seen == [(False, False, False)] * 3
    assert model.training and model.h[0].attn.training and is_grad_enabled()
    model.eval()
    generate(model, np.array([1, 2]), 3, rng=0)
    assert not model.training


def test_dropout_is_off_while_generating():
    m = tiny(dropout=0.5)
    m.train()
    a = generate(m, np.array([1, 2, 3]), 6, greedy=True)
    b = generate(m, np.array([1, 2, 3]), 6, greedy=True)
    np.testing.assert_array_equal(a, b)
    m.eval()
    np.testing.assert_array_equal(a, greedy_reference(m, [1, 2, 3], 6))


def test_float32_model_cache_and_recompute_agree():
    m = tiny(dtype="float32")
    a = generate(m, np.array([5, 6, 7]), 12, greedy=True)
    b = generate(m, np.array([5, 6, 7]), 12, greedy=True, use_cache=False)
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- sampling
def test_sampling_order_is_temperature_then_top_k_then_top_p():
    z = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    # top-k 3 renormalises to 4:3:2 / 9, whose nucleus 0.75 is 2 tokens (0.444 + 0.333);
    # top-p first would have kept 3 (0.4 + 0.3 < 0.75)
    np.testing.assert_allclose(probabilities(z, top_k=3, top_p=0.75), [[4 / 7, 3 / 7, 0, 0]])
    # temperature 0.5 squares: 16:9:4:1 / 30, whose nucleus 0.8 is 2 tokens (0.533 + 0.3);
    # top-p before temperature would have kept 3
    np.testing.assert_allclose(probabilities(z, temperature=0.5, top_p=0.8),
                               [[16 / 25, 9 / 25, 0, 0]])
    # all three: 16:9:4 / 29 after top-k, nucleus 0.8 -> 16/29 + 9/29 = 0.862: 2 tokens
    np.testing.assert_allclose(probabilities(z, temperature=0.5, top_k=3, top_p=0.8),
                               [[16 / 25, 9 / 25, 0, 0]])


def test_top_k_keeps_ties_and_top_p_keeps_at_least_one():
    z = np.array([[1.0, 3.0, 3.0, 0.0]])
    assert (probabilities(z, top_k=1)[0] > 0).tolist() == [False, True, True, False]
    p = probabilities(np.array([[10.0, 0.0, 0.0]]), top_p=1e-9)
    assert p[0].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(probabilities(z, top_p=1.0), probabilities(z))


def test_warp_logits_does_not_modify_its_input():
    z = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    warp_logits(z, temperature=0.5, top_k=1, top_p=0.5)
    assert z.tolist() == [[1.0, 2.0, 3.0]]


def test_sample_follows_the_distribution():
    rng = np.random.default_rng(0)
    z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    draws = sample(np.tile(z, (40000, 1)), rng=rng)
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.01)
    draws = sample(np.tile(z, (20000, 1)), top_k=2, rng=rng)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, [0.625, 0.375, 0, 0],
                               atol=0.015)


def test_sample_never_picks_a_zero_probability_token():
    z = np.array([[0.0, -np.inf, 0.0, -np.inf]])
    draws = sample(np.repeat(z, 5000, 0), rng=np.random.default_rng(1))
    assert set(draws.tolist()) == {0, 2}


def test_greedy_ignores_the_sampling_settings(model):
    a = generate(model, np.array([1, 2]), 6, greedy=True)
    b = generate(model, np.array([1, 2]), 6, greedy=True, temperature=0.1, top_k=3, top_p=0.5)
    np.testing.assert_array_equal(a, b)


def test_low_temperature_tends_to_greedy(model):
    a = generate(model, np.array([1, 2]), 8, greedy=True)
    b = generate(model, np.array([1, 2]), 8, temperature=1e-4, rng=0)
    np.testing.assert_array_equal(a, b)


def test_top_k_1_is_greedy(model):
    np.testing.assert_array_equal(generate(model, np.array([4, 2]), 8, top_k=1, rng=3),
                                  generate(model, np.array([4, 2]), 8, greedy=True))


# --------------------------------------------------------------------------- stopping
def test_stops_at_eos_including_it(model):
    free = generate(model, np.array([1, 2]), 10, greedy=True)
    eos = int(free[5])                                   # the 4th generated token
    first = 2 + list(free[2:]).index(eos)
    out = generate(model, np.array([1, 2]), 10, greedy=True, eos_id=eos)
    np.testing.assert_array_equal(out, free[:first + 1])
    out = generate(model, np.array([1, 2]), 10, greedy=True, eos_id={eos, 22})
    np.testing.assert_array_equal(out, free[:first + 1])


def test_stops_at_a_stop_sequence_of_generated_tokens(model):
    free = generate(model, np.array([1, 2]), 12, greedy=True)
    seq = free[6:8].tolist()
    out = generate(model, np.array([1, 2]), 12, greedy=True, stop=[[21, 21, 21], seq])
    gen = out[2:].tolist()
    assert gen[-2:] == seq and np.array_equal(out, free[:len(out)])
    # the first occurrence ends it
    assert all(gen[i:i + 2] != seq for i in range(len(gen) - 2))


def test_a_stop_sequence_does_not_match_across_the_prompt(model):
    free = generate(model, np.array([1, 2]), 6, greedy=True)
    first = int(free[2])
    out = generate(model, np.array([1, 2]), 6, greedy=True, stop=[[2, first]])
    np.testing.assert_array_equal(out, free)             # [2, first] spans the prompt


def test_batch_rows_stop_independently_and_are_padded(model):
    prompts = np.array([[1, 2], [7, 8], [3, 3]])
    free = generate(model, prompts, 8, greedy=True)
    eos = int(free[0, 3])
    out = generate(model, prompts, 8, greedy=True, eos_id=eos)
    for row, full in zip(out, free):
        real = row[row >= 0]
        gen = full[2:].tolist()
        cut = 2 + (gen.index(eos) + 1 if eos in gen else len(gen))
        np.testing.assert_array_equal(real, full[:cut])
        assert (row[len(real):] == -1).all()
    out = generate(model, prompts, 8, greedy=True, eos_id=eos, pad_id=0)
    assert out.min() >= 0


def test_all_rows_finished_ends_early(model):
    free = generate(model, np.array([1, 2]), 4, greedy=True)
    out = generate(model, np.array([[1, 2], [1, 2]]), 50, greedy=True, eos_id=int(free[2]))
    assert out.shape == (2, 3)


# --------------------------------------------------------------------------- streaming
def test_stream_yields_the_tokens_of_generate(model):
    kw = dict(temperature=0.9, top_p=0.9)
    tokens = list(stream(model, np.array([1, 2, 3]), 10, rng=np.random.default_rng(4), **kw))
    out = generate(model, np.array([1, 2, 3]), 10, rng=np.random.default_rng(4), **kw)
    assert all(isinstance(t, int) for t in tokens)
    assert tokens == out[3:].tolist()


def test_stream_is_lazy_and_can_stop_early(model):
    calls = []
    original = model.forward_cached

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    model.forward_cached = spy
    try:
        it = stream(model, np.array([1, 2]), 100, greedy=True)
        assert calls == []
        assert [next(it) for _ in range(3)] and len(calls) == 3
        it.close()
    finally:
        del model.forward_cached


def test_stream_of_a_batch_yields_arrays_with_padding_after_a_stop(model):
    prompts = [[1, 2], [5, 6, 7]]
    solo = [generate(model, p, 6, greedy=True) for p in prompts]
    eos = int(solo[0][3])
    steps = list(stream(model, prompts, 6, greedy=True, eos_id=eos))
    col0 = [int(s[0]) for s in steps]
    assert col0[:2] == solo[0][2:4].tolist() and set(col0[2:]) <= {-1}
    assert all(s.shape == (2,) for s in steps)


def test_stream_checks_its_arguments_at_once(model):
    with pytest.raises(ValueError, match="temperature"):
        stream(model, [1, 2], 5, temperature=0)


def test_a_paused_stream_leaves_grad_mode_and_train_mode_alone(model):
    model.train()
    try:
        it = stream(model, [1, 2], 5, greedy=True)
        next(it)
        assert is_grad_enabled() and model.training
    finally:
        model.eval()


# --------------------------------------------------------------------------- batches
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_prompts_of_different_lengths_give_what_each_gives_alone(positions, use_cache):
    m = tiny(positions)
    prompts = [[5], [1, 2, 3, 4, 5, 6, 7], [9, 8, 7], [2, 2]]
    batch = generate(m, prompts, 9, greedy=True, use_cache=use_cache)
    for prompt, got in zip(prompts, batch):
        np.testing.assert_array_equal(got, greedy_reference(m, prompt, 9))


def test_batch_rows_are_independent_of_their_neighbours():
    m = tiny("rope")
    a = generate(m, [[1, 2, 3], [4, 5]], 6, greedy=True)
    b = generate(m, [[1, 2, 3], [9, 9, 9, 9, 9, 9]], 6, greedy=True)
    np.testing.assert_array_equal(a[0], b[0])


def test_batched_stops_with_different_lengths_match_solo_runs():
    m = tiny("learned")
    prompts = [[5], [1, 2, 3, 4], [9, 8, 7]]
    solo = [generate(m, p, 10, greedy=True) for p in prompts]
    eos = int(solo[1][6])
    batch = generate(m, prompts, 10, greedy=True, eos_id=eos)
    for p, got in zip(prompts, batch):
        np.testing.assert_array_equal(got, generate(m, p, 10, greedy=True, eos_id=eos))


# --------------------------------------------------------------------------- overflow
@pytest.mark.parametrize("use_cache", [True, False])
def test_learned_positions_crop_to_the_last_block_size_tokens(use_cache):
    m = tiny("learned", block_size=8)
    out = generate(m, np.array([1, 2, 3, 4, 5]), 15, greedy=True, use_cache=use_cache)
    np.testing.assert_array_equal(out, greedy_reference(m, [1, 2, 3, 4, 5], 15, window=8))
    long_prompt = np.arange(12) % 23                    # longer than the context itself
    out = generate(m, long_prompt, 5, greedy=True, use_cache=use_cache)
    np.testing.assert_array_equal(out, greedy_reference(m, long_prompt.tolist(), 5, window=8))


def test_learned_crop_in_a_padded_batch_matches_solo_runs():
    m = tiny("learned", block_size=6)
    prompts = [[1], [1, 2, 3, 4, 5], [7, 7, 7]]
    for p, got in zip(prompts, generate(m, prompts, 9, greedy=True)):
        np.testing.assert_array_equal(got, greedy_reference(m, p, 9, window=6))


@pytest.mark.parametrize("positions", ["sinusoidal", "rope", "alibi"])
def test_length_free_positions_keep_the_whole_context_past_block_size(positions):
    m = tiny(positions, block_size=4)
    fed = spy_inputs(m)
    out = generate(m, np.array([1, 2, 3]), 10, greedy=True)
    np.testing.assert_array_equal(out, greedy_reference(m, [1, 2, 3], 10))
    assert fed == [3] + [1] * 9                         # one prefill, then one token a step


def test_learned_positions_prefill_again_when_the_cache_is_full():
    m = tiny("learned", block_size=4)
    fed = spy_inputs(m)
    generate(m, np.array([1, 2, 3]), 6, greedy=True)
    assert fed == [3, 1, 4, 4, 4, 4]                    # full at 4: the last 4 tokens again


def spy_inputs(model) -> list:
    """Record the length of every input of model.forward_cached."""
    fed, original = [], model.forward_cached

    def spy(idx, *args, **kwargs):
        fed.append(np.shape(idx)[-1])
        return original(idx, *args, **kwargs)

    model.forward_cached = spy
    return fed


def test_sampled_tokens_equal_with_and_without_the_cache_past_the_context():
    m = tiny("learned", block_size=6)
    kw = dict(temperature=1.3, top_k=8)
    a = generate(m, np.array([1, 2, 3]), 12, rng=np.random.default_rng(5), **kw)
    b = generate(m, np.array([1, 2, 3]), 12, rng=np.random.default_rng(5), use_cache=False, **kw)
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- other models
class Bigram:
    """A model without forward_cached or config: logits depend on the last token only."""

    def __init__(self, table):
        self.table = table
        self.training = False

    def __call__(self, ids):
        return self.table[ids]                           # [B, T, V] array


def test_any_model_returning_logits_works_without_a_cache():
    table = np.full((5, 5), -10.0)
    for i in range(5):
        table[i, (i + 1) % 5] = 0.0
    out = generate(Bigram(table), np.array([0]), 7, greedy=True)
    assert out.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    with pytest.raises(ValueError, match="forward_cached"):
        generate(Bigram(table), [[0], [1, 2]], 2, greedy=True)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0), "temperature must be > 0"),
    (dict(temperature=-1.0), "temperature must be > 0"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(greedy="yes"), "greedy"),
    (dict(eos_id=-1), "eos_id"),
    (dict(stop=[1, 2]), "token-id sequences"),
    (dict(stop="ab"), "tokenizer"),
    (dict(stop=[[]]), "empty"),
    (dict(rng="seed"), "rng"),
    (dict(pad_id=None), "pad_id"),
])
def test_clear_errors_for_bad_settings(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, np.array([1, 2]), 3, **kwargs)


def test_temperature_zero_is_fine_with_greedy(model):
    """temperature is ignored by greedy decoding, so 0 is no error there."""
    np.testing.assert_array_equal(
        generate(model, np.array([1, 2]), 4, greedy=True, temperature=0),
        generate(model, np.array([1, 2]), 4, greedy=True))


@pytest.mark.parametrize("ids, match", [
    (np.array([], dtype=np.int64), "empty"),
    ([[1, 2], []], "prompt 1 is empty"),
    (np.zeros((2, 0), dtype=np.int64), "empty"),
    (np.array([1, 23]), "outside the model's vocabulary"),
    (np.array([-1, 2]), "outside"),
    (np.array([1.0, 2.0]), "integer token ids"),
    (np.array([True, False]), "integer token ids"),
    (np.zeros((1, 1, 2), dtype=np.int64), "shape"),
])
def test_clear_errors_for_bad_prompts(model, ids, match):
    with pytest.raises(ValueError, match=match):
        generate(model, ids, 3)


@pytest.mark.parametrize("n", [-1, 2.0, True, None])
def test_max_new_tokens_must_be_a_count(model, n):
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, np.array([1]), n)
