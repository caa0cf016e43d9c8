"""Unigram LM: Viterbi == brute force, sampling follows P^alpha, EM never lowers the
likelihood, byte fallback round trips, files. (Ids against Hugging Face's:
tests/oracle/test_hf_wordpiece_unigram.py.)"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.tokenizers import UnigramTokenizer, VocabularyFileError, load_tokenizer
from numpyllm.tokenizers.unigram import Unigram
from numpyllm.tokenizers.unigram_trainer import (digamma, e_step, log_likelihood, m_step,
                                                 seed_pieces, train_unigram)

SP = "\u2581"


def _segmentations(word, vocab):
    """Every way to cut `word` into pieces of `vocab`."""
    if not word:
        yield []
        return
    for e in range(1, len(word) + 1):
        if word[:e] in vocab:
            for rest in _segmentations(word[e:], vocab):
                yield [word[:e]] + rest


pieces_st = st.dictionaries(st.text(alphabet="ab", min_size=2, max_size=4),
                            st.floats(-8, -0.5), max_size=8)


@settings(deadline=None, max_examples=150)
@given(pieces_st, st.floats(-6, -0.5), st.floats(-6, -0.5),
       st.text(alphabet="ab", min_size=1, max_size=9))
def test_viterbi_is_the_best_segmentation(extra, sa, sb, word):
    vocab = {"a": sa, "b": sb, **extra}
    model = Unigram(list(vocab.items()))
    got = [model.pieces[i] for _, _, i in model.viterbi(word)]
    assert "".join(got) == word
    scores = {tuple(s): math.fsum(vocab[p] for p in s) for s in _segmentations(word, vocab)}
    best = max(scores.values())
    assert math.fsum(vocab[p] for p in got) == pytest.approx(best, abs=1e-9)


def test_sampling_frequencies_follow_the_tempered_distribution():
    vocab = {"a": -2.0, "b": -2.5, "ab": -3.0, "ba": -3.5, "aba": -4.0, "bab": -5.0}
    model = Unigram(list(vocab.items()))
    word, alpha, n = "abab", 0.5, 6000
    segs = list(_segmentations(word, vocab))
    weights = np.array([math.exp(alpha * sum(vocab[p] for p in s)) for s in segs])
    expected = weights / weights.sum() * n
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(map(tuple, segs), 0)
    for _ in range(n):
        counts[tuple(model.pieces[i] for i in model.sample(word, alpha, rng))] += 1
    observed = np.array([counts[tuple(s)] for s in segs])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # len(segs) - 1 degrees of freedom (here 7); 0.999 quantile of chi2(7) is 24.3
    assert len(segs) >= 6 and chi2 < 24.3, (chi2, observed, expected.round())


def test_large_alpha_samples_the_viterbi_path():
    model = Unigram([("a", -2.0), ("b", -2.0), ("ab", -3.0)])
    rng = np.random.default_rng(1)
    assert all(model.sample("abab", 50.0, rng) == model.tokenize("abab") for _ in range(20))


corpora = st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=7),
                          st.integers(1, 20), min_size=1, max_size=12)


@settings(deadline=None, max_examples=40)
@given(corpora)
def test_em_never_lowers_the_likelihood(words):
    pieces = seed_pieces(words, 30, 4)
    previous = -math.inf
    for _ in range(6):
        ll, expected = e_step(Unigram(pieces), words)
        assert ll >= previous - 1e-9 * max(1.0, abs(ll))
        assert ll == pytest.approx(log_likelihood(Unigram(pieces), words))
        previous = ll
        pieces = m_step(pieces, expected, bayesian=False)


def test_expected_counts_match_brute_force():
    vocab = {"a": -1.5, "b": -2.0, "ab": -2.5, "ba": -3.0}
    words = {"abab": 2, "ba": 1}
    ll, expected = e_step(Unigram(list(vocab.items())), words)
    want = dict.fromkeys(vocab, 0.0)
    total = 0.0
    for w, c in words.items():
        segs = list(_segmentations(w, vocab))
        probs = [math.exp(sum(vocab[p] for p in s)) for s in segs]
        z = sum(probs)
        total += c * math.log(z)
        for s, p in zip(segs, probs):
            for piece in s:
                want[piece] += c * p / z
    assert ll == pytest.approx(total)
    assert expected == pytest.approx([want[p] for p in vocab])


def test_digamma():
    assert digamma(1.0) == pytest.approx(-0.5772156649015329, abs=1e-9)
    assert digamma(10.0) - digamma(9.0) == pytest.approx(1 / 9)


def test_trainer_reaches_the_size_and_keeps_every_character():
    text = "the cat sat on the mat; the rat ate the hat " * 30
    words = {}
    for w in UnigramTokenizer.words(text):
        words[w] = words.get(w, 0) + 1
    lls = []
    pieces = train_unigram(words, 30, seed_size=500, callback=lambda r, ll, n: lls.append(ll))
    names = [p for p, _ in pieces]
    # at most 30: EM drops pieces the corpus does not use (this one needs about 20)
    assert 15 <= len(pieces) <= 30 and set(text.replace(" ", SP)) <= set(names)
    assert len(lls) >= 2 and lls[-1] > lls[0]
    assert SP + "the" in names
    assert all(SP not in p[1:] for p in names)


text_st = st.text(alphabet=st.characters(blacklist_characters=SP, codec="utf-8"), max_size=40)


@pytest.fixture(scope="module")
def trained():
    return UnigramTokenizer.train("the cat sat on the mat. The cat ate the rat! " * 20, 300,
                                  special_tokens=["[MASK]"], seed_size=1000)


@settings(deadline=None, max_examples=80)
@given(text=text_st)
def test_byte_fallback_round_trips_any_text(trained, text):
    ids = trained.encode(text)
    assert trained.decode(ids) == text
    rng = np.random.default_rng(0)
    assert trained.decode(trained.encode(text, alpha=0.1, rng=rng)) == text


def test_specials_and_bytes_are_never_matched_in_text(trained):
    assert trained.special_tokens == {"<unk>": 0, "[MASK]": 1}
    ids = trained.encode("[MASK] <0x41> <unk>")
    assert trained.token_id("[MASK]") not in ids and 0 not in ids
    assert trained.decode(ids) == "[MASK] <0x41> <unk>"


def test_without_byte_fallback_unknown_runs_are_one_unk():
    tok = UnigramTokenizer([("<unk>", 0.0), (SP, -1.0), ("a", -1.0)], byte_fallback=False)
    assert tok.encode("a\u00e9\u00e9a") == [1, 2, 0, 2]


def test_files_round_trip(tmp_path, trained):
    trained.save(tmp_path / "u.json")
    again = load_tokenizer(tmp_path / "u.json")
    assert isinstance(again, UnigramTokenizer) and again.vocab == trained.vocab
    assert again.special_tokens == trained.special_tokens
    text = "the cat ate the mat, naïvely 😀"
    assert again.encode(text) == trained.encode(text)


@pytest.mark.parametrize("change, match", [
    ({"version": 2}, "version 2 is not supported"),
    ({"pieces": [["a", -1.0], ["a", -2.0]]}, "appears twice"),
    ({"pieces": [["a", "x"]]}, r"pieces\[0\]\[1\]: expected number"),
    ({"pieces": [["a"]]}, r"pieces\[0\]: expected a pair"),
    ({"pieces": [[7, -1.0]]}, r"pieces\[0\]\[0\]: expected string"),
    ({"pieces": [["", -1.0]]}, "non-empty string"),
    ({"byte_fallback": 1}, "byte_fallback: expected boolean"),
    ({"unk_token": None}, "unk_token: expected string"),
])
def test_malformed_unigram_file_refused(tmp_path, trained, change, match):
    path = tmp_path / "u.json"
    trained.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update(change)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(VocabularyFileError, match=match):
        load_tokenizer(path)


def test_non_finite_score_refused(tmp_path, trained):
    path = tmp_path / "u.json"
    trained.save(path)
    path.write_text(path.read_text(encoding="utf-8").replace("0.0", "1e999", 1),
                    encoding="utf-8")
    with pytest.raises(VocabularyFileError):
        load_tokenizer(path)


@pytest.mark.parametrize("model, match", [
    ({"type": "Unigram", "vocab": [["a", -1.0], ["a", -1.0]]}, "appears twice"),
    ({"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 3}, "unk_id 3"),
    ({"type": "Unigram", "vocab": [["a"]]}, r"vocab\[0\]: expected a pair"),
    ({"type": "Unigram", "vocab": {"a": 1}}, "vocab: expected array"),
    ({"type": "WordPiece", "vocab": {"a": 0}}, "unknown token"),
    ({"type": "WordPiece", "vocab": {"[UNK]": 0}, "max_input_chars_per_word": "9"},
     "expected integer"),
])
def test_malformed_tokenizer_json_models_refused(tmp_path, model, match):
    from numpyllm.tokenizers.hf import load_hf_tokenizer
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": model}), encoding="utf-8")
    with pytest.raises(VocabularyFileError, match=match):
        load_hf_tokenizer(tmp_path)


def test_sampling_needs_an_rng_and_a_valid_alpha(trained):
    with pytest.raises(ValueError, match="rng"):
        trained.encode("the cat", alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        trained.encode("the cat", alpha=-1.0, rng=np.random.default_rng(0))


def test_decode_bytes_token_by_token_is_the_stream(trained):
    # decode_bytes keeps every "▁" as a space, so tokens can be decoded one at a time
    # (numpyllm.generate.TextDecoder); decode drops the first, which encode added.
    ids = trained.encode("the cat ate a naïve 😀")
    stream = b"".join(trained.decode_bytes([i]) for i in ids)
    assert stream == " the cat ate a naïve 😀".encode("utf-8")
    assert trained.decode(ids) == "the cat ate a naïve 😀"
