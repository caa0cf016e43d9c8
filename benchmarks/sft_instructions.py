"""Instruction tuning (SFT) figures (issue 15, figure 2), two modes. Figures, not a test:
it prints them.

    python benchmarks/sft_instructions.py alpaca [--data ../shared/data/instruction/instruction-data.json]
        [--pretrain-steps 600] [--epochs 2] [--seed 1337]
    python benchmarks/sft_instructions.py tasks [--steps 5000] [--seed 1337]

**alpaca**: the LLMs-from-scratch chapter 7 data (1,100 examples), split 85/10/5 with
seed 123 (`split_examples`: 935 train, 110 test, 55 validation), Alpaca format
(`encode_instructions`), character level (the characters of the training texts, an end
token, [UNK] for the rest). No pretrained English model can be downloaded, so a GPT of
4 layers, 4 heads, 128 wide, 448 positions (the longest example is 428 tokens with its end token) is
first pretrained with the causal objective on the 935 *training* examples' full texts
(prompt and response), `--pretrain-steps` batches of 8 windows of 448. Then three SFT
runs from those weights, `--epochs` passes over the training split in batches of 8, AdamW
lr 5e-4 (warmup, cosine):

  masked      `InstructionTuning(train_on_prompt=0)`: the loss on the response only
  unmasked    `train_on_prompt=1`: the loss on prompt and response (the book's default)
  packed      masked, `pack=1, max_length=448`: the batch's examples share rows

Printed: held-out response loss (test split, prompt masked, every example once) before
SFT and after each run; seconds per epoch; and 3 greedy responses (`respond`) of the
masked run to test prompts. Packed and unpacked batches hold the same examples (the
same seed draws them), so their losses should agree and only the time differ.

**tasks**: generated instructions with checkable answers, five tasks: reverse a word,
sort its letters, add two numbers (0-999), count a letter in a word, uppercase a word.
Words are random lowercase strings of 3-7 letters; the test words (and the test number
pairs) never occur in training, so no test prompt is a training prompt. The prompt is
compact (``reverse abcde=``; the Alpaca preamble would multiply the characters ~8x for
no information), the response the answer and the end token. A GPT of 4 layers, 4
heads, 128 wide is trained from scratch with `InstructionTuning` (prompt masked, packed
rows of 128), `--steps` batches of 64 examples; then exact-match accuracy per task on
100 test prompts each (greedy `respond`, the answer string compared exactly).

Skips with a message where the data (../shared) is absent (alpaca mode).
"""
from __future__ import annotations

import argparse
import os
import string
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numpyllm.data.instruction import (Instructions, alpaca_prompt,  # noqa: E402
                                       encode_instructions, read_instructions,
                                       split_examples)
from numpyllm.generate.responses import respond  # noqa: E402
from numpyllm.nn import GPT, GPTConfig  # noqa: E402
from numpyllm.tokenizers import CharTokenizer  # noqa: E402
from numpyllm.training import TrainConfig, Trainer, evaluate_objective  # noqa: E402
from numpyllm.training.objectives.sft import InstructionTuning  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "instruction" / \
    "instruction-data.json"
