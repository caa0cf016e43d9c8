"""Knowledge distillation on character-level Tiny Shakespeare (issue 16): a small student
trained with a teacher's softened distributions against the same student trained on the
text alone, for the same steps and batches, over several seeds. Figures, not a test.

    python benchmarks/distill_shakespeare.py [--work DIR] [--seeds 3] [--student-steps 2000]
        [--teacher-steps 3000] [--temperature 2] [--alpha 0.5] [--variants baseline,kd]
        [--data ../shared/data/tinyshakespeare.txt]

Needs Tiny Shakespeare (`../shared/data/tinyshakespeare.txt` from the repository root, or
--data); it exits with a message where the file is absent.

**The setup.** One character tokenizer (65 characters); the first 90% of the text for
training, the last 10% for validation (nanoGPT's split); windows of 64 characters;
nanoGPT's CPU optimisation recipe (AdamW, warmup 100 steps, cosine decay to a tenth of the
peak rate, betas 0.9/0.99, weight decay 0.1, clipping 1.0), batches of 12.

- *Teacher*: GPT, 6 layers, 4 heads, 256 wide (4.75M parameters), dropout 0.1, lr 1e-3,
  `--teacher-steps` steps. Trained once and saved in ``WORK/teacher`` (a numpyllm
  checkpoint); later runs reuse it.
- *Student*: GPT, 2 layers, 4 heads, 128 wide (0.41M parameters), dropout 0, lr 1e-3,
  `--student-steps` steps. For each seed, every variant starts from the same initial
  weights (GPT's init from the seed) and draws the same batches (the Trainer's generator,
  seeded the same; `Distill` samples windows exactly as `CausalLM` does):

  baseline  causal LM on the text (Distill with α = 0: the teacher is not run)
  kd        word-level distillation: α T² KL(teacher^T || student^T) + (1 - α) CE
            (`numpyllm.training.objectives.Distill`, --temperature, --alpha)
  seqkd     sequence-level (Kim and Rush 2016): causal LM on 1.5M characters the teacher
            wrote (continuations of 8-character prompts cut from the training split,
            sampled at temperature 1; `teacher_corpus`), and nothing else: pure imitation
            of the teacher's samples. Slow to generate on a loaded machine (over 10
            minutes); not in the default list, and not measured for the docs.

**What is printed**: the validation loss (nats per character, every validation character
predicted once from up to 63 before it, `evaluate_tokens`) of the teacher and of each
student run; per variant the mean and the spread over seeds, and the difference kd -
baseline per seed (paired: same init, same batches). The figures, with the commands that
produced them: docs/distillation.md (kd 0.07 nats below the baseline on every seed).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numpyllm.data import train_val_split  # noqa: E402
from numpyllm.nn import GPT, GPTConfig  # noqa: E402
from numpyllm.tokenizers import CharTokenizer  # noqa: E402
from numpyllm.training import (CausalLM, TrainConfig, Trainer, evaluate_tokens,  # noqa: E402
                               load_model)
from numpyllm.training.objectives.distill import Distill, teacher_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 64
TEACHER = dict(n_layer=6, n_head=4, n_embd=256, dropout=0.1)
STUDENT = dict(n_layer=2, n_head=4, n_embd=128, dropout=0.0)


def recipe(steps: int, seed: int, lr: float = 1e-3) -> TrainConfig:
    return TrainConfig(batch_size=12, max_iters=steps, learning_rate=lr, min_lr=lr / 10,
                       warmup_iters=min(100, steps // 10), lr_decay_iters=steps, eval_interval=10 ** 9,
                       eval_iters=1, seed=seed)


def teacher_model(work: Path, tokenizer, train_ids, val_ids, steps: int):
    path = work / "teacher"
    if (path / "latest").exists():
        model, _, ckpt = load_model(path)
        print(f"teacher: reusing {path} (step {ckpt.step})")
        return model
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=BLOCK, bias=False, **TEACHER)
    model = GPT(cfg, rng=np.random.default_rng(1337))
    trainer = Trainer(model, train_ids, None, recipe(steps, 1337))
    start = time.perf_counter()
    for i in range(steps):
        info = trainer.train_step()
        if (i + 1) % 500 == 0:
            print(f"  teacher step {i + 1}: loss {info['loss']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    trainer.save(path, tokenizer=tokenizer)
    print(f"teacher: {model.num_parameters():,} parameters, {steps} steps in "
          f"{time.perf_counter() - start:.0f} s; saved in {path}")
    model.eval()
    return model


def student(seed: int, vocab: int) -> GPT:
    cfg = GPTConfig(vocab_size=vocab, block_size=BLOCK, bias=False, **STUDENT)
    return GPT(cfg, rng=np.random.default_rng(seed))


def run_student(variant, seed, args, teacher, train_ids, corpus, vocab) -> tuple:
    model = student(seed, vocab)
    if variant == "baseline":
        objective, data = Distill(BLOCK, alpha=0.0), train_ids
    elif variant == "kd":
        objective = Distill(BLOCK, temperature=args.temperature, alpha=args.alpha,
                            teacher=teacher)
        data = train_ids
    else:                                            # seqkd: the teacher's text, plain CLM
        objective, data = CausalLM(BLOCK), corpus
    trainer = Trainer(model, data, None, recipe(args.student_steps, seed), objective=objective)
    start = time.perf_counter()
    for _ in range(args.student_steps):
        trainer.train_step()
    return model, time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/tinyshakespeare.txt"))
    p.add_argument("--work", default="/tmp/numpyllm-distill-bench",
                   help="where the teacher checkpoint (and the seqkd corpus) are kept")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--student-steps", type=int, default=2000)
    p.add_argument("--teacher-steps", type=int, default=3000)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--variants", default="baseline,kd")
    args = p.parse_args(argv)
    path = Path(args.data)
    if not path.is_file():
        print(f"distill_shakespeare: needs Tiny Shakespeare at {path} (pass --data)",
              file=sys.stderr)
        return 2
    variants = args.variants.split(",")
    if not set(variants) <= {"baseline", "kd", "seqkd"}:
        print(f"distill_shakespeare: --variants among baseline, kd, seqkd", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8")
    tokenizer = CharTokenizer.from_text(text)
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    train_ids, val_ids = train_val_split(ids, 0.1)
    print(f"{len(text):,} characters, vocab {tokenizer.vocab_size}; {len(train_ids):,} train "
          f"/ {len(val_ids):,} val; windows of {BLOCK}, batch 12")

    teacher = teacher_model(work, tokenizer, train_ids, val_ids, args.teacher_steps)
    start = time.perf_counter()
    teacher_val = evaluate_tokens(teacher, val_ids)["loss"]
    print(f"teacher val loss {teacher_val:.4f} ({time.perf_counter() - start:.0f} s to score)")

    corpus = None
    if "seqkd" in variants:
        file = work / "teacher_corpus.npy"
        if file.exists():
            corpus = np.load(file)
        else:
            start = time.perf_counter()
            corpus = teacher_corpus(teacher, train_ids, 1_500_000, prompt_length=8, rows=64,
                                    rng=0)
            np.save(file, corpus)
            print(f"seqkd corpus: {corpus.size:,} characters in "
                  f"{time.perf_counter() - start:.0f} s")

    results = {v: [] for v in variants}
    for seed in range(args.seeds):
        for variant in variants:
            model, seconds = run_student(variant, seed, args, teacher, train_ids, corpus,
                                         tokenizer.vocab_size)
            val = evaluate_tokens(model, val_ids)["loss"]
            results[variant].append(val)
            print(f"seed {seed} {variant:8s} val loss {val:.4f}  ({seconds:.0f} s, "
                  f"{1000 * seconds / args.student_steps:.0f} ms/step)", flush=True)

    print(f"\nstudent {STUDENT['n_layer']} layers x {STUDENT['n_embd']}, "
          f"{args.student_steps} steps; teacher {TEACHER['n_layer']} x {TEACHER['n_embd']}: "
          f"val {teacher_val:.4f}; kd at T = {args.temperature}, alpha = {args.alpha}")
    print("| variant | val loss per seed | mean | min..max |")
    print("| --- | --- | --- | --- |")
    for v, vals in results.items():
        print(f"| {v} | {', '.join(f'{x:.4f}' for x in vals)} | {np.mean(vals):.4f} | "
              f"{min(vals):.4f}..{max(vals):.4f} |")
    if "baseline" in results:
        for v in variants:
            if v != "baseline":
                d = np.array(results[v]) - np.array(results["baseline"])
                print(f"{v} - baseline per seed: {', '.join(f'{x:+.4f}' for x in d)} "
                      f"(mean {d.mean():+.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
