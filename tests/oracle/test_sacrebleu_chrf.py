"""numpyllm.evaluate's chrF and chrF++ against sacrebleu 2.6.0 (pinned in setup.cfg's
oracle extra): the same score, bit for bit, on hypothesis-generated corpora (empty lines,
Unicode, punctuation at word edges, several and variable numbers of references) under
every setting (character and word orders, β, lowercase, whitespace, ε-smoothing), the
same per-segment statistics, and on lines of Tiny Shakespeare."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.evaluate import chrf_stats, corpus_chrf, sentence_chrf

sacrebleu = pytest.importorskip("sacrebleu")

WORDS = ["the", "The", "cat", "cats", "sat", "on", "mat", ".", ",", "(hi)", "hi!", "'q'",
         "don't", "-", "--", "a", "é", "Straße", "日本語", "😀", "end.", "U.S.A.", "#1", "x"]
SEPARATORS = [" ", " ", "  ", "", "\t"]
line = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)),
                max_size=12).map(lambda parts: "".join(w + s for w, s in parts))
text = st.one_of(line, line, line, st.text(max_size=15), st.just(""))
SETTINGS = st.fixed_dictionaries({
    "char_order": st.sampled_from([6, 6, 1, 3]), "word_order": st.sampled_from([0, 2, 1]),
    "beta": st.sampled_from([2, 2, 1, 3]), "lowercase": st.booleans(),
    "whitespace": st.booleans(), "eps_smoothing": st.booleans()})


@st.composite
def corpora(draw):
    n = draw(st.integers(1, 6))
    hyps = draw(st.lists(text, min_size=n, max_size=n))
    n_streams = draw(st.integers(1, 3))
    streams = [draw(st.lists(text, min_size=n, max_size=n)) for _ in range(n_streams)]
    for k in range(1, n_streams):               # holes in the extra streams only
        for i in range(n):
            if draw(st.integers(0, 4)) == 0:
                streams[k][i] = None
    return hyps, streams


@settings(max_examples=150, deadline=None)
@given(corpus=corpora(), kw=SETTINGS)
def test_corpus_chrf_equals_sacrebleu(corpus, kw):
    hyps, streams = corpus
    metric = sacrebleu.CHRF(**kw)
    theirs = metric.corpus_score(hyps, streams)
    ours = corpus_chrf(hyps, streams, **kw)
    assert ours.score == theirs.score, (ours, theirs)           # the same operations, bits
    assert ours.name == theirs.name
    # the per-segment statistics of the best reference, as sacrebleu keeps them
    assert chrf_stats(hyps, streams, **kw) == metric._extract_corpus_statistics(hyps, streams)
    # the signature's fields but its version
    assert ours.signature.rsplit("|", 1)[0] == str(metric.get_signature()).rsplit("|", 1)[0]


@given(hyp=text, refs=st.lists(text, min_size=1, max_size=3), kw=SETTINGS)
def test_sentence_chrf_equals_sacrebleu(hyp, refs, kw):
    ours = sentence_chrf(hyp, refs, **kw)
    theirs = sacrebleu.CHRF(**kw).sentence_score(hyp, refs)
    assert ours.score == theirs.score


def test_real_text_equals_sacrebleu(shakespeare_path):
    lines = shakespeare_path.read_text(encoding="utf-8").splitlines()[:1200]
    hyps, ref1 = lines[1:], lines[:-1]
    ref2 = [" ".join(reversed(x.split())).lower() for x in hyps]
    for word_order in (0, 2):
        ours = corpus_chrf(hyps, [ref1, ref2], word_order=word_order)
        theirs = sacrebleu.corpus_chrf(hyps, [ref1, ref2], word_order=word_order)
        assert ours.score == theirs.score
