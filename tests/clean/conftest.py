"""Fixtures of the corpus-cleaning tests: the labelled PII set, and a writer of corpus
files in each input format."""
import json
from pathlib import Path

import pytest

LABELLED = Path(__file__).with_name("pii_labelled.jsonl")


@pytest.fixture
def pii_examples():
    """The labelled PII set: {"text", "pii": [[kind, substring], ...], "split"}; split
    "dev" was written together with the patterns, "held_out" after them and never tuned
    on."""
    examples = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    return [{**e, "split": e.get("split", "dev")} for e in examples]


@pytest.fixture
def write_corpus(tmp_path):
    """write_corpus(docs, fmt="blank", name="in.txt") -> the path of a corpus file."""
    def write(docs, fmt="blank", name="in.txt"):
        path = tmp_path / name
        if fmt == "blank":
            path.write_text("".join(d + "\n\n" for d in docs), encoding="utf-8")
        elif fmt == "line":
            path.write_text("".join(d + "\n" for d in docs), encoding="utf-8")
        else:
            path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs),
                            encoding="utf-8")
        return path
    return write
