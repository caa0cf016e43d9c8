"""Our three trainers (byte-level BPE, WordPiece, Unigram) against Hugging Face's.

For each corpus (Tiny Shakespeare, and a slice of the default corpus: the Python standard
library's source) and each vocabulary size, both sides train on the first 90% of the text
and encode the last 10%:

- **tokens per byte** of the held-out text (lower: the vocabulary compresses better);
- **training time**, and **encoding throughput** (MB/s, a fresh tokenizer each run, so
  our word caches start empty; theirs has none to warm).

The pairs compared:

    bpe        numpyllm BPETokenizer (GPT-2 split)   tokenizers BpeTrainer, ByteLevel
    wordpiece  numpyllm WordPieceTokenizer           tokenizers WordPieceTrainer, BertNormalizer
                                                     + BertPreTokenizer
    unigram    numpyllm UnigramTokenizer             tokenizers UnigramTrainer, Metaspace

Both Unigram sides are given the same number of pieces and no byte fallback
(`tokenizers`' trainer has none; with it ours would spend 256 of them on bytes).

Timing as a skeptic would: each Rust side on one thread (RAYON_NUM_THREADS=1, set before
`tokenizers` starts its pool), ours and theirs alternated in each round (ours first in
even rounds, theirs first in odd ones), the median over rounds and the ratio of medians
printed, never a lone time. `tokenizers` runs in this same process (it is a Rust
extension with no BLAS of its own); training is timed `--train-rounds` times (default 1:
our Unigram trainer takes a minute per run) and encoding `--rounds` times.

    python benchmarks/bench_subword.py [--sizes 1000 4000] [--kinds bpe wordpiece unigram]
        [--corpora shakespeare default] [--bytes 1000000] [--rounds 3] [--train-rounds 1]
    python benchmarks/bench_subword.py --em-trace --sizes 4000     # the EM log-likelihood

Needs `pip install tokenizers` (the reference); prints a markdown table per corpus.
"""
from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from numpyllm.tokenizers import BPETokenizer, UnigramTokenizer, WordPieceTokenizer  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def ours_train(kind: str, text: str, size: int):
    if kind == "bpe":
        return BPETokenizer().train(text, size)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(text, size, special_tokens=SPECIALS)
    return UnigramTokenizer.train(text, size, byte_fallback=False)


def theirs_train(kind: str, text: str, size: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=size, special_tokens=SPECIALS,
                                            show_progress=False)
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=size, special_tokens=["<unk>"],
                                          unk_token="<unk>", show_progress=False)
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def ours_encode(tok, text: str) -> list[int]:
    return tok.encode_ordinary(text) if isinstance(tok, BPETokenizer) else tok.encode(text)


def _fresh(tok):
    """The same tokenizer with empty caches (encoding is timed cold)."""
    if isinstance(tok, BPETokenizer):
        return BPETokenizer(tok.mergeable_ranks, pattern=tok.pattern)
    tok._cache = {}
    return tok


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench(kind: str, train: str, held: str, size: int, rounds: int, train_rounds: int) -> dict:
    mb = len(held.encode("utf-8")) / 1e6
    t_ours, t_theirs, e_ours, e_theirs = [], [], [], []
    ours = theirs = None
    for r in range(train_rounds):
        order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
        for side in order:
            if side == "ours":
                t, ours = timed(lambda: ours_train(kind, train, size))
                t_ours.append(t)
            else:
                t, theirs = timed(lambda: theirs_train(kind, train, size))
                t_theirs.append(t)
    for r in range(rounds):
        order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
        for side in order:
            if side == "ours":
                tok = _fresh(ours)
                t, ids_ours = timed(lambda: ours_encode(tok, held))
                e_ours.append(t)
            else:
                t, enc = timed(lambda: theirs.encode(held, add_special_tokens=False))
                ids_theirs = enc.ids
                e_theirs.append(t)
    med = statistics.median
    nbytes = len(held.encode("utf-8"))
    return dict(kind=kind, size=size, vocab_ours=ours.vocab_size,
                vocab_theirs=theirs.get_vocab_size(),
                tpb_ours=len(ids_ours) / nbytes, tpb_theirs=len(ids_theirs) / nbytes,
                train_ours=med(t_ours), train_theirs=med(t_theirs),
                enc_ours=mb / med(e_ours), enc_theirs=mb / med(e_theirs))


