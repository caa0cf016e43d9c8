"""The cleaning pipeline on real corpora: what each stage removes and how fast, PII
precision and recall on the labelled set, and whether cleaning helps a small model.

    python benchmarks/clean_corpus.py stages [--rounds 3]     # both corpora, every stage
    python benchmarks/clean_corpus.py pii                     # the labelled PII set
    python benchmarks/clean_corpus.py train [--steps 500] [--seeds 1 2]

**stages.** Two corpora. (1) The default corpus of ``numpyllm train``: the Python
standard library's source (numpyllm/data/corpus.py), one document per file, the same
files in the same order up to the same 4,000,000 characters. (2) Tiny Shakespeare, one
document per blank-line-separated speech, followed by the SMS Spam Collection, one
document per message (its ham/spam label cut off). Each is cleaned twice: with the
published Gopher thresholds ("gopher"), and with the quality stage adapted to the corpus
("adapted": for code, the quality rules off and the repetition rules kept; for the
speeches and messages, at least 5 words instead of 50 and no stop-word rule). The other stages use their
defaults (exact and paragraph dedup with 50 characters, MinHash 128 permutations over
word 5-shingles, threshold 0.8, 9 bands of 13 rows, PII all kinds). The pipeline runs
`--rounds` times on each; MB/s is the median over rounds of a stage's input bytes over
the seconds spent in that stage only (``read`` is the file reader and decoder).

**train.** Shakespeare + SMS documents, 10% of them (seeded) held out. The held-out
documents are cleaned by the adapted pipeline *after* it has seen the training documents,
so the validation text is clean and holds no copy or near-copy of a training document;
the same validation text scores every model. Models: nanoGPT's CPU GPT (4 layers, 4 heads,
128 wide, context 64, no dropout, batch 12, AdamW 1e-3 with warmup and cosine decay),
one character tokenizer over all the texts, trained for `--steps` steps on (a) the raw
training documents, (b) the same cleaned by the adapted pipeline, (c) cleaned by the
published Gopher rules; one run per seed and variant, variants alternated within a seed.
Printed: validation loss (nats per character) on the whole validation text, on its
Shakespeare and SMS parts, and on its documents that PII reduction left unchanged.

Needs ../shared/data (Tiny Shakespeare and the SMS collection); exits with a message
where it is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numpyllm.data.clean import (CleanConfig, GopherConfig, Pipeline, clean_files,  # noqa: E402
                                 evaluate_pii)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare.txt"
SMS = SHARED / "sms_spam" / "SMSSpamCollection"
LABELLED = ROOT / "tests" / "clean" / "pii_labelled.jsonl"


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ---------------------------------------------------------------------- the corpora
def shakespeare_sms_documents() -> tuple[list[str], list[str]]:
    for path in (SHAKESPEARE, SMS):
        if not path.exists():
            raise SystemExit(f"{path} not found: this benchmark needs ../shared/data")
    speeches = [d.strip() for d in SHAKESPEARE.read_text(encoding="utf-8").split("\n\n")
                if d.strip()]
    messages = [line.split("\t", 1)[1].strip() for line in
                SMS.read_text(encoding="utf-8").splitlines() if "\t" in line]
    return speeches, messages


def configs(kind: str) -> dict:
    if kind == "code":
        adapted = GopherConfig(quality=False)              # repetition rules only
    else:
        # short speeches and messages: 5 words are enough, and the stop-word rule (which
        # "Speak, speak." or "Ok lar..." break by being short, not by being lists of
        # keywords) is off
        adapted = GopherConfig(min_words=5, min_stop_words=None)
    return {"gopher": CleanConfig(), "adapted": CleanConfig(quality=adapted)}


# ---------------------------------------------------------------------- stages
def write_jsonl(docs: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")


def run_stages(rounds: int) -> None:
    speeches, messages = shakespeare_sms_documents()
    from numpyllm.data.corpus import stdlib_documents       # default_corpus's files
    corpora = {"stdlib (default corpus)": ("code", stdlib_documents()),
               "Tiny Shakespeare + SMS": ("prose", speeches + messages)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kind, docs) in corpora.items():
            src = Path(tmp) / "in.jsonl"
            write_jsonl(docs, src)
            mb = sum(len(d.encode()) for d in docs) / 1e6
            print(f"\n## {name}: {len(docs):,} documents, {mb:.2f} MB of text; load {load()}")
            for label, cfg in configs(kind).items():
                reports = [clean_files([src], Path(tmp) / "out.txt", cfg, fmt="jsonl")
                           for _ in range(rounds)]
                print(f"\n### {label} ({rounds} rounds; MB/s the median; load {load()})")
                print(table(reports))
                q = reports[0].stages.get("quality")
                if q is not None:
                    rules = ", ".join(f"{r} {n:,}" for r, n in q.details.most_common(6))
                    print(f"quality rules broken (a document may break several): {rules}")
                pii = reports[0].stages["pii"].details
                print("PII replaced: " + (", ".join(f"{k} {v:,}" for k, v in pii.items())
                                          or "none"))


def table(reports) -> str:
    first = reports[0]
    rows = ["| stage | docs in | removed | changed | MB in | MB removed | MB/s | top reason |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, s in first.stages.items():
        speed = statistics.median(r.stages[name].mb_per_s for r in reports)
        top = s.reasons.most_common(1)
        reason = f"{top[0][0]} ({top[0][1]:,})" if top else ""
        rows.append(f"| {name} | {s.documents_in:,} | {s.documents_removed:,} | "
                    f"{s.documents_modified:,} | {s.bytes_in / 1e6:.2f} | "
                    f"{s.bytes_removed / 1e6:.3f} | {speed:.1f} | {reason} |")
    total = statistics.median(r.seconds for r in reports)
    rows.append(f"kept {first.documents_kept:,} documents, {first.bytes_kept / 1e6:.2f} MB; "
                f"whole run {total:.1f} s (median)")
    return "\n".join(rows)


# ---------------------------------------------------------------------- PII
def run_pii() -> None:
    examples = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    for split in ("dev", "held_out"):
        part = [e for e in examples if e.get("split", "dev") == split]
        scores = evaluate_pii(part)
        n_neg = sum(not e["pii"] for e in part)
        print(f"\n### {split}: {len(part)} texts ({n_neg} with no PII)")
        print("| kind | labelled | found right | false positives | precision | recall |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for kind, s in scores.items():
            print(f"| {kind} | {s['tp'] + s['fn']} | {s['tp']} | {s['fp']} | "
                  f"{s['precision']:.2f} | {s['recall']:.2f} |")


# ---------------------------------------------------------------------- training
def split_and_clean(seed: int = 0):
    speeches, messages = shakespeare_sms_documents()
    docs = [("shakespeare", d) for d in speeches] + [("sms", d) for d in messages]
    rng = np.random.default_rng(seed)
    held = np.zeros(len(docs), dtype=bool)
    held[rng.choice(len(docs), len(docs) // 10, replace=False)] = True
    train_docs = [d for (_, d), h in zip(docs, held) if not h]
    cleaned = {}
    val = None
    for label, cfg in configs("prose").items():
        pipe = Pipeline(cfg)
        out = [pipe.process(d, i)[0] for i, d in enumerate(train_docs)]
        cleaned[label] = [d for d in out if d is not None]
        if label == "adapted":           # the held-out documents, after the training ones
            val = []
            for (source, d), h in zip(docs, held):
                if h:
                    text = pipe.process(d, ("val", len(val)))[0]
                    if text is not None:
                        val.append((source, text, text == d))
    return train_docs, cleaned, val


def run_train(steps: int, seeds: list[int]) -> None:
    from numpyllm.nn import GPT, GPTConfig
    from numpyllm.tokenizers import CharTokenizer
    from numpyllm.training import TrainConfig, Trainer, evaluate_tokens

    raw, cleaned, val = split_and_clean()
    variants = {"raw": raw, "adapted clean": cleaned["adapted"],
                "gopher clean": cleaned["gopher"]}
    texts = {name: "\n\n".join(docs) + "\n\n" for name, docs in variants.items()}
    val_sets = {"all": [t for _, t, _ in val],
                "Shakespeare part": [t for s, t, _ in val if s == "shakespeare"],
                "SMS part": [t for s, t, _ in val if s == "sms"],
                "no placeholder": [t for _, t, unchanged in val if unchanged]}
    val_texts = {k: "\n\n".join(v) + "\n\n" for k, v in val_sets.items()}
    tok = CharTokenizer.from_text("".join(texts.values()) + val_texts["all"])
    val_ids = {k: np.asarray(tok.encode(v), dtype=np.int64) for k, v in val_texts.items()}
    print(f"vocabulary {tok.vocab_size} characters; validation: {len(val):,} held-out "
          f"documents that the adapted pipeline kept ("
          + ", ".join(f"{k} {len(v):,} chars" for k, v in val_texts.items()) + ")")
    for name, text in texts.items():
        print(f"  train {name:<14} {len(variants[name]):6,} documents {len(text):10,} chars")
    results = {name: [] for name in variants}
    for seed in seeds:
        order = list(variants) if seed % 2 else list(reversed(variants))    # alternate
        for name in order:
            ids = np.asarray(tok.encode(texts[name]), dtype=np.int64)
            model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=4,
                                  n_head=4, n_embd=128, dropout=0.0, bias=False),
                        rng=np.random.default_rng(seed))
            cfg = TrainConfig(batch_size=12, max_iters=steps, learning_rate=1e-3, min_lr=1e-4,
                              warmup_iters=min(100, steps // 10), lr_decay_iters=steps,
                              beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
                              eval_interval=steps, eval_iters=1, seed=seed)
            t0 = time.perf_counter()
            Trainer(model, ids, None, cfg).fit()
            losses = {k: evaluate_tokens(model, v, batch_size=32)["loss"]
                      for k, v in val_ids.items()}
            results[name].append(losses)
            print(f"  seed {seed} {name:<14} " + "  ".join(f"{k} {v:.4f}" for k, v in
                                                         losses.items())
                  + f"  ({time.perf_counter() - t0:.0f} s, load {load()})", flush=True)
    print("\n| trained on | " + " | ".join(f"val loss, {k}" for k in val_sets) + " |")
    print("| --- |" + " ---: |" * len(val_sets))
    for name, runs in results.items():
        cells = []
        for k in val_sets:
            vals = [r[k] for r in runs]
            cells.append(f"{statistics.mean(vals):.4f}" + (
                f" ({', '.join(f'{v:.3f}' for v in vals)})" if len(vals) > 1 else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("stages", "pii", "train"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    if args.what == "stages":
        run_stages(args.rounds)
    elif args.what == "pii":
        run_pii()
    else:
        run_train(args.steps, args.seeds)


if __name__ == "__main__":
    main()
