"""``numpyllm finetune classify | sft | dpo`` and ``numpyllm eval`` of a classifier, end to
end on tiny data written on the spot (issue 15's command line)."""
import json

import numpy as np
import pytest

from numpyllm.cli import main
from numpyllm.evaluate import classification_report
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training.checkpoint import load_checkpoint, load_model, save_checkpoint

SPAM = ["win cash now", "free prize today", "claim your reward", "cheap pills offer"]
HAM = ["see you at lunch", "call me later", "how was the game", "meeting at noon"]
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "32"]
QUICK = ["--batch_size", "8", "--eval_interval", "20", "--eval_iters", "2", "--quiet"]
INSTRUCTIONS = [{"instruction": f"Repeat {w}.", "input": "", "output": w}
                for w in ["cat", "dog", "sun", "sea", "tea", "pen", "cup", "hat"] * 3]
PREFERENCES = [{"instruction": f"Say {w}.", "input": "", "chosen": f"{w} please",
                "rejected": f"{w} now"} for w in ["cat", "dog", "sun", "sea", "tea"] * 4]


@pytest.fixture
def spam(tmp_path):
    path = tmp_path / "spam.tsv"
    rows = [f"{'spam' if i % 2 else 'ham'}\t{(SPAM if i % 2 else HAM)[i % 4]} {i}"
            for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def decoder(tmp_path):
    """A tiny char GPT checkpoint with an end token, as `numpyllm train` would leave."""
    import string
    text = string.printable
    tok = CharTokenizer.from_text(text, special_tokens=["<|endoftext|>"])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=160, n_layer=1, n_head=2,
                          n_embd=16), rng=0)
    save_checkpoint(tmp_path / "base", step=0, model=model, tokenizer=tok)
    return tmp_path / "base"


def test_classify_from_scratch_then_eval_matches_numpyllm_evaluate(tmp_path, spam, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "classify", "--data", str(spam), "--out", str(out),
                 "--max_iters", "40", "--learning_rate", "3e-3", *TINY, *QUICK]) == 0
    text = capsys.readouterr().out
    assert "test split: 8 texts, accuracy" in text and "confusion (rows: true" in text
    # eval: the run's test split, read and split as the run did; and a whole --data file
    assert main(["eval", "--ckpt", str(out / "ckpt")]) == 0
    assert "[test split]: 8 texts" in capsys.readouterr().out
    assert main(["eval", "--ckpt", str(out / "ckpt"), "--data", str(spam)]) == 0
    shown = capsys.readouterr().out
    model, tok, _ = load_model(out / "ckpt")
    from numpyllm.data.classification import read_tsv
    data = read_tsv(spam)
    ids = data.encode(tok, max_length=32)
    predicted = [int(model(np.array([s]))[0].data.argmax()) for s in ids.sequences]
    assert classification_report(data.labels, predicted, list(data.classes)) in shown


def test_lora_trains_only_the_adapters_and_resumes(tmp_path, spam, decoder, capsys):
    out = tmp_path / "lora"
    args = ["finetune", "classify", "--data", str(spam), "--init-from", str(decoder),
            "--out", str(out), "--lora-r", "2", "--lora-targets", "attn.c_attn", *QUICK]
    assert main([*args, "--max_iters", "20"]) == 0
    assert "test split" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "ckpt")
    base = load_checkpoint(decoder).weights
    for name, value in base.items():                 # the base weights are the init's
        np.testing.assert_array_equal(ckpt.weights["backbone." + name], value)
    assert ckpt.model_config["lora"][0]["r"] == 2
    assert set(ckpt.model_config["trainable"]) == {
        "backbone.h.0.attn.c_attn.lora_A", "backbone.h.0.attn.c_attn.lora_B",
        "score.weight", "score.bias"}
    # --resume carries on from step 20 with the base frozen again
    assert main(["finetune", "classify", "--out", str(out), "--resume", "--max_iters", "30",
                 "--quiet"]) == 0
    assert "resuming at step 20" in capsys.readouterr().out
    again = load_checkpoint(out / "ckpt")
    assert again.step == 30
    np.testing.assert_array_equal(again.weights["backbone.wte.weight"], base["wte.weight"])


def test_train_blocks_freezes_the_rest(tmp_path, spam, decoder, capsys):
    out = tmp_path / "blocks"
    assert main(["finetune", "classify", "--data", str(spam), "--init-from", str(decoder),
                 "--out", str(out), "--train-blocks", "0", "--max_iters", "10", *QUICK]) == 0
    trainable = load_checkpoint(out / "ckpt").model_config["trainable"]
    assert "backbone.h.0.attn.c_attn.weight" not in trainable and "score.weight" in trainable


