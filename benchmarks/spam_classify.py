"""Spam classification, the LLMs-from-scratch book's protocol, on a CPU: a small GPT
pretrained with numpyllm, then fine-tuned to classify, against the same model trained on
the labels from scratch. Figures, not a test: it prints them.

    python benchmarks/spam_classify.py [--data ../shared/data/sms_spam/SMSSpamCollection]
        [--pretrain-steps 1500] [--steps 400] [--seed 1337]

Needs the SMS Spam Collection (`../shared/data/sms_spam/SMSSpamCollection` from the
repository root, or --data); it exits with a message where the file is absent.

**The data, as the book.** 5,574 messages (4,827 ham, 747 spam); ham undersampled to the
747 spam with seed 123 (`balance`), then split 70/10/20 with seed 123, stratified
(`stratified_split`): 1,046 / 150 / 298 messages, half spam in each. The book draws with
pandas, so its rows differ; its split is not stratified (1,045 / 149 / 300).

**The model.** nanoGPT's CPU shape: a GPT of 4 layers, 4 heads, 128 wide (0.8M
parameters), learned positions, character-level (the characters of the pretraining text
and an [UNK] for the rest), each message cut to its first 128 characters.

**Pretraining** is next-character prediction (`CausalLM`, windows of 128) on the *texts*
of every message outside the balanced validation and test splits: the 1,046 training
messages and the 4,080 ham messages balancing left out, about 380K characters, no label.
No message scored later is read. (The book starts from GPT-2, pretrained on 40 GB of web
text; nothing can be downloaded here, so the model learns SMS English from the
collection itself.)

**Fine-tuning** (`Classification`: the last real token's hidden state, a linear score
layer, cross-entropy over the two classes) for `--steps` batches of 16 training
messages, AdamW with warmup and cosine decay; three runs from the same initial score
layer:

  last block   pretrained; `train_blocks(model, 1)`: the last block, ln_f and the score
               layer train, the rest is frozen (the book's choice)
  full         pretrained; every parameter trains
  scratch      random initial weights; every parameter trains (the same steps)

**What is printed**: validation and test accuracy (the whole splits, every message once),
trainable parameters, seconds; then the test set's per-class precision, recall and F1 and
its confusion matrix for the best run. The goal the issue sets: test accuracy above the
book's 95.67% (GPT-2 small, last block + head).

**One run** (defaults, seed 1337; 2 cores shared with other jobs, load about 4, so the
times are inflated: 650 s in all, 506 s of it pretraining). Pretraining ends at 2.03
nats/char on held-out text (uniform: 4.76). Then:

  run          val acc   test acc   trainable   time
  last block    96.00%     95.64%     198,786   43 s
  full          96.00%     97.65%     824,962   41 s
  scratch       97.33%     95.64%     824,962   37 s

Full fine-tuning of the pretrained model passes the goal (291 of 298 test messages);
the last block alone and training from scratch get 285 of 298, one message short of the
book's 95.67%. One seed on 298 messages: the standard error of an accuracy near 96% is
about 1.1 points, so only the full run's lead is more than noise, and barely.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# Import the numpyllm of this checkout, not an editable install of another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numpyllm.data.classification import (balance, read_tsv,  # noqa: E402
                                          split_indices)
from numpyllm.evaluate import report_from_confusion  # noqa: E402
from numpyllm.nn import (GPT, ClassifierConfig, GPTConfig, SequenceClassifier,  # noqa: E402
                         train_blocks)
from numpyllm.tokenizers import CharTokenizer  # noqa: E402
from numpyllm.training import (Classification, TrainConfig, Trainer,  # noqa: E402
                               evaluate_objective)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms_spam" / \
    "SMSSpamCollection"
CONTEXT = 128            # characters a message is cut to, and the pretraining window
BATCH = 16


def gpt_config(vocab_size: int) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, block_size=CONTEXT, n_layer=4, n_head=4,
                     n_embd=128, dropout=0.0)


def pretrain(text_ids: np.ndarray, vocab_size: int, steps: int, seed: int) -> GPT:
    n_val = len(text_ids) // 20                                  # 5% to watch the loss
    train, val = text_ids[:-n_val], text_ids[-n_val:]
    model = GPT(gpt_config(vocab_size), rng=seed)
    cfg = TrainConfig(batch_size=BATCH, max_iters=steps, learning_rate=1e-3, min_lr=1e-4,
                      warmup_iters=min(100, steps // 10), lr_decay_iters=steps,
                      eval_iters=20, seed=seed)
    trainer = Trainer(model, train, val, cfg)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    losses = trainer.estimate_loss()
    print(f"pretraining: {steps} steps of {BATCH} windows of {CONTEXT} characters, "
          f"{time.perf_counter() - start:.0f} s; loss train {losses['train']:.3f}, "
          f"held-out {losses['val']:.3f} nats/char (uniform: {np.log(vocab_size):.2f})")
    return model


def finetune(name: str, model: SequenceClassifier, sets: dict, steps: int, lr: float,
             seed: int) -> dict:
    objective = Classification(2, pad_id=0)
    cfg = TrainConfig(batch_size=BATCH, max_iters=steps, learning_rate=lr, min_lr=lr / 10,
                      warmup_iters=steps // 20, lr_decay_iters=steps, weight_decay=0.1,
                      eval_iters=4, seed=seed)
    trainer = Trainer(model, sets["train"], sets["val"], cfg, objective=objective)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    seconds = time.perf_counter() - start
    val = evaluate_objective(model, objective, sets["val"])
    test = evaluate_objective(model, objective, sets["test"])
    trainable = model.num_parameters(trainable=True)
    print(f"{name:<11} {100 * val['accuracy']:>8.2f}% {100 * test['accuracy']:>8.2f}% "
          f"{trainable:>12,} {seconds:>8.0f} s")
    return {"name": name, "val": val, "test": test, "trainable": trainable,
            "seconds": seconds}


def prepare(path, verbose: bool = True):
    """The book's data from the collection at `path`: the balanced splits (train, val,
    test), the pretraining text (every message outside val and test, no label), its
    character tokenizer, and the splits encoded (``sets``)."""
    everything = read_tsv(path)
    balanced = balance(everything, seed=123)
    parts = split_indices(balanced.labels, (0.7, 0.1, 0.2), seed=123)
    train, val, test = (balanced.subset(rows) for rows in parts)
    held_out = set(val.texts) | set(test.texts)
    # pretraining text: every message but the validation and test ones, no labels
    corpus = "\n".join(t for t in everything.texts if t not in held_out) + "\n"
    chars = sorted(set(corpus))
    tok = CharTokenizer(chars, unk_token="[UNK]")
    if verbose:
        print(f"SMS Spam Collection: {len(everything):,} messages "
              f"{everything.counts().tolist()} (ham, spam); balanced {len(balanced):,}; "
              f"train/val/test {len(train)}/{len(val)}/{len(test)}; pretraining text "
              f"{len(corpus):,} characters (vocabulary {tok.vocab_size}); "
              f"{os.cpu_count()} CPUs\n")
    sets = {name: part.encode(tok, max_length=CONTEXT)
            for name, part in (("train", train), ("val", val), ("test", test))}
    return train, val, test, corpus, tok, sets


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="SMSSpamCollection's path")
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps of each run")
    ap.add_argument("--seed", type=int, default=1337,
                    help="initialisation and training batches (the data's seed is 123)")
    args = ap.parse_args(argv)
    path = Path(args.data)
    if not path.is_file():
        sys.exit(f"{path} not found: this benchmark needs the SMS Spam Collection "
                 "(../shared/data/sms_spam/SMSSpamCollection); pass its path with --data")
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()              # as the numpyllm command line does
    train, _, _, corpus, tok, sets = prepare(path)
    total = time.perf_counter()
    base = pretrain(np.array(tok.encode(corpus), dtype=np.int64), tok.vocab_size,
                    args.pretrain_steps, args.seed)
    base_state = {n: p.data.copy() for n, p in base.named_parameters()}

    def classifier(pretrained: bool) -> SequenceClassifier:
        cfg = ClassifierConfig("GPT", gpt_config(tok.vocab_size).to_dict(), n_classes=2)
        model = SequenceClassifier(cfg, rng=args.seed + 1)
        if pretrained:
            for name, p in model.backbone.named_parameters():
                p.data[...] = base_state[name]
        return model

    print(f"\nfine-tuning, {args.steps} steps of {BATCH} messages:\n"
          f"{'run':<11} {'val acc':>9} {'test acc':>9} {'trainable':>12} {'time':>10}")
    runs = [
        finetune("last block", train_blocks(classifier(True), 1), sets, args.steps, 1e-3,
                 args.seed),
        finetune("full", classifier(True), sets, args.steps, 5e-4, args.seed),
        finetune("scratch", classifier(False), sets, args.steps, 1e-3, args.seed),
    ]
    print(f"(of {classifier(False).num_parameters():,} parameters; the book's GPT-2 small, "
          f"last block + head: 95.67% test)")
    best = max(runs, key=lambda r: r["val"]["accuracy"])
    print(f"\ntest set, the run with the best validation accuracy ({best['name']}):\n")
    print(report_from_confusion(best["test"]["confusion"], train.classes))
    print(f"\nall: {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
