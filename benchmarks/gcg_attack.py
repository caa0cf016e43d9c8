"""GCG against random search at equal evaluation budgets, on the README's trained model
(or any `numpyllm train` GPT checkpoint, character-level or subword): for 20 target
phrases after a fixed prompt, the success rate (the model then writes the
target greedily), the final target loss, and the loss against evaluations. Figures, not a
test: it prints them.

    numpyllm train --out /tmp/gcg_model               # the README's model, about 2 minutes
    python benchmarks/gcg_attack.py [--ckpt /tmp/gcg_model/ckpt] [--steps 100]
        [--batch 64] [--topk 16[,64,256]] [--suffix-length 10] [--methods gcg,random]
        [--prompt "# Note: "] [--target-prefix ""]

    # a subword model: byte-level BPE of 4,096 tokens on Tiny Shakespeare (3 minutes)
    numpyllm train --data ../shared/data/tinyshakespeare.txt --tokenizer bpe \
        --vocab_size 4096 --out /tmp/gcg_bpe/model
    python benchmarks/gcg_attack.py --ckpt /tmp/gcg_bpe/model/ckpt --prompt $'ROMEO:\n' \
        --topk 16,64,256

**The model** is what ``numpyllm train`` makes with no options: nanoGPT's CPU GPT (4
layers, 4 heads, 128 wide, context 64), character-level, trained 2,000 steps on the Python
standard library's source. **The prompt** is ``# Note: `` (a comment, where English can
follow), after which the model writes only spaces greedily. **The targets** (`TARGETS`)
are 20 short Shakespearean phrases: English words it has seen letter by letter in
comments and docstrings, never as phrases, and none of which it says after the prompt.

**The protocol.** For each target, each method starts from the same suffix of
--suffix-length printable characters (drawn with the target's index as the seed; the
tokenizer has no special token to forbid), runs at most --steps steps of --batch
candidates (1 + steps x batch evaluations) and stops at success. Both use Algorithm 1's
rule (move to each step's best candidate; the best seen is the result). GCG proposes
from the --topk tokens of most negative one-hot gradient per position; random search
swaps uniformly. GCG also spends one forward and backward pass of one sequence per step
on its gradient, not counted as evaluations (the time ratio printed shows its cost).

**A subword checkpoint** (any tokenizer but the character one): each target is the phrase
after a space (`` alas``, as in running text; --target-prefix to change), refused unless
it reads back through the tokenizer; it may be several tokens (``' woe', ' is', ' me'``),
and the loss is the mean cross-entropy per target *token*. The suffix is --suffix-length
allowed tokens: printable, not a special token, and not a token that decodes to U+FFFD
(a byte-level BPE's lone bytes >= 0x80). Candidates that do not read back as the same ids
are dropped before evaluation, and the random start is drawn until it does
(`suffix.search`), the same start for both methods. Several --topk values run one GCG each
(``gcg@16``, ...), each paired with the same random search.

**What is printed**: per target, each method's final loss (mean cross-entropy per target
character) and success; then per method the success rate, the median final loss, the
median evaluations to success, and the median best-so-far loss at every tenth of the
budget (a run that stopped at success keeps its final loss); and how often GCG ends below
random search on the same target, and the time per evaluation and per step.

**One run** (defaults: 100 steps of 64, budget 6,401 evaluations; top-16 of 95; niced,
OMP_NUM_THREADS=1, 2 cores shared with other sessions; 10 minutes wall, 2 of CPU):

  method    success  median loss  median evals to success
  gcg        1/20          1.915                      705
  random     1/20          1.959                    3,521

GCG leads early (median best 1.99 against 2.11 at 1,281 evaluations), then stalls while
random search catches up; it ends lower on 8 of 20 targets (median paired difference
+0.016 nats/char). The curve and the reading of it: docs/adversarial.md, Figures.

**Subword runs** (Tiny Shakespeare, the same GPT shape, prompt ``ROMEO:\n``, targets after
a space, 100 steps of 64; --topk 16,64,256 against one random search; niced,
OMP_NUM_THREADS=1, shared machine, 8 minutes wall each):

  vocabulary      method   success  median loss  ends below random  median paired diff
  4,096 BPE       gcg@16     5/20       4.508         15/20              -0.248
                  gcg@64     6/20       4.376         17/20              -0.215
                  gcg@256    5/20       4.310         14/20              -0.270
                  random     4/20       4.867
  16,384 BPE      gcg@16     5/20       4.349         14/20              -0.323
                  gcg@64     5/20       4.254         11/20              -0.126
                  gcg@256    5/20       4.470         13/20              -0.171
                  random     4/20       5.126
  65 characters   gcg@16     2/20       1.179         10/20              +0.001
  (control)       random     2/20       1.255

(losses in nats per target token.) With a 10-character suffix the two are level on
characters; with a 30-character one (as long as 10 BPE tokens) GCG's median is ahead
(1.126 against 1.231) but it ends lower on only 11 of 20. With subwords GCG is ahead
throughout, and random search at 6,401 evaluations is about where GCG was at 641. No
clear growth from 4,096 to 16,384 tokens. Commands, curves, caveats:
docs/adversarial.md, Figures.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

PROMPT = "# Note: "
TARGETS = ["alas", "thee", "hark", "fie", "anon", "adieu", "sweet", "noble", "prithee",
           "methinks", "forsooth", "wherefore", "my lord", "ay me", "O Romeo", "good sir",
           "fair maid", "thou art", "mine eyes", "woe is me"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default="/tmp/gcg_model/ckpt", help="a `numpyllm train` checkpoint")
    ap.add_argument("--prompt", default=PROMPT, help=f"what the suffix follows (default {PROMPT!r})")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--topk", default="16",
                    help="GCG's proposals per position; several, comma-separated (16,64,256), "
                         "run one GCG each, named gcg@16, gcg@64, ...")
    ap.add_argument("--suffix-length", type=int, default=10)
    ap.add_argument("--methods", default="gcg,random", help="comma-separated: gcg, random")
    ap.add_argument("--targets", type=int, default=len(TARGETS), help="the first N targets")
    ap.add_argument("--target-prefix", default=None,
                    help="put before each target phrase (default: nothing for a character "
                         "tokenizer, a space for a subword one: ' alas' as in running text)")
    args = ap.parse_args(argv)

    from numpyllm.adversarial import allowed_tokens, gcg, random_search
    from numpyllm.generate import generate
    from numpyllm.tokenizers import CharTokenizer
    from numpyllm.training.checkpoint import CheckpointError, load_model
    try:
        model, tok, _ = load_model(args.ckpt)
    except CheckpointError as exc:
        sys.exit(f"{exc}\n(train the README's model first: numpyllm train --out /tmp/gcg_model)")
    topks = [int(t) for t in args.topk.split(",")]
    chars = isinstance(tok, CharTokenizer)
    if chars:
        allowed = allowed_tokens(model.config.vocab_size, tokenizer=tok, printable=True)
        prefix, unit = args.target_prefix or "", "character"
    else:
        # a subword vocabulary: the phrases as they stand in running text, after a space
        # (" alas", often one token), and no token that decodes to a broken UTF-8 byte
        # (U+FFFD: a byte-level BPE's lone bytes >= 0x80 never read back as themselves)
        allowed = allowed_tokens(model.config.vocab_size, tokenizer=tok, printable=True,
                                 forbid_chars="\ufffd")
        prefix = " " if args.target_prefix is None else args.target_prefix
        unit = "target token"
    targets = [prefix + t for t in TARGETS[:args.targets]]
    for t in targets:
        if tok.decode(tok.encode(t)) != t:
            sys.exit(f"the target {t!r} is not made of tokens the tokenizer has "
                     f"(it reads back as {tok.decode(tok.encode(t))!r})")
    prompt = tok.encode(args.prompt)
    methods = []
    for m in args.methods.split(","):
        methods += [m] if m != "gcg" or len(topks) == 1 else [f"gcg@{k}" for k in topks]
    budget = 1 + args.steps * args.batch
    print(f"{type(tok).__name__}, vocabulary {model.config.vocab_size:,}; prompt {args.prompt!r} "
          f"({len(prompt)} tokens), {len(targets)} targets of "
          f"{min(len(tok.encode(t)) for t in targets)}-{max(len(tok.encode(t)) for t in targets)}"
          f" tokens, suffix {args.suffix_length} tokens, {args.steps} steps x {args.batch} "
          f"(budget {budget:,} evaluations), top-{args.topk}, {int(allowed.sum())} of "
          f"{allowed.size} tokens allowed")
    said = generate(model, np.array(prompt), 8, greedy=True)[len(prompt):]
    print(f"greedy after the prompt alone: {tok.decode(said.tolist())!r}")
    runs = {m: [] for m in methods}
    seconds = {m: [] for m in methods}              # per evaluation
    step_seconds = {m: [] for m in methods}         # per step
    for i, target in enumerate(targets):
        row = []
        ids = tok.encode(target)
        # alternate which method runs first, so that a slow spell of the shared machine
        # does not always fall on the same one
        for m in (methods if i % 2 == 0 else methods[::-1]):
            t = time.perf_counter()
            options = dict(steps=args.steps, batch=args.batch, allowed=allowed, rng=i,
                           tokenizer=tok)
            if m.startswith("gcg"):
                topk = int(m.split("@")[1]) if "@" in m else topks[0]
                r = gcg(model, prompt, ids, args.suffix_length, topk=topk, **options)
            else:
                r = random_search(model, prompt, ids, args.suffix_length, **options)
            elapsed = time.perf_counter() - t
            seconds[m].append(elapsed / r.evaluations)
            step_seconds[m].append(elapsed / max(r.steps, 1))
            runs[m].append(r)
            row.append(f"{m} {r.start_loss:.3f} -> {r.loss:.3f}"
                       f"{' success at ' + format(r.evaluations, ',') if r.success else ''}")
        print(f"{target!r:12} " + " | ".join(sorted(row)), flush=True)

    marks = [1 + round(f * args.steps / 10) * args.batch for f in range(11)]
    print(f"\n{'method':8} {'success':>8} {'median loss':>12} {'median evals to success':>24}")
    for m in methods:
        wins = [r.evaluations for r in runs[m] if r.success]
        loss = np.median([r.loss for r in runs[m]])
        print(f"{m:8} {len(wins):>3}/{len(runs[m]):<4} {loss:>12.3f}"
              f" {format(int(np.median(wins)), ',') if wins else '-':>24}")
    print("\nmedian best-so-far loss at evaluations:")
    print("evaluations " + " ".join(f"{e:>6,}" for e in marks))
    for m in methods:
        curve = [np.median([_best_at(r, e) for r in runs[m]]) for e in marks]
        print(f"{m:11} " + " ".join(f"{v:>6.3f}" for v in curve))
    if "random" in methods:
        q = np.array([r.loss for r in runs["random"]])
        for m in methods:
            if not m.startswith("gcg"):
                continue
            g = np.array([r.loss for r in runs[m]])
            print(f"\n{'GCG' if m == 'gcg' else m} ends lower than random search on "
                  f"{int((g < q).sum())} of {len(g)} targets (median difference "
                  f"{np.median(g - q):+.3f}, mean {np.mean(g - q):+.3f} nats per {unit}); "
                  f"time per evaluation, median ratio {m} / random: "
                  f"{np.median(seconds[m]) / np.median(seconds['random']):.2f}; per step: "
                  f"{np.median(step_seconds[m]) * 1e3:.0f} ms against "
                  f"{np.median(step_seconds['random']) * 1e3:.0f} ms")
    return 0


def _best_at(result, evaluations: int) -> float:
    """The best loss a run had reached after `evaluations` (its last when it stopped)."""
    h = result.history
    at = np.searchsorted(h["evaluations"], evaluations, side="right") - 1
    return h["best"][max(at, 0)]


if __name__ == "__main__":
    sys.exit(main())
