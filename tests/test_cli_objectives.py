"""`numpyllm train --objective clm|prefix_lm|mlm|span|seq2seq`, then `eval` and `sample` of
the checkpoint it made; resuming a run that is not causal LM; the one-line errors."""
import csv

import pytest

from numpyllm.cli import main
from numpyllm.training.checkpoint import load_checkpoint

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
        "--batch_size", "4", "--eval_iters", "2", "--samples", "1", "--sample_tokens", "10",
        "--quiet", "--no_plot"]
SHORT = ["--max_iters", "4", "--eval_interval", "2"]
POEM = "the quick brown fox jumps over the lazy dog.\n" * 40
WORDS = ["abc", "bead", "cab", "dace", "faced", "bad", "ace", "fed", "deaf", "cafe", "bed",
         "dab", "fade", "bade", "decaf", "ebb", "add", "bee", "cede", "dead"]


@pytest.fixture
def poem(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text(POEM, encoding="utf-8")
    return path


@pytest.fixture
def pairs(tmp_path):
    """Learn to reverse a word: 40 lines of source<TAB>target."""
    path = tmp_path / "reverse.tsv"
    path.write_text("".join(f"{w}\t{w[::-1]}\n" for w in WORDS * 2), encoding="utf-8")
    return path


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out



def recorded(out):
    ckpt = load_checkpoint(out / "ckpt")
    return ckpt.model_config["type"], ckpt.trainer_state["objective"], ckpt.tokenizer


def metrics(line):
    """An eval line without the file name it starts with (tmp paths hold the test name)."""
    return line.split("]: ", 1)[1]


def losses(out):
    return [(r["step"], r["loss"]) for r in csv.DictReader(open(out / "log.csv"))
            if r["kind"] == "step"]


# ---------------------------------------------------------------------- each objective
def test_clm_is_the_default_and_unchanged(tmp_path, poem, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    printed = run(capsys, "train", "--data", str(poem), "--out", str(a), *SHORT, *TINY)
    run(capsys, "train", "--data", str(poem), "--out", str(b), "--objective", "clm",
        *SHORT, *TINY)
    assert losses(a) == losses(b)
    model, objective, _ = recorded(a)
    assert model == "GPT" and objective["name"] == "clm"
    assert printed.splitlines()[1].startswith("model: 1 layers, 2 heads, 16 wide, context 16")


def test_prefix_lm_trains_a_gpt_then_evals_and_samples(tmp_path, poem, capsys, monkeypatch,
                                                       one_line_error):
    out = tmp_path / "run"
    printed = run(capsys, "train", "--objective", "prefix_lm", "--data", str(poem), "--out",
                  str(out), *SHORT, *TINY)
    assert "objective: prefix_lm (" in printed and "--- sample 1 ---" in printed
    model, objective, _ = recorded(out)
    assert model == "GPT" and objective == {"name": "prefix_lm", "context_length": 16}
    line = metrics(run(capsys, "eval", "--ckpt", str(out / "ckpt"), "--split", "val"))
    assert "prefix_lm" in line and "tokens predicted" in line and "perplexity" in line
    again = metrics(run(capsys, "eval", "--ckpt", str(out / "ckpt"), "--split", "val"))
    assert line.split("(step")[0] == again.split("(step")[0]          # the same figure
    sampled = run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--prompt", "the ",
                  "--max-new-tokens", "8", "--greedy")
    # the prompt is read as the prefix the model was trained on: both ways
    from numpyllm.generate import generate_text
    from numpyllm.training.checkpoint import load_model
    model, tok, _ = load_model(out / "ckpt")
    assert sampled.rstrip("\n") == "the " + generate_text(model, tok, "the ", 8, greedy=True,
                                                         prefix=True)
    import numpyllm.generate as generate_module
    seen = []
    real = generate_module.stream_text
    monkeypatch.setattr(generate_module, "stream_text",
                        lambda *a, **kw: seen.append(kw.get("prefix")) or real(*a, **kw))
    run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--prompt", "the ",
        "--max-new-tokens", "2")
    assert seen == [True]
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt"), "--source", "the"],
                   "--source does not apply", "decoder", "--prompt")


def test_mlm_trains_an_encoder_then_evals_and_fills_in_masks(tmp_path, poem, capsys,
                                                             one_line_error):
    out = tmp_path / "run"
    printed = run(capsys, "train", "--objective", "mlm", "--data", str(poem), "--out",
                  str(out), *SHORT, *TINY)
    assert "masked-token accuracy" in printed and "--- sample" not in printed
    model, objective, tok = recorded(out)
    assert model == "TransformerEncoderModel" and objective["name"] == "mlm"
    assert objective["mask_id"] == tok.special_tokens["[MASK]"] == tok.vocab_size - 1
    config = load_checkpoint(out / "ckpt").model_config["config"]
    assert (config["mlm_head"], config["positions"], config["activation"],
            config["max_len"]) == (True, "learned", "gelu", 16)
    line = metrics(run(capsys, "eval", "--ckpt", str(out / "ckpt")))
    assert "masked tokens predicted" in line and "accuracy" in line and "perplexity" in line
    filled = run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--text", "the qu[MASK]ck fo[MASK]")
    assert filled.count("[MASK] ") == 2 and "filled in:" in filled
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt")], "does not generate",
                   "--text")
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt"), "--text", "the quick"],
                   "[MASK]")
    one_line_error(capsys, ["attention", "--ckpt", str(out / "ckpt"), "--text", "the",
                            "--out", str(tmp_path / "a.png")], "GPT",
                   "TransformerEncoderModel")


