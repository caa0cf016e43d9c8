"""Memory of full fine-tuning against LoRA on GPT-2 small's shape (issue 15, figure 4):
peak resident memory and step time of a few training steps, each run in its own fresh
process. Figures, not a test: it prints them.

    python benchmarks/bench_lora_memory.py [--batch 2] [--seq 256] [--steps 3] [--r 8]
        [--threads 2] [--rounds 1]

**The model.** GPT-2 small's shape with random weights (`GPT`, float32): 12 layers, 12
heads, 768 wide, 1,024 positions, 50,257 tokens, tied embeddings: 124.4M parameters.
Nothing is downloaded; the weights' values do not change the memory or the time.

**The runs** (each a fresh Python process: its peak RSS is its own, `VmHWM`):

  inference  the model built, one forward pass under `no_grad` (the floor: weights
             and one batch's activations)
  full       every parameter trains: AdamW (`Trainer`), so gradients and two moments
             for 124M parameters (3 x 498 MB on top of the weights)
  lora       `apply_lora(r, alpha=2r)` on attn.c_attn, attn.c_proj, mlp.c_fc,
             mlp.c_proj of every block; the rest frozen (no gradient, no optimizer state)

Each training run does one warm-up step and then `--steps` timed steps of `--batch`
windows of `--seq` random tokens (causal LM loss; the data is random, the loss
meaningless). Printed per run: trainable parameters, RSS after building the model, peak
RSS, and the median (range) step time over the timed steps and the rounds.

Notes for a skeptic: peak RSS counts NumPy's freed-but-kept pages (the runs call
`keep_freed_memory` as the numpyllm command line does, so a freed activation is reused,
not returned to the OS and faulted in again); the machine has 2 cores shared with other
jobs, so the times are the machine's on that day, the memory is not.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

MB = 1024 * 1024
SIDES = ("inference", "full", "lora")


def worker(side: str, cfg: dict) -> dict:
    import numpy as np
    from numpyllm.autograd import no_grad
    from numpyllm.nn import GPT, GPTConfig, apply_lora
    from numpyllm.runtime import keep_freed_memory
    from numpyllm.training import TrainConfig, Trainer
    from numpyllm.training.objectives.causal import CausalLM

    keep_freed_memory()
    start = time.perf_counter()
    gcfg = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768,
                     dropout=0.0)
    model = GPT(gcfg, rng=0)
    total = model.num_parameters()
    if side == "lora":
        apply_lora(model, r=cfg["r"], alpha=2 * cfg["r"],
                   targets=["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], rng=0)
    build_s = time.perf_counter() - start
    total_now = model.num_parameters()
    rss_model = H.peak_rss_mb()
    trainable = model.num_parameters(trainable=True)
    B, T = cfg["batch"], cfg["seq"]
    data = np.random.default_rng(1).integers(0, 50257, size=200_000, dtype=np.int64)
    times = []
    if side == "inference":
        x = data[:B * T].reshape(B, T)
        model.eval()
        for _ in range(1 + cfg["steps"]):
            t0 = time.perf_counter()
            with no_grad():
                model(x)
            times.append(time.perf_counter() - t0)
    else:
        tc = TrainConfig(batch_size=B, max_iters=1 + cfg["steps"], learning_rate=1e-4,
                         min_lr=1e-5, warmup_iters=0, lr_decay_iters=1 + cfg["steps"],
                         eval_iters=1, seed=0)
        trainer = Trainer(model, data, None, tc, objective=CausalLM(T))
        for _ in range(1 + cfg["steps"]):
            t0 = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - t0)
    return {"side": side, "total": total, "total_now": total_now, "trainable": trainable, "rss_model_mb": rss_model,
            "peak_rss_mb": H.peak_rss_mb(), "step_s": times[1:], "first_s": times[0],
            "build_s": build_s, "env": H.numpy_env()}


def main(argv=None) -> None:
    if argv is None and "--worker" in sys.argv:
        side, config = H.worker_args()
        H.emit(worker(side, config))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    ap.add_argument("--r", type=int, default=8, help="LoRA rank (alpha = 2r)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args(argv)
    cfg = {"batch": args.batch, "seq": args.seq, "steps": args.steps, "r": args.r}
    print(f"GPT-2 small's shape, random float32 weights; batch {args.batch} x {args.seq} "
          f"tokens; 1 warm-up + {args.steps} timed steps; LoRA r={args.r}, alpha={2 * args.r}"
          f"; {args.rounds} round(s)\n")
    res = H.alternate(Path(__file__), list(SIDES), args.rounds, lambda side: cfg, args.threads)
    H.print_setup(args.threads, args.rounds, {s: res[s][0] for s in SIDES})
    print(f"\n{'run':<10} {'trainable':>14} {'RSS model':>10} {'peak RSS':>10} "
          f"{'step (median, range)':>24}")
    for side in SIDES:
        rs = res[side]
        steps = [t for r in rs for t in r["step_s"]]
        peak = [r["peak_rss_mb"] for r in rs]
        label = "forward" if side == "inference" else "step"
        trainable = "-" if side == "inference" else f"{rs[0]['trainable']:,}"
        print(f"{side:<10} {trainable:>14} {statistics.median(r['rss_model_mb'] for r in rs):>7.0f} MB"
              f" {statistics.median(peak):>7.0f} MB {statistics.median(steps):>9.2f} s "
              f"({min(steps):.2f}-{max(steps):.2f}) {label}")
    full, lora = res["full"][0], res["lora"][0]
    print(f"\nof {full['total']:,} parameters; LoRA trains "
          f"{100 * lora['trainable'] / lora['total']:.2f}% of them (its adapters are extra: "
          f"{lora['total_now'] - lora['total']:+,} parameters)")
    print(f"peak RSS full / LoRA: {statistics.median(r['peak_rss_mb'] for r in res['full']) / statistics.median(r['peak_rss_mb'] for r in res['lora']):.2f}x"
          f"; load average now {H.load()}")


if __name__ == "__main__":
    main()
