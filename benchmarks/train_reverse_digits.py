"""The encoder-decoder Transformer learns to reverse digit strings, on CPU, in float32.

    source  3 1 4 1 5 9 PAD PAD          digits, length 4-8, right-padded
    tgt_in  BOS 9 5 1 4 1 3 PAD PAD      the reversed digits, shifted right
    targets 9 5 1 4 1 3 EOS PAD PAD      PAD targets count for nothing

Training batches are drawn fresh at every step, never from the held-out set: a fixed
set of random strings the model never sees. After training, a greedy decoding loop
(encode once, then one token at a time until EOS) reverses every held-out string, and
the script prints the exact-match rate (the whole output sequence right) and the wall
time. (The generation issue will add library decoding with a cross-attention cache;
this loop recomputes the decoder over the prefix at each step, which is fine here.)

    python benchmarks/train_reverse_digits.py             # about a minute on 2 cores
    python benchmarks/train_reverse_digits.py --steps 600 --norm pre
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from numpyllm import no_grad
from numpyllm.nn import Transformer, TransformerConfig
from numpyllm.optim import AdamW, CosineWithWarmup, clip_grad_norm_

PAD, BOS, EOS = 0, 1, 2
DIGIT0 = 3                       # token of digit 0; digits are tokens 3..12
VOCAB = DIGIT0 + 10


def sample_strings(rng, n, min_len, max_len, exclude=frozenset()):
    """`n` random digit strings (tuples of 0-9) of length min_len..max_len, none in `exclude`."""
    out = []
    while len(out) < n:
        s = tuple(rng.integers(0, 10, size=rng.integers(min_len, max_len + 1)).tolist())
        if s not in exclude:
            out.append(s)
    return out


def make_batch(strings, max_len):
    """Token arrays (src [B, max_len], lengths [B], tgt_in and targets [B, max_len + 1])."""
    B = len(strings)
    src = np.full((B, max_len), PAD, dtype=np.int64)
    tgt_in = np.full((B, max_len + 1), PAD, dtype=np.int64)
    targets = np.full((B, max_len + 1), PAD, dtype=np.int64)
    lengths = np.array([len(s) for s in strings])
    for b, s in enumerate(strings):
        digits = np.array(s) + DIGIT0
        n = len(s)
        src[b, :n] = digits
        tgt_in[b, 0], tgt_in[b, 1:n + 1] = BOS, digits[::-1]
        targets[b, :n], targets[b, n] = digits[::-1], EOS
    return src, lengths, tgt_in, targets


def greedy_decode(model, src, lengths, max_new):
    """Greedy decoding: the encoder runs once, then each step feeds the tokens so far
    and appends the most likely next one, until every row has produced EOS."""
    B = len(src)
    with no_grad():
        memory = model.encode(src, src_lengths=lengths)
        out = np.full((B, 1), BOS, dtype=np.int64)
        done = np.zeros(B, dtype=bool)
        for _ in range(max_new):
            logits = model.decode(out, memory, src_lengths=lengths)   # [B, t, V]
            nxt = np.where(done, PAD, logits.data[:, -1].argmax(-1))
            out = np.concatenate([out, nxt[:, None]], axis=1)
            done |= nxt == EOS
            if done.all():
                break
    return out[:, 1:]


def exact_match(model, strings, max_len, batch=500):
    hits = 0
    for i in range(0, len(strings), batch):
        chunk = strings[i:i + batch]
        src, lengths, _, targets = make_batch(chunk, max_len)
        pred = greedy_decode(model, src, lengths, max_len + 1)
        for b, s in enumerate(chunk):
            want = targets[b, :len(s) + 1]                      # reversed digits, EOS
            got = pred[b, :len(s) + 1]
            hits += len(got) == len(want) and bool((got == want).all())
    return hits / len(strings)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2, help="encoder and decoder layers each")
    ap.add_argument("--norm", choices=["post", "pre"], default="post")
    ap.add_argument("--min-len", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=8)
    ap.add_argument("--held-out", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    held_out = sample_strings(np.random.default_rng(args.seed + 1), args.held_out,
                              args.min_len, args.max_len)
    exclude = frozenset(held_out)

    cfg = TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=args.d_model,
                            n_head=args.heads, n_encoder_layers=args.layers,
                            n_decoder_layers=args.layers, d_ff=4 * args.d_model, dropout=0.0,
                            max_len=args.max_len + 1, norm=args.norm, share_embeddings=True,
                            pad_id=PAD)
    model = Transformer(cfg, rng=rng)                         # float32
    opt = AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01)
    schedule = CosineWithWarmup(max_lr=args.lr, min_lr=args.lr / 20,
                                warmup_iters=args.steps // 10, lr_decay_iters=args.steps)
    print(f"Transformer {args.layers}+{args.layers} layers, d_model {args.d_model}, "
          f"{args.heads} heads, {args.norm}-LN, {model.num_parameters():,} parameters; "
          f"{args.steps} steps of {args.batch}, strings of {args.min_len}-{args.max_len} digits")

    start = time.perf_counter()
    model.train()
    for step in range(args.steps):
        opt.lr = schedule(step)
        src, lengths, tgt_in, targets = make_batch(
            sample_strings(rng, args.batch, args.min_len, args.max_len, exclude), args.max_len)
        _, loss = model(src, tgt_in, targets, src_lengths=lengths)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  lr {opt.lr:.2e}  "
                  f"{time.perf_counter() - start:6.1f} s")
    train_time = time.perf_counter() - start

    model.eval()
    t0 = time.perf_counter()
    acc = exact_match(model, held_out, args.max_len)
    eval_time = time.perf_counter() - t0
    print(f"held-out exact match: {acc:.2%} of {len(held_out)} unseen strings "
          f"(greedy decoding)")
    print(f"wall time: train {train_time:.1f} s, eval {eval_time:.1f} s, "
          f"total {train_time + eval_time:.1f} s")


if __name__ == "__main__":
    main()
