"""``numpyllm attack hotflip``: HotFlip (`numpyllm.adversarial.hotflip`) against a
classifier checkpoint of ``numpyllm finetune classify``.

    numpyllm attack hotflip --ckpt DIR/ckpt [--data FILE] [--max-edits 3] [--beam 1]
                            [--limit N] [--examples 3] [--keep-first] [--json]

The messages: --data (read as the run read its file: format, columns, label names), or
the run's own test split, as ``numpyllm eval --ckpt`` scores it. Each message is cut to
the run's length and attacked alone; only the correctly classified ones count (a wrong
prediction needs no attack). The tokenizer's special tokens ([UNK], end of text ...) are
never swapped in.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import CLIError


def add_arguments(p) -> None:
    p.add_argument("--ckpt", metavar="DIR", required=True,
                   help="a classifier checkpoint (DIR/ckpt of numpyllm finetune classify)")
    p.add_argument("--data", metavar="FILE", help="labelled texts in the run's format "
                   "(default: the run's test split)")
    p.add_argument("--max-edits", "--max_edits", dest="max_edits", type=int, default=3,
                   metavar="E", help="most substitutions per message (default 3)")
    p.add_argument("--beam", type=int, default=1, metavar="B",
                   help="beam search of width B (default 1: greedy)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="attack the first N messages only")
    p.add_argument("--examples", type=int, default=3, metavar="K",
                   help="flipped messages to show, before and after (default 3)")
    p.add_argument("--keep-first", "--keep_first", dest="keep_first", action="store_true",
                   help="never edit a message's first token")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _messages(args, ckpt):
    """``(Labelled ids, texts' source for the report, class names)``, read as the run's
    record says."""
    from .finetune import _record, labelled_splits, read_labelled
    record = _record(ckpt)
    if record.get("task") != "classify":
        raise CLIError(f"{ckpt.path}: not a classifier of numpyllm finetune classify (it "
                       "records no data format or label names): hotflip attacks those")
    if args.data is not None:
        path = Path(args.data)
        if not path.is_file():
            raise CLIError(f"--data {path}: no such file")
        data, what = read_labelled(path, record, classes=record["classes"]), str(path)
    else:
        path = Path(str(ckpt.trainer_state["data"].get("path")))
        if not path.is_file():
            raise CLIError(f"the checkpoint was trained on {path}, which is no longer there: "
                           "pass --data FILE")
        data, what = labelled_splits(path, record)[1][2], f"{path} [test split]"
    if len(data) == 0:
        raise CLIError(f"{what}: no messages to attack")
    return data.encode(ckpt.tokenizer, max_length=record["max_length"]), what, \
        record["classes"]


def run(args) -> int:
    from ..adversarial import hotflip
    from ._common import load_model_and_tokenizer
    from ._objectives import objective_of
    for flag, value, low in (("--max-edits", args.max_edits, 1), ("--beam", args.beam, 1),
                             ("--limit", args.limit, 1), ("--examples", args.examples, 0)):
        if value is not None and value < low:
            raise CLIError(f"{flag} must be >= {low}, got {value}")
    model, tokenizer, ckpt = load_model_and_tokenizer(args.ckpt, "decode the messages")
    if objective_of(ckpt)[0] != "classify":
        raise CLIError(f"{ckpt.path}: a {type(model).__name__} checkpoint, not a classifier "
                       "of numpyllm finetune classify: hotflip attacks those")
    data, what, classes = _messages(args, ckpt)
    n = len(data) if args.limit is None else min(args.limit, len(data))
    V = model.config.backbone_cfg().vocab_size
    forbidden = sorted(i for i in getattr(tokenizer, "special_tokens", {}).values() if i < V)
    model.eval()
    correct, edits, examples = 0, [], []
    for i in range(n):
        seq, label = np.asarray(data.sequences[i], dtype=np.int64), int(data.labels[i])
        [r] = hotflip(model, seq[None], labels=np.array([label]), max_edits=args.max_edits,
                      beam=args.beam, forbidden=forbidden, keep_first=args.keep_first)
        if r.label_before != label:
            continue                                      # misclassified: nothing to flip
        correct += 1
        edits.append(r.edits if r.flipped else None)
        if r.flipped and len(examples) < args.examples:
            examples.append({"label": str(classes[label]),
                             "after_label": str(classes[r.label_after]), "edits": r.edits,
                             "before": tokenizer.decode(seq.tolist()),
                             "after": tokenizer.decode(r.ids.tolist())})
    ks = range(1, args.max_edits + 1)
    within = {k: sum(e is not None and e <= k for e in edits) for k in ks}
    result = {"data": what, "messages": n, "correct": correct, "accuracy": correct / n,
              "max_edits": args.max_edits, "beam": args.beam,
              "flipped_within": {str(k): within[k] for k in ks},
              "share_flipped": {str(k): within[k] / max(correct, 1) for k in ks},
              "accuracy_under_attack": {str(k): (correct - within[k]) / n for k in ks},
              "examples": examples, "step": ckpt.step}
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return 0
    search = "greedy" if args.beam == 1 else f"beam search of width {args.beam}"
    print(f"numpyllm attack hotflip: {n} messages of {what}, {correct} classified correctly "
          f"(accuracy {correct / n:.4f}); HotFlip, {search}, at most {args.max_edits} edits")
    for k in ks:
        print(f"flipped within {k} edit{'s' if k > 1 else ' '}: {within[k]:>5} "
              f"({100 * within[k] / max(correct, 1):5.1f}% of the correct; accuracy under "
              f"attack {(correct - within[k]) / n:.4f})")
    for ex in examples:
        print(f"\n[{ex['label']} -> {ex['after_label']}, {ex['edits']} edit"
              f"{'s' if ex['edits'] > 1 else ''}]\n  before: {ex['before']!r}\n"
              f"  after:  {ex['after']!r}")
    return 0
