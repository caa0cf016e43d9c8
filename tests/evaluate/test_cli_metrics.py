"""``numpyllm eval --metric bleu|rouge|ppl|bpb``: files of hypotheses and references,
a model's greedy outputs for a file of prompts (written with --out), sliding-window
perplexity and bits per byte of a checkpoint with --stride, JSON, and the one-line errors."""
import json
import math

import numpy as np
import pytest

from numpyllm.cli import main
from numpyllm.evaluate import RougeScorer, corpus_bleu
from numpyllm.generate import generate
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training.checkpoint import save_checkpoint
from numpyllm.training.evaluate import bits_per_byte, evaluate_tokens

HYPS = ["the cat sat on the mat.", "a dog ran far away", "", "Straße & naïve, 3.50!"]
REFS = ["the cat is on the mat.", "the dog ran away", "nothing here", "Strasse & naive, 3.50!"]
REFS2 = ["there is a cat on the mat", "a dog ran far away", "", "x"]
CHARS = "abcdefgh .\n"


def write(path, lines):
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    return (write(tmp_path / "hyp.txt", HYPS), write(tmp_path / "ref.txt", REFS),
            write(tmp_path / "ref2.txt", REFS2))


@pytest.fixture
def ckpt(tmp_path):
    tok = CharTokenizer.from_text(CHARS)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
                          n_embd=16), rng=np.random.default_rng(0))
    save_checkpoint(tmp_path / "ckpt", step=1, model=model, tokenizer=tok)
    return str(tmp_path / "ckpt"), model, tok


def run(capsys, *args):
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_bleu_of_files_is_corpus_bleu(files, capsys):
    hyp, ref, ref2 = files
    out = json.loads(run(capsys, "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--ref", ref2,
                         "--json"))
    expected = corpus_bleu(HYPS, [REFS, REFS2])
    assert math.isclose(out["score"], expected.score) and out["counts"] == expected.counts
    assert out["signature"].startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|")
    text = run(capsys, "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--tokenize", "none",
               "--smooth", "floor", "--smooth-value", "0.2", "--lowercase")
    s = corpus_bleu(HYPS, [REFS], tokenize="none", smooth_method="floor", smooth_value=0.2,
                    lowercase=True)
    assert text.startswith(f"BLEU = {s.score:.2f} ") and "smooth:floor[0.20]" in text


def test_bleu_of_chinese_text_with_the_zh_tokenizer(tmp_path, capsys):
    hyp, ref = tmp_path / "hyp.zh", tmp_path / "ref.zh"
    hyp.write_text("我爱北京天安门。\n今天天气很好\n", encoding="utf-8")
    ref.write_text("我爱北京。\n今天天气不错\n", encoding="utf-8")
    out = json.loads(run(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref),
                         "--tokenize", "zh", "--json"))
    expected = corpus_bleu(["我爱北京天安门。", "今天天气很好"], [["我爱北京。", "今天天气不错"]],
                           tokenize="zh")
    assert out["counts"] == expected.counts and expected.counts[0] == 9    # characters
    assert "|tok:zh|" in out["signature"]


def test_rouge_of_files_is_the_mean_of_segment_scores(files, capsys):
    hyp, ref, ref2 = files
    out = json.loads(run(capsys, "--metric", "rouge", "--hyp", hyp, "--ref", ref, "--ref", ref2,
                         "--json", "--bootstrap", "50"))
    scorer = RougeScorer()
    each = [scorer.score_multi([r, r2], h) for h, r, r2 in zip(HYPS, REFS, REFS2)]
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        mean_f = sum(s[name].fmeasure for s in each) / len(each)
        assert math.isclose(out[name]["fmeasure"], mean_f)
        ci = out[name]["fmeasure_ci"]
        assert ci["low"] <= ci["mid"] <= ci["high"]
    text = run(capsys, "--metric", "rouge", "--hyp", hyp, "--ref", ref, "--rouge-types",
               "rouge1", "--bootstrap", "0")
    assert len(text.splitlines()) == 2 and text.splitlines()[1].startswith("rouge1")