EOS, PAD = "<|endoftext|>", "<|pad|>"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def config(lr: float, steps: int, batch: int, seed: int) -> TrainConfig:
    return TrainConfig(batch_size=batch, max_iters=steps, learning_rate=lr, min_lr=lr / 10,
                       warmup_iters=max(1, steps // 20), lr_decay_iters=steps,
                       weight_decay=0.1, eval_iters=2, seed=seed)


def run_steps(trainer: Trainer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- alpaca
def alpaca(args) -> None:
    path = Path(args.data)
    if not path.is_file():
        print(f"skipped: {path} not found: the alpaca mode needs the instruction data "
              "(../shared/data/instruction/instruction-data.json); pass its path with --data")
        return
    examples = read_instructions(path)
    train, test, val = split_examples(examples, (0.85, 0.1, 0.05), seed=123)
    texts = [alpaca_prompt(e) + e["output"] for e in train]
    tok = CharTokenizer(sorted(set("".join(texts))), unk_token="[UNK]",
                        special_tokens=[PAD, EOS])
    pad_id, eos_id = tok.special_tokens[PAD], tok.special_tokens[EOS]
    block = 448
    data = {name: encode_instructions(tok, part, eos_id=eos_id, max_length=block)
            for name, part in (("train", train), ("test", test))}
    print(f"instruction data: {len(examples):,} examples; train/test/val "
          f"{len(train)}/{len(test)}/{len(val)} (seed 123); characters per example: median "
          f"{int(np.median(data['train'].lengths()))}, max {data['train'].lengths().max()}; "
          f"vocabulary {tok.vocab_size}; {os.cpu_count()} CPUs; load {load()}\n")
    corpus = np.array([i for t in texts for i in tok.encode(t) + [eos_id]], dtype=np.int64)
    gcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=4, n_head=4,
                     n_embd=128, dropout=0.0)
    model = GPT(gcfg, rng=args.seed)
    n_val = len(corpus) // 20
    trainer = Trainer(model, corpus[:-n_val], corpus[-n_val:],
                      config(1e-3, args.pretrain_steps, 8, args.seed))
    seconds = run_steps(trainer, args.pretrain_steps)
    losses = trainer.estimate_loss(10)
    print(f"pretraining (causal LM on the {len(corpus):,} characters of the training texts; "
          f"the last 5% held out): {args.pretrain_steps} steps of 8 x {block}, {seconds:.0f} s; "
          f"loss train {losses['train']:.3f}, held-out {losses['val']:.3f} nats/char")
    base = {n: p.data.copy() for n, p in model.named_parameters()}
    masked = InstructionTuning(pad_id=pad_id)
    before = evaluate_objective(model, masked, data["test"])["loss"]
    batch = 8
    steps = args.epochs * -(-len(train) // batch)
    print(f"\nheld-out response loss before SFT: {before:.3f} nats/char\n\nSFT, {args.epochs} "
          f"epoch(s) = {steps} steps of {batch} examples, lr 5e-4:\n"
          f"{'run':<10} {'test response loss':>19} {'train loss (last)':>18} {'s/epoch':>8}")
    runs = {}
    for name, objective in (("masked", InstructionTuning(pad_id=pad_id)),
                            ("unmasked", InstructionTuning(pad_id=pad_id, train_on_prompt=1)),
                            ("packed", InstructionTuning(pad_id=pad_id, max_length=block,
                                                         pack=1))):
        for n, p in model.named_parameters():
            p.data[...] = base[n]
        trainer = Trainer(model, data["train"], None, config(5e-4, steps, batch, args.seed),
                          objective=objective)
        start, last = time.perf_counter(), []
        for _ in range(steps):
            last.append(trainer.train_step()["loss"])
        seconds = time.perf_counter() - start
        after = evaluate_objective(model, masked, data["test"])["loss"]
        print(f"{name:<10} {after:>19.3f} {np.mean(last[-10:]):>18.3f} "
              f"{seconds / args.epochs:>8.0f}")
        if name == "masked":
            runs["masked"] = {n: p.data.copy() for n, p in model.named_parameters()}
    print("(the train loss of 'unmasked' also counts the prompt's characters, which are "
          "easy; the test loss is masked for every run)")
    for n, p in model.named_parameters():
        p.data[...] = runs["masked"][n]
    sample = Instructions(data["test"].prompts[:3], data["test"].responses[:3],
                          data["test"].examples[:3])
    print("\n3 responses of the masked run (greedy) to the first test prompts:")
    for example, answer in zip(test[:3], respond(model, tok, sample, max_new_tokens=120,
                                                 eos_id=eos_id)):
        print(f"\n  instruction: {example['instruction']!r}"
              + (f"\n  input:       {example['input']!r}" if example["input"] else "")
              + f"\n  reference:   {example['output']!r}\n  model:       {answer!r}")
    print(f"\nload average now {load()}")


# --------------------------------------------------------------------------- tasks
TASKS = ("reverse", "sort", "add", "count", "upper")


def make_tasks(seed: int, n_train: int, n_test: int):
    """{task: [(prompt, answer), ...]} for train and test; test inputs unseen in train."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))

    def word():
        return "".join(rng.choice(letters, size=rng.integers(3, 8)))

    test_words, train_words = set(), set()
    while len(test_words) < 5 * n_test:
        test_words.add(word())
    while len(train_words) < 5 * n_train:
        w = word()
        if w not in test_words:
            train_words.add(w)
    test_pairs = set()
    while len(test_pairs) < n_test:
        test_pairs.add((int(rng.integers(0, 1000)), int(rng.integers(0, 1000))))

    def example(task, words, pair_ok):
        w = words[int(rng.integers(len(words)))]
        if task == "reverse":
            return f"reverse {w}=", w[::-1]
        if task == "sort":
            return f"sort {w}=", "".join(sorted(w))
        if task == "upper":
            return f"upper {w}=", w.upper()
        if task == "count":
            c = w[int(rng.integers(len(w)))] if rng.random() < 0.8 else str(rng.choice(letters))
            return f"count {c} in {w}=", str(w.count(c))
        while True:
            a, b = int(rng.integers(0, 1000)), int(rng.integers(0, 1000))
            if pair_ok((a, b)):
                return f"add {a} {b}=", str(a + b)

    train_list, test_list = sorted(train_words), sorted(test_words)
    train = [example(t, train_list, lambda p: p not in test_pairs)
             for t in TASKS for _ in range(n_train)]
    pairs = sorted(test_pairs)
    test = {t: ([(f"add {a} {b}=", str(a + b)) for a, b in pairs] if t == "add" else
                [example(t, test_list, None) for _ in range(n_test)]) for t in TASKS}
    train_prompts = {p for p, _ in train}
    for t in TASKS:
        assert not any(p in train_prompts for p, _ in test[t]), t
    return train, test


def task_tokenizer() -> CharTokenizer:
    """The character tokenizer of the tasks: letters, digits, space, '=', pad and end."""
    chars = sorted(set(string.ascii_letters + string.digits + " ="))
    return CharTokenizer(chars, special_tokens=[PAD, EOS])


def encode_tasks(tok: CharTokenizer, pairs) -> Instructions:
    """(prompt, answer) pairs as `Instructions`: the response is the answer and the end token."""
    eos_id = tok.special_tokens[EOS]
    return Instructions([np.array(tok.encode(p), dtype=np.int64) for p, _ in pairs],
                        [np.array(tok.encode(a) + [eos_id], dtype=np.int64) for _, a in pairs],
                        [{"prompt": p, "output": a} for p, a in pairs])


def task_model(tok: CharTokenizer, seed: int) -> GPT:
    """The tasks' GPT: 4 layers, 4 heads, 128 wide, context 128."""
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=4, n_head=4,
                         n_embd=128, dropout=0.0), rng=seed)


