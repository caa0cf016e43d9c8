"""Exact deduplication: documents and repeated paragraphs, by normalised hashing."""
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.data.clean import CleanConfig, ExactDedup, SpanDedup, clean_texts, normalize

EXACT_ONLY = CleanConfig(span_unit=None, quality=None, near_dedup=False, pii=())
_words = st.lists(st.sampled_from(["alpha", "Beta", "gamma", "delta", "x1", "ÉTÉ", "ﬁn"]),
                  min_size=1, max_size=4).map(" ".join)


def dedup(texts):
    return clean_texts(texts, EXACT_ONLY)[0]


@given(st.lists(_words, max_size=30))
def test_exact_dedup_keeps_first_occurrences_in_order_and_is_idempotent(texts):
    once = dedup(texts)
    assert dedup(once) == once                                  # idempotent
    # the first occurrence of each normalised text, in input order
    seen, expected = set(), []
    for t in texts:
        if normalize(t) not in seen:
            seen.add(normalize(t))
            expected.append(t)
    assert once == expected
    assert len({normalize(t) for t in once}) == len(once)


def test_normalisation_is_case_space_and_nfkc_blind_but_keeps_punctuation():
    d = ExactDedup()
    assert not d.seen_before("The  ﬁnal\tWORD")
    assert d.seen_before(" the final\nword ")                   # case, spaces, ligature
    assert d.seen_before("ｔｈｅ final word")                     # full-width letters
    assert not d.seen_before("the final word.")                 # punctuation counts
    assert not d.seen_before("the final word 2")
    assert len(d) == 3


def test_repeated_paragraphs_are_dropped_after_their_first_document():
    boiler = "This page uses cookies to improve your experience on our site."
    s = SpanDedup("paragraph", min_chars=20)
    assert s(f"Story one.\n\n{boiler}") == f"Story one.\n\n{boiler}"
    assert s(f"{boiler.upper()}\n\nStory two.\n\nShort.") == "Story two.\n\nShort."
    assert s(f"Story three.\n\n{boiler}\n\nShort.") == "Story three.\n\nShort."   # short stays
    assert s(boiler) == ""


def test_repeats_inside_one_document_are_left_to_the_repetition_rules():
    s = SpanDedup("line", min_chars=5)
    assert s("same line here\nsame line here") == "same line here\nsame line here"
    assert s("other\nsame line here") == "other"


def test_a_document_of_only_seen_paragraphs_is_removed_with_its_reason():
    texts = ["Common header paragraph that repeats.\n\nBody A.",
             "Body B.\n\nCommon header paragraph that repeats.",
             "Common header paragraph that repeats."]
    cfg = CleanConfig(span_min_chars=20, quality=None, near_dedup=False, pii=())
    kept, report = clean_texts(texts, cfg)
    assert kept == [texts[0], "Body B."]
    spans = report.stages["spans"]
    assert (spans.documents_removed, spans.documents_modified) == (1, 1)
    assert spans.reasons == {"every paragraph seen before": 1}
