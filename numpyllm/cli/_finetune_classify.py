"""``numpyllm finetune classify``: a SequenceClassifier over a decoder, on labelled texts
(see numpyllm/cli/finetune.py for the options); and what ``numpyllm eval`` uses to score
one: the file read and split as the run did, and the report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import CLIError


def read_labelled(path: Path, how: dict, classes=None):
    """The labelled texts of `path`, read as `how` says (format, columns)."""
    from ..data.classification import read_csv, read_jsonl, read_tsv
    if how["format"] == "csv":
        return read_csv(path, text_column=how["text_column"], label_column=how["label_column"],
                        classes=classes)
    if how["format"] == "jsonl":
        return read_jsonl(path, text_column=how["text_column"],
                          label_column=how["label_column"], classes=classes)
    return read_tsv(path, classes=classes)


def labelled_splits(path: Path, record: dict):
    """``(all, [train, val, test])`` of a classify run's file, as its record says."""
    from ..data.classification import balance, stratified_split
    data = read_labelled(path, record, classes=record.get("classes"))
    if record.get("balance"):
        data = balance(data, seed=record["seed"])
    return data, stratified_split(data, record["split"], seed=record["seed"])


def run_classify(args, opts, explicit, lora, ckpt, record, split, out) -> int:
    from ..nn import GPT, ClassifierConfig, GPTConfig, SequenceClassifier
    from ..tokenizers import CharTokenizer
    from ..training import Classification
    from .finetune import (_choose_trainable, _data_file, _data_source, _fine_tune_defaults,
                           _train, load_init)
    from .train import _boolean
    path = _data_file(args, (ckpt.trainer_state.get("data") if ckpt else None))
    if record:
        how = {k: record[k] for k in ("format", "text_column", "label_column", "balance",
                                      "seed", "classes", "max_length")}
    else:
        suffix = path.suffix.lower()
        how = {"format": suffix[1:] if suffix in (".csv", ".jsonl") else "tsv",
               "text_column": args.text_column, "label_column": args.label_column,
               "balance": args.balance, "seed": opts["seed"], "classes": None}
    data, parts = labelled_splits(path, {**how, "split": split})
    how["classes"] = list(data.classes)
    if data.n_classes < 2:
        raise CLIError(f"--data {path}: one class ({data.classes[0]!r}): nothing to tell apart")
    train, val, test = parts
    if len(train) == 0:
        raise CLIError(f"--split: the training split of {path} is empty")
    model = tokenizer = None
    if ckpt is not None:
        tokenizer = ckpt.tokenizer
    elif args.init_from is not None:
        backbone, tokenizer = load_init(args, opts, explicit)
        _fine_tune_defaults(opts, explicit, lora)
    else:
        tokenizer = CharTokenizer(sorted(set("".join(train.texts))), unk_token="[UNK]")
        try:
            backbone = GPT(GPTConfig(vocab_size=tokenizer.vocab_size,
                                     block_size=opts["block_size"], n_layer=opts["n_layer"],
                                     n_head=opts["n_head"], n_embd=opts["n_embd"],
                                     dropout=opts["dropout"], bias=_boolean("--bias", opts["bias"]),
                                     positions=opts["positions"], dtype=opts["dtype"]),
                           rng=np.random.default_rng(opts["seed"]))
        except (TypeError, ValueError) as exc:
            raise CLIError(str(exc)) from None
    if ckpt is None:
        context = backbone.config.block_size
        how["max_length"] = min(context, opts["block_size"]) if "block_size" in explicit \
            else context
        config = ClassifierConfig(type(backbone).__name__, backbone.config.to_dict(),
                                  n_classes=data.n_classes)
        # built whole, as a checkpoint rebuilds it (one dropout generator), then the
        # backbone's weights copied in (its own output head is not the classifier's)
        model = SequenceClassifier(config, rng=np.random.default_rng(opts["seed"] + 1))
        own = model.backbone.state_dict()
        model.backbone.load_state_dict({k: v for k, v in backbone.state_dict().items()
                                        if k in own}, strict=True)
        _choose_trainable(model, args, lora, keep=[model.score])
    sets = [part.encode(tokenizer, max_length=how["max_length"]) for part in parts]
    pad = 0
    record = {"task": "classify", "split": split, **how}

    def objective(model):
        return Classification(data.n_classes, pad_id=pad)
    counts = ", ".join(f"{c}={n}" for c, n in zip(data.classes, data.counts()))
    summary = (f"{len(data):,} texts of {path} ({counts}); {len(train)} train / {len(val)} "
               f"val / {len(test)} test, at most {how['max_length']} tokens each "
               f"({type(tokenizer).__name__}, vocab {tokenizer.vocab_size})")
    trainer = _train(args, model, tokenizer, objective, sets[0],
                     sets[1] if len(val) else None, opts, ckpt, out,
                     _data_source(path, record), summary)
    if isinstance(trainer, int):
        return trainer
    which, scored = ("test", sets[2]) if len(test) else ("validation", sets[1]) \
        if len(val) else ("training", sets[0])
    print(classifier_report(trainer.model, trainer.objective, scored, data.classes,
                            f"{which} split"))
    return 0


def classifier_report(model, objective, data, classes, what: str) -> str:
    """Accuracy, macro F1, and the per-class table with the confusion matrix."""
    from ..evaluate import report_from_confusion, scores_from_confusion
    from ..training import evaluate_objective
    result = evaluate_objective(model, objective, data)
    macro_f1 = scores_from_confusion(result["confusion"], average="macro")[2]
    return (f"{what}: {result['count']:,} texts, accuracy {result['accuracy']:.4f}, macro F1 "
            f"{macro_f1:.4f}, loss {result['loss']:.4f}\n"
            + report_from_confusion(result["confusion"], [str(c) for c in classes]))