def test_bleu_of_a_models_greedy_outputs_written_with_out(ckpt, tmp_path, capsys):
    path, model, tok = ckpt
    prompts = ["abc", "h. ", "ggg", "d"]           # "d" continues with a line break
    refs = ["abc def", "h. a", "ggg hh", "ddd"]
    out_file = tmp_path / "gens.txt"
    result = json.loads(run(capsys, "--metric", "bleu", "--ckpt", path, "--prompts",
                            write(tmp_path / "p.txt", prompts), "--ref",
                            write(tmp_path / "r.txt", refs), "--max-new-tokens", "20",
                            "--out", str(out_file), "--json"))
    expected = []
    for p in prompts:
        row = generate(model, np.array(tok.encode(p)), 20, greedy=True)
        expected.append(tok.decode(row[len(p):].tolist()).split("\n")[0].strip())
    assert expected[-1] == "d" * 11                # cut at the line break
    assert out_file.read_text(encoding="utf-8").split("\n")[:-1] == expected
    assert math.isclose(result["score"], corpus_bleu(expected, [refs]).score)


@pytest.mark.parametrize("stride", [16, 8, 3])
def test_ppl_and_bpb_of_a_checkpoint_with_a_stride(ckpt, tmp_path, capsys, stride):
    path, model, tok = ckpt
    data = write(tmp_path / "d.txt", ["abc defgh. " * 6] * 3)
    text = open(data, encoding="utf-8").read()
    ids = np.array(tok.encode(text))
    expected = evaluate_tokens(model, ids, stride=stride)
    out = json.loads(run(capsys, "--ckpt", path, "--data", data, "--metric", "bpb", "--stride",
                         str(stride), "--json"))
    assert math.isclose(out["loss"], expected["loss"], rel_tol=1e-9)
    assert math.isclose(out["bits_per_byte"],
                        bits_per_byte(expected["nats"], len(text[1:].encode("utf-8"))))
    assert out["stride"] == stride and out["windows"] == expected["windows"]
    line = run(capsys, "--ckpt", path, "--data", data, "--metric", "ppl", "--stride", str(stride))
    assert line.startswith(f"perplexity {expected['perplexity']:.3f} (")


def test_eval_without_metric_is_unchanged_and_now_gives_bits_per_byte(ckpt, tmp_path, capsys):
    path, model, tok = ckpt
    data = write(tmp_path / "d.txt", ["abc defgh. " * 6])
    line = run(capsys, "--ckpt", path, "--data", data)
    expected = evaluate_tokens(model, np.array(tok.encode(open(data).read())))
    assert f"{expected['tokens']:,} tokens predicted in windows of 16, " in line
    assert f"loss {expected['loss']:.4f}, perplexity {expected['perplexity']:.3f}, " in line
    assert "bits per byte" in line


def test_errors_are_one_line(files, ckpt, tmp_path, capsys, one_line_error):
    hyp, ref, ref2 = files
    short = write(tmp_path / "short.txt", REFS[:3])
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", hyp, "--ref", short],
                   f"--ref {short} has 3 lines but --hyp {hyp} has 4")
    one_line_error(capsys, ["eval", "--metric", "rouge", "--hyp", hyp], "needs --ref FILE")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--ref", ref], "pass --hyp FILE")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", str(tmp_path / "no.txt"),
                            "--ref", ref], "no.txt: no such file")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", str(bad), "--ref", ref],
                   "not UTF-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", str(empty), "--ref", ref],
                   "the file is empty")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", hyp, "--ref", ref,
                            "--smooth-value", "0.3"], "--smooth-value applies to")
    one_line_error(capsys, ["eval", "--metric", "rouge", "--hyp", hyp, "--ref", ref,
                            "--rouge-types", "rouge0"], "unknown ROUGE type 'rouge0'")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--out",
                            str(tmp_path / "o.txt")], "--out writes a model's generations")
    path = ckpt[0]
    one_line_error(capsys, ["eval", "--metric", "bleu", "--ckpt", path, "--prompts", short,
                            "--ref", ref], "one reference per prompt")
    data = write(tmp_path / "d.txt", ["abc defgh. " * 6])
    one_line_error(capsys, ["eval", "--ckpt", path, "--data", data, "--stride", "17"],
                   "--stride 17 is longer than the window of 16")
    one_line_error(capsys, ["eval", "--ckpt", path, "--data", data, "--stride", "0"],
                   "--stride must be >= 1")
    one_line_error(capsys, ["eval", "--ckpt", path, "--data", data, "--hyp", hyp],
                   "--hyp belongs to --metric bleu, chrf or rouge")
    one_line_error(capsys, ["eval", "--data", data], "pass --ckpt DIR or --model DIR")
    one_line_error(capsys, ["eval", "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--stride",
                            "2"], "--data and --stride do not apply")


