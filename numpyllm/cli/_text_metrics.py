"""``numpyllm eval --metric bleu|rouge``: BLEU or ROUGE of a file of hypotheses (or of a
model's greedy continuations of a file of prompts) against one or more reference files,
one segment per line. Not a command itself (the leading underscore): eval.py calls it."""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import CLIError


def read_lines(path, flag: str) -> list:
    """The lines of a UTF-8 file (a last newline ends the last line, it does not start
    another; a CR before a newline is not part of the line), or a one-line CLIError."""
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{flag} {path}: no such file" if not path.exists()
                       else f"{flag} {path}: is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"{flag} {path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [x[:-1] if x.endswith("\r") else x for x in lines]     # Windows line ends
    if not lines:
        raise CLIError(f"{flag} {path}: the file is empty: no segment to score")
    return lines


def write_lines(path, lines: list) -> None:
    """One line per segment, written to a temporary name and renamed (never half written)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(line + "\n" for line in lines)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise CLIError(f"--out {path}: cannot write it ({exc.strerror})") from None


def _one_line(text: str) -> str:
    """A generation as one segment: up to its first line break, stripped."""
    return text.split("\n", 1)[0].strip()


def generations(args, prompts: list) -> list:
    """Greedy continuations (decoders) or outputs (encoder-decoders) of `prompts` by the
    model of --ckpt or --model, each as one line."""
    import numpy as np
    from ..generate import generate, generate_seq2seq
    from ._common import load_model_and_tokenizer, load_pretrained_model
    if args.max_new_tokens < 1:
        raise CLIError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.model is not None:
        model, tokenizer = load_pretrained_model(args.model, "encode the prompts")
        ckpt = None
    else:
        model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode the prompts")
    kind = type(model).__name__
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    from ..tokenizers import UnknownCharacterError
    try:
        ids = [encode(p) for p in prompts]
    except UnknownCharacterError as exc:
        raise CLIError(f"--prompts {args.prompts}: {str(exc).split(';')[0]}: the model's "
                       "tokenizer was built from another text") from None
    model.eval()
    outputs = []
    if kind == "Transformer":                      # encoder-decoder: prompts are sources
        from . import _objectives as objectives
        name, objective = objectives.objective_of(ckpt)
        limit = model.config.max_len
        for i, src in enumerate(ids):
            if not 1 <= len(src) <= limit:
                raise CLIError(f"--prompts line {i + 1} is {len(src)} tokens: a source must "
                               f"be 1 to {limit} (the model's context)")
        for src in ids:
            out = generate_seq2seq(model, np.array(src), min(args.max_new_tokens, limit),
                                   bos_id=objective.bos_id, eos_id=objective.eos_id,
                                   greedy=True)
            out = out[:-1] if out.size and out[-1] == objective.eos_id else out
            outputs.append(_one_line(tokenizer.decode(out.tolist())))
        return outputs
    if kind not in ("GPT", "Llama"):
        raise CLIError(f"a {kind} model does not generate text to score")
    for i, p in enumerate(ids):
        if not p:
            raise CLIError(f"--prompts line {i + 1} is empty: a decoder needs a prompt")
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        eos = (getattr(tokenizer, "special_tokens", None) or {}).get("<|endoftext|>")
    newline = encode("\n")                         # stop at the end of the line when
    stop = [newline] if len(newline) == 1 else None   # a newline is a token of its own
    for start in range(0, len(ids), args.batch_size):
        batch = [np.asarray(p, dtype=np.int64) for p in ids[start:start + args.batch_size]]
        rows = generate(model, batch, args.max_new_tokens, greedy=True, eos_id=eos, stop=stop)
        for prompt, row in zip(batch, rows):
            new = [int(t) for t in row[len(prompt):]]
            if new and eos is not None and new[-1] == eos:
                new = new[:-1]
            outputs.append(_one_line(tokenizer.decode(new)))
    return outputs


def run_text_metric(args) -> int:
    """BLEU or ROUGE: read (or generate) the hypotheses, check the line counts, score,
    print one line per figure (or JSON)."""
    if not args.ref:
        raise CLIError(f"--metric {args.metric} needs --ref FILE (one reference per line; "
                       "repeat --ref for more references)")
    refs = [(path, read_lines(path, "--ref")) for path in args.ref]
    if args.hyp is not None:
        if args.ckpt is not None or args.model is not None or args.prompts is not None:
            raise CLIError("--hyp scores a file of hypotheses: do not pass --ckpt, --model "
                           "or --prompts with it")
        if args.out is not None:
            raise CLIError("--out writes a model's generations: it does not apply to --hyp")
        hyps, hyp_flag = read_lines(args.hyp, "--hyp"), f"--hyp {args.hyp}"
    else:
        if args.prompts is None or (args.ckpt is None and args.model is None):
            raise CLIError(f"--metric {args.metric}: pass --hyp FILE, or --ckpt DIR (or "
                           "--model DIR) with --prompts FILE to score the model's outputs")
        prompts = read_lines(args.prompts, "--prompts")
        hyp_flag = f"--prompts {args.prompts}"
        for path, lines in refs:
            if len(lines) != len(prompts):
                raise CLIError(f"--ref {path} has {len(lines):,} lines but {hyp_flag} has "
                               f"{len(prompts):,}: one reference per prompt")
        hyps = generations(args, prompts)
        if args.out is not None:
            write_lines(args.out, hyps)
    for path, lines in refs:
        if len(lines) != len(hyps):
            raise CLIError(f"--ref {path} has {len(lines):,} lines but {hyp_flag} has "
                           f"{len(hyps):,}: one reference per hypothesis")
    streams = [lines for _, lines in refs]
    result = _bleu(args, hyps, streams) if args.metric == "bleu" else _rouge(args, hyps, streams)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        print(result.pop("_text"))
    return 0


def _bleu(args, hyps, streams) -> dict:
    from ..evaluate import corpus_bleu
    if args.smooth_value is not None and args.smooth not in ("floor", "add-k"):
        raise CLIError(f"--smooth-value applies to --smooth floor or add-k, not {args.smooth}")
    s = corpus_bleu(hyps, streams, tokenize=args.tokenize, lowercase=args.lowercase,
                    smooth_method=args.smooth, smooth_value=args.smooth_value)
    out = {"name": "BLEU", "score": s.score, "counts": s.counts, "totals": s.totals,
           "precisions": s.precisions, "bp": s.bp, "ratio": s.ratio, "sys_len": s.sys_len,
           "ref_len": s.ref_len, "segments": len(hyps), "signature": s.signature}
    if not args.json:
        out["_text"] = f"{s.format()}\n{s.signature}"
    return out


def _rouge(args, hyps, streams) -> dict:
    from ..evaluate import bootstrap, rouge_scores
    types = [t.strip() for t in args.rouge_types.split(",") if t.strip()]
    if args.newline:
        hyps = [h.replace(args.newline, "\n") for h in hyps]
        streams = [[r.replace(args.newline, "\n") for r in s] for s in streams]
    refs = [list(row) if len(row) > 1 else row[0] for row in zip(*streams)]
    try:
        scores = rouge_scores(hyps, refs, rouge_types=types, use_stemmer=args.stemmer)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    if args.bootstrap < 0:
        raise CLIError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    out = {"name": "ROUGE", "segments": len(hyps), "stemmer": args.stemmer}
    lines = []
    means = {t: [sum(s[t][k] for s in scores) / len(scores) for k in range(3)] for t in types}
    intervals = bootstrap(scores, n_samples=args.bootstrap, rng=args.seed) if args.bootstrap \
        else {}
    for t in types:
        p, r, f = means[t]
        out[t] = {"precision": p, "recall": r, "fmeasure": f}
        line = f"{t:<9}  P {p:.4f}  R {r:.4f}  F {f:.4f}"
        if t in intervals:
            low, mid, high = (x.fmeasure for x in intervals[t])
            out[t]["fmeasure_ci"] = {"low": low, "mid": mid, "high": high}
            line += f"  (F 95% bootstrap interval {low:.4f} .. {high:.4f})"
        lines.append(line)
    note = (f"ROUGE of {len(hyps):,} segments against {len(streams)} reference file"
            f"{'s' * (len(streams) > 1)} (mean over segments{', Porter stemming' * args.stemmer}"
            f"{f', {args.bootstrap} bootstrap resamples, seed {args.seed}' if args.bootstrap else ''})")
    if args.bootstrap:
        out["bootstrap"] = {"n_samples": args.bootstrap, "seed": args.seed, "confidence": 0.95}
    if not args.json:
        out["_text"] = "\n".join([note] + lines)
    return out
