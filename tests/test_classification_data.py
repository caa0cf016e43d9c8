"""Labelled texts: the strict readers (each error one line naming file, line and field),
stable label ids, balancing, and stratified splits as properties (a partition, each
class's share kept to within one example, the same seed the same split)."""
import doctest
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.data import classification as cls
from numpyllm.data.classification import (LabelledTexts, balance, read_csv, read_jsonl,
                                          read_tsv, split_indices, stratified_split)
from numpyllm.tokenizers import CharTokenizer

SPAM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sms_spam" / \
    "SMSSpamCollection"


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def test_doctests():
    assert doctest.testmod(cls).failed == 0


# ---------------------------------------------------------------------------- readers
def test_tsv_reads_labels_sorted_and_keeps_tabs_inside_the_text(tmp_path):
    path = write(tmp_path, "a.tsv", "spam\tWIN\tnow\nham\thello\r\n\nham\tbye\n")
    data = read_tsv(path)
    assert data.classes == ("ham", "spam")
    assert data.texts == ["WIN\tnow", "hello", "bye"]
    assert data.labels.tolist() == [1, 0, 0]
    given_order = read_tsv(path, classes=["spam", "ham"])
    assert given_order.labels.tolist() == [0, 1, 1]


def test_csv_and_jsonl_choose_their_columns_by_name(tmp_path):
    csv_path = write(tmp_path, "a.csv", 'id,sentence,y\n1,"a, quoted\nline",pos\n2,plain,neg\n')
    data = read_csv(csv_path, text_column="sentence", label_column="y")
    assert data.texts == ["a, quoted\nline", "plain"] and data.classes == ("neg", "pos")
    rows = [{"t": "x", "l": 10}, {"t": "y", "l": 2}, {"t": "z", "l": 2}]
    jsonl = write(tmp_path, "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = read_jsonl(jsonl, text_column="t", label_column="l")
    assert data.classes == (2, 10) and data.labels.tolist() == [1, 0, 0]   # numbers sort as numbers


@pytest.mark.parametrize("name, content, kwargs, message", [
    ("a.tsv", "ham\thi\nno tab here\n", {}, r"a\.tsv:2: no TAB"),
    ("a.tsv", "ham\thi\nspam\t   \n", {}, r"a\.tsv:2: text is empty"),
    ("a.tsv", "ham\thi\n\tsome text\n", {}, r"a\.tsv:2: label is empty"),
    ("a.tsv", "ham\thi\nspma\tx\n", dict(classes=["ham", "spam"]),
     r"a\.tsv:2: label 'spma' is not one of \['ham', 'spam'\]"),
    ("a.tsv", "", {}, r"a\.tsv: no examples"),
    ("a.csv", "text,label\nhi,ham\n", dict(label_column="y"), r"a\.csv:1: no column 'y'"),
    ("a.csv", "text,label\nhi,ham\n,spam\n", {}, r"a\.csv:3: text is empty"),
    ("a.csv", "text,label\nhi,ham\nho\n", {}, r"a\.csv:3: 1 fields, the header has 2"),
    ("a.csv", "text,label\nhi,ham\nho,\n", {}, r"a\.csv:3: label is empty"),
    ("a.csv", "text,label\nhi,ham\nho,spam\n", dict(classes=["ham"]),
     r"a\.csv:3: label 'spam' is not one of"),
    ("a.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n', {}, r"a\.jsonl:2: no field 'label'"),
    ("a.jsonl", '{"text": "a", "label": "x"}\n{"text": "", "label": "x"}\n', {},
     r"a\.jsonl:2: text is empty"),
    ("a.jsonl", '{"text": "a", "label": true}\n', {}, r"a\.jsonl:1: label must be"),
    ("a.jsonl", '{"text": "a", "label": "x"}\n[1]\n', {}, r"a\.jsonl:2: expected a JSON object"),
    ("a.jsonl", '{"text": "a", "label": "x"}\n{"text": \n', {}, r"a\.jsonl:2: not JSON"),
    ("a.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": 1}\n', {},
     r"labels mix types"),
])
def test_each_error_is_one_line_naming_file_line_and_field(tmp_path, name, content, kwargs,
                                                           message):
    path = write(tmp_path, name, content)
    reader = {"tsv": read_tsv, "csv": read_csv, "jsonl": read_jsonl}[name.split(".")[1]]
    with pytest.raises(ValueError, match=message) as err:
        reader(path, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("reader, ext", [(read_tsv, "tsv"), (read_csv, "csv"),
                                         (read_jsonl, "jsonl")])
def test_bad_encoding_names_the_line(tmp_path, reader, ext):
    good = {"tsv": b"ham\thi\n", "csv": b"text,label\nhi,ham\n",
            "jsonl": b'{"text": "hi", "label": "ham"}\n'}[ext]
    bad = {"tsv": b"ham\th\xffi\n", "csv": b"h\xffi,ham\n",
           "jsonl": b'{"text": "h\xffi", "label": "ham"}\n'}[ext]
    path = write(tmp_path, f"a.{ext}", good + bad, mode="wb")
    line = 3 if ext == "csv" else 2
    with pytest.raises(ValueError, match=rf"a\.{ext}:{line}: not UTF-8"):
        reader(path)


def test_encode_truncates_and_gives_a_labelled_set():
    data = LabelledTexts(["abcd", "ab"], ["x", "y"])
    tok = CharTokenizer("abcd")
    right = data.encode(tok, max_length=3)
    left = data.encode(tok, max_length=3, truncate="left")
    assert [s.tolist() for s in right.sequences] == [tok.encode("abc"), tok.encode("ab")]
    assert [s.tolist() for s in left.sequences] == [tok.encode("bcd"), tok.encode("ab")]
    assert right.labels.tolist() == [0, 1] and right.n_classes == 2


@pytest.mark.skipif(not SPAM.exists(), reason="../shared/data/sms_spam is absent")
def test_the_sms_spam_collection_reads_and_balances_as_the_book_does():
    data = read_tsv(SPAM)
    assert data.classes == ("ham", "spam") and data.counts().tolist() == [4827, 747]
    balanced = balance(data, seed=123)
    assert balanced.counts().tolist() == [747, 747]
    train, val, test = stratified_split(balanced, (0.7, 0.1, 0.2), seed=123)
    assert [len(train), len(val), len(test)] == [1046, 150, 298]


# ---------------------------------------------------------------------------- properties
labels_st = st.lists(st.integers(0, 3), min_size=1, max_size=60)
fractions_st = st.lists(st.integers(0, 10), min_size=1, max_size=4).filter(any).map(
    lambda w: [x / sum(w) for x in w])


@settings(max_examples=200)
@given(labels=labels_st, fractions=fractions_st, seed=st.integers(0, 2**32 - 1))
def test_splits_partition_keep_class_shares_and_repeat_with_the_seed(labels, fractions, seed):
    labels = np.array(labels)
    parts = split_indices(labels, fractions, seed=seed)
    assert len(parts) == len(fractions)
    everything = np.concatenate(parts)
    assert sorted(everything.tolist()) == list(range(len(labels)))      # a partition
    for c in np.unique(labels):
        n_c = (labels == c).sum()
        for part, f in zip(parts, fractions):
            assert abs((labels[part] == c).sum() - f * n_c) < 1          # within rounding
    again = split_indices(labels, fractions, seed=seed)
    assert all((a == b).all() for a, b in zip(parts, again))


@given(labels=labels_st, seed=st.integers(0, 2**32 - 1))
def test_balance_undersamples_to_the_smallest_class_without_repeats(labels, seed):
    data = LabelledTexts([f"t{i}" for i in range(len(labels))], labels)
    out = balance(data, seed=seed)
    counts = data.counts()
    assert (out.counts() == counts.min()).all()
    assert len(set(out.texts)) == len(out)                  # no row twice
    assert set(out.texts) <= set(data.texts)
    assert balance(data, seed=seed).texts == out.texts


def test_split_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(np.array([0, 1]), (0.5, 0.2), seed=0)
    with pytest.raises(ValueError, match="1-D integer"):
        split_indices(np.array([0.5]), (1.0,), seed=0)
