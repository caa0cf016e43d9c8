"""Encoder-decoder decoding: greedy and sampled `generate_seq2seq`, and `beam_search`
(scores, EOS, length penalty, stopping, batches, cache vs recompute)."""
import itertools

import numpy as np
import pytest

from numpyllm.autograd import Tensor
from numpyllm.generate import Hypothesis, beam_search, generate_seq2seq
from numpyllm.nn import Transformer, TransformerConfig

BOS, EOS = 0, 1


def transformer(seed=0, V=9, norm="post"):
    cfg = TransformerConfig(src_vocab_size=V, tgt_vocab_size=V, d_model=16, n_head=2,
                            n_encoder_layers=1, n_decoder_layers=2, dropout=0.0, norm=norm,
                            dtype="float64")
    return Transformer(cfg, rng=seed).eval()


class _NoCache:
    def reorder(self, index, cross=True):
        pass


class Markov:
    """A stand-in encoder-decoder whose next token depends on the previous one only:
    ``probs[prev]`` (the source is ignored). Lets a test construct the distribution."""

    def __init__(self, probs):
        probs = np.asarray(probs, dtype=np.float64) + 1e-12
        self.logp = np.log(probs / probs.sum(axis=1, keepdims=True))
        self.training = False

    def source_mask(self, src, src_mask=None, src_lengths=None):
        return None

    def encode(self, src, mask=None):
        return np.zeros((len(src), 1, 1))

    def new_cache(self, capacity):
        return _NoCache()

    def decode_cached(self, tgt, memory, cache, src_mask=None, last_only=False):
        return self.logp[tgt[:, -1:]]                      # [N, 1, V]

    def decode(self, tgt, memory, src_mask=None, tgt_mask=None):
        return self.logp[tgt]                              # [N, T, V]


def sequence_logprob(model, src, tokens) -> float:
    """log P(tokens | src) by teacher forcing with the full decode."""
    tgt = np.concatenate([[BOS], tokens[:-1]])[None]
    memory = model.encode(src[None])
    logits = model.decode(tgt, memory)
    logits = logits.data if isinstance(logits, Tensor) else logits
    z = logits[0] - logits[0].max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(logp[np.arange(len(tokens)), tokens].sum())


def greedy_reference(model, src, n, eos=None):
    tgt = [BOS]
    memory = model.encode(src[None])
    for _ in range(n):
        tok = int(model.decode(np.array([tgt]), memory).data[0, -1].argmax())
        tgt.append(tok)
        if tok == eos:
            break
    return np.array(tgt[1:])


# --------------------------------------------------------------------------- greedy
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_greedy_seq2seq_equals_the_obvious_loop(norm):
    model = transformer(norm=norm)
    src = np.array([4, 5, 6, 7])
    for use_cache in (True, False):
        out = generate_seq2seq(model, src, 8, bos_id=BOS, greedy=True, use_cache=use_cache)
        np.testing.assert_array_equal(out, greedy_reference(model, src, 8))


def test_a_padded_batch_of_sources_decodes_each_as_alone():
    model = transformer(seed=1)
    srcs = [[4, 5, 6, 7, 8], [3], [8, 2, 6]]
    padded = np.zeros((3, 5), dtype=np.int64)
    for i, s in enumerate(srcs):
        padded[i, :len(s)] = s
    lengths = [len(s) for s in srcs]
    free = greedy_reference(model, np.array(srcs[0]), 6)
    eos = int(free[2])
    out = generate_seq2seq(model, padded, 6, bos_id=BOS, eos_id=eos, greedy=True,
                           src_lengths=lengths)
    for s, got in zip(srcs, out):
        np.testing.assert_array_equal(got, greedy_reference(model, np.array(s), 6, eos=eos))
    assert out[0][-1] == eos and len(out[0]) == 3


