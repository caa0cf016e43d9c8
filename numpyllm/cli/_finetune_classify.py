"""``numpyllm finetune classify``: a SequenceClassifier over a decoder, on labelled texts
(see numpyllm/cli/finetune.py for the options); and what ``numpyllm eval`` uses to score
one: the file read and split as the run did, and the report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import CLIError


ADV_FLAGS = {"adv_epsilon": "--adv-epsilon", "adv_norm": "--adv-norm",
             "adv_steps": "--adv-steps", "adv_alpha": "--adv-alpha",
             "adv_weight": "--adv-weight", "adv_random_start": "--adv-random-start"}


def add_adversarial_options(p) -> None:
    """--adversarial and its settings (`AdversarialClassification`)."""
    g = p.add_argument_group("adversarial training in embedding space")
    g.add_argument("--adversarial", choices=["pgd", "freelb"], default=None,
                   help="train on PGD's perturbed input embeddings (Madry et al.), or "
                   "FreeLB's average along the ascent (Zhu et al.)")
    g.add_argument("--adv-epsilon", "--adv_epsilon", dest="adv_epsilon", type=float,
                   default=None, metavar="EPS", help="radius of the ball (default 1.0)")
    g.add_argument("--adv-norm", "--adv_norm", dest="adv_norm", choices=["l2", "linf"],
                   default=None, help="l2 (per message, default) or linf (per coordinate)")
    g.add_argument("--adv-steps", "--adv_steps", dest="adv_steps", type=int, default=None,
                   metavar="K", help="ascent steps (default 3)")
    g.add_argument("--adv-alpha", "--adv_alpha", dest="adv_alpha", type=float, default=None,
                   help="ascent step size (default 2.5 * epsilon / K)")
    g.add_argument("--adv-weight", "--adv_weight", dest="adv_weight", type=float,
                   default=None, metavar="W", help="loss = (1 - W) clean + W adversarial, W "
                   "in (0, 1] (default 1)")
    g.add_argument("--adv-random-start", "--adv_random_start", dest="adv_random_start",
                   action="store_const", const=1, default=None,
                   help="start the ascent at a random point of the ball")


def adversarial_settings(args, ckpt, record: dict) -> dict | None:
    """The `AdversarialClassification` settings of the run (None: plain classification):
    from the options, or (resuming) from the checkpoint's record."""
    import math
    given = [flag for name, flag in ADV_FLAGS.items() if getattr(args, name) is not None]
    if ckpt is not None:
        if given or args.adversarial is not None:
            raise CLIError("--resume: the adversarial settings are the run's own: drop "
                           + ", ".join((["--adversarial"] if args.adversarial else []) + given))
        return record.get("adversarial")
    if args.adversarial is None:
        if given:
            raise CLIError(f"{', '.join(given)} without --adversarial: pass --adversarial "
                           "pgd|freelb to train adversarially")
        return None
    eps = 1.0 if args.adv_epsilon is None else args.adv_epsilon
    steps = 3 if args.adv_steps is None else args.adv_steps
    alpha = 0.0 if args.adv_alpha is None else args.adv_alpha
    weight = 1.0 if args.adv_weight is None else args.adv_weight
    if not (math.isfinite(eps) and eps > 0):
        raise CLIError(f"--adv-epsilon must be a finite number > 0, got {eps}")
    if steps < 1 or steps > 1000:
        raise CLIError(f"--adv-steps must be in [1, 1000], got {steps}")
    if args.adv_alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise CLIError(f"--adv-alpha must be a finite number > 0, got {alpha}")
    if not (math.isfinite(weight) and 0 < weight <= 1):
        raise CLIError(f"--adv-weight must be in (0, 1], got {weight}")
    from ..training.objectives import AdversarialClassification
    return AdversarialClassification(2, method=args.adversarial, epsilon=eps,
                                     norm=args.adv_norm or "l2", steps=steps, alpha=alpha,
                                     random_start=args.adv_random_start or 0,
                                     weight=weight).settings()


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
    adversarial = adversarial_settings(args, ckpt, record)
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
    if adversarial is not None:
        record["adversarial"] = adversarial

    def objective(model):
        if adversarial is not None:
            from ..training.objectives import AdversarialClassification
            try:
                return AdversarialClassification(data.n_classes, pad_id=pad, **adversarial)
            except (TypeError, ValueError) as exc:     # a checkpoint's record, tampered with
                raise CLIError(f"the run's adversarial settings: {exc}") from None
        return Classification(data.n_classes, pad_id=pad)
    counts = ", ".join(f"{c}={n}" for c, n in zip(data.classes, data.counts()))
    summary = (f"{len(data):,} texts of {path} ({counts}); {len(train)} train / {len(val)} "
               f"val / {len(test)} test, at most {how['max_length']} tokens each "
               f"({type(tokenizer).__name__}, vocab {tokenizer.vocab_size})")
    if adversarial is not None:
        a = adversarial
        summary += (f"; adversarial training, {a['method']}: {a['steps']} steps of "
                    f"{a['alpha']:g} in the {a['norm']} ball of radius {a['epsilon']:g}"
                    + (", random start" if a["random_start"] else "")
                    + (f", weight {a['weight']:g}" if a["weight"] < 1 else ""))
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


