"""``numpyllm eval``: the mean loss and perplexity of a checkpoint on a text file.

The text is encoded with the checkpoint's tokenizer and cut into non-overlapping
windows of block_size, so every token (after the first) is predicted exactly once:
a deterministic score, the same on every run (see numpyllm.training.evaluate_tokens).

Without ``--data`` it scores the text the checkpoint was trained on, which the
checkpoint records (path, size and SHA-256, or the default corpus), and ``--split``
uses the run's own ``--val_fraction``; if that text moved or changed, it says so and
which ``--data`` to pass.
"""
from __future__ import annotations

import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="mean loss and perplexity of a checkpoint on a text",
                              description=__doc__)
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint directory")
    p.add_argument("--data", metavar="FILE", help="UTF-8 text (default: the text the checkpoint "
                   "was trained on)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="score the whole file, or only its first (train) or last (val) part")
    p.add_argument("--val_fraction", "--val-fraction", type=float, default=None,
                   help="the fraction --split val/train refers to (default: the training "
                   "run's, else 0.1)")
    p.add_argument("--batch_size", "--batch-size", type=int, default=32)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import train_val_split
    from ..training import evaluate_tokens
    from . import CLIError
    from ._common import encode, load_model_and_tokenizer, read_text, recorded_text

    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode text for it")
    recorded = ckpt.trainer_state.get("data")
    if args.data is None:
        source = recorded_text(recorded, advice="pass --data FILE with the text to score")
    else:
        source = read_text(args.data)
    val_fraction = args.val_fraction
    if val_fraction is None:
        val_fraction = (recorded or {}).get("val_fraction", 0.1)
    if not 0 <= val_fraction < 1:
        raise CLIError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    ids = encode(tokenizer, source)
    if args.split != "all":
        train_ids, val_ids = train_val_split(ids, val_fraction)
        ids = val_ids if args.split == "val" else train_ids
    if len(ids) < 2:
        raise CLIError(f"{source.label} [{args.split}] has {len(ids)} tokens: too few to score")
    start = time.perf_counter()
    result = evaluate_tokens(model, ids, batch_size=args.batch_size)
    print(f"{source.label} [{args.split}]: {result['tokens']:,} tokens predicted, "
          f"loss {result['loss']:.4f}, perplexity {result['perplexity']:.3f} "
          f"(step {ckpt.step}, {time.perf_counter() - start:.1f} s)")
    return 0
