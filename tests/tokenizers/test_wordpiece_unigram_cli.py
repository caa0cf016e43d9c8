"""WordPiece and Unigram through the command line (`numpyllm tokenize train --kind`, `numpyllm
train --tokenizer`), inside checkpoints (save, load, resume), and hostile files fuzzed."""
import csv
import json
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.cli import main
from numpyllm.tokenizers import (UnigramTokenizer, VocabularyFileError, WordPieceTokenizer,
                                 load_tokenizer)
from numpyllm.training.checkpoint import load_checkpoint

CORPUS = "the cat sat on the mat.\nthe dog sat on the log!\n" * 50
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
        "--batch_size", "4", "--eval_iters", "2", "--samples", "1", "--sample_tokens", "5",
        "--quiet", "--no_plot"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize("kind, cls, size", [("wordpiece", WordPieceTokenizer, 40),
                                             ("unigram", UnigramTokenizer, 280)])
def test_tokenize_train_encode_decode(tmp_path, corpus, capsys, kind, cls, size):
    out_file = tmp_path / f"{kind}.json"
    printed = run(capsys, "tokenize", "train", "--kind", kind, "--data", corpus,
                  "--vocab-size", size, "--out", out_file, "--special", "[MASK]", "--quiet")
    assert f"saved a {kind} tokenizer" in printed
    tok = load_tokenizer(out_file)
    assert isinstance(tok, cls) and tok.vocab_size <= size and "[MASK]" in tok.special_tokens
    ids = [int(i) for i in run(capsys, "tokenize", "encode", "--tokenizer", out_file,
                               "--text", "the cat sat").split()]
    assert ids == tok.encode("the cat sat")
    assert run(capsys, "tokenize", "decode", "--tokenizer", out_file, *ids) == "the cat sat\n"


def test_tokenize_train_refuses_options_of_other_kinds(tmp_path, corpus, capsys,
                                                       one_line_error):
    out = ["--data", str(corpus), "--out", str(tmp_path / "t.json"), "--quiet"]
    one_line_error(capsys, ["tokenize", "train", "--kind", "unigram", *out], "--vocab-size")
    one_line_error(capsys, ["tokenize", "train", "--kind", "unigram", "--vocab-size", "100",
                            *out], "no room for pieces")
    one_line_error(capsys, ["tokenize", "train", "--kind", "unigram", "--vocab-size", "300",
                            "--cased", *out], "--cased is for --type wordpiece")


def losses(out):
    return [(r["step"], r["loss"]) for r in csv.DictReader(open(out / "log.csv"))
            if r["kind"] == "step"]


@pytest.mark.parametrize("kind, size", [("wordpiece", 40), ("unigram", 290)])
def test_mlm_run_stores_the_tokenizer_and_resumes_exactly(tmp_path, corpus, capsys, kind,
                                                           size):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    common = ["--objective", "mlm", "--data", corpus, "--tokenizer", kind, "--vocab_size",
              size, "--eval_interval", "2", "--log_interval", "1", "--lr_decay_iters", "4",
              *TINY]
    run(capsys, "train", "--out", whole, "--max_iters", "4", *common)
    run(capsys, "train", "--out", halves, "--max_iters", "2", *common)
    ckpt = load_checkpoint(halves / "ckpt")
    tok = ckpt.tokenizer
    assert type(tok).__name__ == {"wordpiece": "WordPieceTokenizer",
                                  "unigram": "UnigramTokenizer"}[kind]
    assert "[MASK]" in tok.special_tokens and tok.vocab_size <= size
    run(capsys, "train", "--out", halves, "--resume", "--max_iters", "4", "--quiet",
        "--no_plot", "--samples", "0")
    assert losses(whole) == losses(halves)


def test_clm_run_with_wordpiece_samples(tmp_path, corpus, capsys):
    printed = run(capsys, "train", "--data", corpus, "--tokenizer", "wordpiece",
                  "--vocab_size", "40", "--out", tmp_path / "o", "--max_iters", "2",
                  "--eval_interval", "2", *TINY)
    assert "--- sample 1 ---" in printed


# ------------------------------------------------------------------ hostile files
HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-2, 10 ** 6), st.floats(),
                    st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3),
                    st.lists(st.tuples(st.text(max_size=3), st.floats()).map(list), max_size=3),
                    st.just({}), st.just([["a", -1.0], ["a", -1.0]]))


def _templates():
    wp = WordPieceTokenizer(["[UNK]", "[CLS]", "a", "##b"])
    uni = UnigramTokenizer([("<unk>", 0.0), ("\u2581a", -1.0), ("b", -2.0)])
    return [(wp, WordPieceTokenizer.load), (uni, UnigramTokenizer.load)]


@settings(deadline=None, max_examples=150)
@given(which=st.integers(0, 1), data=st.data())
def test_fuzzed_files_load_or_raise_one_clear_error(which, data):
    tok, load = _templates()[which]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.json"
        tok.save(path)
        doc = json.loads(path.read_text(encoding="utf-8"))
        if data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(doc)))
            doc[key] = data.draw(HOSTILE)
            text = json.dumps(doc)
        else:
            raw = json.dumps(doc)
            at = data.draw(st.integers(0, len(raw)))
            text = raw[:at] + data.draw(st.text(max_size=4)) + raw[at + 1:]
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        size = path.stat().st_size
        for loader in (load, load_tokenizer):
            tracemalloc.start()
            try:
                try:
                    got = loader(path)
                except VocabularyFileError as exc:
                    assert "\n" not in str(exc) and str(path) in str(exc)
                    got = None
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            # no more memory than the file justifies (as tests/test_fuzz_loaders.py asks)
            assert peak <= 64 * size + (1 << 20), (peak, size)
            if got is not None:
                assert isinstance(got.decode(got.encode("ab a")), str)


def test_a_unigram_file_encoded_to_npy_decodes_back(tmp_path, corpus, capsys):
    tok_file, ids_file = tmp_path / "u.json", tmp_path / "ids.npy"
    UnigramTokenizer.train(CORPUS, 300, seed_size=500).save(tok_file)
    run(capsys, "tokenize", "encode", "--tokenizer", tok_file, "--input", corpus, "--out",
        ids_file, "--quiet")
    run(capsys, "tokenize", "decode", "--tokenizer", tok_file, "--input", ids_file, "--out",
        tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text(encoding="utf-8") == CORPUS
