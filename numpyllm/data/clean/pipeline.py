"""The cleaning pipeline: documents stream through the stages in order, each stage sees
each surviving document once, and the report says what each one removed and how fast.

    read --> exact --> spans --> quality --> near_dedup --> pii --> write
             (whole    (repeated  (Gopher     (MinHash +    (typed
             documents) paragraphs) rules)     LSH)          placeholders)

The order is deliberate: the cheap exact stages first, so the costlier ones see fewer
documents; quality before near-duplicates, so that a low-quality first copy cannot claim
a group and take its good near-copies down with it when it is dropped; PII last, since
placeholders change nothing the earlier stages judge, and a signature should see the
text as written.

Every stage is a single pass over the stream (the whole pipeline reads its input once,
document by document), and what the stages remember is digests, signatures and band
keys, never texts: a corpus larger than memory is cleaned in memory proportional to its
number of documents.

>>> cfg = CleanConfig(quality=None, span_unit=None)
>>> docs = ["Mail me at ann@example.org.", "mail me at  ANN@example.org.", "Other."]
>>> kept, report = clean_texts(docs, cfg)
>>> kept
['Mail me at <EMAIL>.', 'Other.']
>>> report.stages["exact"].documents_removed, report.stages["pii"].details["email"]
(1, 1)
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from .documents import DEFAULT_MAX_DOC_BYTES, DocumentWriter, Rejected, read_documents
from .exact import ExactDedup, SpanDedup
from .neardup import NearDedup
from .pii import PII_KINDS, redact_pii
from .quality import GopherConfig, gopher_reasons

__all__ = ["CleanConfig", "StageReport", "CleanReport", "Pipeline", "clean_files",
           "clean_texts", "STAGES"]

STAGES = ("read", "exact", "spans", "quality", "near_dedup", "pii")


@dataclass
class CleanConfig:
    """What runs and with which settings; a stage whose setting is None/False is off."""

    exact: bool = True
    span_unit: str | None = "paragraph"        # "paragraph", "line" or None (off)
    span_min_chars: int = 50
    quality: GopherConfig | None = field(default_factory=GopherConfig)
    near_dedup: bool = True
    threshold: float = 0.8
    num_perm: int = 128
    shingle_size: int = 5
    shingle_kind: str = "word"
    seed: int = 1
    bands: int | None = None                   # None: chosen from the threshold
    rows: int | None = None
    verify: bool = True
    pii: tuple = PII_KINDS                     # () turns PII reduction off


@dataclass
class StageReport:
    """One stage's tally. bytes are UTF-8 bytes of the text (the reader: of the input)."""

    name: str
    documents_in: int = 0
    documents_removed: int = 0
    documents_modified: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)    # removed documents by reason
    details: Counter = field(default_factory=Counter)    # stage-specific counts

    @property
    def bytes_removed(self) -> int:
        return self.bytes_in - self.bytes_out

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / 1e6 / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"], d["details"] = dict(self.reasons.most_common()), dict(self.details)
        d["bytes_removed"] = self.bytes_removed
        d["mb_per_s"] = round(self.mb_per_s, 3) if self.seconds > 0 else None
        d["seconds"] = round(self.seconds, 4)
        return d


@dataclass
class CleanReport:
    stages: dict                         # name -> StageReport, in pipeline order
    documents_kept: int = 0
    bytes_kept: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"stages": [s.to_dict() for s in self.stages.values()],
                "documents_kept": self.documents_kept, "bytes_kept": self.bytes_kept,
                "seconds": round(self.seconds, 3)}

    def table(self) -> str:
        """A plain-text table: one row per stage."""
        rows = [f"{'stage':<11}{'docs in':>10}{'removed':>10}{'changed':>9}"
                f"{'MB in':>9}{'MB removed':>11}{'MB/s':>8}  top reason"]
        for s in self.stages.values():
            top = s.reasons.most_common(1)
            reason = f"{top[0][0]} ({top[0][1]:,})" if top else ""
            rows.append(f"{s.name:<11}{s.documents_in:>10,}{s.documents_removed:>10,}"
                        f"{s.documents_modified:>9,}{s.bytes_in / 1e6:>9.2f}"
                        f"{s.bytes_removed / 1e6:>11.3f}{s.mb_per_s:>8.1f}  {reason}")
        rows.append(f"kept {self.documents_kept:,} documents, {self.bytes_kept / 1e6:.2f} MB "
                    f"in {self.seconds:.1f} s")
        return "\n".join(rows)


def _reason_key(reason: str) -> str:
    return reason.split(" (")[0]          # "fewer than 50 words (12)" -> by rule


