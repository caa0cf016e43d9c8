"""Every pretraining objective on character-level Tiny Shakespeare, and the encoder-decoder
on a sequence task cut from it: what each learns in about a minute on 2 cores.

    python benchmarks/objectives_shakespeare.py --objective all
    python benchmarks/objectives_shakespeare.py --objective clm|prefix_lm|mlm|span|seq2seq
        [--data ../shared/data/tinyshakespeare.txt] [--steps 2000] [--seed 1337]

Needs Tiny Shakespeare (`../shared/data/tinyshakespeare.txt` from the repository root, or
--data); it exits with a message where the file is absent.

**The setup**, the same for every objective: one character tokenizer for the whole text
(65 characters, then the special tokens [PAD] [MASK] [BOS] [EOS] and three span
sentinels), the first 90% of the characters for training and the last 10% for validation
(nanoGPT's split), windows of 64 characters, nanoGPT's CPU optimisation recipe (AdamW,
lr 1e-3 with 100 steps of warmup and cosine decay to 1e-4, betas 0.9/0.99, weight decay
0.1, clipping 1.0), batch 12, 2,000 steps, dropout 0, pre-LN everywhere so that the
objective, not the layer-norm placement, is what differs. Models of one size, 0.80-0.94M
parameters:

  clm, prefix_lm  GPT, 4 layers, 4 heads, 128 wide, context 64 (nanoGPT's CPU model)
  mlm             the encoder-only model of the same shape, GELU, BERT's masked-LM head,
                  sinusoidal positions (learned ones must be learned first: see
                  `encoder`)
  span, seq2seq   the encoder-decoder, 2 + 2 layers of 128 (4 heads, d_ff 512), one
                  embedding shared by source, target and output: about the parameters
                  of 4 decoder layers, half the depth on each side

The four pretraining runs take the same 2,000 steps of 12 windows of 64: each reads the
same 1.5M training characters (about 1.5 passes over the training split). What differs
is how many of them it is asked to predict, per window: 64 for clm, 32 on average for
prefix_lm, 9.6 for mlm (15%), and for span 10 characters plus 3 sentinels and EOS. (Batches
of 48 windows for 500 steps, the same characters in fewer steps, trained mlm and span
worse.)

**What is printed.** Every figure is computed on the whole validation split (111,540
characters), deterministically: the evaluation's prefix lengths, masks and spans come
from seed 0, so a figure is the same run after run (on the same number of threads,
NUMPYLLM_NUM_THREADS). Losses are cross-entropies in nats per predicted token; beside
each, a baseline computed on exactly the same targets: the unigram (each character's
frequency in the training split, 3.35 on every character: a model that knows which
characters are common and nothing of context) and the bigram (the character given the
one before it, 2.48).

- **clm**: the loss over every validation character, each predicted once from the ones
  before it in its window of 64 (`evaluate_tokens`, as `nanogpt_shakespeare.py`), and its
  loss on exactly the targets prefix_lm is scored on (the same windows and prefix
  lengths, read causally).
- **prefix_lm**: the loss on the tokens after the prefix (`evaluate_objective` with
  `PrefixLM`: each window draws a prefix length P in [1, 63], the prefix is read both
  ways, the 65 - P targets after it causally); the same targets with the model read
  causally; every character read causally. These targets sit later in their windows
  than the average character, with more context before them, so compare prefix_lm's
  figure with clm's on the same targets, not with clm's every-character loss.
- **mlm**: accuracy and loss on the masked positions (`evaluate_objective` with
  `MaskedLM`: 15% of the characters, 80% of those shown as [MASK], 10% as a random
  character, 10% unchanged), and both by what the input showed there: an unchanged
  character can be copied, so the [MASK] row is the honest one. Baselines: the accuracy
  of always answering the most frequent character (the space), the unigram loss.
- **span**: the loss over the decoder's whole target (`evaluate_objective` with
  `SpanCorruption`: per window of 64, 10 characters in 3 spans, each written after its
  sentinel, then EOS), split into the span characters (the first of each span, which only
  the encoder can tell, and the later ones, which also follow the characters the decoder
  has written) and the sentinels and EOS. The markers are nearly free (the sentinels come
  in order; only where a span ends is uncertain), so the whole-target figure flatters:
  set the characters' figure beside mlm's. Baselines: the unigram of the whole target
  (fitted on training targets), of the span characters, and the bigram of the later
  characters.
- **seq2seq**: the encoder-decoder (the span run's shape, fresh weights) learns to write
  a snippet of Shakespeare backwards: source 8-24 consecutive characters of the text
  (100,000 from the training split for training; 2,000 held out from the validation
  split), target the same characters reversed; 2,000 steps of 32 pairs (about 530 target
  tokens a batch, as many as 12 windows hold for clm). Printed: the exact-match accuracy
  on the held-out pairs (greedy decoding, the whole output right, `exact_match`), the
  teacher-forced token accuracy and loss (`evaluate_objective` with `Seq2Seq`), and as
  baselines the exact match of returning the source unreversed (palindromes only) and
  the token accuracy of always answering the most frequent character.

**Figures** (seed 1337; `--objective all`: 289 s on 2 cores at load average 1.2-1.9,
this run's own two threads included. The figures do not depend on the load; wall times
do: about 3 minutes a run at load 4-5):

  objective  metric (validation)                     2,000 steps    5,000 steps    baseline
  clm        loss, every character                   1.907          1.678          3.35 uni 2.48 bi
             loss, prefix_lm's targets               1.887          1.646          3.35 unigram
  prefix_lm  loss after the prefix                   2.006          1.752          3.35 unigram
             the same targets, read causally         2.003          1.747
  mlm        masked-token accuracy                   0.410          0.533          0.152 (space)
             masked-token loss                       2.110          1.612          3.35 unigram
             loss / accuracy where shown [MASK]      2.234 / 0.362  1.708 / 0.498
  span       loss, whole target                      2.095          2.010          3.39 unigram
             loss, the span characters               2.729          2.604          3.35 unigram
               first of each span / later ones       2.986 / 2.619  2.896 / 2.478  later: 2.48 bi
  seq2seq    held-out exact match (2,000 pairs)      0.993                         0.000 unreversed
             held-out token accuracy                 0.9995                        0.150 (space)

Wall times (training + evaluation) at 2,000 steps, load 1.2-1.9: clm 56 s, prefix_lm
59 s, mlm 62 s, span 46 s, seq2seq 67 s. The 5,000-step column: `--steps 5000`, one
objective at a time, 110-146 s each at load 1.8.

**Reading them next to each other.** All the losses are nats per predicted character
and share the unigram baseline (3.35): the distance below it is what each model took
from context. They differ in which characters are predicted and what each may see.
(1) The prefix LM conditions on exactly what the causal LM does (every character before
the target); it only lets the prefix characters see each other both ways. On the same
targets it scores 2.006 against clm's 1.887: the bidirectional prefix gains nothing here
(the prefix model read causally scores 2.003), and training on half the targets costs
0.12 nats at this budget (0.11 at 5,000 steps). (2) A masked character has context on
both sides, more than any causal model gets, so mlm's loss should end lowest; at 2,000
steps it is still above clm's (2.11 vs 1.91) because it has been trained on 15% of the
positions (230k targets against clm's 1.5M); at 5,000 steps it has passed it (1.61 vs
1.68) with 0.58M targets. (3) Span corruption is the slowest learner here, though it
is trained on as many characters as mlm (10 a window): its characters score 2.73 against
mlm's 2.23 where shown [MASK]; the later ones of a span (2.62) do worse than a bigram
count model (2.48), the first ones (2.99) worse still; at 5,000 steps the later ones
have only reached the bigram's 2.48. A likely reason, a reading rather
than a measurement: the decoder must learn to find each sentinel in the encoder's output
before the encoder gains anything from putting the neighbouring characters there, a
two-step dependency that masked LM does not have. Its whole-target loss (2.10) looks
like mlm's only because 4 of its 14 targets are nearly free sentinels and EOS. (4) The
encoder-decoder itself learns fast when the task is an alignment: reversal of held-out
Shakespeare snippets is 99.3% exact after the same 2,000 steps, a figure on another
scale from the losses above. Its 15 misses are 1-3 characters off, 12 of them inside
speaker names of The Tempest (PROSPERO, SEBASTIAN, GONZALO), which the training split
never contains: there the model's spelling habits win over copying.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# Import the numpyllm of this checkout: run as a script, Python puts benchmarks/ first on
# the path, not the repository root, and an editable install of another checkout would win.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpyllm  # noqa: E402
from numpyllm.autograd import no_grad  # noqa: E402
from numpyllm.data import train_val_split  # noqa: E402
from numpyllm.data.examples import Pairs  # noqa: E402
from numpyllm.nn import (GPT, GPTConfig, Transformer, TransformerConfig,  # noqa: E402
                         TransformerEncoderConfig, TransformerEncoderModel)
from numpyllm.tokenizers import CharTokenizer  # noqa: E402
from numpyllm.training import (CausalLM, MaskedLM, PrefixLM, Seq2Seq, SpanCorruption,  # noqa: E402
                               TrainConfig, Trainer, evaluate_objective, evaluate_tokens,
                               exact_match)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
OBJECTIVES = ("clm", "prefix_lm", "mlm", "span", "seq2seq")
CONTEXT = 64                     # characters a window
EVAL_BATCH = 32                  # evaluation batches (the figures depend on it: the random
EVAL_SEED = 0                    # draws of a batch are made per batch) and their seed
SPECIALS = ["[PAD]", "[MASK]", "[BOS]", "[EOS]", "[S0]", "[S1]", "[S2]"]


# ---------------------------------------------------------------------- the data
class Corpus:
    """The text, its tokenizer, the split, and the unigram baseline."""

    def __init__(self, path: Path):
        text = path.read_text(encoding="utf-8")
        self.tok = tok = CharTokenizer.from_text(text, special_tokens=SPECIALS)
        self.n_chars = len(tok.chars)
        self.vocab_size = tok.vocab_size
        ids = np.asarray(tok.encode(text), dtype=np.int64)
        self.train, self.val = train_val_split(ids, 0.1)
        sp = tok.special_tokens
        self.pad, self.mask, self.bos, self.eos = (sp[s] for s in SPECIALS[:4])
        self.sentinels = tuple(sp[s] for s in SPECIALS[4:])
        # unigram over the characters of the training split (add-one smoothed)
        counts = np.bincount(self.train, minlength=self.vocab_size)[:self.n_chars] + 1.0
        self.char_logp = np.log(counts / counts.sum())          # [n_chars]
        self.most_frequent = int(np.argmax(counts))
        # bigram: the character given the one before it (add-one smoothed)
        pairs = np.ones((self.n_chars, self.n_chars))
        np.add.at(pairs, (self.train[:-1], self.train[1:]), 1.0)
        self.bigram_logp = np.log(pairs / pairs.sum(axis=1, keepdims=True))   # [prev, next]

    def unigram_loss(self, targets: np.ndarray) -> float:
        """Mean -log p_train(c) over character targets."""
        return float(-self.char_logp[targets].mean())

    def bigram_loss(self, before: np.ndarray, targets: np.ndarray) -> float:
        """Mean -log p_train(c | the character before) over character targets."""
        return float(-self.bigram_logp[before, targets].mean())


def counted_targets(objective, data, batch_size=EVAL_BATCH, seed=EVAL_SEED) -> np.ndarray:
    """The targets `evaluate_objective(..., batch_size, seed)` scores, in its order: the
    same batches, drawn from the same generator."""
    rng = np.random.default_rng(seed)
    out = [b["y"][b["y"] != -100] for b in objective.batches(objective.dataset(data),
                                                             batch_size, rng)]
    return np.concatenate(out)


class CausalOnPrefixTargets(PrefixLM):
    """PrefixLM's targets (the same windows, prefix lengths and ignored positions) scored
    by reading the window causally: no `prefix_lengths` reaches the model. The model's
    loss on exactly the tokens a prefix LM is scored on."""

    def loss(self, model, batch):
        return model(batch["x"], targets=batch["y"])[1]


# ---------------------------------------------------------------------- models
def gpt(c: Corpus, seed: int) -> GPT:
    return GPT(GPTConfig(vocab_size=c.vocab_size, block_size=CONTEXT, n_layer=4, n_head=4,
                         n_embd=128, dropout=0.0, bias=False), rng=np.random.default_rng(seed))


def encoder(c: Corpus, seed: int) -> TransformerEncoderModel:
    # Sinusoidal positions, not BERT's learned ones: at this budget the fixed table wins
    # (masked-token loss 2.11, accuracy 0.410 after 2,000 steps) over a learned one, which
    # must first be learned (2.61, 0.297). Before the learned table was initialised at the
    # token embeddings' scale (std 1 beside tokens x sqrt(d); it was 0.02), that run
    # stayed a bag of characters: 3.04, 0.230.
    return TransformerEncoderModel(TransformerEncoderConfig(
        vocab_size=c.vocab_size, d_model=128, n_head=4, n_layers=4, d_ff=512, dropout=0.0,
        max_len=CONTEXT, norm="pre", activation="gelu", positions="sinusoidal",
        mlm_head=True), rng=np.random.default_rng(seed))


def encoder_decoder(c: Corpus, seed: int, max_len: int = CONTEXT) -> Transformer:
    return Transformer(TransformerConfig(
        c.vocab_size, c.vocab_size, d_model=128, n_head=4, n_encoder_layers=2,
        n_decoder_layers=2, d_ff=512, dropout=0.0, max_len=max_len, norm="pre",
        share_embeddings=True, pad_id=c.pad), rng=np.random.default_rng(seed))


def shape_of(model) -> str:
    cfg = model.config
    if isinstance(model, GPT):
        return (f"GPT {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} wide, "
                f"context {cfg.block_size}")
    if isinstance(model, TransformerEncoderModel):
        return (f"encoder {cfg.n_layers} layers, {cfg.n_head} heads, {cfg.d_model} wide, "
                f"d_ff {cfg.d_ff}, context {cfg.max_len}, MLM head")
    return (f"encoder-decoder {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, "
            f"{cfg.n_head} heads, {cfg.d_model} wide, d_ff {cfg.d_ff}, shared embeddings")


def recipe(steps: int, seed: int, batch_size: int = 12, lr: float = 1e-3) -> TrainConfig:
    """nanoGPT's CPU recipe, its schedule stretched over `steps`."""
    return TrainConfig(batch_size=batch_size, max_iters=steps, learning_rate=lr,
                       min_lr=lr / 10, warmup_iters=min(100, steps // 10),
                       lr_decay_iters=steps, beta1=0.9, beta2=0.99, weight_decay=0.1,
                       grad_clip=1.0, eval_interval=max(steps // 4, 1), eval_iters=20,
                       seed=seed)


# ---------------------------------------------------------------------- running
def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def train(name, model, train_data, val_data, objective, cfg) -> tuple[Trainer, float]:
    """Train; print the 20-batch loss estimates as they come; the wall time."""
    def report(event):
        if event["kind"] == "eval":
            val = f"  val {event['val_loss']:.4f}" if "val_loss" in event else ""
            print(f"  step {event['step']:5d}  train {event['train_loss']:.4f}{val}  "
                  f"({time.perf_counter() - start:6.1f} s)", flush=True)

    print(f"[{name}] {shape_of(model)}: {model.num_parameters():,} parameters; "
          f"{cfg.max_iters} steps of batch {cfg.batch_size}; load {load()}", flush=True)
    trainer = Trainer(model, train_data, val_data, cfg, objective=objective,
                      callbacks=[report])
    start = time.perf_counter()
    trainer.fit()
    return trainer, time.perf_counter() - start


def finish(name: str, rows: list, started: float, train_s: float) -> dict:
    total = time.perf_counter() - started
    for label, value in rows:
        print(f"  {label:<58} {value}")
    print(f"  wall time {total:.1f} s (training {train_s:.1f} s, evaluation "
          f"{total - train_s:.1f} s); load {load()}\n", flush=True)
    return {"objective": name, "rows": rows, "seconds": total}


def run_clm(c: Corpus, steps: int, seed: int) -> dict:
    started = time.perf_counter()
    model = gpt(c, seed)
    objective = CausalLM(CONTEXT)
    _, train_s = train("clm", model, c.train, c.val, objective, recipe(steps, seed))
    every = evaluate_tokens(model, c.val, batch_size=EVAL_BATCH)
    same = evaluate_objective(model, CausalOnPrefixTargets(CONTEXT), c.val,
                              batch_size=EVAL_BATCH, seed=EVAL_SEED)
    prefix_targets = counted_targets(PrefixLM(CONTEXT), c.val)
    rows = [("val loss, every character (evaluate_tokens)",
             f"{every['loss']:.4f}  (ppl {every['perplexity']:.2f}, {every['tokens']:,} chars)"),
            ("val loss on prefix_lm's targets, read causally",
             f"{same['loss']:.4f}  ({same['count']:,} targets)"),
            ("unigram baseline, every character", f"{c.unigram_loss(c.val[1:]):.4f}"),
            ("bigram baseline (the character before), every character",
             f"{c.bigram_loss(c.val[:-1], c.val[1:]):.4f}"),
            ("unigram baseline, prefix_lm's targets", f"{c.unigram_loss(prefix_targets):.4f}")]
    return finish("clm", rows, started, train_s)


def run_prefix_lm(c: Corpus, steps: int, seed: int) -> dict:
    started = time.perf_counter()
    model = gpt(c, seed)
    objective = PrefixLM(CONTEXT)
    _, train_s = train("prefix_lm", model, c.train, c.val, objective, recipe(steps, seed))
    score = evaluate_objective(model, objective, c.val, batch_size=EVAL_BATCH, seed=EVAL_SEED)
    causal = evaluate_objective(model, CausalOnPrefixTargets(CONTEXT), c.val,
                                batch_size=EVAL_BATCH, seed=EVAL_SEED)
    every = evaluate_tokens(model, c.val, batch_size=EVAL_BATCH)
    targets = counted_targets(objective, c.val)
    rows = [("val loss after the prefix (prefix read both ways)",
             f"{score['loss']:.4f}  (ppl {score['perplexity']:.2f}, {score['count']:,} targets)"),
            ("the same targets, the model read causally", f"{causal['loss']:.4f}"),
            ("every character, read causally (evaluate_tokens)", f"{every['loss']:.4f}"),
            ("unigram baseline, the same targets", f"{c.unigram_loss(targets):.4f}")]
    return finish("prefix_lm", rows, started, train_s)


def mlm_breakdown(model, objective, c: Corpus) -> dict:
    """Accuracy and loss on the masked positions by what the input showed there: [MASK],
    a random character, or the character itself (which the model can copy), over the
    batches `evaluate_objective` scores."""
    rng = np.random.default_rng(EVAL_SEED)
    sums = {k: [0, 0.0, 0] for k in ("[MASK]", "random", "unchanged")}   # right, nll, n
    model.eval()
    with no_grad():
        for batch in objective.batches(objective.dataset(c.val), EVAL_BATCH, rng):
            x, y = batch["x"], batch["y"]
            logits = model(x)[0].data.astype(np.float64)                    # [B, T, V]
            logits -= logits.max(axis=-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
            counted = y != -100
            safe = np.where(counted, y, 0)
            nll = -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]   # [B, T]
            right = logits.argmax(axis=-1) == y
            kinds = {"[MASK]": x == c.mask, "unchanged": x == y}
            kinds["random"] = ~kinds["[MASK]"] & ~kinds["unchanged"]
            for k, where in kinds.items():
                where = where & counted
                sums[k][0] += int(right[where].sum())
                sums[k][1] += float(nll[where].sum())
                sums[k][2] += int(where.sum())
    model.train()
    return {k: (r / n, s / n, n) for k, (r, s, n) in sums.items()}


def run_mlm(c: Corpus, steps: int, seed: int) -> dict:
    started = time.perf_counter()
    model = encoder(c, seed)
    objective = MaskedLM(CONTEXT, mask_id=c.mask, vocab_size=c.vocab_size,
                         special_ids=(c.pad, c.bos, c.eos) + c.sentinels)
    _, train_s = train("mlm", model, c.train, c.val, objective, recipe(steps, seed))
    score = evaluate_objective(model, objective, c.val, batch_size=EVAL_BATCH, seed=EVAL_SEED)
    targets = counted_targets(objective, c.val)
    rows = [("masked-token accuracy",
             f"{score['accuracy']:.4f}  ({score['count']:,} masked characters)"),
            ("masked-token loss", f"{score['loss']:.4f}  (ppl {score['perplexity']:.2f})"),
            *((f"  shown as {kind}: accuracy, loss",
               f"{acc:.4f}, {nll:.4f}  ({n:,})")
              for kind, (acc, nll, n) in mlm_breakdown(model, objective, c).items()),
            ("baseline accuracy: always the most frequent character "
             f"({c.tok.decode([c.most_frequent])!r})",
             f"{float(np.mean(targets == c.most_frequent)):.4f}"),
            ("unigram baseline loss, the same positions", f"{c.unigram_loss(targets):.4f}")]
    return finish("mlm", rows, started, train_s)


def span_breakdown(model, objective, c: Corpus) -> dict:
    """The span model's mean loss on three kinds of target, over the batches
    `evaluate_objective` scores: the first character of each span (after its sentinel:
    only the encoder tells what it is), the later characters of a span (the decoder has
    also written the characters before them), and the sentinels and EOS."""
    rng = np.random.default_rng(EVAL_SEED)
    sums = {k: [0.0, 0] for k in ("first", "later", "markers", "later_bigram")}
    model.eval()
    with no_grad():
        for batch in objective.batches(objective.dataset(c.val), EVAL_BATCH, rng):
            logits = model(batch["src"], batch["tgt_in"])[0].data.astype(np.float64)
            logits -= logits.max(axis=-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
            y = batch["y"]
            nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]     # [B, L]
            is_char = y < c.n_chars
            after_sentinel = np.isin(batch["tgt_in"], c.sentinels)           # [B, L]
            kinds = {"first": is_char & after_sentinel, "later": is_char & ~after_sentinel,
                     "markers": ~is_char}
            for key, where in kinds.items():
                sums[key][0] += float(nll[where].sum())
                sums[key][1] += int(where.sum())
            later = kinds["later"]                 # the character before is the input there
            sums["later_bigram"][0] -= float(c.bigram_logp[batch["tgt_in"][later], y[later]].sum())
            sums["later_bigram"][1] += int(later.sum())
    model.train()
    out = {k: (s / n, n) for k, (s, n) in sums.items()}
    total = sums["first"][0] + sums["later"][0]
    out["chars"] = (total / (sums["first"][1] + sums["later"][1]),
                    sums["first"][1] + sums["later"][1])
    return out


def run_span(c: Corpus, steps: int, seed: int) -> dict:
    started = time.perf_counter()
    objective = SpanCorruption(CONTEXT, c.sentinels, eos_id=c.eos, bos_id=c.bos)
    model = encoder_decoder(c, seed)
    _, train_s = train("span", model, c.train, c.val, objective, recipe(steps, seed))
    score = evaluate_objective(model, objective, c.val, batch_size=EVAL_BATCH, seed=EVAL_SEED)
    parts = span_breakdown(model, objective, c)
    targets = counted_targets(objective, c.val)
    # the unigram of the whole target (characters, sentinels, EOS), fitted on the
    # training split's targets
    train_targets = counted_targets(objective, c.train[:200_000], seed=EVAL_SEED + 1)
    freq = np.bincount(train_targets, minlength=c.vocab_size) + 1.0
    logp = np.log(freq / freq.sum())
    chars = targets[targets < c.n_chars]
    rows = [("val loss, whole target (evaluate_objective)",
             f"{score['loss']:.4f}  (ppl {score['perplexity']:.2f}, {score['count']:,} tokens)"),
            ("  of which the span characters", "{:.4f}  ({:,})".format(*parts["chars"])),
            ("    the first of each span", "{:.4f}  ({:,})".format(*parts["first"])),
            ("    the later ones", "{:.4f}  ({:,})".format(*parts["later"])),
            ("  of which the sentinels and EOS", "{:.4f}  ({:,})".format(*parts["markers"])),
            ("unigram baseline, whole target", f"{float(-logp[targets].mean()):.4f}"),
            ("unigram baseline, the span characters", f"{c.unigram_loss(chars):.4f}"),
            ("bigram baseline, the later ones", "{:.4f}".format(parts["later_bigram"][0]))]
    return finish("span", rows, started, train_s)


def snippets(ids: np.ndarray, n: int, rng, lo: int = 8, hi: int = 24) -> list:
    """`n` runs of lo..hi consecutive characters of `ids`, at random places."""
    lengths = rng.integers(lo, hi + 1, size=n)
    starts = rng.integers(0, len(ids) - hi, size=n)
    return [ids[s:s + k] for s, k in zip(starts, lengths)]


def run_seq2seq(c: Corpus, steps: int, seed: int, n_train: int = 100_000,
                n_held_out: int = 2_000) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    held = snippets(c.val, n_held_out, np.random.default_rng(seed + 1))
    seen = {s.tobytes() for s in held}
    train_src = [s for s in snippets(c.train, n_train, rng) if s.tobytes() not in seen]
    train_pairs = Pairs(train_src, [s[::-1] for s in train_src])
    held_pairs = Pairs(held, [s[::-1] for s in held])
    objective = Seq2Seq(c.pad, c.bos, c.eos)
    model = encoder_decoder(c, seed, max_len=32)
    print(f"  reversal of Shakespeare snippets of 8-24 characters: {len(train_pairs):,} "
          f"training pairs (training split), {len(held_pairs):,} held out (validation split)")
    _, train_s = train("seq2seq", model, train_pairs, held_pairs, objective,
                       recipe(steps, seed, batch_size=32))
    score = evaluate_objective(model, objective, held_pairs, batch_size=EVAL_BATCH,
                               seed=EVAL_SEED)
    match = exact_match(model, held_pairs, bos_id=c.bos, eos_id=c.eos, batch_size=250)
    targets = np.concatenate(held_pairs.targets)
    palindromes = float(np.mean([(s == s[::-1]).all() for s in held]))
    rows = [("held-out exact match (greedy decoding)", f"{match:.4f}  ({len(held):,} pairs)"),
            ("held-out token accuracy (teacher forcing, with EOS)",
             f"{score['accuracy']:.4f}  ({score['count']:,} tokens)"),
            ("held-out loss (teacher forcing)", f"{score['loss']:.4f}"),
            ("baseline exact match: the source unreversed", f"{palindromes:.4f}"),
            ("baseline token accuracy: the most frequent character",
             f"{float(np.mean(targets == c.most_frequent)):.4f}")]
    return finish("seq2seq", rows, started, train_s)


RUNS = {"clm": run_clm, "prefix_lm": run_prefix_lm, "mlm": run_mlm, "span": run_span,
        "seq2seq": run_seq2seq}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objective", choices=OBJECTIVES + ("all",), default="all",
                    help="which run; all: the five in turn (default)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="Tiny Shakespeare's path")
    ap.add_argument("--steps", type=int, default=2000,
                    help="optimizer steps of each run (default 2000; the schedule follows)")
    ap.add_argument("--seed", type=int, default=1337,
                    help="initialisation and training batches (the evaluation's are fixed)")
    args = ap.parse_args(argv)
    path = Path(args.data)
    if not path.is_file():
        sys.exit(f"{path} not found: this benchmark needs Tiny Shakespeare "
                 "(../shared/data/tinyshakespeare.txt); pass its path with --data")
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()              # as the numpyllm command line does
    corpus = Corpus(path)
    print(f"Tiny Shakespeare: {len(corpus.train):,} training / {len(corpus.val):,} "
          f"validation characters, vocabulary {corpus.n_chars} characters + "
          f"{len(SPECIALS)} special tokens; {os.cpu_count()} CPUs, load {load()}; numpyllm "
          f"from {Path(numpyllm.__file__).parent}\n")
    names = OBJECTIVES if args.objective == "all" else (args.objective,)
    start = time.perf_counter()
    for name in names:
        RUNS[name](corpus, args.steps, args.seed)
    if len(names) > 1:
        print(f"all: {time.perf_counter() - start:.1f} s; load {load()}")


if __name__ == "__main__":
    main()
