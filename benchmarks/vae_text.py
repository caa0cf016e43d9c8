"""A sentence VAE on SMS messages, with and without the cures for posterior collapse.
Figures, not a test: it prints them.

    python benchmarks/vae_text.py [--data ../shared/data/sms_spam/SMSSpamCollection]
        [--steps 1500] [--max-len 20] [--seed 1337] [--free-bits 1.0]
        [--word-dropout 0.4] [--variants plain,anneal,...]

Needs the SMS Spam Collection (`../shared/data/sms_spam/SMSSpamCollection` from the
repository root, or --data: that file, or any file of one sentence per line); it exits
with a message where the file is absent.

**The data.** The 5,574 messages (ham and spam, the label dropped), byte-level BPE of
1,024 tokens (with <pad>, <s>, </s>, <unk>) trained on all of them; the messages of at
most --max-len tokens are kept (2,373 of 5,574 at 20, 13 tokens on average), in file
order, the last 10% held out.

**The model.** `SentenceVAE`: a 2-block encoder and a 2-block GPT decoder, 64 wide,
4 heads, Z = 16 latent dimensions added at every decoder position; AdamW, batch 32,
--steps steps, learning rate 3e-3 with warmup and cosine decay, seed fixed. The same
initial weights for every variant:

  plain         the ELBO as it is (beta 1 from the first step)
  anneal        KL weight linear from 0 to 1 over the first half of the steps
  free bits     lambda = --free-bits nats per dimension (1.0; Kingma et al. 2016)
  word dropout  --word-dropout of the decoder's input tokens replaced by <unk> (40%;
                Bowman et al. 2016)
  all           anneal + free bits + word dropout

**What is printed**, per variant, on the held-out messages: the negative ELBO per
message (one sample of z; lower is better) with its reconstruction and KL terms, the
active units (Cov_x(E_q[z_j]) > 0.01; Burda et al. 2016), the reconstruction's token
accuracy (greedy decoding from the posterior mean), and the denoising accuracy: each
message corrupted (10% of tokens dropped, 10% of adjacent pairs swapped, 10% masked with
<unk>), encoded, decoded greedily, and scored token by token against the clean message
(the corrupted input's own score beside it). Then a few reconstructions and one
interpolation from the last variant. The figures of one run are in docs/vae.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from numpyllm.autograd import no_grad  # noqa: E402
from numpyllm.generate.vae import (corrupt, interpolate, posterior_stats,  # noqa: E402
                                   reconstruct, token_accuracy)
from numpyllm.nn.vae import SentenceVAE, SentenceVAEConfig  # noqa: E402
from numpyllm.tokenizers import BPETokenizer  # noqa: E402
from numpyllm.training import TrainConfig  # noqa: E402
from numpyllm.training.objectives import ELBO  # noqa: E402
from numpyllm.training.vae import VAETrainer  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection"
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def variants(steps: int, free_bits: float, word_dropout: float) -> dict:
    return {
        "plain": {},
        "anneal": {"kl_anneal": steps // 2},
        "free bits": {"free_bits": free_bits},
        "word dropout": {"word_dropout": word_dropout},
        "all": {"kl_anneal": steps // 2, "free_bits": free_bits, "word_dropout": word_dropout},
    }


def read_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line and line.split("\t", 1)[0] in ("ham", "spam"):
            line = line.split("\t", 1)[1]              # the SMS collection: drop the label
        if line.strip():
            lines.append(line.strip())
    return lines


def negative_elbo(model, objective, sentences, seed: int) -> tuple[float, float]:
    """(reconstruction, KL) per sentence, one sample of z each, in eval mode."""
    totals = np.zeros(3)
    model.eval()
    with no_grad():
        for batch in objective.batches(objective.dataset(sentences), 64,
                                       np.random.default_rng(seed)):
            s = objective.scores(model, batch)
            totals += (s["recon"], s["kl"], s["count"])
    model.train()
    return totals[0] / totals[2], totals[1] / totals[2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--free-bits", type=float, default=1.0, help="lambda, nats per dimension")
    p.add_argument("--word-dropout", type=float, default=0.4)
    p.add_argument("--variants", default=None, help="comma-separated names (default: all)")
    args = p.parse_args()
    if not args.data.is_file():
        print(f"vae_text: {args.data} not found (the SMS Spam Collection, in ../shared/data): "
              "pass --data FILE of one sentence per line", file=sys.stderr)
        return 2
    table = variants(args.steps, args.free_bits, args.word_dropout)
    chosen = list(table) if args.variants is None else args.variants.split(",")
    unknown = [v for v in chosen if v not in table]
    if unknown:
        print(f"vae_text: unknown variants {unknown}; choose among {list(table)}",
              file=sys.stderr)
        return 2

    start = time.perf_counter()
    lines = read_lines(args.data)
    tokenizer = BPETokenizer(special_tokens=SPECIALS).train("\n".join(lines), 1024)
    encoded = [tokenizer.encode_ordinary(s) for s in lines]
    sentences = [ids for ids in encoded if 1 <= len(ids) <= args.max_len]
    n_val = len(sentences) // 10
    train, val = sentences[:-n_val], sentences[-n_val:]
    special = tokenizer.special_tokens
    cfg = SentenceVAEConfig(vocab_size=tokenizer.vocab_size, max_len=args.max_len, n_layer=2,
                            n_encoder_layer=2, n_head=4, n_embd=64, latent=16,
                            latent_mode="add", pad_id=special["<pad>"], bos_id=special["<s>"],
                            eos_id=special["</s>"], unk_id=special["<unk>"])
    tcfg = TrainConfig(batch_size=32, max_iters=args.steps, learning_rate=3e-3, min_lr=3e-4,
                       warmup_iters=args.steps // 20, lr_decay_iters=args.steps,
                       weight_decay=0.01, eval_interval=args.steps, eval_iters=1,
                       seed=args.seed)
    rng = np.random.default_rng(args.seed)
    noisy = [corrupt(s, rng, drop=0.1, swap=0.1, mask=0.1, mask_id=cfg.unk_id) for s in val]
    print(f"{len(lines):,} messages of {args.data.name}; BPE of {tokenizer.vocab_size} tokens; "
          f"{len(sentences):,} of at most {args.max_len} tokens: {len(train):,} train / "
          f"{len(val):,} held out; {args.steps} steps of batch {tcfg.batch_size} per variant")
    print(f"corrupted held-out messages (10% dropped, 10% swapped, 10% masked) match the "
          f"clean ones at {token_accuracy(noisy, val):.3f} of their tokens")
    print()
    header = ("| variant | -ELBO | recon | KL | active units | recon acc | denoise acc "
              "| seconds |")
    rows, model = [header, "|" + " --- |" * 8], None
    for name in chosen:
        t0 = time.perf_counter()
        model = SentenceVAE(cfg, rng=np.random.default_rng(args.seed))
        objective = ELBO.for_model(model, **table[name])
        trainer = VAETrainer(model, train, None, tcfg, objective=objective)
        for _ in range(args.steps):
            trainer.train_step()
        recon, kl = negative_elbo(model, objective, val, args.seed)
        stats = posterior_stats(model, val)
        accuracy = token_accuracy(reconstruct(model, val), val)
        denoised = token_accuracy(reconstruct(model, noisy), val)
        seconds = time.perf_counter() - t0
        rows.append(f"| {name} | {recon + kl:.2f} | {recon:.2f} | {kl:.2f} | "
                    f"{stats['active_units']} / {cfg.latent} | {accuracy:.3f} | {denoised:.3f} "
                    f"| {seconds:.0f} |")
        print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    print()
    show = lambda ids: repr(tokenizer.decode(ids))            # noqa: E731
    print(f"reconstructions ({chosen[-1]}):")
    for src, got in zip(val[:5], reconstruct(model, val[:5])):
        print(f"  {show(src)}\n    -> {show(got)}")
    print(f"denoising ({chosen[-1]}):")
    for src, bad, got in zip(val[:3], noisy[:3], reconstruct(model, noisy[:3])):
        print(f"  {show(src)}\n    corrupted {show(bad)}\n    -> {show(got)}")
    a, b = val[0], val[3]
    print(f"interpolation ({chosen[-1]}) from {show(a)} to {show(b)}:")
    for t, ids in zip(np.linspace(0, 1, 5), interpolate(model, a, b, 5)):
        print(f"  {t:.2f}  {show(ids)}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