class Pipeline:
    """The stages of a `CleanConfig`; `process(text, key)` runs one document through them
    and returns its cleaned text, or None with the removing stage's reason."""

    def __init__(self, config: CleanConfig | None = None):
        c = self.config = config or CleanConfig()
        self.exact = ExactDedup() if c.exact else None
        self.spans = SpanDedup(c.span_unit, c.span_min_chars) if c.span_unit else None
        self.near = (NearDedup(c.threshold, c.num_perm, shingle_size=c.shingle_size,
                               shingle_kind=c.shingle_kind, seed=c.seed, bands=c.bands,
                               rows=c.rows, verify=c.verify) if c.near_dedup else None)
        unknown = set(c.pii) - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}: expected some of "
                             f"{', '.join(PII_KINDS)}")
        on = {"read": True, "exact": c.exact, "spans": bool(c.span_unit),
              "quality": c.quality is not None, "near_dedup": c.near_dedup,
              "pii": bool(c.pii)}
        self.report = CleanReport({name: StageReport(name) for name in STAGES if on[name]})

    def _run_stage(self, name: str, text: str, key) -> tuple[str | None, str | None]:
        if name == "exact":
            return (None, "duplicate document") if self.exact.seen_before(text) else (text, None)
        if name == "spans":
            out = self.spans(text)
            return (out, None) if out.strip() else (None, "every paragraph seen before")
        if name == "quality":
            reasons = gopher_reasons(text, self.config.quality)
            for r in reasons:
                self.report.stages["quality"].details[_reason_key(r)] += 1
            return (None, reasons[0]) if reasons else (text, None)
        if name == "near_dedup":
            earlier = self.near(text, key)
            return (None, f"near-duplicate (of {earlier})") if earlier is not None else (text, None)
        if name == "pii":
            out, counts = redact_pii(text, self.config.pii)
            self.report.stages["pii"].details.update(counts)
            return out, None
        raise AssertionError(name)

    def process(self, text: str, key) -> tuple[str | None, str | None, str | None]:
        """(cleaned text or None, the stage that removed it, its reason)."""
        for name, stage in self.report.stages.items():
            if name == "read":
                continue
            size = len(text.encode("utf-8", "surrogatepass"))
            t0 = time.perf_counter()
            out, reason = self._run_stage(name, text, key)
            stage.seconds += time.perf_counter() - t0
            stage.documents_in += 1
            stage.bytes_in += size
            if out is None:
                stage.documents_removed += 1
                stage.reasons[_reason_key(reason)] += 1
                return None, name, reason
            if out != text:
                stage.documents_modified += 1
                size = len(out.encode("utf-8", "surrogatepass"))
            stage.bytes_out += size
            text = out
        self.report.documents_kept += 1
        self.report.bytes_kept += len(text.encode("utf-8", "surrogatepass"))
        return text, None, None


def clean_texts(texts: Iterable[str], config: CleanConfig | None = None):
    """Clean a list of strings in memory: (the kept texts, the CleanReport)."""
    pipe = Pipeline(config)
    kept, t0 = [], time.perf_counter()
    for i, text in enumerate(texts):
        read = pipe.report.stages["read"]
        read.documents_in += 1
        read.bytes_in += len(text.encode("utf-8", "surrogatepass"))
        read.bytes_out += len(text.encode("utf-8", "surrogatepass"))
        out, _, _ = pipe.process(text, i)
        if out is not None:
            kept.append(out)
    pipe.report.seconds = time.perf_counter() - t0
    return kept, pipe.report


def clean_files(inputs, out, config: CleanConfig | None = None, *, fmt: str = "blank",
                text_field: str = "text", out_format: str = "blank",
                invalid_utf8: str = "drop", max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
                removed=None, on_document: Callable | None = None) -> CleanReport:
    """Clean the documents of the `inputs` files (in order, deduplicated across them) into
    `out`, atomically; with `removed` (a path), write one JSON line per removed document
    (file, line, stage, reason), also atomically. `on_document(report)` is called after
    each document (a progress display)."""
    pipe = Pipeline(config)
    read = pipe.report.stages["read"]
    t_start = time.perf_counter()
    with DocumentWriter(out, out_format, text_field) as writer:
        log = DocumentWriter(removed, "jsonl") if removed is not None else None
        try:
            for path in inputs:
                docs = read_documents(path, fmt, text_field=text_field,
                                      invalid_utf8=invalid_utf8, max_doc_bytes=max_doc_bytes)
                while True:
                    t0 = time.perf_counter()
                    doc = next(docs, None)
                    read.seconds += time.perf_counter() - t0
                    if doc is None:
                        break
                    read.documents_in += 1
                    read.bytes_in += doc.nbytes
                    if isinstance(doc, Rejected):
                        read.documents_removed += 1
                        read.reasons[_reason_key(doc.reason)] += 1
                        stage, reason = "read", doc.reason
                    else:
                        read.bytes_out += doc.nbytes
                        text, stage, reason = pipe.process(doc.text, f"{doc.source}:{doc.line}")
                        if text is not None:
                            writer.write(text)
                    if stage is not None and log is not None:
                        log.write_record({"file": doc.source, "line": doc.line,
                                          "document": doc.index, "stage": stage,
                                          "reason": reason})
                    if on_document is not None:
                        on_document(pipe.report)
        except BaseException:
            if log is not None:
                log.abort()
            raise
        if log is not None:
            log.commit()
    pipe.report.seconds = time.perf_counter() - t_start
    return pipe.report
