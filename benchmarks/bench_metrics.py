"""Throughput of numpyllm's BLEU and ROUGE against sacrebleu and rouge-score, on lines of
Tiny Shakespeare (each line scored against the line before it, and for BLEU also against
its words reversed and lowercased: a second reference).

Both sides are pure Python on one thread, so they run in this one process, alternated
within each round (ours first in even rounds, theirs first in odd ones), each run with
cold caches (our tokenizer and stemmer caches cleared; a fresh sacrebleu metric, whose
caches are per instance) and after a garbage collection. Printed: every round's time, the medians, the ratio of the
medians (ours / theirs: below 1 is faster) and the scores, which must agree.

    PYTHONPATH=. python benchmarks/bench_metrics.py [--lines 3000] [--rounds 5]

Needs sacrebleu and rouge-score (pip install sacrebleu==2.6.0 rouge-score==0.1.2).
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import med, report_pair  # noqa: E402

from numpyllm.evaluate import RougeScorer, bleu, corpus_bleu, rouge  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def timed(fn):
    gc.collect()          # the other side's garbage is not collected on this side's clock
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def clear_our_caches():
    bleu._tokenize_13a.cache_clear()
    rouge.porter_stem.cache_clear()


def compare(name, ours, theirs, same, rounds):
    times = {"ours": [], "theirs": []}
    for r in range(rounds):
        order = [("ours", ours), ("theirs", theirs)]
        for side, fn in (order if r % 2 == 0 else order[::-1]):
            if side == "ours":
                clear_our_caches()
            t, value = timed(fn)
            times[side].append(t)
            if side == "ours":
                a = value
            else:
                b = value
        assert same(a, b), (name, a, b)
    print(f"  {name}")
    report_pair("numpyllm", times["ours"], "reference", times["theirs"])
    return med(times["ours"]), med(times["theirs"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default=str(SHAKESPEARE))
    args = parser.parse_args()
    import sacrebleu
    from rouge_score import rouge_scorer
    logging.getLogger("absl").setLevel(logging.WARNING)

    lines = Path(args.data).read_text(encoding="utf-8").splitlines()[:args.lines + 1]
    hyps, ref1 = lines[1:], lines[:-1]
    ref2 = [" ".join(reversed(x.split())).lower() for x in hyps]
    n_words = sum(len(x.split()) for x in hyps)
    print(f"{len(hyps):,} lines ({n_words:,} words) of {args.data}, {args.rounds} rounds, "
          "times in ms")

    def same_bleu(a, b):
        return abs(a.score - b.score) < 1e-9 and a.counts == b.counts

    compare("corpus BLEU, 13a, two references",
            lambda: corpus_bleu(hyps, [ref1, ref2]),
            lambda: sacrebleu.BLEU().corpus_score(hyps, [ref1, ref2]), same_bleu, args.rounds)

    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

    def same_rouge(a, b):
        return all(abs(x - y) < 1e-9 for sa, sb in zip(a, b) for t in types
                   for x, y in zip(sa[t], sb[t]))

    for stem in (False, True):
        ours, theirs = RougeScorer(types, use_stemmer=stem), \
            rouge_scorer.RougeScorer(types, use_stemmer=stem)
        compare(f"ROUGE-1/2/L/Lsum per line{', Porter stemming' if stem else ''}",
                lambda: [ours.score(r, h) for h, r in zip(hyps, ref1)],
                lambda: [theirs.score(r, h) for h, r in zip(hyps, ref1)], same_rouge,
                args.rounds)


if __name__ == "__main__":
    main()
