"""``numpyllm eval``: a checkpoint's metrics on a text (or, for seq2seq, a pairs file);
a pretrained Hugging Face directory's (``--model DIR --data FILE``) loss, perplexity and
bits per byte.

The objective the checkpoint was trained with (recorded in it) says what is scored:

  clm        loss and perplexity, every token of the text predicted exactly once: the
             text is cut into non-overlapping windows of block_size (a deterministic
             score, see numpyllm.training.evaluate_tokens). A checkpoint that records no
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
    where = p.add_mutually_exclusive_group(required=True)
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
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import train_val_split
    from ..training import evaluate_objective, evaluate_tokens, exact_match
    from . import CLIError
    from . import _objectives as objectives
    from ._common import encode, load_model_and_tokenizer, read_text, recorded_text

    if args.batch_size < 1:
        raise CLIError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.context is not None and args.context < 1:
        raise CLIError(f"--context must be >= 1, got {args.context}")
    if args.model is not None:
        return _pretrained(args)
    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "encode text for it")
    name, objective = objectives.objective_of(ckpt)
    if name == "classify":
        return _classifier(args, model, objective, ckpt)
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
        result = evaluate_tokens(model, ids, batch_size=args.batch_size,
                                 block_size=_context(args, model))
        print(f"{where}: {result['tokens']:,} tokens predicted, "
              f"loss {result['loss']:.4f}, perplexity {result['perplexity']:.3f} "
              f"(step {ckpt.step}, {time.perf_counter() - start:.1f} s)")
        return 0
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
    from ..training import evaluate_tokens
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
    T = _context(args, model)
    start = time.perf_counter()
    result = evaluate_tokens(model, ids, batch_size=args.batch_size, block_size=T)
    # bits per byte: the total loss (nats) over the bytes of the predicted text, in bits,
    # a figure that does not depend on the tokenizer
    n_bytes = max(len(tokenizer.decode(ids[1:].tolist()).encode("utf-8")), 1)
    bpb = result["loss"] * result["tokens"] / n_bytes / np.log(2)
    print(f"{where}: {result['tokens']:,} tokens predicted in windows of {T}, "
          f"loss {result['loss']:.4f}, perplexity {result['perplexity']:.3f}, "
          f"{bpb:.4f} bits per byte ({type(model).__name__} from {args.model}, "
          f"{time.perf_counter() - start:.1f} s)")
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
