"""``numpyllm attack gcg``: a suffix that makes a checkpoint's language model say a target.

    numpyllm attack gcg --ckpt out/ckpt --prompt "# Note: " --target "alas" --steps 100
    numpyllm attack gcg --ckpt out/ckpt --prompt "# Note: " --targets targets.txt --json

The suffix may hold any token but the tokenizer's special tokens, tokens whose text has
a character of --forbid, and (--printable) tokens that are not printable text; a
candidate whose text would not encode back to the same tokens is dropped before it is
evaluated. The start is --suffix-length allowed tokens drawn with --seed (default 0:
the same run every time).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from . import CLIError


def add_arguments(p) -> None:
    p.add_argument("--ckpt", metavar="DIR", required=True, help="checkpoint directory (a "
                   "GPT or Llama language model)")
    p.add_argument("--prompt", required=True, metavar="TEXT",
                   help="the text the suffix follows (may be empty)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--target", metavar="TEXT", help="the continuation to make the model say")
    what.add_argument("--targets", metavar="FILE", help="a UTF-8 file of targets, one a line: "
                      "attack each and print the success rate")
    p.add_argument("--suffix-length", "--suffix_length", dest="suffix_length", type=int,
                   default=10, metavar="K", help="tokens in the suffix (default 10)")
    p.add_argument("--steps", type=int, default=100, metavar="N",
                   help="search steps at most (default 100)")
    p.add_argument("--batch", type=int, default=64, metavar="B",
                   help="candidate suffixes evaluated each step (default 64)")
    p.add_argument("--topk", "--top-k", dest="topk", type=int, default=None, metavar="K",
                   help="gcg: candidates per position, the tokens of most negative gradient "
                   "(default 16)")
    p.add_argument("--method", choices=["gcg", "random"], default="gcg",
                   help="gradient-guided swaps (gcg, default) or uniformly random ones")
    p.add_argument("--accept", choices=["best", "improve"], default="best",
                   help="move to each step's best candidate even if worse (best, the "
                   "paper's rule; default) or only when it lowers the loss")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed of the start and the swaps (default 0)")
    p.add_argument("--forbid", default="", metavar="CHARS",
                   help="never use a token whose text holds one of these characters")
    p.add_argument("--printable", action="store_true",
                   help="only tokens whose text is printable (no line break, tab, control)")
    p.add_argument("--every", type=int, default=None, metavar="N",
                   help="a progress line every N steps (default 10 for one --target, none "
                   "for --targets; 0: none)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (progress "
                   "lines go to stderr)")


def _encode(tokenizer, text: str, flag: str) -> list:
    from ..tokenizers import UnknownCharacterError
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    try:
        return list(encode(text))
    except UnknownCharacterError as exc:
        raise CLIError(f"{flag}: {str(exc).split(';')[0]}: the model never saw it in "
                       "training") from None


def _targets(args) -> list:
    if args.target is not None:
        return [args.target]
    path = Path(args.targets)
    if not path.is_file():
        raise CLIError(f"--targets {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CLIError(f"--targets {path}: not UTF-8 text (byte {exc.start})") from None
    targets = [line for line in lines if line.strip()]
    if not targets:
        raise CLIError(f"--targets {path}: no targets (one a line; blank lines are skipped)")
    return targets


def _check(args) -> None:
    for flag, value, low in (("--suffix-length", args.suffix_length, 1), ("--steps", args.steps, 0),
                             ("--batch", args.batch, 1), ("--every", args.every, 0)):
        if value is not None and value < low:
            raise CLIError(f"{flag} must be >= {low}, got {value}")
    if args.topk is not None:
        if args.method == "random":
            raise CLIError("--topk does not apply to --method random (it swaps uniformly)")
        if args.topk < 1:
            raise CLIError(f"--topk must be >= 1, got {args.topk}")


def run(args) -> int:
    from ..adversarial import allowed_tokens, gcg, random_search
    from ._common import load_model_and_tokenizer
    _check(args)
    targets = _targets(args)
    model, tokenizer, _ = load_model_and_tokenizer(args.ckpt, "encode the prompt and target")
    if type(model).__name__ not in ("GPT", "Llama"):
        raise CLIError(f"a {type(model).__name__} checkpoint is not a language model: the "
                       "attack needs a GPT or a Llama")
    prompt = _encode(tokenizer, args.prompt, "--prompt")
    encoded = []
    for text in targets:
        ids = _encode(tokenizer, text, "--target")
        if not ids:
            raise CLIError(f"--target {text!r} encodes to no tokens")
        encoded.append(ids)
    try:
        allowed = allowed_tokens(model.config.vocab_size, tokenizer=tokenizer,
                                 forbid_chars=args.forbid, printable=args.printable)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    every = args.every if args.every is not None else (10 if len(targets) == 1 else 0)
    out = sys.stderr if args.json else sys.stdout
    topk = 16 if args.topk is None else args.topk
    if not args.json:
        how = f"top-{topk}" if args.method == "gcg" else "uniform swaps"
        print(f"{args.method}: suffix of {args.suffix_length} tokens after {args.prompt!r}, "
              f"at most {args.steps} steps x {args.batch} candidates ({how}), "
              f"{int(allowed.sum())} of {allowed.size} tokens allowed", file=out)

    def progress(step, result):
        if every and step % every == 0:
            text = tokenizer.decode(result.suffix.tolist())
            print(f"step {step:4d} | {result.evaluations:,} evaluations | loss "
                  f"{result.history['loss'][-1]:.4f} | best {result.loss:.4f} | suffix "
                  f"{text!r}", file=out, flush=True)

    rows = []
    for n, (text, target) in enumerate(zip(targets, encoded), 1):
        options = dict(steps=args.steps, batch=args.batch, allowed=allowed, rng=args.seed,
                       accept=args.accept, tokenizer=tokenizer, on_step=progress)
        if args.method == "gcg":
            result = gcg(model, prompt, target, args.suffix_length, topk=topk, **options)
        else:
            result = random_search(model, prompt, target, args.suffix_length, **options)
        said = _greedy(model, tokenizer, prompt, result.suffix, len(target))
        rows.append(dict(result.to_dict(), target=text, prompt=args.prompt, greedy=said))
        if not args.json:
            _report(result, text, said, n, len(targets))
    if args.json:
        if len(rows) == 1:
            print(json.dumps(rows[0]))
        else:
            print(json.dumps({"results": rows, **_summary(rows)}))
    elif len(rows) > 1:
        s = _summary(rows)
        print(f"success rate: {s['successes']}/{len(rows)} ({s['success_rate']:.0%}), median "
              f"target loss {s['median_loss']:.4f}, {s['evaluations']:,} evaluations in all")
    return 0


def _greedy(model, tokenizer, prompt, suffix, n: int) -> str:
    """The model's greedy continuation of prompt ⊕ suffix, `n` tokens."""
    from ..generate import generate
    out = generate(model, np.array(list(prompt) + suffix.tolist()), n, greedy=True)
    return tokenizer.decode(out[-n:].tolist())


def _report(result, target: str, said: str, n: int, total: int) -> None:
    if total > 1:
        verdict = (f"success after {result.evaluations:,} evaluations" if result.success
                   else f"no success in {result.evaluations:,} evaluations")
        print(f"[{n}/{total}] {target!r}: {verdict}, loss {result.start_loss:.4f} -> "
              f"{result.loss:.4f}, suffix {result.text!r}, says {said!r}")
        return
    print(f"suffix:  {result.text!r}")
    print(f"loss:    {result.loss:.4f} per target token (start {result.start_loss:.4f})")
    print(f"success: {'yes' if result.success else 'no'} ({result.evaluations:,} "
          f"evaluations, {result.steps} steps)")
    print(f"greedy:  {said!r} (target {target!r})")


def _summary(rows: list) -> dict:
    wins = sum(r["success"] for r in rows)
    return {"successes": wins, "success_rate": wins / len(rows),
            "median_loss": float(np.median([r["loss"] for r in rows])),
            "evaluations": sum(r["evaluations"] for r in rows)}