def test_mlm_never_draws_a_special_token_as_a_random_replacement(tmp_path, poem, capsys):
    """With a WordPiece tokenizer ([PAD] [UNK] [CLS] [SEP] [MASK]) every special id is
    left out of the random replacements, not the mask alone."""
    out = tmp_path / "wp"
    run(capsys, "train", "--objective", "mlm", "--tokenizer", "wordpiece", "--vocab_size",
        "60", "--data", str(poem), "--out", str(out), *SHORT, *TINY)
    _, objective, tok = recorded(out)
    assert len(tok.special_tokens) >= 5
    # (the record leaves out the mask, which the objective always adds back)
    assert set(tok.special_tokens.values()) == {*objective["special_ids"], objective["mask_id"]}


def test_span_trains_an_encoder_decoder_then_evals_and_fills_in_sentinels(
        tmp_path, poem, capsys, one_line_error):
    out = tmp_path / "run"
    printed = run(capsys, "train", "--objective", "span", "--data", str(poem), "--out",
                  str(out), *SHORT, *TINY)
    assert "input:" in printed and "target:" in printed and "output:" in printed
    model, objective, tok = recorded(out)
    assert model == "Transformer" and objective["name"] == "span"
    specials = tok.special_tokens
    assert objective["sentinel_ids"] == [specials["<extra_id_0>"]]
    assert (objective["eos_id"], objective["bos_id"]) == (specials["</s>"], specials["<s>"])
    config = load_checkpoint(out / "ckpt").model_config["config"]
    assert config["share_embeddings"] and config["pad_id"] == specials["<pad>"]
    line = metrics(run(capsys, "eval", "--ckpt", str(out / "ckpt"), "--split", "val"))
    assert line.startswith("span,") and "hidden spans" in line
    assert "loss" in line and "perplexity" in line
    assert run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--source",
               "the quick <extra_id_0> fox").strip()
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt")], "encoder-decoder",
                   "--source")
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt"), "--source", "the quick"],
                   "<extra_id_0>")
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt"), "--source",
                            "the <extra_id_1> fox"], "<extra_id_1> is not one of this model's")


def test_seq2seq_trains_on_pairs_then_evals_and_decodes_a_source(tmp_path, pairs, capsys,
                                                                 one_line_error):
    out = tmp_path / "run"
    printed = run(capsys, "train", "--objective", "seq2seq", "--data", str(pairs), "--out",
                  str(out), "--val_fraction", "0.25", *SHORT, *TINY)
    assert "40 pairs" in printed and "30 train / 10 val" in printed
    assert "exact match" in printed and "->" in printed
    model, objective, tok = recorded(out)
    assert model == "Transformer" and objective["name"] == "seq2seq"
    assert objective["bos_id"] == tok.special_tokens["<s>"]
    data = load_checkpoint(out / "ckpt").trainer_state["data"]
    assert data["path"] == str(pairs.resolve()) and data["val_fraction"] == 0.25
    line = metrics(run(capsys, "eval", "--ckpt", str(out / "ckpt"), "--split", "val"))
    assert "10 pairs" in line and "token accuracy" in line and "exact match" in line
    greedy = run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--source", "abc")
    assert len(greedy.splitlines()) == 1
    beams = run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--source", "abc", "--beam", "2",
                "--num-samples", "2")
    assert beams.count("--- hypothesis") == 2 and "(score " in beams
    sampled = [run(capsys, "sample", "--ckpt", str(out / "ckpt"), "--source", "abc",
                   "--temperature", "1.0", "--seed", "3") for _ in range(2)]
    assert sampled[0] == sampled[1]
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt")], "--source")
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt"), "--source", "abc",
                            "--stream"], "--stream does not apply", "encoder-decoder")
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt"), "--prompt", "abc"],
                   "--source")


