"""Reading documents in the three layouts, streaming, and what hostile bytes become."""
import json
import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from numpyllm.data.clean import DocumentWriter, Rejected, read_documents

_doc = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r\n"
                             "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), min_size=1, max_size=40
               ).filter(lambda s: s.strip())


@given(st.lists(_doc, max_size=8), st.sampled_from(["line", "jsonl"]))
def test_line_and_jsonl_round_trip(tmp_path_factory, docs, fmt):
    path = tmp_path_factory.mktemp("c") / "c.txt"
    lines = [json.dumps({"text": d}) if fmt == "jsonl" else d for d in docs]
    path.write_bytes("".join(l + "\n" for l in lines).encode())
    assert [d.text for d in read_documents(path, fmt)] == docs


@given(st.lists(st.lists(_doc, min_size=1, max_size=3), max_size=6))
def test_blank_line_documents_round_trip(tmp_path_factory, paragraphs):
    docs = ["\n".join(lines) for lines in paragraphs]
    path = tmp_path_factory.mktemp("c") / "c.txt"
    path.write_bytes("\n \n\n".join(docs).encode())       # whitespace-only lines separate too
    got = list(read_documents(path, "blank"))
    assert [d.text for d in got] == docs
    assert all(not isinstance(d, Rejected) for d in got)


def test_empty_and_blank_only_files_have_no_documents(tmp_path):
    for content in (b"", b"\n\n \n\t\n"):
        (tmp_path / "e.txt").write_bytes(content)
        for fmt in ("blank", "line", "jsonl"):
            assert list(read_documents(tmp_path / "e.txt", fmt)) == []


def test_invalid_utf8_is_dropped_or_replaced(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"good one\n\xff\xfebad\nfine\n")
    got = list(read_documents(path, "line"))
    assert [type(d).__name__ for d in got] == ["Document", "Rejected", "Document"]
    assert got[1].reason == "invalid UTF-8" and got[1].line == 2
    got = list(read_documents(path, "line", invalid_utf8="replace"))
    assert got[1].text == "\ufffd\ufffdbad"


def test_nul_bytes_mark_binary_documents(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"text\n\nbin\x00ary\nmore\n\nlast\n")
    got = list(read_documents(path, "blank"))
    assert [getattr(d, "text", None) for d in got] == ["text", None, "last"]
    assert got[1].reason == "NUL byte"


def test_a_huge_line_is_dropped_without_holding_it(tmp_path):
    path = tmp_path / "c.txt"
    with open(path, "wb") as f:
        f.write(b"before\n" + b"x" * 5_000_000 + b"\nafter\n")
    got = list(read_documents(path, "line", max_doc_bytes=1000))
    assert [getattr(d, "text", None) for d in got] == ["before", None, "after"]
    assert got[1].reason == "longer than 1,000 bytes" and got[1].nbytes == 5_000_001
    # the same in blank-line mode: a document of many short lines that outgrows the limit
    path.write_bytes(b"a\n\n" + b"line\n" * 1000 + b"\nz\n")
    got = list(read_documents(path, "blank", max_doc_bytes=1000))
    assert [getattr(d, "text", None) for d in got] == ["a", None, "z"]


def test_a_huge_line_costs_bounded_memory(tmp_path):
    import tracemalloc
    path = tmp_path / "c.txt"
    with open(path, "wb") as f:
        for _ in range(40):
            f.write(b"y" * 1_000_000)           # one 40 MB line
        f.write(b"\nok\n")
    tracemalloc.start()
    got = list(read_documents(path, "line", max_doc_bytes=100_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [getattr(d, "text", None) for d in got] == [None, "ok"]
    assert peak < 8_000_000, peak


@pytest.mark.parametrize("line, message", [
    (b"{not json", "c.jsonl:2: not JSON"),
    (b"[1, 2]", "c.jsonl:2: expected a JSON object, got list"),
    (b'{"body": "x"}', "c.jsonl:2: no field 'text' (fields: 'body')"),
    (b'{"text": 3}', "c.jsonl:2: field 'text' is int, not a string"),
])
def test_malformed_jsonl_is_a_precise_error(tmp_path, line, message):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "ok"}\n' + line + b"\n")
    with pytest.raises(ValueError) as info:
        list(read_documents(path, "jsonl"))
    assert str(info.value).startswith(f"{tmp_path}/{message}"), info.value


def test_jsonl_lone_surrogates_are_not_text(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "a\\ud800b"}\n{"text": "fine"}\n')
    got = list(read_documents(path, "jsonl"))
    assert got[0].reason == "invalid UTF-8" and got[1].text == "fine"


def test_bad_options_are_refused(tmp_path):
    (tmp_path / "c.txt").write_text("x\n")
    for kwargs in ({"fmt": "csv"}, {"invalid_utf8": "ignore"}, {"max_doc_bytes": 0}):
        with pytest.raises(ValueError):
            list(read_documents(tmp_path / "c.txt", **kwargs))


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    with pytest.raises(RuntimeError):
        with DocumentWriter(out) as w:
            w.write("new document")
            raise RuntimeError("killed half way")
    assert out.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]          # no temporary file left behind
    with DocumentWriter(out) as w:
        w.write("one")
        w.write("two\nlines")
    assert out.read_text() == "one\n\ntwo\nlines\n\n"
    assert [d.text for d in read_documents(out, "blank")] == ["one", "two\nlines"]


_hostile = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\n", b"\n\n", b"\r\n", b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80",
                     b"caf\xc3\xa9 ", b"\xf0\x9f\x98\x80", b" \t\n", b"x" * 300])),
    max_size=30).map(b"".join)


@given(_hostile, st.sampled_from(["blank", "line"]), st.sampled_from(["drop", "replace"]))
@example(b"ok\x00\n\n\xed\xa0\x80\nfine\r\n" + b"y" * 300, "blank", "replace")
@example(b"a\x00b\n\xff\n\n\n", "line", "drop")
def test_fuzz_any_bytes_read_and_clean_without_surprise(tmp_path_factory, data, fmt, policy):
    """Random bytes: the reader yields documents of valid text or reasons, never raises;
    every input byte of a non-blank line is in exactly one document or rejection; and the
    whole pipeline writes valid UTF-8 that numpyllm train would read."""
    from numpyllm.data.clean import CleanConfig, clean_files
    d = tmp_path_factory.mktemp("f")
    path = d / "in.bin"
    path.write_bytes(data)
    got = list(read_documents(path, fmt, invalid_utf8=policy, max_doc_bytes=200))
    for doc in got:
        if isinstance(doc, Rejected):
            assert doc.reason in ("NUL byte", "invalid UTF-8", "longer than 200 bytes")
            assert policy == "drop" or doc.reason != "invalid UTF-8"
        else:
            assert doc.text.strip() and "\0" not in doc.text
            doc.text.encode("utf-8")                       # no lone surrogates
    lines = data.split(b"\n")
    content = sum(len(l) + 1 for l in lines if l.strip()) - (0 if data.endswith(b"\n") or
                                                             not lines[-1].strip() else 1)
    assert sum(doc.nbytes for doc in got) == content
    report = clean_files([path], d / "out.txt", CleanConfig(quality=None), fmt=fmt,
                         invalid_utf8=policy, max_doc_bytes=200)
    (d / "out.txt").read_bytes().decode("utf-8")
    assert report.stages["read"].documents_in == len(got)
