"""Corpus cleaning (`numpyllm data clean`): what decides the quality of a pretraining
corpus before a model sees it. See docs/cleaning.md for the math and the figures.

One concept per file, in the order a document meets them:
  documents.py  streaming documents in (blank-line, one-per-line, JSONL; hostile bytes)
                and out (atomically)
  exact.py      normalised hashing: duplicate documents, paragraphs repeated across
                documents
  quality.py    the Gopher quality and repetition rules, each threshold named
  minhash.py    shingles and MinHash signatures (datasketch's permutations, bit for bit)
  lsh.py        banding, the S-curve, (bands, rows) from a threshold, the index
  neardup.py    near-duplicate removal: MinHash + LSH + verification, one pass
  pii.py        e-mails, phones, IPs, Luhn-checked cards, URL credentials -> placeholders
  pipeline.py   the stages in order, the per-stage report (documents, bytes, MB/s)
"""
from .documents import Document, DocumentWriter, Rejected, read_documents
from .exact import ExactDedup, SpanDedup, normalize
from .lsh import LSHIndex, optimal_params, s_curve
from .minhash import MinHasher, estimate_jaccard, jaccard, shingles
from .neardup import NearDedup
from .pii import PII_KINDS, evaluate_pii, find_pii, luhn_valid, redact_pii
from .pipeline import CleanConfig, CleanReport, Pipeline, StageReport, clean_files, clean_texts
from .quality import GopherConfig, gopher_reasons

__all__ = ["Document", "Rejected", "read_documents", "DocumentWriter", "normalize",
           "ExactDedup", "SpanDedup", "GopherConfig", "gopher_reasons", "shingles",
           "MinHasher", "estimate_jaccard", "jaccard", "s_curve", "optimal_params", "LSHIndex",
           "NearDedup", "PII_KINDS", "find_pii", "redact_pii", "luhn_valid", "evaluate_pii",
           "CleanConfig", "StageReport", "CleanReport", "Pipeline", "clean_texts",
           "clean_files"]
