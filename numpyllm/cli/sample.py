"""``numpyllm sample``: continue a prompt with a trained checkpoint."""
from __future__ import annotations

import numpy as np

from . import CLIError


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="generate text from a checkpoint", description=__doc__)
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint directory")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a line break)")
    p.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top_k", "--top-k", type=int, default=None)
    p.add_argument("--greedy", action="store_true", help="always the most likely token")
    p.add_argument("--num_samples", "--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same text)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoint import CheckpointError, load_model
    from ..generate import generate
    try:
        model, tokenizer, ckpt = load_model(args.ckpt)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    if tokenizer is None:
        raise CLIError(f"{ckpt.path} has no tokenizer: cannot encode a prompt for it")
    prompt = tokenizer.encode(args.prompt)
    if not prompt:
        raise CLIError("--prompt encodes to no tokens")
    rng = np.random.default_rng(args.seed)
    for i in range(args.num_samples):
        ids = generate(model, np.array(prompt), args.max_new_tokens, temperature=args.temperature,
                       top_k=args.top_k, greedy=args.greedy, rng=rng)
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        print(tokenizer.decode(ids.tolist()))
    return 0
