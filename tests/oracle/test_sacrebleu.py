"""numpyllm.evaluate's BLEU against sacrebleu 2.6.0 (pinned in setup.cfg's oracle extra):
the same score, counts, totals, precisions, brevity penalty and lengths, to 1e-9, on
hypothesis-generated corpora (empty lines, Unicode, punctuation runs, numbers, entities,
several and variable numbers of references) under every tokenizer, smoothing, lowercase
and effective-order setting, and on lines of Tiny Shakespeare."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.evaluate import corpus_bleu, sentence_bleu

sacrebleu = pytest.importorskip("sacrebleu")

# a small vocabulary, so that n-grams match often, with the cases tokenizers treat apart
WORDS = ["the", "The", "cat", "CAT", "sat", "on", "mat", ".", ",", "...", "!?", "3.50",
         "1,000", "1990-2000", "-", "--", "e.g.", "don't", "&amp;", "&quot;", "&lt;b&gt;",
         "<skipped>", "&", "+", "&gt;", "$", "(a)", "naïve", "Straße", "İstanbul", "日本語", "😀", "«ok»",
         "x\u00a0y", "a\tb", "end.", "U.S.A.", "#1", "@home", "~", "^^", "`q`", "{}", "|",
         "我爱北京", "天安门。", "，", "（中）", "—", "…", "€5", "ｆｕｌｌ", "\u2000", "\u2001",
         "\U00020000", "\u2f80", "\u2fa1"]
SEPARATORS = [" ", " ", " ", "  ", "", "\t"]

line = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)),
                max_size=14).map(lambda parts: "".join(w + s for w, s in parts))
# sometimes a line made of arbitrary Unicode text, sometimes an empty one
text = st.one_of(line, line, line, st.text(max_size=20), st.just(""))
SETTINGS = st.fixed_dictionaries({
    "tokenize": st.sampled_from(["13a", "none", "intl", "char", "zh"]),
    "lowercase": st.booleans(),
    "smooth": st.sampled_from([("exp", None), ("floor", None), ("floor", 0.3),
                               ("add-k", None), ("add-k", 2), ("none", None)]),
    "effective_order": st.booleans()})


@st.composite
def corpora(draw):
    """hyps and sacrebleu-style reference streams (None: fewer references there)."""
    n = draw(st.integers(1, 6))
    hyps = draw(st.lists(text, min_size=n, max_size=n))
    n_streams = draw(st.integers(1, 3))
    streams = [draw(st.lists(text, min_size=n, max_size=n)) for _ in range(n_streams)]
    for k in range(1, n_streams):               # holes in the extra streams only
        for i in range(n):
            if draw(st.integers(0, 4)) == 0:
                streams[k][i] = None
    return hyps, streams


def same(ours, theirs):
    assert math.isclose(ours.score, theirs.score, rel_tol=0, abs_tol=1e-9), (ours, theirs)
    assert ours.counts == list(theirs.counts) and ours.totals == list(theirs.totals)
    for a, b in zip(ours.precisions, theirs.precisions):
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    assert math.isclose(ours.bp, theirs.bp, rel_tol=0, abs_tol=1e-12)
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)


def oracle(settings):
    method, value = settings["smooth"]
    return sacrebleu.BLEU(tokenize=settings["tokenize"], lowercase=settings["lowercase"],
                          smooth_method=method, smooth_value=value,
                          effective_order=settings["effective_order"], force=True)


def ours_kwargs(settings):
    method, value = settings["smooth"]
    return dict(tokenize=settings["tokenize"], lowercase=settings["lowercase"],
                smooth_method=method, smooth_value=value,
                effective_order=settings["effective_order"])


@given(corpus=corpora(), settings=SETTINGS)
def test_corpus_bleu_equals_sacrebleu(corpus, settings):
    hyps, streams = corpus
    metric = oracle(settings)
    theirs = metric.corpus_score(hyps, streams)
    ours = corpus_bleu(hyps, streams, **ours_kwargs(settings))
    same(ours, theirs)
    # the signature: sacrebleu's fields, our version
    sig = str(metric.get_signature())
    assert ours.signature.split("|version:")[0] == sig.split("|version:")[0]
    # the same references given per segment
    per_segment = [[r for r in row if r is not None] for row in zip(*streams)]
    same(corpus_bleu(hyps, segment_refs=per_segment, **ours_kwargs(settings)), theirs)


@given(hyp=text, refs=st.lists(text, min_size=1, max_size=3), settings=SETTINGS)
def test_sentence_bleu_equals_sacrebleu(hyp, refs, settings):
    theirs = oracle(settings).sentence_score(hyp, refs)
    same(sentence_bleu(hyp, refs, **ours_kwargs(settings)), theirs)


def test_sentence_bleu_defaults_equal_sacrebleus():
    hyp, refs = "The cat sat on the mat.", ["The cat is on the mat.", "A cat sat there."]
    same(sentence_bleu(hyp, refs), sacrebleu.sentence_bleu(hyp, refs))
    same(corpus_bleu([hyp], [[r] for r in refs]), sacrebleu.corpus_bleu([hyp], [[r] for r in refs]))


@pytest.mark.parametrize("hyp, ref", [
    ("Fish &amp; chips &quot;cost&quot; &lt;5&gt; pounds.", 'Fish & chips "cost" <5> pounds.'),
    ("It cost $3.50, or 1,000 yen in 1990-2000.", "It cost $ 3.50 , or 1,000 yen in 1990 - 2000 ."),
    ("<skipped> well-known -\nbroken line", "well-known broken line"),
    ("Straße İstanbul naïve 日本語 «ok»", "strasse istanbul naive 日本語 « ok »"),
    (" 我爱北京天安门。Hello, world — ok… ", "我 爱 北京 天安门 。 Hello , world—ok ..."),
    ("价格：＄３.５０，约1,000日元。", "价格 ： ＄ ３.５０ ， 约 1,000 日元 。"),
    ("  .5元 and .5", ".5 元 and . 5")])          # zh strips the line before its 13a rules
def test_tokenizer_cases_equal_sacrebleu(hyp, ref):
    for tokenize in ("13a", "intl", "none", "char", "zh"):
        for lowercase in (False, True):
            same(sentence_bleu(hyp, [ref], tokenize=tokenize, lowercase=lowercase),
                 sacrebleu.sentence_bleu(hyp, [ref], tokenize=tokenize, lowercase=lowercase))


@pytest.mark.parametrize("smooth", ["exp", "floor", "add-k", "none"])
def test_real_text_equals_sacrebleu(shakespeare_path, smooth):
    """Lines of Tiny Shakespeare as hypotheses against their neighbours and a lowercased,
    shuffled-word version as two references: many partial matches at every order."""
    lines = [x for x in shakespeare_path.read_text(encoding="utf-8").splitlines()][:1500]
    hyps = lines[1:]
    ref1 = lines[:-1]
    ref2 = [" ".join(reversed(x.split())).lower() for x in hyps]
    for tokenize in ("13a", "none", "intl"):
        theirs = sacrebleu.corpus_bleu(hyps, [ref1, ref2], smooth_method=smooth,
                                       tokenize=tokenize, force=True)
        same(corpus_bleu(hyps, [ref1, ref2], smooth_method=smooth, tokenize=tokenize), theirs)
    same(corpus_bleu(hyps, [ref2], lowercase=True),
         sacrebleu.corpus_bleu(hyps, [ref2], lowercase=True, force=True))


def test_zh_picks_the_code_points_sacrebleu_picks():
    """sacrebleu's zh rule compares a character with strings, two of which were meant as
    code points past U+FFFF: ours lists the code points that comparison picks; every one
    up to U+2FFFF is checked, a character at a time."""
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    from numpyllm.evaluate.bleu import _RE_ZH
    theirs = TokenizerZh._is_chinese_char
    differ = [hex(c) for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF
              and bool(_RE_ZH.fullmatch(chr(c))) != theirs(chr(c))]
    assert differ == []
