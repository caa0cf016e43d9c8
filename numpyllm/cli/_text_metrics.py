"""``numpyllm eval --metric bleu|chrf|rouge``: BLEU, chrF or ROUGE of a file of hypotheses (or of a
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


def _test_name(args):
    """``--paired-bs``, ``--paired-ar``, ``--confidence`` or None: the test asked for."""
    for flag in ("paired_bs", "paired_ar", "confidence"):
        if getattr(args, flag, False):
            return "--" + flag.replace("_", "-")
    return None


def run_text_metric(args) -> int:
    """BLEU or ROUGE: read (or generate) the hypotheses, check the line counts, score,
    print one line per figure (or JSON). With --paired-bs/--paired-ar, every --hyp is a
    system and the first the baseline."""
    test = _test_name(args)
    paired = test in ("--paired-bs", "--paired-ar")
    chrf_flags = [f"--{n.replace('_', '-')}" for n in CHRF_OPTIONS if getattr(args, n) is not None]
    if chrf_flags and args.metric != "chrf":
        raise CLIError(f"{', '.join(chrf_flags)}: chrF's options, for --metric chrf")
    if test is not None and args.metric != "bleu":
        raise CLIError(f"{test} is for --metric bleu" + (
            " (ROUGE prints its bootstrap interval already: --bootstrap N)"
            if args.metric == "rouge" else ""))
    if args.trials is not None and test != "--paired-ar":
        raise CLIError("--trials is the number of --paired-ar trials: add --paired-ar")
    if not args.ref:
        raise CLIError(f"--metric {args.metric} needs --ref FILE (one reference per line; "
                       "repeat --ref for more references)")
    hyp_paths = args.hyp or []
    if len(hyp_paths) > 1 and not paired:
        raise CLIError(f"{len(hyp_paths)} --hyp files: several systems are compared with "
                       "--metric bleu --paired-bs or --paired-ar (the first --hyp is the "
                       "baseline); otherwise pass one --hyp")
    if paired and len(hyp_paths) < 2:
        raise CLIError(f"{test} compares systems: pass --hyp BASELINE --hyp SYSTEM [--hyp "
                       "...], the first is the baseline")
    refs = [(path, read_lines(path, "--ref")) for path in args.ref]
    if hyp_paths:
        if args.ckpt is not None or args.model is not None or args.prompts is not None:
            raise CLIError("--hyp scores a file of hypotheses: do not pass --ckpt, --model "
                           "or --prompts with it")
        if args.out is not None:
            raise CLIError("--out writes a model's generations: it does not apply to --hyp")
        systems = [(path, read_lines(path, "--hyp")) for path in hyp_paths]
        hyps, hyp_flag = systems[0][1], f"--hyp {hyp_paths[0]}"
        for path, lines in systems[1:]:
            if len(lines) != len(hyps):
                raise CLIError(f"--hyp {path} has {len(lines):,} lines but the baseline "
                               f"{hyp_flag} has {len(hyps):,}: the same segments, one a line")
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
        systems = [(hyp_flag, hyps)]
        if args.out is not None:
            write_lines(args.out, hyps)
    for path, lines in refs:
        if len(lines) != len(hyps):
            raise CLIError(f"--ref {path} has {len(lines):,} lines but {hyp_flag} has "
                           f"{len(hyps):,}: one reference per hypothesis")
    streams = [lines for _, lines in refs]
    if paired:
        result = _bleu_paired(args, systems, streams)
    elif args.metric == "bleu":
        result = _bleu(args, hyps, streams)
    elif args.metric == "chrf":
        result = _chrf(args, hyps, streams)
    else:
        result = _rouge(args, hyps, streams)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        print(result.pop("_text"))
    return 0


# chrF's flags (None: not given) and sacrebleu's defaults
CHRF_OPTIONS = {"char_order": 6, "word_order": 0, "beta": 2, "whitespace": False,
                "eps_smoothing": False}


def _chrf(args, hyps, streams) -> dict:
    from ..evaluate import corpus_chrf
    options = {n: default if getattr(args, n) is None else getattr(args, n)
               for n, default in CHRF_OPTIONS.items()}
    try:
        s = corpus_chrf(hyps, streams, lowercase=args.lowercase, **options)
    except ValueError as exc:
        raise CLIError(str(exc).replace("chrF: ", "--metric chrf: ")) from None
    out = {"name": s.name, "score": s.score, "char_order": s.char_order,
           "word_order": s.word_order, "beta": s.beta, "segments": len(hyps),
           "signature": s.signature}
    if not args.json:
        out["_text"] = f"{s.format()}\n{s.signature}"
    return out


def _bleu_options(args) -> dict:
    if args.smooth_value is not None and args.smooth not in ("floor", "add-k"):
        raise CLIError(f"--smooth-value applies to --smooth floor or add-k, not {args.smooth}")
    return dict(smooth_method=args.smooth, smooth_value=args.smooth_value)


def _resamples(args, flag: str = "--bootstrap") -> int:
    n = args.bootstrap if flag == "--bootstrap" else args.trials
    if n is None:
        n = 10000                         # sacrebleu's --paired-ar-n
    if n < 1:
        raise CLIError(f"{flag} must be >= 1 for {_test_name(args)}, got {n}")
    return n


def _with_test(signature: str, fields: str) -> str:
    """sacrebleu's signature order: nrefs first, then the test's fields (bs/ar, seed)."""
    head, _, rest = signature.partition("|")
    return f"{head}|{fields}|{rest}"


def _bleu(args, hyps, streams) -> dict:
    from ..evaluate import bootstrap_ci, corpus_bleu
    from ..evaluate.bleu import corpus_stats
    options = _bleu_options(args)
    s = corpus_bleu(hyps, streams, tokenize=args.tokenize, lowercase=args.lowercase, **options)
    out = {"name": "BLEU", "score": s.score, "counts": s.counts, "totals": s.totals,
           "precisions": s.precisions, "bp": s.bp, "ratio": s.ratio, "sys_len": s.sys_len,
           "ref_len": s.ref_len, "segments": len(hyps), "signature": s.signature}
    text = s.format()
    if args.confidence:
        n = _resamples(args)
        seed = 12345 if args.seed is None else args.seed
        stats = corpus_stats(hyps, streams, tokenize=args.tokenize, lowercase=args.lowercase)
        ci = bootstrap_ci(stats, n_samples=n, seed=seed, **options)
        out["signature"] = _with_test(s.signature, f"bs:{n}|seed:{seed}")
        out["confidence"] = {"mean": ci.mean, "ci": ci.ci, "low": ci.low, "high": ci.high,
                             "n_samples": n, "seed": seed}
        # sacrebleu's line: the score, then (μ = mean ± half-width), then the details
        text = text.replace(f"BLEU = {s.score:.2f}", f"BLEU = {ci.format()}", 1)
        text += (f"\n95% bootstrap interval {ci.low:.2f} .. {ci.high:.2f} ({n} resamples of "
                 f"{len(hyps):,} segments, seed {seed})")
    if not args.json:
        out["_text"] = f"{text}\n{out['signature']}"
    return out


def _bleu_paired(args, systems, streams) -> dict:
    """Each system's BLEU and p-value against the first (the baseline)."""
    from ..evaluate import corpus_bleu, paired_approximate_randomization, paired_bootstrap
    from ..evaluate.bleu import corpus_stats
    options = _bleu_options(args)
    seed = 12345 if args.seed is None else args.seed
    stats = [corpus_stats(hyps, streams, tokenize=args.tokenize, lowercase=args.lowercase)
             for _, hyps in systems]
    signature = corpus_bleu(systems[0][1], streams, tokenize=args.tokenize,
                            lowercase=args.lowercase, **options).signature
    if args.paired_bs:
        n = _resamples(args)
        results = paired_bootstrap(stats[0], stats[1:], n_samples=n, seed=seed, **options)
        name, what = "paired-bs", f"Paired bootstrap resampling (Koehn 2004), {n} resamples"
        signature = _with_test(signature, f"bs:{n}|seed:{seed}")
    else:
        n = _resamples(args, "--trials")
        results = paired_approximate_randomization(stats[0], stats[1:], n_trials=n,
                                                   seed=seed, **options)
        name = "paired-ar"
        what = f"Paired approximate randomization (Riezler & Maxwell 2005), {n} trials"
        signature = _with_test(signature, f"ar:{n}|seed:{seed}")
    rows = []
    for k, ((path, _), r) in enumerate(zip(systems, results)):
        rows.append({"system": path, "baseline": r.p_value is None, "score": r.score,
                     "p_value": r.p_value, "mean": r.mean, "ci": r.ci,
                     # every segment's statistics equal to the baseline's: sacrebleu's
                     # strict > then gives the smallest p there is (see docs/metrics.md)
                     "same_as_baseline": k > 0 and stats[k] == stats[0]})
    out = {"name": "BLEU", "test": name, "n": n, "seed": seed, "segments": len(systems[0][1]),
           "signature": signature, "systems": rows}
    if not args.json:
        width = max(len(row["system"]) for row in rows) + len(" (baseline)")
        lines = [f"{what}, seed {seed}, {len(systems[0][1]):,} segments; each system "
                 f"against {systems[0][0]}"]
        for row in rows:
            label = row["system"] + (" (baseline)" if row["baseline"] else "")
            line = f"{label:<{width}}  BLEU {row['score']:6.2f}"
            if row["mean"] is not None:
                line += f"  (μ = {row['mean']:.2f} ± {row['ci']:.2f})"
            if row["p_value"] is not None:
                star = " *" if row["p_value"] < 0.05 else ""
                line += f"  p = {row['p_value']:.4f}{star}"
                if row["same_as_baseline"]:
                    line += ("  (the baseline's own statistics: sacrebleu's strict rule "
                             "gives the smallest p, the papers' p = 1)")
            lines.append(line)
        lines.append("* p < 0.05: a difference this large would be rare if the system and "
                     "the baseline were equivalent (not: the probability that they are)")
        lines.append(signature)
        out["_text"] = "\n".join(lines)
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
    seed = 0 if args.seed is None else args.seed
    intervals = bootstrap(scores, n_samples=args.bootstrap, rng=seed) if args.bootstrap \
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
            f"{f', {args.bootstrap} bootstrap resamples, seed {seed}' if args.bootstrap else ''})")
    if args.bootstrap:
        out["bootstrap"] = {"n_samples": args.bootstrap, "seed": seed, "confidence": 0.95}
    if not args.json:
        out["_text"] = "\n".join([note] + lines)
    return out
