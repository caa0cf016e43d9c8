"""DPO on generated tasks with checkable answers (issue 15, figure 3, second half):
exact-match accuracy per task before and after DPO, on pairs whose `chosen` is the correct
answer and `rejected` a wrong one. Figures, not a test: it prints them.

    python benchmarks/dpo_tasks.py [--sft-steps 1500] [--dpo-steps 300] [--beta 0.1] [--sft-weight 0]
        [--lr 1e-4] [--pairs-per-task 400] [--seed 1337]

**The protocol.** The tasks, tokenizer, model and SFT are `benchmarks/sft_instructions.py
tasks`'s (imported, not copied): five generated tasks (reverse, sort, add, count,
uppercase) with 4,000 training examples each and 100 test prompts each whose inputs never
occur in training; a GPT of 4 layers, 128 wide, trained from scratch with
`InstructionTuning` for `--sft-steps` batches of 64 (fewer than that mode's 5,000, so the
model still errs). Then:

1. *Before*: exact match per task on the test prompts (greedy `respond`).
2. *Pairs*: `--pairs-per-task` training prompts per task; `chosen` is the correct answer;
   `rejected` is the SFT model's own greedy answer where it is wrong, else the correct
   answer with one character changed (a letter to another letter of the same case, a digit
   to another digit). Held-out pairs are built the same way on the test prompts (scored,
   never trained on). Each response ends with the end token.
3. *DPO*: the policy is the SFT model, the reference a frozen copy of it (`DPO`'s
   default); summed log-probabilities, β = `--beta`, AdamW at `--lr` (warmup, cosine to
   a tenth), batches of 32 pairs, `--dpo-steps` steps. Held-out loss, margin and
   preference accuracy before and after.
4. *After*: exact match per task on the test prompts again.
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

from benchmarks.sft_instructions import (EOS, PAD, TASKS, answer_tasks,  # noqa: E402
                                         config, load, make_tasks, task_model,
                                         task_tokenizer, train_tasks)
from numpyllm.data.preference import PreferencePairs  # noqa: E402
from numpyllm.training import DPO, Trainer, evaluate_objective  # noqa: E402

VOCAB = set(string.ascii_letters + string.digits + " =")


def corrupt(answer: str, rng: np.random.Generator) -> str:
    """`answer` with one character changed to another of its kind."""
    i = int(rng.integers(len(answer)))
    c = answer[i]
    pool = (string.digits if c.isdigit() else string.ascii_uppercase if c.isupper()
            else string.ascii_lowercase)
    new = str(rng.choice([x for x in pool if x != c]))
    return answer[:i] + new + answer[i + 1:]


def exact_match(model, tok, test) -> dict:
    return {t: sum(a == ref for a, (_, ref) in zip(answer_tasks(model, tok, test[t]), test[t]))
            for t in TASKS}


def preference_pairs(model, tok, pairs, rng) -> tuple[PreferencePairs, int]:
    """Pairs (chosen = the answer, rejected = the model's wrong answer or a corruption)
    and how many rejected responses are the model's own."""
    eos_id = tok.special_tokens[EOS]
    answers = answer_tasks(model, tok, pairs)
    prompts, chosen, rejected, own = [], [], [], 0
    for (p, ref), a in zip(pairs, answers):
        if a != ref and a and set(a) <= VOCAB:
            own += 1
        else:
            a = corrupt(ref, rng)
        prompts.append(tok.encode(p))
        chosen.append(tok.encode(ref) + [eos_id])
        rejected.append(tok.encode(a) + [eos_id])
    return PreferencePairs(prompts, chosen, rejected), own


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft-steps", type=int, default=1500)
    ap.add_argument("--dpo-steps", type=int, default=300)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--sft-weight", type=float, default=0.0,
                    help="RPO: add this times the chosen answers' per-token NLL")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--pairs-per-task", type=int, default=400)
    ap.add_argument("--n-train", type=int, default=4000, help="SFT examples per task")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()
    t_all = time.perf_counter()
    print(f"{os.cpu_count()} CPUs; load {load()}")

    train, test = make_tasks(args.seed, args.n_train, 100)
    tok = task_tokenizer()
    rng = np.random.default_rng(args.seed)
    train = [train[i] for i in rng.permutation(len(train))]
    model = task_model(tok, args.seed)
    print(f"SFT from scratch: {args.sft_steps} steps of 64 examples")
    seconds = train_tasks(model, tok, train, args.sft_steps, args.seed)
    print(f"SFT: {seconds:.0f} s")
    before = exact_match(model, tok, test)

    # preference pairs: training prompts (per task, the first ones of the shuffled list)
    per_task = {t: [] for t in TASKS}
    for p, a in train:
        t = p.split(" ", 1)[0]
        if len(per_task[t]) < args.pairs_per_task:
            per_task[t].append((p, a))
    t0 = time.perf_counter()
    prng = np.random.default_rng(args.seed + 1)
    train_pairs, own = preference_pairs(model, tok, [x for t in TASKS for x in per_task[t]],
                                        prng)
    val_pairs, val_own = preference_pairs(model, tok, [x for t in TASKS for x in test[t]],
                                          prng)
    print(f"preference pairs: {len(train_pairs)} on training prompts ({own} rejected = the "
          f"SFT model's own wrong answer, the rest corrupted), {len(val_pairs)} held out on "
          f"the test prompts ({val_own} own); {time.perf_counter() - t0:.0f} s")

    objective = DPO(beta=args.beta, pad_id=tok.special_tokens[PAD], sft_weight=args.sft_weight)
    cfg = config(args.lr, args.dpo_steps, 32, args.seed)
    cfg.weight_decay = 0.0
    trainer = Trainer(model, train_pairs, val_pairs, cfg, objective=objective)
    s0 = evaluate_objective(model, objective, val_pairs)
    t0, losses = time.perf_counter(), []
    for step in range(1, args.dpo_steps + 1):
        losses.append(trainer.train_step()["loss"])
        if step % max(1, args.dpo_steps // 5) == 0:
            print(f"  DPO step {step}: train loss {np.mean(losses[-20:]):.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    dpo_seconds = time.perf_counter() - t0
    s1 = evaluate_objective(model, objective, val_pairs)
    after = exact_match(model, tok, test)

    print(f"\nDPO: {args.dpo_steps} steps of 32 pairs, beta {args.beta}, lr {args.lr}, "
          f"{dpo_seconds:.0f} s")
    for name, s in (("before", s0), ("after", s1)):
        print(f"held-out pairs {name} DPO: loss {s['loss']:.4f}, margin {s['margin']:.3f}, "
              f"accuracy {s['accuracy']:.3f}, r_chosen {s['chosen_reward']:.3f}, "
              f"r_rejected {s['rejected_reward']:.3f}")
    print(f"\n{'task':<8} {'before DPO':>11} {'after DPO':>10}   (exact match, 100 test prompts)")
    for t in TASKS:
        print(f"{t:<8} {before[t]:>11} {after[t]:>10}")
    print(f"{'all':<8} {sum(before.values()):>11} {sum(after.values()):>10}   (of 500)")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; load average now {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
