"""`numpyllm data clean` end to end: the report, the log of removed documents, an output
that `numpyllm train --data` reads, atomic outputs, and one-line errors."""
import json

import pytest

from numpyllm.cli import main

PROSE = (
    "The history of the river is older than the town that was built on it. Farmers came "
    "to the valley with their cattle and settled where the water was slow and the soil "
    "was deep. They have left us stone walls, old mills and a church with a square tower, "
    "and the names of fields that are still used today by people who live with the same "
    "floods and the same dry summers. Every spring the river rises, and every autumn the "
    "children count the herons that return to nest in the tall trees near the bridge.")
OTHER = (
    "A small boat is a good way to learn how the wind and the water work together. You "
    "have to watch the sails, feel the pull of the rope and listen to the sound of the "
    "hull, and soon you know when to turn and when to wait. Many sailors say that the "
    "first summer on the lake taught them more than any book, and that the calm days "
    "with no wind were the hardest lessons of all, because patience is the one skill "
    "that no teacher can give you. Write to skipper@lake.example.org for lessons.")


@pytest.fixture
def corpus(write_corpus):
    near = PROSE.replace("herons", "storks")          # J = 0.90 of word 5-shingles
    docs = [PROSE, OTHER, PROSE.upper().replace("  ", " "), near, "Too short.", PROSE + " "]
    return write_corpus(docs)


def test_clean_end_to_end(tmp_path, corpus, capsys):
    out, report, removed = tmp_path / "clean.txt", tmp_path / "r.json", tmp_path / "rm.jsonl"
    assert main(["data", "clean", "--input", str(corpus), "--out", str(out), "--report",
                 str(report), "--removed", str(removed), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "near_dedup" in table and "kept 2 documents" in table
    assert out.read_text() == PROSE + "\n\n" + OTHER.replace("skipper@lake.example.org",
                                                              "<EMAIL>") + "\n\n"
    r = json.loads(report.read_text())
    stages = {s["name"]: s for s in r["stages"]}
    assert [s["name"] for s in r["stages"]] == ["read", "exact", "spans", "quality",
                                                "near_dedup", "pii"]
    assert stages["exact"]["documents_removed"] == 2             # the upper-case copy, " "
    assert stages["quality"]["reasons"] == {"fewer than 50 words": 1}
    assert stages["near_dedup"]["documents_removed"] == 1
    assert stages["pii"]["details"] == {"email": 1} and stages["pii"]["documents_modified"] == 1
    assert r["documents_kept"] == 2 and r["config"]["threshold"] == 0.8
    log = [json.loads(line) for line in removed.read_text().splitlines()]
    assert [(e["line"], e["stage"]) for e in log] == [(5, "exact"), (7, "near_dedup"),
                                                      (9, "quality"), (11, "exact")]
    assert log[1]["reason"] == f"near-duplicate (of {corpus}:1)"
    # the output is what `numpyllm train --data` reads
    from numpyllm.cli._common import read_text
    assert read_text(out).text.startswith("The history")


def test_stages_can_be_turned_off_and_thresholds_set(tmp_path, corpus, capsys):
    out = tmp_path / "o.txt"
    assert main(["data", "clean", "--input", str(corpus), "--out", str(out), "--no-dedup",
                 "--no-near-dedup", "--no-pii", "--min-words", "off", "--quiet"]) == 0
    # nothing removed but "Too short.", which still breaks the stop-word rule
    assert out.read_text().count("\n\n") == 5 and "Too short." not in out.read_text()
    assert main(["data", "clean", "--input", str(corpus), "--input", str(corpus), "--out",
                 str(out), "--no-quality", "--threshold", "0.5", "--num-perm", "64",
                 "--format", "blank", "--out-format", "jsonl", "--quiet"]) == 0
    lines = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    assert len(lines) == 3                  # the second file is all duplicates of the first


def test_output_is_atomic_on_failure(tmp_path, write_corpus, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    out = tmp_path / "o.txt"
    out.write_text("previous output\n")
    assert main(["data", "clean", "--input", str(bad), "--format", "jsonl", "--out", str(out),
                 "--quiet"]) == 2
    assert "bad.jsonl:2: no field 'text'" in capsys.readouterr().err
    assert out.read_text() == "previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "o.txt"]


def test_hostile_files(tmp_path, capsys):
    path = tmp_path / "h.txt"
    path.write_bytes(b"" )
    out = tmp_path / "o.txt"
    assert main(["data", "clean", "--input", str(path), "--out", str(out), "--quiet"]) == 0
    assert out.read_bytes() == b"" and "no document was kept" in capsys.readouterr().err
    path.write_bytes(b"ok\x00\n\n\xc3\x28 bad utf8\n\n" + b"z" * 3000 + b"\n")
    assert main(["data", "clean", "--input", str(path), "--out", str(out), "--no-quality",
                 "--max-doc-bytes", "1000", "--report", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    read = json.loads((tmp_path / "r.json").read_text())["stages"][0]
    assert read["reasons"] == {"NUL byte": 1, "invalid UTF-8": 1, "longer than 1,000 bytes": 1}


@pytest.mark.parametrize("args, fragment", [
    (["--input", "missing.txt", "--out", "o.txt"], "--input missing.txt: no such file"),
    (["--input", "{d}", "--out", "o.txt"], "is a directory, not a corpus file"),
    (["--input", "{c}", "--out", "{c}"], "is also an --input"),
    (["--input", "{c}", "--out", "{d}/no/such/o.txt"], "does not exist"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--report", "{d}/o.txt"], "must be different"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--threshold", "1.5"], "threshold"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--num-perm", "0"], "num_perm"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--bands", "4"], "--bands and --rows"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--bands", "40", "--rows", "4"], "num_perm"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--pii", "email,ssn"], "unknown PII kinds"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--min-words", "-3"], "min_words"),
    (["--input", "{c}", "--out", "{d}/o.txt", "--max-doc-bytes", "0"], "--max-doc-bytes"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, corpus, one_line_error, capsys, args,
                                           fragment):
    args = [a.format(d=tmp_path, c=corpus) for a in args]
    one_line_error(capsys, ["data", "clean", *args, "--quiet"], fragment)


def test_bad_option_values_are_argparse_errors(corpus, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "clean", "--input", str(corpus), "--out", "o", "--min-words", "many"])
    assert exc.value.code == 2 and "expected a number or 'off'" in capsys.readouterr().err
