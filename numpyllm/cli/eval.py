"""``numpyllm eval``: a checkpoint's metrics on a text (or, for seq2seq, a pairs file);
a pretrained Hugging Face directory's (``--model DIR --data FILE``) loss, perplexity and
bits per byte; BLEU and ROUGE of a file of hypotheses or of a model's outputs.

  --metric ppl|bpb  perplexity or bits per byte of a causal LM (GPT, Llama family: a
                    checkpoint or --model) over --data, in sliding windows of --context
                    tokens starting every --stride tokens (each token counted once, with
                    at least context - stride + 1 tokens before it after the first
                    window; stride = context, the default, is non-overlapping windows);
                    for an encoder-decoder checkpoint, of its targets.
  --metric bleu     BLEU as sacrebleu computes it, --hyp FILE against --ref FILE (repeat
                    --ref for more references; one segment per line); with --confidence,
                    its bootstrap mean and 95% interval; with --hyp BASE --hyp SYS [--hyp
                    ...] and --paired-bs or --paired-ar, each system's p-value against the
                    first (paired bootstrap, approximate randomization), as sacrebleu's
                    tests with its seed 12345 (see docs/metrics.md);
  --metric rouge    ROUGE-1/2/L/Lsum as rouge-score computes it, with bootstrap intervals;
                    both on a model's greedy outputs instead with --ckpt/--model --prompts
                    FILE [--max-new-tokens N] [--out FILE to keep them].

The objective the checkpoint was trained with (recorded in it) says what is scored:

  clm        loss, perplexity and bits per byte, every token of the text predicted
             exactly once: in non-overlapping windows of block_size, or sliding windows
             with --stride (a deterministic score, see
             numpyllm.training.evaluate_tokens). A checkpoint that records no
             objective is causal LM.
  prefix_lm  loss and perplexity on the tokens after a random prefix of each window
  mlm        loss and perplexity on the masked tokens, and the masked-token accuracy
  span       loss and perplexity on the decoder's targets (the hidden spans)
  seq2seq    loss, perplexity and accuracy of the target tokens (teacher forcing), and
             the exact match of greedy decoding: the share of targets written exactly

The random parts (prefix lengths, masks, spans) are drawn from a fixed seed over
non-overlapping windows: the same figure on every run.

Without ``--data`` it scores the text the checkpoint was trained on, which the
checkpoint records (path, size and SHA-256, or the default corpus), and ``--split``
uses the run's own ``--val_fraction``; if that text moved or changed, it says so and
which ``--data`` to pass.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="a checkpoint's loss, perplexity (and accuracy) "
                              "on a text", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ckpt", metavar="DIR", help="checkpoint directory")
    where.add_argument("--model", metavar="DIR", help="a Hugging Face model directory (causal "
                       "LM: loss and perplexity of --data, which it needs)")
    p.add_argument("--data", metavar="FILE", help="UTF-8 text, or source<TAB>target lines for "
                   "seq2seq (default: the file the checkpoint was trained on)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="score the whole file, or only its first (train) or last (val) part")
    p.add_argument("--val_fraction", "--val-fraction", type=float, default=None,
                   help="the fraction --split val/train refers to (default: the training "
                   "run's, else 0.1)")
    p.add_argument("--batch_size", "--batch-size", type=int, default=32)
    p.add_argument("--context", type=int, default=None, metavar="T",
                   help="window length (default: the model's context; a pretrained model's "
                   "may be thousands of tokens, slow on a CPU)")
    p.add_argument("--stride", type=int, default=None, metavar="S",
                   help="start a window every S tokens, scoring only the tokens the previous "
                   "one did not (1 <= S <= context; default: the context, no overlap)")
    p.add_argument("--metric", choices=["ppl", "bpb", "bleu", "chrf", "rouge"], default=None,
                   help="what to compute (default: the checkpoint's own figures, as before)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    m = p.add_argument_group("BLEU, chrF and ROUGE (--metric bleu|chrf|rouge)")
    m.add_argument("--hyp", metavar="FILE", action="append", default=None,
                   help="hypotheses, one segment per line (repeat with --paired-bs or "
                   "--paired-ar: the first is the baseline)")
    m.add_argument("--ref", metavar="FILE", action="append", default=[],
                   help="references, one per line (repeat for several references)")
    m.add_argument("--prompts", metavar="FILE", help="prompts (sources, for an encoder-"
                   "decoder), one per line: score the model's greedy outputs")
    m.add_argument("--max-new-tokens", "--max_new_tokens", type=int, default=64,
                   help="longest output per prompt (a decoder's ends at its first line break)")
    m.add_argument("--out", metavar="FILE", help="write the generated outputs here, one a line")
    m.add_argument("--tokenize", choices=["13a", "none", "intl", "char", "zh"], default="13a",
                   help="BLEU tokenizer (default 13a, as sacrebleu)")
    m.add_argument("--smooth", choices=["exp", "floor", "add-k", "none"], default="exp",
                   help="BLEU smoothing (default exp)")
    m.add_argument("--smooth-value", type=float, default=None,
                   help="the value of floor (0.1) or add-k (1) smoothing")
    m.add_argument("--lowercase", action="store_true", help="case-insensitive BLEU or chrF")
    m.add_argument("--word-order", type=int, default=None, metavar="N",
                   help="chrF: word n-gram orders too (2: chrF++; default 0)")
    m.add_argument("--char-order", type=int, default=None, metavar="N",
                   help="chrF: character n-gram orders (default 6)")
    m.add_argument("--beta", type=int, default=None,
                   help="chrF: recall weighs beta^2 times precision (default 2)")
    m.add_argument("--whitespace", action="store_true", default=None,
                   help="chrF: keep whitespace in the character n-grams")
    m.add_argument("--eps-smoothing", action="store_true", default=None,
                   help="chrF: chrF++.py's epsilon smoothing (an F-score per order, averaged) "
                   "instead of sacrebleu's default")
    m.add_argument("--rouge-types", default="rouge1,rouge2,rougeL,rougeLsum",
                   help="comma-separated ROUGE types (default rouge1,rouge2,rougeL,rougeLsum)")
    m.add_argument("--stemmer", action="store_true",
                   help="Porter-stem ROUGE tokens longer than 3 letters (needs pip install nltk)")
    m.add_argument("--newline", metavar="TOKEN", default=None,
                   help="TOKEN inside a line marks a sentence break, for rougeLsum (e.g. '<n>')")
    m.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples: ROUGE's 95%% interval (0: none), BLEU's "
                   "--confidence and --paired-bs (default 1000)")
    m.add_argument("--seed", type=int, default=None, help="seed of the resampling (default: "
                   "0 for ROUGE, sacrebleu's 12345 for BLEU)")
    sig = p.add_argument_group("BLEU's uncertainty (--metric bleu)")
    test = sig.add_mutually_exclusive_group()
    test.add_argument("--confidence", action="store_true",
                      help="bootstrap mean and 95%% interval of BLEU (sacrebleu --confidence)")
    test.add_argument("--paired-bs", action="store_true", help="paired bootstrap resampling "
                      "test of each --hyp against the first (Koehn 2004; sacrebleu --paired-bs)")
    test.add_argument("--paired-ar", action="store_true", help="paired approximate "
                      "randomization test of each --hyp against the first (Riezler & "
                      "Maxwell 2005; sacrebleu --paired-ar)")
    sig.add_argument("--trials", type=int, default=None, metavar="N",
                     help="approximate randomization trials (default 10000)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import train_val_split
    from ..training import evaluate_objective, exact_match
    from ..training.evaluate import bits_per_byte
    from . import CLIError
    from . import _objectives as objectives
    from ._common import encode, load_model_and_tokenizer, read_text, recorded_text

    if args.batch_size < 1:
        raise CLIError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.context is not None and args.context < 1:
        raise CLIError(f"--context must be >= 1, got {args.context}")
    if args.stride is not None and args.stride < 1:
        raise CLIError(f"--stride must be >= 1, got {args.stride}")
    text_flags = {"--hyp": args.hyp is not None, "--ref": bool(args.ref),
                  "--prompts": args.prompts is not None, "--out": args.out is not None,
                  "--confidence": args.confidence, "--paired-bs": args.paired_bs,
                  "--paired-ar": args.paired_ar, "--trials": args.trials is not None}
    if args.metric in ("bleu", "chrf", "rouge"):
        if args.stride is not None or args.data is not None:
            raise CLIError(f"--metric {args.metric} scores --hyp (or a model's outputs for "
                           "--prompts) against --ref: --data and --stride do not apply")
        from ._text_metrics import run_text_metric
        return run_text_metric(args)
    for flag, given in text_flags.items():
        if given:
            owner = "bleu, chrf or rouge" if flag in ("--hyp", "--ref", "--prompts", "--out") \
                else "bleu"
            raise CLIError(f"{flag} belongs to --metric {owner}")
    if args.ckpt is None and args.model is None:
        raise CLIError("pass --ckpt DIR or --model DIR (or --metric bleu|chrf|rouge with --hyp)")
    if args.model is not None:
        return _pretrained(args)
    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode text for it")
    name, objective = objectives.objective_of(ckpt)
    if name == "vae":
        raise CLIError(f"{ckpt.path} is a sentence VAE: numpyllm vae eval --ckpt {args.ckpt} "
                       "scores it")
    if name == "classify":
        if args.metric is not None or args.stride is not None or args.json:
            raise CLIError("a classifier is scored by accuracy and F1: --metric, --stride "
                           "and --json do not apply")
        return _classifier(args, model, objective, ckpt)
    if args.stride is not None and name != "clm":
        raise CLIError(f"--stride applies to a causal LM's sliding windows; this checkpoint "
                       f"is {name}, whose examples are scored whole")
    if args.json and args.metric is None and name != "clm":
        raise CLIError(f"--json prints the figures of --metric ppl|bpb (or of a causal LM); "
                       f"this checkpoint is {name}: add --metric ppl or drop --json")
    if args.metric is not None and name not in ("clm", "seq2seq"):
        raise CLIError(f"--metric {args.metric}: perplexity of every token (or of a "
                       f"seq2seq's targets) is for causal LMs and encoder-decoders; this "
                       f"checkpoint is {name} (eval without --metric gives its own figures)")
    recorded = ckpt.trainer_state.get("data")
    if args.data is None:
        if name == "seq2seq" and recorded is None:
            raise CLIError("the checkpoint records no data file: pass --data FILE of "
                           "source<TAB>target lines")
        source = recorded_text(recorded, advice="pass --data FILE with the text to score")
    else:
        source = read_text(args.data)
    val_fraction = args.val_fraction
    if val_fraction is None:
        val_fraction = (recorded or {}).get("val_fraction", 0.1)
    if not 0 <= val_fraction < 1:
        raise CLIError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    where = f"{source.label} [{args.split}]"
    start = time.perf_counter()

    if name == "seq2seq":
        sources, targets = objectives.read_pairs(source.record["path"], source.label)
        pairs = objectives.encode_pairs(tokenizer, sources, targets, source.label)
        objectives.check_pair_lengths(pairs, model.config.max_len - 1, source.label,
                                      "the model cannot read them")
        if args.split != "all":
            train, val = objectives.split_pairs(pairs, val_fraction)
            pairs = val if args.split == "val" else train
            if pairs is None:
                raise CLIError(f"{where} has no pair to score")
        result = evaluate_objective(model, objective, pairs, batch_size=args.batch_size)
        if args.metric is not None:
            # bits per byte of the target text: the targets' total loss (their end
            # tokens included) over the UTF-8 bytes of the targets
            n_bytes = sum(len(tokenizer.decode(t.tolist()).encode("utf-8"))
                          for t in pairs.targets)
            bpb = bits_per_byte(result["loss"] * result["count"], max(n_bytes, 1))
            return _report(args, f"{where}: seq2seq targets, {result['count']:,} target tokens "
                           "predicted (teacher forcing)", result["loss"], result["count"],
                           bpb, f"step {ckpt.step}, {time.perf_counter() - start:.1f} s")
        match = exact_match(model, pairs, bos_id=objective.bos_id, eos_id=objective.eos_id,
                            batch_size=args.batch_size)
        print(f"{where}: seq2seq, {objectives.plural(len(pairs), 'pair')}, "
              f"{result['count']:,} target tokens "
              f"predicted, loss {result['loss']:.4f}, perplexity {result['perplexity']:.3f}, "
              f"token accuracy {result['accuracy']:.3f}, exact match {match:.3f} "
              f"({round(match * len(pairs)):,} of {len(pairs):,}, greedy decoding) "
              f"(step {ckpt.step}, {time.perf_counter() - start:.1f} s)")
        return 0

    ids = encode(tokenizer, source)
    if args.split != "all":
        train_ids, val_ids = train_val_split(ids, val_fraction)
        ids = val_ids if args.split == "val" else train_ids
    if name == "clm":
        if len(ids) < 2:
            raise CLIError(f"{where} has {len(ids)} tokens: too few to score")
        return _causal(args, model, tokenizer, ids, where,
                       f"step {ckpt.step}", start)
    T = objective.context_length
    if len(ids) < T + 1:
        raise CLIError(f"{where} has {len(ids)} tokens, fewer than one window of the "
                       f"model's context + 1 = {T + 1}: too few to score")
    result = evaluate_objective(model, objective, np.asarray(ids), batch_size=args.batch_size)
    what = {"prefix_lm": "tokens predicted (those after a random prefix of each window)",
            "mlm": "masked tokens predicted",
            "span": "target tokens predicted (the hidden spans, their sentinels, </s>)"}[name]
    accuracy = f", accuracy {result['accuracy']:.3f}" if name == "mlm" else ""
    print(f"{where}: {name}, {result['count']:,} {what}, loss {result['loss']:.4f}, "
          f"perplexity {result['perplexity']:.3f}{accuracy} "
          f"(step {ckpt.step}, {time.perf_counter() - start:.1f} s)")
    return 0


def _context(args, model) -> int:
    """The evaluation window: --context, at most the model's context."""
    from . import CLIError
    limit = model.config.block_size
    if args.context is not None and args.context > limit:
        raise CLIError(f"--context {args.context} is longer than the model's context of {limit}")
    return args.context or limit