# ---------------------------------------------------------------------- resume
def test_an_mlm_run_resumes_exactly_where_it_stopped(tmp_path, poem, capsys, one_line_error):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    common = ["--eval_interval", "3", "--log_interval", "1", "--lr_decay_iters", "6", *TINY]
    run(capsys, "train", "--objective", "mlm", "--data", str(poem), "--out", str(whole),
        "--max_iters", "6", *common)
    run(capsys, "train", "--objective", "mlm", "--data", str(poem), "--out", str(halves),
        "--max_iters", "3", *common)
    # the objective comes from the checkpoint: no --objective, no --data needed
    printed = run(capsys, "train", "--out", str(halves), "--resume", "--max_iters", "6",
                  "--quiet", "--no_plot")
    assert "resuming at step 3" in printed and "(the checkpoint's text)" in printed
    assert losses(whole) == losses(halves)
    one_line_error(capsys, ["train", "--out", str(halves), "--resume", "--max_iters", "9",
                            "--objective", "clm"],
                   "--objective clm", "the checkpoint's mlm")
    run(capsys, "train", "--out", str(halves), "--resume", "--max_iters", "7", "--objective",
        "mlm", "--quiet", "--no_plot")
    one_line_error(capsys, ["train", "--out", str(halves), "--resume", "--max_iters", "9",
                            "--n_embd", "32"], "--n_embd 32 differs from the checkpoint's 16")


def test_a_seq2seq_run_remembers_its_tsv_file(tmp_path, pairs, capsys, one_line_error):
    out = tmp_path / "run"
    run(capsys, "train", "--objective", "seq2seq", "--data", str(pairs), "--out", str(out),
        *SHORT, *TINY)
    printed = run(capsys, "train", "--out", str(out), "--resume", "--max_iters", "6",
                  "--quiet", "--no_plot", "--samples", "0")
    assert f"{pairs} (the checkpoint's text)" in printed and "resuming at step 4" in printed
    pairs.write_text("abc\tcba\n" * 30, encoding="utf-8")
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--max_iters", "8"],
                   str(pairs.resolve()), "has changed since", "--data FILE")
    one_line_error(capsys, ["eval", "--ckpt", str(out / "ckpt")], "has changed since")


# ---------------------------------------------------------------------- one-line errors
def test_options_that_do_not_fit_the_model_are_refused(tmp_path, poem, pairs, capsys,
                                                       one_line_error):
    out = ["--out", str(tmp_path / "o"), *SHORT, *TINY]
    text = ["--data", str(poem), *out]
    one_line_error(capsys, ["train", "--objective", "mlm", "--positions", "rope", *text],
                   "--positions rope", "mlm", "learned", "sinusoidal")
    one_line_error(capsys, ["train", "--objective", "span", "--positions", "learned", *text],
                   "--positions learned", "sinusoidal")
    one_line_error(capsys, ["train", "--objective", "mlm", "--attn_block_size", "4", *text],
                   "--attn_block_size", "GPT")
    one_line_error(capsys, ["train", "--objective", "seq2seq", "--bias", "false", "--data",
                            str(pairs), *out], "--bias false", "biases")
    one_line_error(capsys, ["train", "--objective", "seq2seq", *out], "--objective seq2seq",
                   "--data FILE", "source<TAB>target")
    assert not (tmp_path / "o" / "ckpt").exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--objective", "bert", *text])
    assert exc.value.code == 2


def test_a_malformed_or_too_long_pairs_file_is_a_one_line_error(tmp_path, poem, capsys,
                                                                one_line_error):
    out = ["--objective", "seq2seq", "--out", str(tmp_path / "o"), *SHORT, *TINY]
    bad = tmp_path / "bad.tsv"
    bad.write_text("abc\tcba\nno tab on this line\n", encoding="utf-8")
    one_line_error(capsys, ["train", "--data", str(bad), *out], f"{bad}:2",
                   "source<TAB>target")
    one_line_error(capsys, ["train", "--data", str(poem), *out], f"{poem}:1")
    long = tmp_path / "long.tsv"
    long.write_text("abc\tcba\n" * 10 + "a\t" + "b" * 40 + "\n", encoding="utf-8")
    one_line_error(capsys, ["train", "--data", str(long), *out], "--block_size 16",
                   "pair 11, a target of 40 tokens", "--block_size 40 or more")


def test_objective_settings_reach_the_objective_and_only_where_they_apply(
        tmp_path, poem, pairs, capsys, one_line_error):
    out = tmp_path / "s2s"
    run(capsys, "train", "--objective", "seq2seq", "--data", str(pairs), "--out", str(out),
        "--label_smoothing", "0.1", *SHORT, *TINY)
    assert recorded(out)[1]["label_smoothing"] == 0.1
    span = tmp_path / "span"
    run(capsys, "train", "--objective", "span", "--data", str(poem), "--out", str(span),
        "--noise_density", "0.5", "--mean_span_length", "2", *SHORT, *TINY)
    objective = recorded(span)[1]
    assert objective["noise_density"] == 0.5 and len(objective["sentinel_ids"]) == 4  # 8 / 2
    one_line_error(capsys, ["train", "--data", str(poem), "--out", str(tmp_path / "x"),
                            "--mask_prob", "0.2", *SHORT, *TINY],
                   "--mask_prob is a setting of --objective mlm, not of clm")
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--max_iters", "6",
                            "--label_smoothing", "0.2"],
                   "--resume: --label_smoothing does not apply")
    one_line_error(capsys, ["train", "--objective", "span", "--data", str(poem), "--out",
                            str(tmp_path / "y"), "--mean_span_length", "0.5", *SHORT, *TINY],
                   "--mean_span_length >= 1")
