"""HotFlip against the spam classifier, and the same recipe with adversarial training
(PGD in embedding space): clean accuracy against accuracy under attack. Figures, not a
test: it prints them.

    python benchmarks/hotflip_spam.py [--data ../shared/data/sms_spam/SMSSpamCollection]
        [--pretrain-steps 300] [--steps 200] [--adv-steps 3] [--epsilon-swaps 1.0]
        [--beam 4] [--beam-limit 60] [--seed 1337]

**The classifier** is benchmarks/spam_classify.py's (its code is imported: the book's
balanced SMS Spam data, 1,046 / 150 / 298 messages; a character GPT of 4 layers, 4
heads, 128 wide pretrained by next-character prediction on the non-test texts; full
fine-tuning with AdamW, batch 16), with fewer pretraining (300) and fine-tuning (200)
steps than that benchmark's, to keep the run short on two shared cores.

**Two fine-tuning runs** from the same pretrained weights and the same initial score
layer, the same batches and steps: *clean* (`Classification`) and *adversarial*
(`AdversarialClassification`, PGD: K steps in an L2 ball per message, the loss at the
last iterate). The radius ε is given in units of a typical token swap: ``--epsilon-swaps
1`` sets ε to the median distance ‖E[u] - E[v]‖ between two characters' vectors in the
pretrained table, so the ball allows about as much movement as one character swap.

**Attacks on each**, on the test split:
- HotFlip (greedy; and beam search of width ``--beam`` on the first ``--beam-limit``
  test messages), at most 3 edits, never proposing [UNK]: the share of correctly
  classified messages flipped within 1, 2, 3 edits, and the accuracy under attack
  (messages still right after k edits, over all test messages);
- PGD in embedding space at the training ε, with ``--pgd-eval-steps`` (6) steps, twice
  training's K:
  the accuracy under that attack.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.spam_classify import (BATCH, DEFAULT_DATA, gpt_config, prepare,  # noqa: E402
                                      pretrain)
from numpyllm.adversarial import hotflip, pgd  # noqa: E402
from numpyllm.autograd import no_grad  # noqa: E402
from numpyllm.data import pad_sequences  # noqa: E402
from numpyllm.nn import ClassifierConfig, SequenceClassifier  # noqa: E402
from numpyllm.training import Classification, TrainConfig, Trainer, evaluate_objective  # noqa: E402
from numpyllm.training.objectives import AdversarialClassification  # noqa: E402

EDITS = (1, 2, 3)


def finetune(model, objective, sets, steps: int, seed: int) -> float:
    cfg = TrainConfig(batch_size=BATCH, max_iters=steps, learning_rate=5e-4, min_lr=5e-5,
                      warmup_iters=steps // 20, lr_decay_iters=steps, weight_decay=0.1,
                      eval_iters=4, seed=seed)
    trainer = Trainer(model, sets["train"], sets["val"], cfg, objective=objective)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return time.perf_counter() - start


def hotflip_figures(model, test, unk: int, beam: int, limit: int | None) -> dict:
    """Flipped within k edits (of the correctly classified) and accuracy under attack."""
    model.eval()
    seqs, labels = test.sequences[:limit], test.labels[:limit]
    flips, correct, start = [], 0, time.perf_counter()
    for s, y in zip(seqs, labels):
        [r] = hotflip(model, np.asarray(s)[None], labels=np.array([y]), max_edits=max(EDITS),
                      beam=beam, forbidden=[unk])
        if r.label_before == y:
            correct += 1
            flips.append(r.edits if r.flipped else None)
    n = len(seqs)
    within = {k: sum(e is not None and e <= k for e in flips) for k in EDITS}
    return {"n": n, "correct": correct, "within": within,
            "acc_under": {k: (correct - within[k]) / n for k in EDITS},
            "seconds": time.perf_counter() - start}


def pgd_accuracy(model, test, epsilon: float, steps: int) -> float:
    """Accuracy on the test split under PGD (L2, radius ε, `steps` steps) in embedding
    space, in batches of 32."""
    model.eval()
    right = 0
    for lo in range(0, len(test), 32):
        rows = range(lo, min(lo + 32, len(test)))
        ids, mask = pad_sequences([test.sequences[i] for i in rows], 0)
        lengths, y = mask.sum(axis=1), test.labels[lo:lo + 32]
        delta = pgd(model, ids, y, lengths=lengths, epsilon=epsilon, norm="l2",
                    steps=steps)[-1]
        with no_grad():
            e = model.token_embeddings(ids).data + delta
            logits, _ = model(inputs_embeds=e, lengths=lengths)
        right += int((logits.data.argmax(-1) == y).sum())
    return right / len(test)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--steps", type=int, default=200, help="fine-tuning steps of each run")
    ap.add_argument("--adv-steps", type=int, default=3, help="PGD steps K in training")
    ap.add_argument("--epsilon-swaps", type=float, default=1.0,
                    help="the L2 radius, in median character-swap distances")
    ap.add_argument("--pgd-eval-steps", type=int, default=6,
                    help="steps of the PGD attack at test time (training uses --adv-steps)")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--beam-limit", type=int, default=60,
                    help="test messages the beam search attacks (the first ones)")
    ap.add_argument("--limit", type=int, default=None,
                    help="attack only the first N test messages (default: all)")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    path = Path(args.data)
    if not path.is_file():
        sys.exit(f"{path} not found: this benchmark needs the SMS Spam Collection "
                 "(../shared/data/sms_spam/SMSSpamCollection); pass its path with --data")
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()
    total = time.perf_counter()
    train, _, test_texts, corpus, tok, sets = prepare(path)
    base = pretrain(np.array(tok.encode(corpus), dtype=np.int64), tok.vocab_size,
                    args.pretrain_steps, args.seed)
    table = base.wte.weight.data                                         # [V, C]
    chars = table[:tok.vocab_size - len(tok.special_tokens)]             # not [UNK]
    dist = np.sqrt(((chars[:, None] - chars[None]) ** 2).sum(-1))
    swap = float(np.median(dist[np.triu_indices(len(chars), 1)]))
    epsilon = args.epsilon_swaps * swap
    print(f"median character-swap distance ‖E[u] - E[v]‖ = {swap:.3f}; median token norm "
          f"{np.median(np.linalg.norm(chars, axis=1)):.3f}; epsilon (L2, per message) = "
          f"{epsilon:.3f}")
    unk = tok.token_id("[UNK]")

    def classifier() -> SequenceClassifier:
        cfg = ClassifierConfig("GPT", gpt_config(tok.vocab_size).to_dict(), n_classes=2)
        model = SequenceClassifier(cfg, rng=args.seed + 1)
        own = dict(base.named_parameters())
        for name, p in model.backbone.named_parameters():
            p.data[...] = own[name].data
        return model

    runs = {}
    for name, objective in (
            ("clean", Classification(2, pad_id=0)),
            ("adversarial (PGD)", AdversarialClassification(
                2, pad_id=0, method="pgd", epsilon=epsilon, norm="l2",
                steps=args.adv_steps))):
        model = classifier()
        seconds = finetune(model, objective, sets, args.steps, args.seed)
        acc = evaluate_objective(model, Classification(2, pad_id=0), sets["test"])["accuracy"]
        print(f"\n{name}: fine-tuned {args.steps} steps in {seconds:.0f} s; test accuracy "
              f"{100 * acc:.2f}%")
        greedy = hotflip_figures(model, sets["test"], unk, 1, args.limit)
        beam = hotflip_figures(model, sets["test"], unk, args.beam,
                               min(args.beam_limit, args.limit or args.beam_limit))
        under_pgd = pgd_accuracy(model, sets["test"], epsilon, args.pgd_eval_steps)
        runs[name] = (acc, greedy, beam, under_pgd, seconds)
        for what, f in (("greedy", greedy), (f"beam {args.beam}", beam)):
            print(f"  HotFlip {what} on {f['n']} messages ({f['correct']} correct, "
                  f"{f['seconds']:.0f} s): flipped within "
                  + ", ".join(f"{k}: {f['within'][k]} ({100 * f['within'][k] / max(f['correct'], 1):.1f}%)"
                              for k in EDITS))
        print(f"  PGD (L2, eps {epsilon:.3f}, {args.pgd_eval_steps} steps): accuracy {100 * under_pgd:.2f}%")

    print(f"\n{'run':<19} {'clean':>7} " + " ".join(f"{'HF≤' + str(k):>7}" for k in EDITS)
          + f" {'PGD':>7} {'flip≤1':>7} {'flip≤3':>7}")
    for name, (acc, g, _, p, _) in runs.items():
        c = max(g["correct"], 1)
        print(f"{name:<19} {100 * acc:>6.2f}% " + " ".join(
            f"{100 * g['acc_under'][k]:>6.2f}%" for k in EDITS)
            + f" {100 * p:>6.2f}% {100 * g['within'][1] / c:>6.1f}% "
            f"{100 * g['within'][3] / c:>6.1f}%")
    print("(clean: test accuracy; HF≤k: accuracy under greedy HotFlip with at most k "
          "edits; PGD: under PGD in embedding space; flip≤k: share of the correctly "
          "classified flipped)")
    print(f"\nall: {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
