"""Tokenizer speed, as ratios against references run in this same process, one thread.

1. Encode Tiny Shakespeare with GPT-2's vocabulary: numpyllm's BPETokenizer against
   tiktoken's GPT-2 encoding built from the same files. numpyllm is timed twice: "cold"
   (a fresh tokenizer every run: its chunk cache starts with just the vocabulary) and
   "warm" (the cache already holds every chunk of the text). Target: cold throughput at
   least 1/3 of tiktoken's.
2. Train a 1,024-token byte-level BPE vocabulary on Tiny Shakespeare: numpyllm's
   incremental trainer against Hugging Face `tokenizers`' BpeTrainer with the ByteLevel
   pre-tokenizer. Target: at most 5x its time.

References that are not installed are skipped with a message; only numpy (and regex)
are needed. Figures are medians of several runs (the machines are shared and noisy).

    python benchmarks/bench_tokenizer.py [--repeat 5] [--data FILE] [--gpt2-dir DIR]
"""
from __future__ import annotations

import os

# One thread for the Rust references (read when they start their thread pools).
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from numpyllm.tokenizers import BPETokenizer, CharTokenizer, gpt2  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def median_time(fn, repeat: int, setup=None) -> float:
    """Median wall time of `fn(setup())` over `repeat` runs; setup is not timed."""
    times = []
    for _ in range(repeat):
        arg = setup() if setup else None
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_encode(text: str, gpt2_dir: Path, repeat: int) -> None:
    enc, bpe = gpt2_dir / "encoder.json", gpt2_dir / "vocab.bpe"
    if not (enc.exists() and bpe.exists()):
        print(f"encode: skipped, GPT-2's files are not in {gpt2_dir}")
        return
    mb = len(text.encode("utf-8")) / 1e6
    ranks, merges, special = gpt2.read_gpt2_vocab(enc, bpe)
    warm = BPETokenizer(ranks, special_tokens=special)
    ids = warm.encode_ordinary(text)
    t_cold = median_time(lambda tok: tok.encode_ordinary(text), repeat,
                         setup=lambda: BPETokenizer(ranks, special_tokens=special))
    t_warm = median_time(lambda _: warm.encode_ordinary(text), repeat)
    print(f"encode {mb:.2f} MB with GPT-2's vocabulary ({len(ids):,} tokens), median of {repeat}")
    print(f"  numpyllm cold cache   {t_cold * 1e3:8.1f} ms  {mb / t_cold:6.2f} MB/s")
    print(f"  numpyllm warm cache   {t_warm * 1e3:8.1f} ms  {mb / t_warm:6.2f} MB/s")
    try:
        import tiktoken
    except ImportError:
        print("  tiktoken: not installed, no reference (pip install tiktoken)")
        return
    reference = tiktoken.Encoding(name="gpt2-local", pat_str=gpt2.GPT2_PATTERN,
                                  mergeable_ranks=ranks, special_tokens=special,
                                  explicit_n_vocab=50257)
    if reference.encode_ordinary(text) != ids:
        print("  WARNING: ids differ from tiktoken's")
    t_ref = median_time(lambda _: reference.encode_ordinary(text), repeat)
    print(f"  tiktoken              {t_ref * 1e3:8.1f} ms  {mb / t_ref:6.2f} MB/s")
    print(f"  throughput ratio numpyllm/tiktoken: cold {t_ref / t_cold:.2f}, "
          f"warm {t_ref / t_warm:.2f}  (target >= 0.33)")


def bench_train(text: str, vocab_size: int, repeat: int) -> None:
    t_ours = median_time(lambda _: BPETokenizer().train(text, vocab_size), repeat)
    print(f"train a {vocab_size}-token byte-level BPE on {len(text):,} characters, "
          f"median of {repeat}")
    print(f"  numpyllm              {t_ours:8.3f} s")
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        print("  HF tokenizers: not installed, no reference (pip install tokenizers)")
        return

    def hf_train(_):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([text], trainer=trainer)
        return tok

    t_ref = median_time(hf_train, repeat)
    print(f"  HF tokenizers         {t_ref:8.3f} s")
    print(f"  time ratio numpyllm/HF: {t_ours / t_ref:.2f}  (target <= 5)")


def bench_char(text: str, repeat: int) -> None:
    tok = CharTokenizer.from_text(text)
    mb = len(text.encode("utf-8")) / 1e6
    t_enc = median_time(lambda _: tok.encode(text), repeat)
    ids = tok.encode(text)
    t_dec = median_time(lambda _: tok.decode(ids), repeat)
    print(f"character tokenizer: encode {mb / t_enc:6.1f} MB/s, decode {mb / t_dec:6.1f} MB/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "tinyshakespeare.txt")
    parser.add_argument("--gpt2-dir", type=Path, default=SHARED_DATA / "gpt2")
    parser.add_argument("--vocab-size", type=int, default=1024)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"no corpus at {args.data}: pass --data FILE", file=sys.stderr)
        return 1
    text = args.data.read_text(encoding="utf-8")
    bench_encode(text, args.gpt2_dir, args.repeat)
    print()
    bench_train(text, args.vocab_size, args.repeat)
    print()
    bench_char(text, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