def _pretrained(args) -> int:
    """A Hugging Face directory's loss and perplexity on --data (causal LM)."""
    from ..data import train_val_split
    from . import CLIError
    from ._common import encode, load_pretrained_model, read_text
    if args.data is None:
        raise CLIError("--model: pass --data FILE with the text to score")
    model, tokenizer = load_pretrained_model(args.model, "encode text for it")
    source = read_text(args.data)
    ids = encode(tokenizer, source)
    if args.split != "all":
        fraction = 0.1 if args.val_fraction is None else args.val_fraction
        if not 0 <= fraction < 1:
            raise CLIError(f"--val_fraction must be in [0, 1), got {fraction}")
        train_ids, val_ids = train_val_split(ids, fraction)
        ids = val_ids if args.split == "val" else train_ids
    where = f"{source.label} [{args.split}]"
    if len(ids) < 2:
        raise CLIError(f"{where} has {len(ids)} tokens: too few to score")
    return _causal(args, model, tokenizer, ids, where,
                   f"{type(model).__name__} from {args.model}", time.perf_counter())


def _causal(args, model, tokenizer, ids, where: str, note: str, start: float) -> int:
    """Loss, perplexity and bits per byte of a decoder over `ids`, in sliding windows of
    --context tokens every --stride tokens."""
    from ..training.evaluate import bits_per_byte, evaluate_tokens
    from . import CLIError
    T = _context(args, model)
    S = T if args.stride is None else args.stride
    if S > T:
        raise CLIError(f"--stride {S} is longer than the window of {T} tokens (--context, or "
                       "the model's): a stride must be at most the window")
    result = evaluate_tokens(model, ids, batch_size=args.batch_size, block_size=T, stride=S)
    # bits per byte: the total loss (nats) over the bytes of the predicted text, in bits,
    # a figure that does not depend on the tokenizer
    n_bytes = max(len(tokenizer.decode(ids[1:].tolist()).encode("utf-8")), 1)
    bpb = bits_per_byte(result["nats"], n_bytes)
    windows = f"windows of {T}" + (f" every {S} tokens" if S != T else "")
    return _report(args, f"{where}: {result['tokens']:,} tokens predicted in {windows}",
                   result["loss"], result["tokens"], bpb,
                   f"{note}, {time.perf_counter() - start:.1f} s",
                   extra={"context": T, "stride": S, "windows": result["windows"],
                          "bytes": n_bytes})