def test_sampled_seq2seq_is_reproducible_and_cache_independent():
    model = transformer(seed=2)
    src = np.array([[4, 5, 6], [7, 8, 2]])
    kw = dict(bos_id=BOS, temperature=1.3, top_k=5, top_p=0.95)
    a = generate_seq2seq(model, src, 10, rng=np.random.default_rng(9), **kw)
    b = generate_seq2seq(model, src, 10, rng=np.random.default_rng(9), use_cache=False, **kw)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_the_encoder_runs_once():
    model = transformer()
    calls = []
    original = model.encoder.forward
    model.encoder.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    generate_seq2seq(model, np.array([4, 5]), 6, bos_id=BOS, greedy=True)
    beam_search(model, np.array([4, 5]), bos_id=BOS, eos_id=EOS, beam_width=3,
                max_new_tokens=6)
    assert calls == [1, 1]


# --------------------------------------------------------------------------- beam search
def constructed():
    """Greedy takes A (0.55), then the flat A -> {C, D, EOS} (about 0.33 each), then
    C -> EOS: 0.55 · 0.34 = 0.19. B (0.45) -> EOS (0.95) is 0.43: beam search finds it."""
    A, B, C, D = 2, 3, 4, 5
    probs = np.zeros((6, 6))
    probs[BOS, [A, B]] = [0.55, 0.45]
    probs[A, [C, D, EOS]] = [0.34, 0.33, 0.33]
    probs[B, [EOS, C]] = [0.95, 0.05]
    probs[C, EOS] = probs[D, EOS] = probs[EOS, EOS] = 1.0
    return Markov(probs)


def test_beam_search_finds_a_better_sequence_than_greedy():
    model, src = constructed(), np.array([0])
    greedy = generate_seq2seq(model, src, 5, bos_id=BOS, eos_id=EOS, greedy=True)
    assert greedy.tolist() == [2, 4, EOS]
    for lp in (0.0, 1.0):
        best = beam_search(model, src, bos_id=BOS, eos_id=EOS, beam_width=2,
                           max_new_tokens=5, length_penalty=lp)[0]
        assert best.tokens.tolist() == [3, EOS]
        greedy_score = sequence_logprob(model, src, greedy) / len(greedy) ** lp
        assert best.score > greedy_score
        np.testing.assert_allclose(best.logprob, np.log(0.45 * 0.95), atol=1e-9)


