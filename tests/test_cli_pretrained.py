"""Pretrained Hugging Face directories from the command line: ``sample --model``,
``eval --model``, ``train --init-from`` and ``convert`` both ways, and their one-line
errors. The directories are written by numpyllm (save_pretrained) on the spot."""
import json

import numpy as np
import pytest

from numpyllm.cli import main
from numpyllm.generate import generate
from numpyllm.hub import load_pretrained, save_pretrained
from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig
from numpyllm.tokenizers import BPETokenizer
from numpyllm.training import evaluate_tokens
from numpyllm.training.checkpoint import load_model, save_checkpoint

TEXT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. "
        "First Citizen: You are all resolved rather to die than to famish? ") * 8


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer(special_tokens=["<|endoftext|>"]).train(TEXT, 300)


def make(kind, vocab):
    if kind == "gpt2":
        return GPT(GPTConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=2, n_embd=16,
                             bias=True), rng=0)
    return Llama(LlamaConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=4, n_kv_head=2,
                             n_embd=16, intermediate_size=24, attention_bias=kind == "qwen2"),
                 rng=0)


@pytest.fixture(scope="module", params=["gpt2", "llama", "qwen2"])
def directory(request, tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp(request.param)
    model = make(request.param, tokenizer.vocab_size)
    save_pretrained(model, tokenizer, path)
    return path


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(TEXT)
    return path


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_sample_continues_a_prompt_as_generate_does(directory, capsys):
    model, tok = load_pretrained(directory)
    out = run(capsys, "sample", "--model", directory, "--prompt", "First Citizen",
              "--greedy", "--max-new-tokens", "12")
    ids = generate(model, np.array(tok.encode("First Citizen")), 12, greedy=True,
                   eos_id=tok.special_tokens.get("<|endoftext|>"))
    assert out == tok.decode(ids.tolist()) + "\n"


def test_eval_scores_a_text_as_evaluate_tokens_does(directory, text_file, capsys):
    model, tok = load_pretrained(directory)
    out = run(capsys, "eval", "--model", directory, "--data", text_file, "--context", "16")
    ids = np.array(tok.encode_ordinary(TEXT))
    expected = evaluate_tokens(model, ids, block_size=16)
    assert f"{expected['tokens']:,} tokens predicted in windows of 16, " in out
    assert f"loss {expected['loss']:.4f}, perplexity {expected['perplexity']:.3f}" in out
    bpb = expected["loss"] * expected["tokens"] / len(tok.decode(ids[1:].tolist()).encode())
    assert f"{bpb / np.log(2):.4f} bits per byte" in out


def test_train_init_from_starts_at_the_pretrained_weights_and_resumes(directory, text_file,
                                                                      tmp_path, capsys):
    pretrained, _ = load_pretrained(directory)
    out = tmp_path / "run"
    common = ["--data", text_file, "--out", out, "--batch_size", "2", "--eval_interval", "2",
              "--eval_iters", "1", "--samples", "0", "--no_plot", "--quiet"]
    text = run(capsys, "train", "--init-from", directory, "--max_iters", "2",
               "--learning_rate", "0", "--min_lr", "0", "--weight_decay", "0", *common)
    assert f"from {directory}, 2 layers" in text and "(training windows of 32)" not in text
    model, tok, ckpt = load_model(out / "ckpt")
    assert type(model) is type(pretrained) and ckpt.step == 2
    for (name, p), (_, q) in zip(model.named_parameters(), pretrained.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)    # lr 0: unchanged
    run(capsys, "train", "--resume", "--max_iters", "4", *common)
    assert load_model(out / "ckpt")[2].step == 4


def test_train_init_from_trains_in_windows_shorter_than_the_context(directory, text_file,
                                                                    tmp_path, capsys):
    text = run(capsys, "train", "--init-from", directory, "--data", text_file, "--out",
               tmp_path / "run", "--block_size", "8", "--max_iters", "3", "--batch_size", "2",
               "--eval_interval", "3", "--eval_iters", "1", "--samples", "0", "--no_plot",
               "--quiet")
    assert "context 32 (training windows of 8)" in text
    assert "learning rate: 1.00e-04 at step 0, cosine decay to 1.00e-05" in text  # gentler
    _, _, ckpt = load_model(tmp_path / "run" / "ckpt")
    assert ckpt.trainer_state["objective"]["context_length"] == 8


def test_convert_both_ways_keeps_every_weight(directory, tmp_path, capsys):
    run(capsys, "convert", "--from", directory, "--out", tmp_path / "ckpt")
    model, tok, ckpt = load_model(tmp_path / "ckpt")
    assert ckpt.step == 0 and tok is not None
    run(capsys, "convert", "--ckpt", tmp_path / "ckpt", "--to", tmp_path / "hf",
        "--max-shard-size", "20KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    back, tok_back = load_pretrained(tmp_path / "hf")
    original, _ = load_pretrained(directory)
    for (name, p), (_, q) in zip(back.named_parameters(), original.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert tok_back.encode(TEXT[:100]) == tok.encode(TEXT[:100])
    samples = [run(capsys, "sample", where, path, "--prompt", "All:", "--greedy",
                   "--max-new-tokens", "8")
               for where, path in (("--model", directory), ("--ckpt", tmp_path / "ckpt"))]
    assert samples[0] == samples[1]


def test_convert_to_half_precision(directory, tmp_path, capsys):
    run(capsys, "convert", "--from", directory, "--out", tmp_path / "ckpt")
    run(capsys, "convert", "--ckpt", tmp_path / "ckpt", "--to", tmp_path / "hf", "--dtype",
        "bfloat16")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["dtype"] == "bfloat16"


# ------------------------------------------------------------------ one-line errors
def test_errors_are_one_line(directory, text_file, tmp_path, capsys, one_line_error,
                             tokenizer):
    one_line_error(capsys, ["sample", "--model", str(tmp_path / "none")], "does not exist")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}')
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04N.")
    one_line_error(capsys, ["sample", "--model", str(pickled)], "PyTorch pickles",
                   "runs code")
    with pytest.raises(SystemExit):                     # argparse's own usage error
        main(["sample", "--model", str(directory), "--ckpt", "x"])
    assert "not allowed with argument --model" in capsys.readouterr().err
    bare = tmp_path / "bare"
    save_pretrained(make("llama", 50), None, bare)
    one_line_error(capsys, ["sample", "--model", str(bare)], "has no tokenizer numpyllm reads")
    one_line_error(capsys, ["eval", "--model", str(directory)], "pass --data FILE")
    one_line_error(capsys, ["eval", "--model", str(directory), "--data", str(text_file),
                            "--context", "33"], "--context 33 is longer than the model's "
                   "context of 32")
    train = ["train", "--init-from", str(directory), "--data", str(text_file), "--out",
             str(tmp_path / "run")]
    one_line_error(capsys, train + ["--n_layer", "3"], "--n_layer would shape another model")
    one_line_error(capsys, train + ["--tokenizer", "bpe"], "--tokenizer/--vocab_size")
    one_line_error(capsys, train + ["--objective", "mlm"], "use clm or prefix_lm")
    one_line_error(capsys, train + ["--resume"], "drop one of them")
    one_line_error(capsys, train + ["--block_size", "64"], "--block_size 64 is longer than "
                   "the model's context of 32")
    one_line_error(capsys, ["convert", "--from", str(directory), "--out", str(tmp_path / "c"),
                            "--dtype", "float16"], "computes in float32 or float64")
    one_line_error(capsys, ["convert", "--from", str(directory), "--to", str(tmp_path / "c")],
                   "pass --out DIR")
    one_line_error(capsys, ["convert", "--from", str(directory), "--out", str(directory)],
                   "already exists and is not an empty directory")
    alibi = tmp_path / "alibi"
    save_checkpoint(alibi, step=1, tokenizer=tokenizer,
                    model=GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8,
                                        n_layer=1, n_head=2, n_embd=8, positions="alibi"),
                              rng=0))
    one_line_error(capsys, ["convert", "--ckpt", str(alibi), "--to", str(tmp_path / "out")],
                   "positions='alibi': GPT-2 learns its positions",
                   "positions='alibi': GPT-NeoX rotates")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_sample_chat_renders_the_template_and_prints_the_reply(tmp_path, capsys,
                                                              one_line_error):
    pytest.importorskip("jinja2")
    from numpyllm.tokenizers import HFTokenizer
    tok = HFTokenizer.from_bpe(BPETokenizer(special_tokens=["<|im_start|>", "<|im_end|>"])
                               .train(TEXT, 300))
    tok.chat_template, tok.eos_token = CHATML, "<|im_end|>"
    save_pretrained(make("llama", tok.vocab_size), tok, tmp_path)
    model, tok = load_pretrained(tmp_path)
    assert tok.chat_template == CHATML and tok.eos_token_id is not None
    out = run(capsys, "sample", "--model", tmp_path, "--chat", "--system", "Be brief.",
              "--prompt", "Speak!", "--greedy", "--max-new-tokens", "10")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Speak!"}]
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert tok.decode(prompt).endswith("<|im_start|>assistant\n")
    ids = generate(model, np.array(prompt), 10, greedy=True, eos_id=tok.eos_token_id)
    reply = [int(i) for i in ids[len(prompt):] if i != tok.eos_token_id]
    assert out == tok.decode(reply) + "\n"
    one_line_error(capsys, ["sample", "--model", str(tmp_path), "--system", "x", "--prompt",
                            "y"], "--system is a chat message: add --chat")


def test_sample_chat_without_a_template_is_a_one_line_error(directory, capsys, one_line_error):
    one_line_error(capsys, ["sample", "--model", str(directory), "--chat", "--prompt", "hi"],
                   "this tokenizer has no chat template")
