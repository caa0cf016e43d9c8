"""``numpyllm data``: corpus preparation. One subcommand so far:

    numpyllm data clean --input raw.txt [--input more.txt ...] --out clean.txt \\
        [--report report.json] [--removed removed.jsonl] [--format blank|line|jsonl] \\
        [--no-dedup] [--no-near-dedup] [--no-quality] [--no-pii] \\
        [--threshold 0.8 --num-perm 128 --shingle-size 5] [--min-words 50 ...]

reads the documents of every --input in turn (deduplicating across them), runs them
through exact deduplication, removal of paragraphs repeated across documents, the Gopher
quality and repetition rules, MinHash + LSH near-duplicate removal and PII reduction
(numpyllm.data.clean; docs/cleaning.md), writes the kept documents to --out atomically,
each followed by a blank line, a text that ``numpyllm train --data`` reads as it is, and
prints what each stage removed and its speed. Any Gopher threshold takes ``off``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import CLIError

_GOPHER = [  # (option, GopherConfig field, type, help)
    ("--min-words", "min_words", int, "fewest words (50)"),
    ("--max-words", "max_words", int, "most words (100000)"),
    ("--min-mean-word-length", "min_mean_word_length", float, "shortest mean word (3)"),
    ("--max-mean-word-length", "max_mean_word_length", float, "longest mean word (10)"),
    ("--max-symbol-word-ratio", "max_symbol_word_ratio", float,
     "most '#' or ellipses per word (0.1)"),
    ("--max-bullet-lines", "max_bullet_lines", float, "largest fraction of lines starting "
     "with a bullet (0.9)"),
    ("--max-ellipsis-lines", "max_ellipsis_lines", float, "largest fraction of lines ending "
     "in an ellipsis (0.3)"),
    ("--min-alpha-words", "min_alpha_words", float, "smallest fraction of words with a "
     "letter (0.8)"),
    ("--min-stop-words", "min_stop_words", int, "fewest distinct stop words (2)"),
    ("--max-dup-line-frac", "max_dup_line_frac", float, "duplicate lines (0.3)"),
    ("--max-dup-para-frac", "max_dup_para_frac", float, "duplicate paragraphs (0.3)"),
    ("--max-dup-line-char-frac", "max_dup_line_char_frac", float,
     "characters in duplicate lines (0.2)"),
    ("--max-dup-para-char-frac", "max_dup_para_char_frac", float,
     "characters in duplicate paragraphs (0.2)"),
]


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="prepare a corpus: clean it",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("clean", help="deduplicate, filter and redact a corpus",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = c.add_argument_group("input and output")
    io.add_argument("--input", action="append", required=True, metavar="FILE",
                    help="a corpus file (repeat for several; deduplicated across all)")
    io.add_argument("--out", required=True, metavar="FILE", help="the cleaned corpus")
    io.add_argument("--report", metavar="FILE.json", help="write the report as JSON here")
    io.add_argument("--removed", metavar="FILE.jsonl",
                    help="one JSON line per removed document: file, line, stage, reason")
    io.add_argument("--format", choices=("blank", "line", "jsonl"), default="blank",
                    help="documents separated by blank lines (default), one per line, or "
                    "JSONL objects")
    io.add_argument("--text-field", default="text", metavar="NAME",
                    help="jsonl: the field that holds the text (default: text)")
    io.add_argument("--out-format", choices=("blank", "jsonl"), default="blank",
                    help="blank: each document then a blank line (what numpyllm train "
                    "--data reads; default); jsonl: {\"text\": ...} lines")
    io.add_argument("--invalid-utf8", choices=("drop", "replace"), default="drop",
                    help="a document with bytes that are not UTF-8: drop it (default) or "
                    "replace them with U+FFFD")
    io.add_argument("--max-doc-bytes", type=int, default=16 * 2**20, metavar="N",
                    help="drop documents (and lines) longer than N bytes (default 16 MiB)")
    io.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    st = c.add_argument_group("stages")
    st.add_argument("--no-dedup", action="store_true",
                    help="keep exact duplicates (documents and repeated paragraphs)")
    st.add_argument("--no-near-dedup", action="store_true", help="skip MinHash + LSH")
    st.add_argument("--no-quality", action="store_true", help="skip the Gopher rules")
    st.add_argument("--no-pii", action="store_true", help="keep personal data as it is")
    st.add_argument("--span-unit", choices=("paragraph", "line", "none"), default="paragraph",
                    help="what repeats across documents are dropped (default paragraph)")
    st.add_argument("--span-min-chars", type=int, default=50, metavar="N",
                    help="only spans of at least N normalised characters (default 50)")
    st.add_argument("--pii", default="credentials,email,credit_card,ip_address,phone",
                    metavar="KINDS", help="comma-separated kinds to replace (default: all)")

    nd = c.add_argument_group("near-duplicates (MinHash + LSH)")
    nd.add_argument("--threshold", type=float, default=0.8,
                    help="Jaccard similarity from which a document is a near-duplicate (0.8)")
    nd.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (128)")
    nd.add_argument("--shingle-size", type=int, default=5, help="n of the n-grams (5)")
    nd.add_argument("--shingle-kind", choices=("word", "char"), default="word",
                    help="word (default) or character n-grams")
    nd.add_argument("--bands", type=int, help="LSH bands (with --rows; default: from the "
                    "threshold)")
    nd.add_argument("--rows", type=int, help="LSH rows per band")
    nd.add_argument("--seed", type=int, default=1, help="the permutations' seed (1)")
    nd.add_argument("--no-verify", action="store_true",
                    help="drop every LSH candidate without checking its estimated similarity")

    q = c.add_argument_group("quality (Gopher rules; each takes 'off')")
    for option, _, kind, text in _GOPHER:
        q.add_argument(option, type=_or_off(kind), default="default", metavar="X", help=text)
    q.add_argument("--top-ngram-char-frac", type=_ngram_fracs, metavar="N:F,...",
                   help="top n-gram character fractions (2:0.2,3:0.18,4:0.16) or off")
    q.add_argument("--dup-ngram-char-frac", type=_ngram_fracs, metavar="N:F,...",
                   help="duplicate n-gram character fractions (5:0.15,...,10:0.1) or off")
    q.add_argument("--no-repetition", action="store_true",
                   help="skip the repetition rules (keep the other quality rules)")
    c.set_defaults(func=run)


def _or_off(kind):
    def parse(value: str):
        if value in ("off", "default"):
            return value
        try:
            return kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or 'off', got {value!r}")
    parse.__name__ = kind.__name__
    return parse


def _ngram_fracs(value: str):
    if value == "off":
        return {}
    try:
        pairs = [item.split(":") for item in value.split(",")]
        return {int(n): float(f) for n, f in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N:FRACTION,... or 'off', got {value!r}")


def _config(args):
    from ..data.clean import CleanConfig, GopherConfig
    quality = None
    if not args.no_quality:
        quality = GopherConfig()
        for option, name, _, _ in _GOPHER:
            value = getattr(args, name)
            if value != "default":
                setattr(quality, name, None if value == "off" else value)
        if args.top_ngram_char_frac is not None:
            quality.top_ngram_char_frac = args.top_ngram_char_frac
        if args.dup_ngram_char_frac is not None:
            quality.dup_ngram_char_frac = args.dup_ngram_char_frac
        quality.repetition = not args.no_repetition
        quality.__post_init__()               # check the values given
    pii = () if args.no_pii else tuple(k.strip() for k in args.pii.split(",") if k.strip())
    return CleanConfig(
        exact=not args.no_dedup,
        span_unit=None if args.no_dedup or args.span_unit == "none" else args.span_unit,
        span_min_chars=args.span_min_chars, quality=quality,
        near_dedup=not args.no_near_dedup, threshold=args.threshold, num_perm=args.num_perm,
        shingle_size=args.shingle_size, shingle_kind=args.shingle_kind, seed=args.seed,
        bands=args.bands, rows=args.rows, verify=not args.no_verify, pii=pii)


def _check_paths(args) -> None:
    outs = {"--out": args.out, "--report": args.report, "--removed": args.removed}
    for path in args.input:
        p = Path(path)
        if not p.exists():
            raise CLIError(f"--input {path}: no such file")
        if p.is_dir():
            raise CLIError(f"--input {path}: is a directory, not a corpus file")
        for flag, out in outs.items():
            if out is not None and Path(out).resolve() == p.resolve():
                raise CLIError(f"{flag} {out} is also an --input: write to another file")
    for flag, out in outs.items():
        if out is None:
            continue
        if Path(out).is_dir():
            raise CLIError(f"{flag} {out}: is a directory")
        parent = Path(out).resolve().parent
        if not parent.is_dir():
            raise CLIError(f"{flag} {out}: directory {parent} does not exist")
    given = [o for o in outs.values() if o is not None]
    if len({str(Path(o).resolve()) for o in given}) < len(given):
        raise CLIError("--out, --report and --removed must be different files")
    if args.max_doc_bytes < 1:
        raise CLIError(f"--max-doc-bytes must be positive, got {args.max_doc_bytes}")
    if (args.bands is None) != (args.rows is None):
        raise CLIError("--bands and --rows go together (or leave both to --threshold)")


def _write_json_atomically(path, obj) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args) -> int:
    from ..data.clean import clean_files
    _check_paths(args)
    config = _config(args)
    last = [time.perf_counter()]

    def progress(report):
        now = time.perf_counter()
        if args.quiet or now - last[0] < 5.0:
            return
        last[0] = now
        read = report.stages["read"]
        print(f"numpyllm data clean: {read.documents_in:,} documents, "
              f"{read.bytes_in / 1e6:,.1f} MB read, {report.documents_kept:,} kept",
              file=sys.stderr, flush=True)

    report = clean_files(args.input, args.out, config, fmt=args.format,
                         text_field=args.text_field, out_format=args.out_format,
                         invalid_utf8=args.invalid_utf8, max_doc_bytes=args.max_doc_bytes,
                         removed=args.removed, on_document=progress)
    print(report.table())
    if report.documents_kept == 0:
        print(f"numpyllm data clean: warning: no document was kept: {args.out} is empty "
              "(numpyllm train cannot use it)", file=sys.stderr)
    if args.report is not None:
        from dataclasses import asdict
        d = report.to_dict()
        d["config"] = asdict(config)
        d["config"]["pii"] = list(config.pii)
        d["inputs"] = [str(p) for p in args.input]
        d["out"] = str(args.out)
        _write_json_atomically(args.report, d)
    return 0