def corpus(name: str, nbytes: int) -> str:
    if name == "shakespeare":
        path = SHARED_DATA / "tinyshakespeare.txt"
        if not path.exists():
            raise SystemExit(f"no Tiny Shakespeare at {path}")
        return path.read_text(encoding="utf-8")[:nbytes]
    from numpyllm.data.corpus import default_corpus
    return default_corpus(max_bytes=nbytes)[:nbytes]


def em_trace(text: str, size: int) -> int:
    """The log-likelihood (nats per word, over the training words) after each E-step, and
    the vocabulary it was computed with: it rises within each pair of EM rounds, and may
    fall where pruning removed pieces."""
    print(f"Unigram EM on {len(text):,} characters, {size} pieces, no byte fallback\n")
    print("| E-step | pieces | log-likelihood per word | seconds |")
    print("| --- | --- | --- | --- |")
    n_words = len(UnigramTokenizer.words(text))
    start = time.perf_counter()

    def show(rnd: int, ll: float, n: int) -> None:
        print(f"| {rnd} | {n:,} | {ll / n_words:.4f} | {time.perf_counter() - start:.1f} |",
              flush=True)
    UnigramTokenizer.train(text, size, byte_fallback=False, callback=show)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--kinds", nargs="+", default=["bpe", "wordpiece", "unigram"],
                        choices=["bpe", "wordpiece", "unigram"])
    parser.add_argument("--corpora", nargs="+", default=["shakespeare", "default"],
                        choices=["shakespeare", "default"])
    parser.add_argument("--bytes", type=int, default=1_000_000,
                        help="characters of each corpus used (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="encoding rounds")
    parser.add_argument("--train-rounds", type=int, default=1, help="training rounds")
    parser.add_argument("--em-trace", action="store_true",
                        help="only print our Unigram trainer's log-likelihood after each "
                             "E-step (first corpus, first size)")
    args = parser.parse_args(argv)
    if args.em_trace:
        return em_trace(corpus(args.corpora[0], args.bytes), args.sizes[0])
    try:
        import tokenizers
    except ImportError:
        print("needs the reference: pip install tokenizers", file=sys.stderr)
        return 1
    print(f"tokenizers {tokenizers.__version__}, one thread; train on the first 90%, "
          f"encode the last 10%; medians of {args.train_rounds} training and {args.rounds} "
          f"encoding rounds")
    for name in args.corpora:
        text = corpus(name, args.bytes)
        cut = int(len(text) * 0.9)
        train, held = text[:cut], text[cut:]
        print(f"\n{name}: {len(text):,} characters ({len(held.encode()):,} bytes held out)\n")
        print("| kind | vocab | tokens/byte ours | theirs | train s ours | theirs | ratio | "
              "encode MB/s ours | theirs | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for size in args.sizes:
            for kind in args.kinds:
                r = bench(kind, train, held, size, args.rounds, args.train_rounds)
                print(f"| {kind} | {r['vocab_ours']}/{r['vocab_theirs']} | "
                      f"{r['tpb_ours']:.3f} | {r['tpb_theirs']:.3f} | "
                      f"{r['train_ours']:.2f} | {r['train_theirs']:.2f} | "
                      f"{r['train_ours'] / r['train_theirs']:.1f}x | "
                      f"{r['enc_ours']:.2f} | {r['enc_theirs']:.2f} | "
                      f"{r['enc_theirs'] / r['enc_ours']:.1f}x |", flush=True)
    print("\nratio: how many times longer ours takes (training) or how many times faster "
          "theirs encodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