def _report(args, head: str, loss: float, count: int, bpb: float, note: str,
            extra: dict | None = None) -> int:
    """One line (or JSON) with the loss, perplexity and bits per byte; --metric puts its
    figure first."""
    import json
    from ..training import perplexity
    ppl = perplexity(loss)
    if args.json:
        print(json.dumps({"metric": args.metric, "loss": loss, "perplexity": ppl,
                          "bits_per_byte": bpb, "tokens": count, **(extra or {})}, indent=1))
    elif args.metric == "ppl":
        print(f"perplexity {ppl:.3f} ({head}, loss {loss:.4f}, {bpb:.4f} bits per byte; {note})")
    elif args.metric == "bpb":
        print(f"{bpb:.4f} bits per byte ({head}, loss {loss:.4f}, perplexity {ppl:.3f}; {note})")
    else:
        print(f"{head}, loss {loss:.4f}, perplexity {ppl:.3f}, {bpb:.4f} bits per byte "
              f"({note})")
    return 0


def _classifier(args, model, objective, ckpt) -> int:
    """A classifier of ``numpyllm finetune classify``: accuracy, macro F1, per-class
    precision, recall and F1 and the confusion matrix, on --data (read as the run read its
    file: format, columns, label names) or, without it, the run's own test split."""
    from pathlib import Path
    from . import CLIError
    from .finetune import _record, classifier_report, labelled_splits, read_labelled
    record = _record(ckpt)
    if record.get("task") != "classify":
        raise CLIError(f"{ckpt.path}: a classifier that records no data format or label "
                       "names (not a run of numpyllm finetune classify): cannot read a file "
                       "for it")
    if args.data is not None:
        path = Path(args.data)
        if not path.is_file():
            raise CLIError(f"--data {path}: no such file")
        data = read_labelled(path, record, classes=record["classes"])
        what = str(path)
    else:
        path = Path(str(ckpt.trainer_state["data"].get("path")))
        if not path.is_file():
            raise CLIError(f"the checkpoint was trained on {path}, which is no longer there: "
                           "pass --data FILE")
        data = labelled_splits(path, record)[1][2]
        what = f"{path} [test split]"
        if len(data) == 0:
            raise CLIError(f"{what} is empty: pass --data FILE")
    encoded = data.encode(ckpt.tokenizer, max_length=record["max_length"])
    print(classifier_report(model, objective, encoded, record["classes"], what)
          + f"\n(step {ckpt.step})")
    return 0
