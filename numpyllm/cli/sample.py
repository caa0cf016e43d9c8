"""``numpyllm sample``: continue a prompt with a trained checkpoint.

    numpyllm sample --ckpt out/ckpt --prompt "ROMEO:" --max-new-tokens 200 \\
        --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1 --stream

Prints the prompt and its continuation. ``--stream`` prints the text as it is
generated (whole characters only, also with a byte-level BPE tokenizer). Sampling
applies temperature, then top-k, then top-p; ``--greedy`` takes the most likely token
every time. The same ``--seed`` gives the same text. Generation stops after
``--max-new-tokens`` tokens, at the end token (``--eos``; by default the tokenizer's
``<|endoftext|>`` when it has one), or at a ``--stop`` string (not printed).
"""
from __future__ import annotations

import sys

import numpy as np

from . import CLIError


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="generate text from a checkpoint",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint directory")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a line break)")
    p.add_argument("--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=int,
                   default=200, metavar="N", help="tokens to generate at most (default 200)")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="> 0; lower is more conservative (default 0.8)")
    p.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=None, metavar="K",
                   help="sample among the K most likely tokens only")
    p.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=None, metavar="P",
                   help="sample among the most likely tokens that make up probability P")
    p.add_argument("--greedy", action="store_true", help="always the most likely token")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="random seed (same seed, same text)")
    p.add_argument("--stream", action="store_true", help="print the text as it is generated")
    p.add_argument("--stop", action="append", default=None, metavar="TEXT",
                   help="stop at this text (repeatable; not printed)")
    p.add_argument("--eos", default=None, metavar="TOKEN",
                   help="the end token's name (default: <|endoftext|> if the tokenizer has it)")
    p.add_argument("--num-samples", "--num_samples", dest="num_samples", type=int, default=1,
                   metavar="N", help="how many samples to print (default 1)")
    p.add_argument("--no-cache", dest="use_cache", action="store_false",
                   help="recompute the whole context every step (slow; for comparison)")
    p.set_defaults(func=run)


def _eos_id(tokenizer, name):
    specials = getattr(tokenizer, "special_tokens", None) or {}
    if name is None:
        return specials.get("<|endoftext|>")
    try:
        return tokenizer.token_id(name)
    except (ValueError, KeyError):
        raise CLIError(f"--eos {name!r} is not a token of this tokenizer") from None


def run(args) -> int:
    from ..generate import stream_text
    from ._common import load_model_and_tokenizer
    if args.num_samples < 1:
        raise CLIError(f"--num-samples must be >= 1, got {args.num_samples}")
    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode a prompt for it")
    from ..tokenizers import UnknownCharacterError
    try:
        if getattr(tokenizer, "special_tokens", None) and hasattr(tokenizer, "add_special_tokens"):
            prompt = tokenizer.encode(args.prompt, allowed_special="all")   # the user's own text
        else:
            prompt = tokenizer.encode(args.prompt)
    except UnknownCharacterError as exc:      # its advice (unk_token) is for Python code
        raise CLIError(f"--prompt: {str(exc).split(';')[0]}: the model never saw it in "
                       "training") from None
    if not prompt:
        raise CLIError("--prompt encodes to no tokens")
    if not args.greedy and args.temperature <= 0:     # the library's advice is Python's
        raise CLIError(f"--temperature must be > 0, got {args.temperature:g} (for the most "
                       "likely token every time, pass --greedy)")
    rng = np.random.default_rng(args.seed)
    options = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   greedy=args.greedy, rng=rng, stop=args.stop,
                   eos_id=_eos_id(tokenizer, args.eos), use_cache=args.use_cache)
    for i in range(args.num_samples):
        pieces = stream_text(model, tokenizer, np.array(prompt), args.max_new_tokens,
                             **options)                   # checks the options at once
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        if args.stream:
            sys.stdout.write(args.prompt)
            sys.stdout.flush()
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            print(args.prompt + "".join(pieces))
    return 0