def test_sft_writes_the_test_responses(tmp_path, decoder, capsys):
    data = tmp_path / "instructions.json"
    data.write_text(json.dumps(INSTRUCTIONS))
    out = tmp_path / "sft"
    assert main(["finetune", "sft", "--data", str(data), "--init-from", str(decoder),
                 "--out", str(out), "--max_iters", "20", "--lora-r", "4",
                 "--max-new-tokens", "8", *QUICK]) == 0
    text = capsys.readouterr().out
    assert "response loss" in text
    rows = json.loads((out / "test-responses.json").read_text())
    assert len(rows) == 3 and all("model_response" in r for r in rows)


@pytest.mark.parametrize("lora", [[], ["--lora-r", "2"]])
def test_dpo_reports_margin_and_accuracy(tmp_path, decoder, capsys, lora):
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps(PREFERENCES))
    out = tmp_path / "dpo"
    assert main(["finetune", "dpo", "--data", str(data), "--init-from", str(decoder),
                 "--out", str(out), "--max_iters", "10", "--beta", "0.5", "--split",
                 "0.6,0.2,0.2", *lora, *QUICK]) == 0
    text = capsys.readouterr().out
    assert "reward margin" in text and "preference accuracy" in text
    assert ("LoRA off" in text) == bool(lora)


@pytest.mark.parametrize("task, lora", [("sft", []), ("sft", ["--lora-r", "2"]),
                                        ("dpo", []), ("dpo", ["--lora-r", "2"])],
                         ids=["sft", "sft-lora", "dpo", "dpo-lora"])
def test_sft_and_dpo_resume_as_if_never_stopped(tmp_path, decoder, capsys, task, lora):
    """5 steps, then --resume to 12 == 12 steps at once, weight for weight (a full DPO
    run resumes from the reference log-probabilities it kept in --out)."""
    data = tmp_path / "data.json"
    data.write_text(json.dumps(INSTRUCTIONS if task == "sft" else PREFERENCES))
    short = ["--max-new-tokens", "2"] if task == "sft" else []
    start = ["finetune", task, "--data", str(data), "--init-from", str(decoder),
             "--lr_decay_iters", "12", *short, *lora, *QUICK]
    assert main([*start, "--out", str(tmp_path / "once"), "--max_iters", "12"]) == 0
    assert main([*start, "--out", str(tmp_path / "twice"), "--max_iters", "5"]) == 0
    assert main(["finetune", task, "--out", str(tmp_path / "twice"), "--resume",
                 "--max_iters", "12", "--quiet", *short]) == 0
    assert "resuming at step 5" in capsys.readouterr().out
    once, twice = load_checkpoint(tmp_path / "once" / "ckpt"), \
        load_checkpoint(tmp_path / "twice" / "ckpt")
    assert once.step == twice.step == 12 and once.weights.keys() == twice.weights.keys()
    for name, value in once.weights.items():
        np.testing.assert_array_equal(twice.weights[name], value, err_msg=name)


def test_full_dpo_resume_needs_its_reference_logprobs(tmp_path, decoder, capsys,
                                                      one_line_error):
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps(PREFERENCES))
    out = tmp_path / "dpo"
    assert main(["finetune", "dpo", "--data", str(data), "--init-from", str(decoder),
                 "--out", str(out), "--max_iters", "3", "--sft-weight", "0.5", *QUICK]) == 0
    text = capsys.readouterr().out
    assert "reference: the starting model's log-probabilities" in text
    assert "SFT term 0.5" in text
    assert load_checkpoint(out / "ckpt").trainer_state["objective"]["sft_weight"] == 0.5
    saved = out / "reference_logps.npz"
    resume = ["finetune", "dpo", "--out", str(out), "--resume", "--max_iters", "4"]
    with np.load(saved) as arrays:
        train = arrays["train"]
    # the stored values are the starting model's log-probabilities of the training pairs
    from numpyllm.data.instruction import end_token_id, split_examples
    from numpyllm.data.preference import tokenize_preferences
    from numpyllm.training.objectives.dpo import DPO
    model, tok, _ = load_model(decoder)
    pairs = tokenize_preferences(split_examples(PREFERENCES, [0.85, 0.05, 0.1], seed=1337)[0],
                                 tok, max_length=161, eos_id=end_token_id(tok))
    np.testing.assert_allclose(train, DPO(reference=model, pad_id=0).reference_logps(pairs),
                               rtol=1e-6)
    saved.write_bytes(b"PK\x03\x04 not a zip")
    one_line_error(capsys, resume, "reference_logps.npz: unreadable")
    saved.unlink()
    one_line_error(capsys, resume, "reference_logps.npz is missing")


