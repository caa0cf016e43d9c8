"""Fuzzing the task-data readers of fine-tuning (issue 15): instruction and preference
JSON, labelled texts as TSV, CSV and JSONL. Whatever the bytes, each reader returns
examples of the documented form or raises one ValueError (or UnicodeDecodeError, itself
a ValueError) whose message is one line naming the file: never another exception, never
a silent wrong answer.

The "ci" profile runs 25 derandomized examples per test; hunt with more:
    HYPOTHESIS_PROFILE=dev python -m pytest tests/test_fuzz_datasets.py
"""
import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from numpyllm.data.classification import read_csv, read_jsonl, read_tsv
from numpyllm.data.instruction import read_instructions
from numpyllm.data.preference import read_preference_json

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                    st.floats(allow_nan=False), st.text(max_size=12),
                    st.sampled_from(["", " ", "ham", "spam", "\x00", "😀", "a\tb", "\n"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["instruction", "input", "output",
                                                       "chosen", "rejected", "text", "label",
                                                       "x"]) | st.text(max_size=4),
                                      inner, max_size=6), max_leaves=20)
VALID = [{"instruction": "Add.", "input": "2 and 3", "output": "5", "chosen": "5.",
          "rejected": "Five, obviously."}, {"instruction": "Name a color.", "input": "",
                                             "output": "Red.", "chosen": "Red.",
                                             "rejected": "No."}]


@st.composite
def damaged_json(draw):
    doc = json.loads(json.dumps(VALID))
    kind = draw(st.sampled_from(["value", "delete", "replace-all", "bytes"]))
    if kind == "value":
        example = draw(st.sampled_from(doc))
        example[draw(st.sampled_from(sorted(example)))] = draw(JSON)
    elif kind == "delete":
        example = draw(st.sampled_from(doc))
        del example[draw(st.sampled_from(sorted(example)))]
    elif kind == "replace-all":
        doc = draw(JSON)
    raw = json.dumps(doc).encode()
    if kind == "bytes":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=4)) + raw[at + draw(st.integers(0, 3)):]
    return raw


def outcome(read, raw: bytes, name: str):
    """read(path) of a file holding `raw`: its result, or None after a one-line
    ValueError naming the file."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(raw)
        try:
            return read(path)
        except ValueError as exc:          # UnicodeDecodeError and JSONDecodeError too
            message = str(exc)
            assert "\n" not in message and (str(path) in message or
                                            isinstance(exc, UnicodeDecodeError)), message
            return None


@given(raw=damaged_json())
@example(raw=b"[" * 100_000)                  # nested past Python's recursion limit
def test_fuzz_instruction_json(raw):
    examples = outcome(read_instructions, raw, "data.json")
    if examples is not None:
        assert examples and all(isinstance(e[f], str) for e in examples
                                for f in ("instruction", "input", "output"))


@given(raw=damaged_json())
@example(raw=b"[" * 100_000)
def test_fuzz_preference_json(raw):
    examples = outcome(read_preference_json, raw, "pref.json")
    if examples is not None:
        assert examples and all(isinstance(e[f], str) and e[f] for e in examples
                                for f in ("instruction", "chosen", "rejected"))


LINES = st.lists(st.one_of(st.sampled_from(["ham\tHello there", "spam\tWIN now", "ham\t",
                                            "\tno label", "nolabel", "ham\ta\tb", ""]),
                           st.text(max_size=20)), min_size=0, max_size=8)


@given(lines=LINES, tail=st.binary(max_size=3))
@example(lines=["[" * 100_000], tail=b"")
def test_fuzz_labelled_texts(lines, tail):
    raw = "\n".join(lines).encode("utf-8", "surrogatepass") + tail
    for read, name in ((read_tsv, "data.tsv"), (read_csv, "data.csv"),
                       (read_jsonl, "data.jsonl")):
        data = outcome(read, raw, name)
        if data is not None:
            assert len(data.texts) == len(data.labels) > 0
            assert all(isinstance(t, str) and t for t in data.texts)
            assert all(0 <= int(y) < len(data.classes) for y in data.labels)