def test_length_penalty_trades_total_probability_for_length():
    X = 2
    probs = np.zeros((3, 3))
    probs[BOS, [EOS, X]] = [0.5, 0.5]
    probs[X, EOS] = 0.9
    probs[X, X] = 0.1
    probs[EOS, EOS] = 1.0
    model = Markov(probs)
    short = beam_search(model, np.array([0]), bos_id=BOS, eos_id=EOS, beam_width=2,
                        max_new_tokens=4, length_penalty=0.0)
    assert short[0].tokens.tolist() == [EOS]                # log 0.5 > log 0.45
    long = beam_search(model, np.array([0]), bos_id=BOS, eos_id=EOS, beam_width=2,
                       max_new_tokens=4, length_penalty=1.0)
    assert long[0].tokens.tolist() == [X, EOS]              # log(0.45)/2 > log(0.5)/1
    np.testing.assert_allclose(long[0].score, np.log(0.45) / 2, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_beam_width_1_is_greedy(seed):
    model = transformer(seed=seed)
    src = np.array([3, 4, 5, 6])
    free = greedy_reference(model, src, 8)
    eos = int(free[3])                                      # a token greedy does produce
    greedy = greedy_reference(model, src, 8, eos=eos)
    for kw in (dict(length_penalty=0.0), dict(length_penalty=1.0, early_stopping=True)):
        hyps = beam_search(model, src, bos_id=BOS, eos_id=eos, beam_width=1,
                           max_new_tokens=8, **kw)
        assert len(hyps) == 1
        np.testing.assert_array_equal(hyps[0].tokens, greedy)
    no_eos = beam_search(model, src, bos_id=BOS, beam_width=1, max_new_tokens=8)
    np.testing.assert_array_equal(no_eos[0].tokens, free)


def test_exhaustive_beam_equals_brute_force():
    """With beam_width at least the number of all sequences, beam search is exhaustive:
    its best must be the best of the enumeration (the exact stopping bound may not cut
    a sequence that could still win)."""
    rng = np.random.default_rng(0)
    V, n = 4, 3
    model = Markov(rng.dirichlet(np.ones(V) * 0.7, size=V))
    for lp in (0.0, 1.0, 2.0, -0.5):
        scores = {}
        for length in range(1, n + 1):
            for seq in itertools.product(range(V), repeat=length):
                if EOS in seq[:-1] or (length < n and seq[-1] != EOS):
                    continue                                # EOS only last; shorter must end
                lp_seq = sequence_logprob(model, np.array([0]), np.array(seq))
                scores[seq] = lp_seq / length ** lp
        best = max(scores, key=scores.get)
        hyps = beam_search(model, np.array([0]), bos_id=BOS, eos_id=EOS, beam_width=V ** n,
                           max_new_tokens=n, length_penalty=lp)
        assert tuple(hyps[0].tokens.tolist()) == best
        np.testing.assert_allclose(hyps[0].score, scores[best], atol=1e-9)


def test_hypotheses_end_at_eos_and_are_scored_consistently():
    model = transformer(seed=3)
    src = np.array([5, 6, 7])
    free = greedy_reference(model, src, 6)
    eos = int(free[1])
    hyps = beam_search(model, src, bos_id=BOS, eos_id=eos, beam_width=4, max_new_tokens=6,
                       length_penalty=0.7)
    assert 1 <= len(hyps) <= 4 and all(isinstance(h, Hypothesis) for h in hyps)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        toks = h.tokens.tolist()
        assert eos not in toks[:-1]                          # nothing after an EOS
        assert toks[-1] == eos or len(toks) == 6            # ended, or hit the limit
        np.testing.assert_allclose(h.logprob, sequence_logprob(model, src, h.tokens),
                                   atol=1e-9)
        np.testing.assert_allclose(h.score, h.logprob / len(toks) ** 0.7, atol=1e-12)


def test_without_eos_every_hypothesis_has_the_full_length():
    model = transformer(seed=4)
    hyps = beam_search(model, np.array([2, 3]), bos_id=BOS, beam_width=3, max_new_tokens=5)
    assert len(hyps) == 3 and all(len(h.tokens) == 5 for h in hyps)
    assert len({tuple(h.tokens.tolist()) for h in hyps}) == 3       # distinct beams


def test_beam_search_with_and_without_the_cache_agree_and_batches_match():
    model = transformer(seed=5)
    srcs = [[4, 5, 6, 7], [8, 3]]
    padded = np.array([[4, 5, 6, 7], [8, 3, 0, 0]])
    free = greedy_reference(model, np.array(srcs[0]), 6)
    kw = dict(bos_id=BOS, eos_id=int(free[2]), beam_width=3, max_new_tokens=6,
              length_penalty=1.0)
    batch = beam_search(model, padded, src_lengths=[4, 2], **kw)
    recompute = beam_search(model, padded, src_lengths=[4, 2], use_cache=False, **kw)
    for s, got, ref in zip(srcs, batch, recompute):
        alone = beam_search(model, np.array(s), **kw)
        for h, r, a in zip(got, ref, alone):
            np.testing.assert_array_equal(h.tokens, r.tokens)
            np.testing.assert_array_equal(h.tokens, a.tokens)
            np.testing.assert_allclose(h.score, a.score, atol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    (dict(beam_width=0), "beam_width"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(length_penalty=float("nan")), "length_penalty"),
    (dict(bos_id=-1), "bos_id"),
    (dict(eos_id=2.5), "eos_id"),
])
def test_beam_search_errors(kwargs, match):
    args = dict(bos_id=BOS, eos_id=EOS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        beam_search(transformer(), np.array([3, 4]), **args)


def test_generate_seq2seq_errors():
    model = transformer()
    with pytest.raises(ValueError, match="temperature"):
        generate_seq2seq(model, np.array([3]), 3, bos_id=BOS, temperature=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_seq2seq(model, np.array([3]), -1, bos_id=BOS)
    assert generate_seq2seq(model, np.array([3]), 0, bos_id=BOS).tolist() == []