def test_an_encoder_decoder_on_its_targets_and_on_its_outputs(tmp_path, capsys, one_line_error):
    words = ["abc", "bead", "cab", "dace", "faced", "bad", "ace", "fed", "deaf", "cafe"]
    pairs = write(tmp_path / "rev.tsv", [f"{w}\t{w[::-1]}" for w in words * 2])
    out = tmp_path / "s2s"
    assert main(["train", "--objective", "seq2seq", "--data", pairs, "--out", str(out),
                 "--max_iters", "2", "--eval_interval", "2", "--n_layer", "1", "--n_head", "2",
                 "--n_embd", "16", "--block_size", "16", "--batch_size", "4", "--eval_iters",
                 "1", "--samples", "0", "--quiet", "--no_plot"]) == 0
    capsys.readouterr()
    ckpt = str(out / "ckpt")
    plain = run(capsys, "--ckpt", ckpt)
    one_line_error(capsys, ["eval", "--ckpt", ckpt, "--json"], "add --metric ppl or drop --json")
    one_line_error(capsys, ["eval", "--ckpt", ckpt, "--stride", "2"], "this checkpoint is seq2seq")
    result = json.loads(run(capsys, "--ckpt", ckpt, "--metric", "bpb", "--json"))
    assert f"loss {result['loss']:.4f}" in plain           # the same teacher-forced targets
    # the targets' total loss in bits over their bytes (3 to 5 letters each)
    n_bytes = sum(len(w) for w in words * 2)
    assert math.isclose(result["bits_per_byte"],
                        result["loss"] * result["tokens"] / n_bytes / math.log(2))
    gens = tmp_path / "gens.txt"
    bleu = json.loads(run(capsys, "--metric", "bleu", "--ckpt", ckpt, "--prompts",
                          write(tmp_path / "src.txt", words), "--ref",
                          write(tmp_path / "tgt.txt", [w[::-1] for w in words]),
                          "--tokenize", "char", "--out", str(gens), "--json"))
    outputs = gens.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(outputs) == len(words)
    assert math.isclose(bleu["score"], corpus_bleu(outputs, [[w[::-1] for w in words]],
                                                   tokenize="char").score)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_pretrained_directory_with_a_stride_and_on_prompts(kind, tmp_path, capsys):
    """A Hugging Face directory (GPT-2 or Llama layout, byte-level BPE): bits per byte in
    sliding windows, and BLEU of its greedy continuations of prompts."""
    from numpyllm.hub import load_pretrained, save_pretrained
    from numpyllm.nn.llama import Llama, LlamaConfig
    from numpyllm.tokenizers import BPETokenizer
    text = "First Citizen: Before we proceed any further, hear me speak. All: Speak. " * 6
    tok = BPETokenizer(special_tokens=["<|endoftext|>"]).train(text, 300)
    model = (GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2,
                           n_embd=16), rng=0) if kind == "gpt2" else
             Llama(LlamaConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=4,
                               n_kv_head=2, n_embd=16, intermediate_size=24), rng=0))
    directory = tmp_path / kind
    save_pretrained(model, tok, directory)
    model, tok = load_pretrained(directory)
    data = tmp_path / "d.txt"
    data.write_text(text, encoding="utf-8")
    ids = np.array(tok.encode(text))
    expected = evaluate_tokens(model, ids, block_size=16, stride=5)
    out = json.loads(run(capsys, "--model", str(directory), "--data", str(data), "--context",
                         "16", "--stride", "5", "--metric", "bpb", "--json"))
    assert math.isclose(out["loss"], expected["loss"], rel_tol=1e-9)
    assert math.isclose(out["bits_per_byte"],
                        bits_per_byte(expected["nats"], len(tok.decode(ids[1:].tolist()).encode())))
    prompts = ["First Citizen:", "All: Speak"]
    gens = tmp_path / "gens.txt"
    result = json.loads(run(capsys, "--metric", "rouge", "--model", str(directory), "--prompts",
                            write(tmp_path / "p.txt", prompts), "--ref",
                            write(tmp_path / "r.txt", ["Before we proceed", "hear me speak"]),
                            "--max-new-tokens", "6", "--out", str(gens), "--json",
                            "--bootstrap", "0"))
    outputs = gens.read_text(encoding="utf-8").split("\n")[:-1]
    for p, line in zip(prompts, outputs):
        row = generate(model, np.array(tok.encode(p)), 6, greedy=True,
                       eos_id=tok.special_tokens.get("<|endoftext|>"))
        assert line == tok.decode(row[len(tok.encode(p)):].tolist()).split("\n")[0].strip()
    assert result["segments"] == 2 and 0 <= result["rouge1"]["fmeasure"] <= 1


SYS2 = ["the cat is on the mat.", "the dog ran far away", "nothing", "Strasse & naive, 3.50!"]


