"""Throughput of numpyllm's BLEU, chrF and ROUGE against sacrebleu and rouge-score, on lines
of Tiny Shakespeare (each line scored against the line before it, and for BLEU and chrF
also against its words reversed and lowercased: a second reference).

Both sides are pure Python on one thread, so they run in this one process, alternated
within each round (ours first in even rounds, theirs first in odd ones), each run with
cold caches (our tokenizer and stemmer caches cleared; a fresh sacrebleu metric, whose
caches are per instance) and after a garbage collection. Printed: every round's time, the medians, the ratio of the
medians (ours / theirs: below 1 is faster) and the scores, which must agree.

Then BLEU's uncertainty against sacrebleu's significance module, on --sig-lines lines
(2,000) as the corpus: the bootstrap interval (1,000 resamples, sacrebleu --confidence),
the paired bootstrap (1,000) and the paired approximate randomization (10,000 trials) of
two systems, each timed from the texts (statistics extraction included, as a user runs
it), with the same seed on both sides, whose figures must be equal. One BLAS thread
(OPENBLAS_NUM_THREADS=1 unless set): our resample sums are one matrix product, and
sacrebleu's side is single-threaded NumPy and Python.

    PYTHONPATH=. python benchmarks/bench_metrics.py [--lines 3000] [--rounds 5] [--sig-lines 2000]

Needs sacrebleu and rouge-score (pip install sacrebleu==2.6.0 rouge-score==0.1.2).
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # before NumPy loads: see above
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import med, report_pair  # noqa: E402

from numpyllm.evaluate import RougeScorer, bleu, corpus_bleu, corpus_chrf, rouge  # noqa: E402
from numpyllm.evaluate import significance  # noqa: E402
from numpyllm.evaluate.bleu import corpus_stats  # noqa: E402

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
    parser.add_argument("--sig-lines", type=int, default=2000,
                        help="segments of the corpus for the significance tests (0: skip)")
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

    def same_chrf(a, b):
        return abs(a.score - b.score) < 1e-9

    for word_order in (0, 2):
        compare(f"corpus chrF{'++' if word_order else ''}, two references",
                lambda: corpus_chrf(hyps, [ref1, ref2], word_order=word_order),
                lambda: sacrebleu.CHRF(word_order=word_order).corpus_score(hyps, [ref1, ref2]),
                same_chrf, args.rounds)

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

    if args.sig_lines:
        bench_significance(Path(args.data), args.sig_lines, args.rounds)


def noised(lines, share, seed):
    """Each line with a share of its words replaced by words drawn from the whole text:
    a stand-in for a system's output at a given quality (reproducible)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    vocab = sorted({w for x in lines for w in x.split()})
    return [" ".join(w if rng.random() >= share else vocab[rng.integers(len(vocab))]
                     for w in x.split()) for x in lines]


def bench_significance(path, n_lines, rounds):
    """Ours against sacrebleu's --confidence, --paired-bs and --paired-ar, from the texts."""
    import sacrebleu
    from sacrebleu.significance import PairedTest
    os.environ.pop("SACREBLEU_SEED", None)               # its default seed, 12345
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    refs = lines[:n_lines]
    base, system = noised(refs, 0.30, 1), noised(refs, 0.28, 2)
    print(f"\n{len(refs):,} non-empty lines of {path} as references; the baseline replaces "
          "30% of their words at random, the system 28%; times in ms")

    def same_ci(a, b):
        return (a.score, a.mean, a.ci) == (b.score, b._mean, b._ci)

    compare("--confidence: bootstrap interval, 1,000 resamples",
            lambda: significance.bootstrap_ci(corpus_stats(base, [refs])),
            lambda: sacrebleu.BLEU().corpus_score(base, [refs], n_bootstrap=1000),
            same_ci, rounds)

    def same_paired(ours, theirs):
        return [(r.score, r.p_value, r.mean, r.ci) for r in ours] == \
            [(r.score, r.p_value, r.mean, r.ci) for r in theirs["BLEU"]]

    def ours_paired(test):
        stats = [corpus_stats(h, [refs]) for h in (base, system)]
        return test(stats[0], stats[1:])

    def theirs_paired(kind):
        return PairedTest([("base", base), ("system", system)], {"BLEU": sacrebleu.BLEU()},
                          [refs], test_type=kind)()[1]

    results = {}
    for name, ours, kind in (("--paired-bs: paired bootstrap, 1,000 resamples",
                              significance.paired_bootstrap, "bs"),
                             ("--paired-ar: approximate randomization, 10,000 trials",
                              significance.paired_approximate_randomization, "ar")):
        compare(name, lambda: ours_paired(ours), lambda: theirs_paired(kind), same_paired,
                rounds)
        results[kind] = ours_paired(ours)
    b, s = results["bs"]
    print(f"  baseline BLEU {b.score:.2f} (μ = {b.mean:.2f} ± {b.ci:.2f}), system "
          f"{s.score:.2f} (μ = {s.mean:.2f} ± {s.ci:.2f}); p = {s.p_value:.4f} (paired "
          f"bootstrap), {results['ar'][1].p_value:.4f} (approximate randomization)")


if __name__ == "__main__":
    main()
