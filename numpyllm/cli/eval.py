"""``numpyllm eval``: the mean loss and perplexity of a checkpoint on a text file.

The text is encoded with the checkpoint's tokenizer and cut into non-overlapping
windows of block_size, so every token (after the first) is predicted exactly once:
a deterministic score, the same on every run (see numpyllm.train.evaluate_tokens).
"""
from __future__ import annotations

import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="mean loss and perplexity of a checkpoint on a text",
                              description=__doc__)
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint directory")
    p.add_argument("--data", metavar="FILE", help="UTF-8 text (default: the default corpus)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="score the whole file, or only its first (train) or last (val) part")
    p.add_argument("--val_fraction", "--val-fraction", type=float, default=0.1,
                   help="the fraction --split val/train refers to (default 0.1)")
    p.add_argument("--batch_size", "--batch-size", type=int, default=32)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import train_val_split
    from ..train import evaluate_tokens
    from ._common import load_model_and_tokenizer
    from .train import read_text

    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode text for it")
    text = read_text(args.data)
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if args.split != "all":
        train_ids, val_ids = train_val_split(ids, args.val_fraction)
        ids = val_ids if args.split == "val" else train_ids
    start = time.perf_counter()
    result = evaluate_tokens(model, ids, batch_size=args.batch_size)
    print(f"{args.data or 'default corpus'} [{args.split}]: {result['tokens']:,} tokens predicted, "
          f"loss {result['loss']:.4f}, perplexity {result['perplexity']:.3f} "
          f"(step {ckpt.step}, {time.perf_counter() - start:.1f} s)")
    return 0