def train_tasks(model: GPT, tok: CharTokenizer, train, steps: int, seed: int) -> float:
    """`steps` batches of 64 training examples (prompt masked, packed rows of 128), AdamW
    lr 2e-3 (warmup, cosine); prints the loss 5 times; returns the seconds taken."""
    objective = InstructionTuning(pad_id=tok.special_tokens[PAD], max_length=128, pack=1)
    trainer = Trainer(model, encode_tasks(tok, train), None, config(2e-3, steps, 64, seed),
                      objective=objective)
    start, losses = time.perf_counter(), []
    for step in range(steps):
        losses.append(trainer.train_step()["loss"])
        if (step + 1) % max(1, steps // 5) == 0:
            print(f"  step {step + 1}: response loss {np.mean(losses[-20:]):.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return time.perf_counter() - start


def answer_tasks(model: GPT, tok: CharTokenizer, pairs) -> list[str]:
    """The model's greedy answers (`respond`, at most 8 characters) to the pairs' prompts."""
    return respond(model, tok, encode_tasks(tok, pairs), max_new_tokens=8,
                   eos_id=tok.special_tokens[EOS], batch_size=50)


def tasks(args) -> None:
    train, test = make_tasks(args.seed, args.n_train, 100)
    tok = task_tokenizer()
    rng = np.random.default_rng(args.seed)
    train = [train[i] for i in rng.permutation(len(train))]
    print(f"generated instructions: {len(train):,} training examples ({args.n_train:,} per "
          f"task), 100 test prompts per task, inputs disjoint; e.g. "
          + ", ".join(f"{test[t][0][0]}{test[t][0][1]}" for t in TASKS)
          + f"; {os.cpu_count()} CPUs; load {load()}\n")
    model = task_model(tok, args.seed)
    seconds = train_tasks(model, tok, train, args.steps, args.seed)
    print(f"\ntrained from scratch: {args.steps} steps of 64 examples ({args.steps * 64:,} "
          f"examples, {args.steps * 64 / len(train):.1f} epochs), {seconds:.0f} s\n")
    print(f"{'task':<8} {'exact match (test)':>19}   example (prompt -> model)")
    total = 0
    for t in TASKS:
        answers = answer_tasks(model, tok, test[t])
        right = sum(a == ref for a, (_, ref) in zip(answers, test[t]))
        total += right
        wrong = next(((p, a, r) for a, (p, r) in zip(answers, test[t]) if a != r), None)
        shown = f"{test[t][0][0]} -> {answers[0]!r}" + \
            (f"; wrong: {wrong[0]} -> {wrong[1]!r} (not {wrong[2]!r})" if wrong else "")
        print(f"{t:<8} {right:>14} / 100   {shown}")
    print(f"{'all':<8} {total:>14} / 500\n\nload average now {load()}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("alpaca", "tasks"))
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="instruction-data.json")
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5000, help="tasks: training steps")
    ap.add_argument("--n-train", type=int, default=4000, help="tasks: examples per task")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()
    alpaca(args) if args.mode == "alpaca" else tasks(args)


if __name__ == "__main__":
    main()
