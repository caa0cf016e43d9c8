"""The Tiny Shakespeare recipe in PyTorch, from numpyllm's initial weights and batches.

    python benchmarks/shakespeare_torch_reference.py --seed 1 [--data FILE]

Same model (nanoGPT's forward with torch.nn.functional, no biases), same initial weights
(copied from the numpyllm GPT built with the same seed), same batches (numpyllm's sampler
with the same seed), same schedule, AdamW, clipping, and the same deterministic score
(every validation character predicted once, windows of 64). Only the arithmetic differs:
PyTorch's kernels instead of numpyllm's. Comparing its score with
`nanogpt_shakespeare.py --seed S` seed by seed separates what numpyllm does differently
from what a seed does.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _torch_gpt import TorchGPT               # benchmarks/_torch_gpt.py
from numpyllm.data import TokenWindows, train_val_split
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.optim import CosineWithWarmup
from numpyllm.tokenizers import CharTokenizer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--max_iters", type=int, default=2000)
    ap.add_argument("--train_py", metavar="DIR", default=None,
                    help="also do what nanoGPT's train.py does besides the steps (its README's "
                         "CPU command: --eval_iters=20 --log_interval=1): every 250 steps and at "
                         "the end, estimate the train and val loss on 20 random batches each "
                         "and save a checkpoint (model and optimizer) to DIR/ckpt.pt when the "
                         "val loss improves; print a line every step")
    args = ap.parse_args()
    text = Path(args.data).read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    train_ids, val_ids = train_val_split(np.asarray(tok.encode(text), dtype=np.int64), 0.1)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128,
                    bias=False)
    init = GPT(cfg, rng=np.random.default_rng(args.seed))       # as nanogpt_shakespeare.py
    # [in, out] weights with matmul, as numpyllm: only the kernels differ
    model = TorchGPT({n: p.data for n, p in init.named_parameters()}, 4, 4, layout="in_out",
                     requires_grad=True)
    params = model.parameters()
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    schedule = CosineWithWarmup(1e-3, 1e-4, 100, 2000)
    windows = TokenWindows(train_ids, 64, stride=1)
    data_rng = np.random.default_rng(args.seed)                  # the Trainer's sampler
    eval_rng = np.random.default_rng(args.seed + 1)
    train_windows, val_windows = windows, TokenWindows(val_ids, 64, stride=1)
    best_val = float("inf")

    def estimate_loss():                                         # train.py's estimate_loss
        out = {}
        with torch.no_grad():
            for split, w in (("train", train_windows), ("val", val_windows)):
                losses = [model.loss(*(torch.from_numpy(a) for a in w.sample(12, eval_rng))).item()
                          for _ in range(20)]
                out[split] = float(np.mean(losses))
        return out

    start = time.perf_counter()
    for step in range(args.max_iters):
        if args.train_py and (step % 250 == 0 or step == args.max_iters - 1):
            losses = estimate_loss()
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}",
                  flush=True)
            if losses["val"] < best_val and step > 0:
                best_val = losses["val"]
                Path(args.train_py).mkdir(parents=True, exist_ok=True)
                torch.save({"model": {n: p.detach() for n, p in model.p.items()},
                            "optimizer": opt.state_dict(), "iter_num": step,
                            "best_val_loss": best_val}, Path(args.train_py) / "ckpt.pt")
        for g in opt.param_groups:
            g["lr"] = schedule(step)
        x, y = windows.sample(12, data_rng)
        loss = model.loss(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if args.train_py:
            print(f"iter {step}: loss {loss.item():.4f}", flush=True)     # log_interval=1
        elif (step + 1) % 500 == 0:
            print(f"step {step + 1:5d}  loss {loss.item():.4f}  ({time.perf_counter() - start:.1f} s)",
                  flush=True)
    # the deterministic score: non-overlapping windows of 64, then the tail
    total, count = 0.0, 0
    with torch.no_grad():
        n_pred = len(val_ids) - 1
        n_full = n_pred // 64
        full = TokenWindows(val_ids[:n_full * 64 + 1], 64, stride=64)
        pieces = list(full.iter_batches(64)) + [(val_ids[n_full * 64:-1][None], val_ids[n_full * 64 + 1:][None])]
        for x, y in pieces:
            loss = model.loss(torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(y)))
            total += loss.item() * y.size
            count += y.size
    print(f"PyTorch reference, seed {args.seed}: validation loss {total / count:.4f} over {count:,} "
          f"characters; training {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