def test_sft_in_the_chat_format_of_a_hugging_face_directory(tmp_path, capsys):
    """--format chat: the prompt is the tokenizer's chat template with the assistant's
    turn opened, the response its content and the end token."""
    pytest.importorskip("jinja2")
    from numpyllm.data.instruction import encode_instructions
    from numpyllm.hub import save_pretrained
    from numpyllm.nn import Llama, LlamaConfig
    from numpyllm.tokenizers import BPETokenizer, HFTokenizer
    text = " ".join(f"{e['instruction']} {e['output']}" for e in INSTRUCTIONS) * 4
    tok = HFTokenizer.from_bpe(BPETokenizer(special_tokens=["<|im_start|>", "<|im_end|>"])
                               .train(text, 300))
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] "
                         "}}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
                         "<|im_start|>assistant\n{% endif %}")
    tok.eos_token = "<|im_end|>"
    model = Llama(LlamaConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2,
                              n_kv_head=1, n_embd=16, intermediate_size=32), rng=0)
    save_pretrained(model, tok, tmp_path / "hf")
    data = tmp_path / "instructions.json"
    data.write_text(json.dumps(INSTRUCTIONS))
    encoded = encode_instructions(tok, INSTRUCTIONS[:1], format="chat")
    prompt = tok.decode(encoded.prompts[0].tolist())
    assert prompt == "<|im_start|>user\nRepeat cat.<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(encoded.responses[0].tolist()) == "cat<|im_end|>"
    out = tmp_path / "chat"
    assert main(["finetune", "sft", "--data", str(data), "--init-from", str(tmp_path / "hf"),
                 "--format", "chat", "--out", str(out), "--max_iters", "6", "--lora-r", "2",
                 "--max-new-tokens", "3", *QUICK]) == 0
    assert "(chat)" in capsys.readouterr().out
    rows = json.loads((out / "test-responses.json").read_text())
    assert len(rows) == 3 and all("model_response" in r for r in rows)


@pytest.mark.parametrize("extra, fragment", [
    (["--lora-r", "0"], "--lora-r must be >= 1"),
    (["--lora-alpha", "8"], "without --lora-r"),
    (["--train-blocks", "5", "--init-from", "DECODER"], "the model has 1 blocks"),
    (["--split", "0.5,0.5"], "--split 0.5,0.5"),
    (["--split", "0.7,0.2,0.2"], "sum to 1"),
    (["--lora-r", "2", "--lora-targets", "nope", "--init-from", "DECODER"], "nope"),
])
def test_classify_errors_are_one_line(tmp_path, spam, decoder, one_line_error, capsys,
                                      extra, fragment):
    model = [] if "DECODER" in extra else TINY        # (a checkpoint's model has its shape)
    extra = [str(decoder) if x == "DECODER" else x for x in extra]
    one_line_error(capsys, ["finetune", "classify", "--data", str(spam), "--out",
                            str(tmp_path / "x"), *model, *extra], fragment)


def test_other_errors_are_one_line(tmp_path, spam, decoder, one_line_error, capsys):
    data = tmp_path / "instructions.json"
    data.write_text(json.dumps(INSTRUCTIONS))
    for task in ("sft", "dpo"):
        one_line_error(capsys, ["finetune", task, "--data", str(data), "--out",
                                str(tmp_path / task)], "needs --init-from")
    one_line_error(capsys, ["finetune", "sft", "--data", str(data), "--init-from",
                            str(decoder), "--out", str(tmp_path / "chat"), "--format",
                            "chat", "--max_iters", "1"], "chat template")
    # eval of data with a label the classifier does not know
    out = tmp_path / "run"
    assert main(["finetune", "classify", "--data", str(spam), "--out", str(out),
                 "--max_iters", "2", *TINY, *QUICK]) == 0
    bad = tmp_path / "bad.tsv"
    bad.write_text("eggs\thello\n")
    one_line_error(capsys, ["eval", "--ckpt", str(out / "ckpt"), "--data", str(bad)],
                   "label 'eggs' is not one of")
