"""Perplexity of a causal checkpoint at several strides, and its loss by position in the
window: the figure of docs/metrics.md.

For each stride S (default: the context T, T/2, T/4) the validation split is scored with
sliding windows (`numpyllm.training.evaluate.evaluate_tokens`): loss, perplexity, bits per
byte, windows run, seconds. Then the mean loss at each position of non-overlapping
windows (position p predicts with p + 1 tokens of context), in bands, which says how much
the context a stride buys is worth to this model.

    PYTHONPATH=$PWD python -m numpyllm train --out /tmp/metrics_ckpt      # ~4 min on 2 cores
    PYTHONPATH=. python benchmarks/perplexity_strides.py --ckpt /tmp/metrics_ckpt/ckpt
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from numpyllm.autograd import no_grad
from numpyllm.cli._common import encode, read_text, recorded_text
from numpyllm.data import train_val_split
from numpyllm.training.checkpoint import load_model
from numpyllm.training.evaluate import bits_per_byte, evaluate_tokens


def loss_by_position(model, ids, T: int, n_windows: int, batch: int = 100) -> np.ndarray:
    """[T]: mean loss at each position of the first `n_windows` non-overlapping windows."""
    n_windows = min(n_windows, (len(ids) - 1) // T)
    x = np.stack([ids[i * T:(i + 1) * T] for i in range(n_windows)])           # [N, T]
    y = np.stack([ids[i * T + 1:(i + 1) * T + 1] for i in range(n_windows)])
    total = np.zeros(T)
    model.eval()
    with no_grad():
        for s in range(0, n_windows, batch):
            z = model(x[s:s + batch])[0].data.astype(np.float64)               # [B, T, V]
            z -= z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total += -np.take_along_axis(logp, y[s:s + batch][..., None], -1)[..., 0].sum(0)
    return total / n_windows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--strides", default=None, help="comma-separated (default T,T/2,T/4)")
    parser.add_argument("--windows", type=int, default=3000, help="windows for the by-position loss")
    args = parser.parse_args()
    model, tokenizer, ckpt = load_model(args.ckpt)
    recorded = ckpt.trainer_state.get("data")
    text = recorded_text(recorded, advice="train it again, or point at the same text")
    ids = encode(tokenizer, text)
    _, val = train_val_split(ids, (recorded or {}).get("val_fraction", 0.1))
    T = model.config.block_size
    strides = [int(s) for s in args.strides.split(",")] if args.strides else [T, T // 2, T // 4]
    n_bytes = len(tokenizer.decode(val[1:].tolist()).encode("utf-8"))
    print(f"{args.ckpt} (step {ckpt.step}), validation split of {text.label}: {len(val):,} "
          f"tokens, context {T}")
    print("| stride | windows | loss | perplexity | bits per byte | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for S in strides:
        start = time.perf_counter()
        r = evaluate_tokens(model, val, stride=S)
        print(f"| {S} | {r['windows']:,} | {r['loss']:.4f} | {r['perplexity']:.3f} | "
              f"{bits_per_byte(r['nats'], n_bytes):.4f} | {time.perf_counter() - start:.0f} |")
    m = loss_by_position(model, val, T, args.windows)
    bands = [(0, 1), (1, 4), (4, 16), (16, 32), (32, 48), (48, 64)]
    print(f"mean loss by position over {min(args.windows, (len(val) - 1) // T):,} windows: "
          + ", ".join(f"{a}-{b - 1}: {m[a:b].mean():.4f}" for a, b in bands if b <= T))


if __name__ == "__main__":
    main()