def test_bleu_confidence_and_paired_tests_are_the_library_s(files, tmp_path, capsys):
    """--confidence and --paired-bs/--paired-ar print what numpyllm.evaluate.significance
    computes, with sacrebleu's seed (12345) unless --seed, and its signature fields."""
    from numpyllm.evaluate import (bootstrap_ci, paired_approximate_randomization,
                                   paired_bootstrap)
    from numpyllm.evaluate.bleu import corpus_stats
    hyp, ref, ref2 = files
    sys2 = write(tmp_path / "sys2.txt", SYS2)
    base_stats = corpus_stats(HYPS, [REFS, REFS2])
    sys_stats = corpus_stats(SYS2, [REFS, REFS2])
    out = json.loads(run(capsys, "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--ref", ref2,
                         "--confidence", "--bootstrap", "200", "--json"))
    ci = bootstrap_ci(base_stats, n_samples=200, seed=12345)
    assert out["confidence"] == {"mean": ci.mean, "ci": ci.ci, "low": ci.low, "high": ci.high,
                                 "n_samples": 200, "seed": 12345}
    assert out["signature"].startswith("nrefs:2|bs:200|seed:12345|case:mixed|")
    text = run(capsys, "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--confidence",
               "--seed", "3")
    ci = bootstrap_ci(corpus_stats(HYPS, [REFS]), seed=3)
    assert text.startswith(f"BLEU = {ci.format()} ") and "seed 3" in text
    out = json.loads(run(capsys, "--metric", "bleu", "--hyp", hyp, "--hyp", sys2, "--hyp", hyp,
                         "--ref", ref, "--ref", ref2, "--paired-bs", "--bootstrap", "100",
                         "--json"))
    expected = paired_bootstrap(base_stats, [sys_stats, base_stats], n_samples=100)
    assert [s["system"] for s in out["systems"]] == [hyp, sys2, hyp]
    assert [(s["score"], s["p_value"], s["mean"], s["ci"]) for s in out["systems"]] == \
        [(r.score, r.p_value, r.mean, r.ci) for r in expected]
    assert out["signature"].startswith("nrefs:2|bs:100|seed:12345|")
    assert [s["same_as_baseline"] for s in out["systems"]] == [False, False, True]
    text = run(capsys, "--metric", "bleu", "--hyp", hyp, "--hyp", sys2, "--ref", ref,
               "--ref", ref2, "--paired-ar", "--trials", "300", "--seed", "9")
    expected = paired_approximate_randomization(base_stats, [sys_stats], n_trials=300, seed=9)
    assert f"p = {expected[1].p_value:.4f}" in text and "300 trials, seed 9" in text
    assert text.rstrip().splitlines()[-1].startswith("nrefs:2|ar:300|seed:9|")


def test_bleu_significance_errors_are_one_line(files, ckpt, tmp_path, capsys, one_line_error):
    hyp, ref, _ = files
    short = write(tmp_path / "short.txt", SYS2[:3])
    bleu = ["eval", "--metric", "bleu", "--ref", ref]
    one_line_error(capsys, bleu + ["--hyp", hyp, "--paired-bs"],
                   "--paired-bs compares systems: pass --hyp BASELINE --hyp SYSTEM")
    one_line_error(capsys, bleu + ["--hyp", hyp, "--hyp", hyp],
                   "2 --hyp files: several systems are compared with")
    one_line_error(capsys, bleu + ["--hyp", hyp, "--hyp", short, "--paired-ar"],
                   f"--hyp {short} has 3 lines but the baseline --hyp {hyp} has 4")
    one_line_error(capsys, bleu + ["--hyp", hyp, "--confidence", "--bootstrap", "0"],
                   "--bootstrap must be >= 1 for --confidence")
    one_line_error(capsys, bleu + ["--hyp", hyp, "--hyp", hyp, "--paired-ar", "--trials", "0"],
                   "--trials must be >= 1 for --paired-ar")
    one_line_error(capsys, bleu + ["--hyp", hyp, "--trials", "9"],
                   "--trials is the number of --paired-ar trials")
    one_line_error(capsys, ["eval", "--metric", "rouge", "--ref", ref, "--hyp", hyp,
                            "--confidence"], "--confidence is for --metric bleu")
    one_line_error(capsys, ["eval", "--ckpt", ckpt[0], "--paired-bs"],
                   "--paired-bs belongs to --metric bleu")
    one_line_error(capsys, bleu + ["--ckpt", ckpt[0], "--prompts", ref, "--paired-bs"],
                   "--paired-bs compares systems")
