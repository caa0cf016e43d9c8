"""The Gopher rules: a prose document passes; each rule, broken alone, removes a document
with its own reason; every threshold is a named, adjustable field."""
import pytest

from numpyllm.data.clean import CleanConfig, GopherConfig, clean_texts, gopher_reasons

PROSE = (
    "The history of the river is older than the town that was built on it. Farmers came "
    "to the valley with their cattle and settled where the water was slow and the soil "
    "was deep. They have left us stone walls, old mills and a church with a square tower, "
    "and the names of fields that are still used today by people who live with the same "
    "floods and the same dry summers. Every spring the river rises, and every autumn the "
    "children count the herons that return to nest in the tall trees near the bridge.")


def test_prose_passes():
    assert gopher_reasons(PROSE) == []


@pytest.mark.parametrize("text, reason", [
    ("The cat and the dog.", "fewer than 50 words (5)"),
    (PROSE + " a b c d e f g h i j k l m n o p q r s t u v w x y z" * 8,
     "mean word length below 3.0"),
    (" ".join(w * 4 for w in PROSE.split()), "mean word length above 10.0"),
    (PROSE + " #tag" * 12, "'#' per word above 0.1"),
    (PROSE + " and so on..." * 20, "ellipses per word above 0.1"),
    ("\n".join("- " + line for line in PROSE.split(". ")), "bullet lines above 90%"),
    ("...\n".join(PROSE.split(". ")), "lines ending in an ellipsis above 30%"),
    (PROSE + " 1 2 3 4 5 6 7 8 9 10 -- 12 13 | 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30",
     "words with a letter below 80%"),
    (PROSE.replace(" the ", " a ").replace(" and ", " or ").replace(" to ", " in ")
     .replace(" that ", " which ").replace(" with ", " by ").replace(" of ", " in ")
     .replace(" have ", " hold ").replace("The ", "A "), "fewer than 2 stop words"),
])
def test_each_quality_rule_removes_with_its_reason(text, reason):
    reasons = gopher_reasons(text, GopherConfig(repetition=False))
    assert any(r.startswith(reason) for r in reasons), reasons


def test_repetition_rules():
    lines = PROSE.split(". ")
    dup_lines = "\n".join(lines + lines[:4])
    assert any(r.startswith("duplicate lines above 30%") for r in gopher_reasons(dup_lines))
    dup_paras = "\n\n".join(lines + lines)
    assert any(r.startswith("duplicate paragraphs above 30%") for r in gopher_reasons(dup_paras))
    spam = PROSE + " buy pills" * 30
    reasons = gopher_reasons(spam)
    assert any(r.startswith("top 2-gram characters above 20%") for r in reasons), reasons
    assert any(r.startswith("duplicate 10-gram characters above 10%") for r in reasons)
    # overlapping occurrences do not count a character twice: fractions stay <= 100%
    # ("ab ab": all 200 word characters of the 300, not 99 overlapping occurrences x 4)
    assert "top 2-gram characters above 20% (67%)" in gopher_reasons("ab " * 100)
    assert gopher_reasons(PROSE, GopherConfig(quality=False)) == []


def test_every_threshold_is_named_and_can_be_turned_off():
    short = "The cat and the dog sat with me."
    assert gopher_reasons(short, GopherConfig(min_words=5)) == []
    assert gopher_reasons(short, GopherConfig(min_words=None)) == []
    assert gopher_reasons(short, GopherConfig(min_words=50))[0] == "fewer than 50 words (8)"
    with pytest.raises(ValueError, match="min_words"):
        GopherConfig(min_words=-1)
    with pytest.raises(ValueError, match="top_ngram_char_frac"):
        GopherConfig(top_ngram_char_frac={2: 1.5})


def test_the_pipeline_records_every_removed_documents_reason():
    texts = [PROSE, "Too short to keep.", PROSE.replace("the", "#the")]
    kept, report = clean_texts(texts, CleanConfig(near_dedup=False, pii=()))
    assert kept == [PROSE]
    q = report.stages["quality"]
    assert q.documents_removed == 2
    assert q.reasons == {"fewer than 50 words": 1, "'#' per word above 0.1": 1}
    assert q.details["fewer than 2 stop words"] >= 0   # all rules broken are tallied too
