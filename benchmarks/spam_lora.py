"""Spam classification: LoRA against full fine-tuning (issue 15, figure 1's second half):
trainable parameters, peak memory, test accuracy and time, each fine-tuning run in its
own fresh process. Figures, not a test: it prints them.

    python benchmarks/spam_lora.py [--data ../shared/data/sms_spam/SMSSpamCollection]
        [--pretrain-steps 1000] [--steps 400] [--lora-r 8 16] [--seed 1337]

The data, the model, the pretraining and the fine-tuning loop are those of
`benchmarks/spam_classify.py` (its functions, imported: the book's balanced 70/10/20
split with seed 123, a 4-layer 128-wide character GPT pretrained on the unlabelled
training texts, `Classification` for `--steps` batches of 16). This script pretrains
once, stores the weights in a temporary file, and starts one process per run:

  full       every parameter trains (AdamW, lr 5e-4), as spam_classify's "full"
  lora r=R   `apply_lora(r=R, alpha=2R)` on attn.c_attn, attn.c_proj, mlp.c_fc,
             mlp.c_proj of every block; the score layer trains too (a new layer has
             nothing to adapt); everything else frozen; lr 2e-3

A fresh process per run makes its peak RSS (`VmHWM`) its own. Printed per run: trainable
parameters, peak RSS, and the peak RSS minus the RSS before the model was built (the
Python, NumPy and data floor is about 100 MB and is the same in every run, so the
difference is what the run itself held), validation and test accuracy, seconds of
fine-tuning. The book's reference (GPT-2 small, LoRA r=16 on every Linear): 96.67% test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import spam_classify as S  # noqa: E402


def worker(side: str, cfg: dict) -> dict:
    from numpyllm.nn import ClassifierConfig, SequenceClassifier, apply_lora
    from numpyllm.nn.lora import GPT_TARGETS
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()
    _, _, _, _, tok, sets = S.prepare(Path(cfg["data"]), verbose=False)
    rss_before = H.peak_rss_mb()
    state = np.load(cfg["state"])
    model = SequenceClassifier(
        ClassifierConfig("GPT", S.gpt_config(tok.vocab_size).to_dict(), n_classes=2),
        rng=cfg["seed"] + 1)
    for name, p in model.backbone.named_parameters():
        p.data[...] = state[name]
    if side == "full":
        lr = 5e-4
    else:
        r = int(side.split("=")[1])
        apply_lora(model, r=r, alpha=2 * r, targets=list(GPT_TARGETS), rng=cfg["seed"])
        model.score.requires_grad_(True)
        lr = 2e-3
    run = S.finetune(side, model, sets, cfg["steps"], lr, cfg["seed"])
    return {"side": side, "trainable": run["trainable"], "total": model.num_parameters(),
            "val": run["val"]["accuracy"], "test": run["test"]["accuracy"],
            "test_right": int(np.trace(run["test"]["confusion"])),
            "n_test": int(np.sum(run["test"]["confusion"])),
            "seconds": run["seconds"], "rss_before_mb": rss_before,
            "peak_rss_mb": H.peak_rss_mb(), "env": H.numpy_env()}


def main(argv=None) -> None:
    if argv is None and "--worker" in sys.argv:
        side, config = H.worker_args()
        H.emit(worker(side, config))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(S.DEFAULT_DATA), help="SMSSpamCollection's path")
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps of each run")
    ap.add_argument("--lora-r", type=int, nargs="+", default=[8, 16],
                    help="the LoRA ranks to run (alpha = 2r)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    path = Path(args.data)
    if not path.is_file():
        print(f"skipped: {path} not found: this benchmark needs the SMS Spam Collection "
              "(../shared/data/sms_spam/SMSSpamCollection); pass its path with --data")
        return
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()
    print(f"load average {H.load()}")
    _, _, _, corpus, tok, _ = S.prepare(path)
    total = time.perf_counter()
    base = S.pretrain(np.array(tok.encode(corpus), dtype=np.int64), tok.vocab_size,
                      args.pretrain_steps, args.seed)
    sides = ["full"] + [f"lora r={r}" for r in args.lora_r]
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "base.npz")
        np.savez(state, **{n: p.data for n, p in base.named_parameters()})
        cfg = {"data": str(path.resolve()), "state": state, "steps": args.steps,
               "seed": args.seed}
        res = {side: H.run_worker(Path(__file__), side, cfg, args.threads) for side in sides}
    print(f"\nfine-tuning, {args.steps} steps of {S.BATCH} messages, each run in a fresh "
          f"process ({args.threads} threads):\n")
    print(f"{'run':<11} {'trainable':>10} {'peak RSS':>9} {'own RSS':>10} {'val acc':>8} "
          f"{'test acc':>9} {'time':>6}")
    for side in sides:
        r = res[side]
        print(f"{side:<11} {r['trainable']:>10,} {r['peak_rss_mb']:>6.0f} MB "
              f"{r['peak_rss_mb'] - r['rss_before_mb']:>7.0f} MB {100 * r['val']:>7.2f}% "
              f"{100 * r['test']:>8.2f}% {r['seconds']:>4.0f} s")
    print(f"(test: {res['full']['n_test']} messages; the book's GPT-2 small with LoRA r=16: "
          "96.67% test)")
    print(f"\nall: {time.perf_counter() - total:.0f} s; load average now {H.load()}")


if __name__ == "__main__":
    main()
