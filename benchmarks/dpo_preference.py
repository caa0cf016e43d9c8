"""DPO on the LLMs-from-scratch preference data (1,100 instructions, each with a polite
`chosen` and an impolite `rejected` response): held-out reward margin and preference
accuracy over training, from a small GPT trained on a CPU in minutes.

    python benchmarks/dpo_preference.py [--data ../shared/data/instruction/instruction-data-with-preference.json]
        [--sft-steps 400] [--dpo-steps 200] [--eval-every 25] [--beta 0.1] [--seed 123]

Needs the preference file (`../shared/data/instruction/...` from the repository root, or
--data); it exits with a message where the file is absent. Figures, not a test.

**The protocol.** The examples shuffled with `--seed` and split 85/10/5
(train/validation/test, the book's fractions); a byte-level BPE of 1,024 tokens (with an
end-of-text token) learned from the training split. Rows are the Alpaca prompt plus a
response and the end-of-text token (median 71 tokens), cut to 97 tokens
(`numpyllm.data.preference`'s policy: the response keeps at least half).

1. *SFT*: no pretrained English model can be downloaded here, so a GPT (2 layers, 4 heads,
   128 wide, context 96, 0.54M parameters) first learns the format by next-token
   prediction over the training examples' prompts and `output` answers for `--sft-steps`.
2. *DPO*: that model is the policy and a frozen copy of it the reference; DPO with
   summed log-probabilities, β = `--beta`, AdamW at 3e-4 (warmup 10, cosine to 3e-5),
   batches of 8 pairs. Every `--eval-every` steps, the whole validation split (110
   pairs) is scored: the DPO loss, the mean chosen and rejected rewards
   β(log π - log π_ref), their margin and the preference accuracy (share of pairs with
   r_w > r_l). The test split's figures are printed at the end.

The book reports, for GPT-2 medium after SFT, validation reward margins near 2.0 after
115 steps (β 0.1); a model of 0.5M parameters from scratch is a far weaker
starting point, so compare the trend, not the value.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from numpyllm.data.preference import (alpaca_prompt, read_preference_json, split_examples,
                                      tokenize_preferences)
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import BPETokenizer
from numpyllm.training import DPO, CausalLM, TrainConfig, Trainer, evaluate_objective

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "instruction" / "instruction-data-with-preference.json"
EOT = "<|endoftext|>"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sft-steps", type=int, default=400)
    ap.add_argument("--dpo-steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: needs {args.data} (../shared beside the project, or --data)")
        return 0

    examples = read_preference_json(args.data)
    train, val, test = split_examples(examples, (0.85, 0.1, 0.05), seed=args.seed)
    t0 = time.perf_counter()
    tok = BPETokenizer(special_tokens=[EOT]).train(
        [alpaca_prompt(e) + e["output"] + e["chosen"] + e["rejected"] for e in train], 1024)
    eot = tok.special_tokens[EOT]
    print(f"byte-level BPE, 1,024 tokens, learned from the training split in "
          f"{time.perf_counter() - t0:.1f} s")
    block = 96
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=block, n_layer=2, n_head=4,
                    n_embd=128, dropout=0.0)
    model = GPT(cfg, rng=args.seed)
    n_params = sum(p.size for p in model.parameters())
    print(f"{len(examples)} pairs: {len(train)} train, {len(val)} validation, {len(test)} "
          f"test; GPT {cfg.n_layer}x{cfg.n_embd}, "
          f"{n_params / 1e6:.2f}M parameters, context {block}")

    # 1. SFT: next-token prediction over the training prompts and their answers
    t0 = time.perf_counter()
    stream = np.concatenate([tok.encode(alpaca_prompt(e) + e["output"]) + [eot]
                             for e in train]).astype(np.int64)
    sft = TrainConfig(batch_size=8, max_iters=args.sft_steps, learning_rate=1e-3,
                      min_lr=1e-4, warmup_iters=min(20, args.sft_steps - 1), lr_decay_iters=args.sft_steps,
                      eval_iters=1, seed=args.seed)
    trainer = Trainer(model, stream, None, sft, objective=CausalLM(block))
    losses = [trainer.train_step()["loss"] for _ in range(args.sft_steps)]
    print(f"SFT: {args.sft_steps} steps, next-token loss {np.mean(losses[:10]):.3f} -> "
          f"{np.mean(losses[-20:]):.3f} ({time.perf_counter() - t0:.0f} s)")

    # 2. DPO against a frozen copy of the SFT model
    pairs = {name: tokenize_preferences(split, tok, max_length=block + 1, eos_id=eot)
             for name, split in (("train", train), ("val", val), ("test", test))}
    print(f"rows cut to {block + 1} tokens: " + ", ".join(
        f"{k} {v.truncated}/{len(v)}" for k, v in pairs.items()))
    objective = DPO(beta=args.beta, pad_id=eot)
    dpo = TrainConfig(batch_size=8, max_iters=args.dpo_steps, learning_rate=args.lr,
                      min_lr=args.lr / 10, warmup_iters=min(10, args.dpo_steps - 1),
                      lr_decay_iters=args.dpo_steps,
                      weight_decay=0.0, eval_iters=1, seed=args.seed)
    trainer = Trainer(model, pairs["train"], pairs["val"], dpo, objective=objective)
    t0 = time.perf_counter()
    objective.reference_logps(pairs["train"]), objective.reference_logps(pairs["val"])
    print(f"reference log-probabilities of every pair, computed once: "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"{'step':>5} {'train loss':>10} {'val loss':>9} {'margin':>7} {'accuracy':>8} "
          f"{'r_chosen':>9} {'r_rejected':>10} {'seconds':>8}")
    t0, recent = time.perf_counter(), []

    def report(step):
        s = evaluate_objective(model, objective, pairs["val"])
        tr = np.mean(recent) if recent else float("nan")
        print(f"{step:5d} {tr:10.4f} {s['loss']:9.4f} {s['margin']:7.3f} "
              f"{s['accuracy']:8.3f} {s['chosen_reward']:9.3f} {s['rejected_reward']:10.3f} "
              f"{time.perf_counter() - t0:8.0f}", flush=True)

    report(0)
    for step in range(1, args.dpo_steps + 1):
        recent.append(trainer.train_step()["loss"])
        if step % args.eval_every == 0 or step == args.dpo_steps:
            report(step)
            recent = []
    s = evaluate_objective(model, objective, pairs["test"])
    print(f"test ({len(test)} pairs): loss {s['loss']:.4f}, margin {s['margin']:.3f}, "
          f"accuracy {s['accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
