"""Documents in and out, streaming: a file is read one bounded line at a time, and a
document is yielded as soon as it is complete, so a file larger than memory is cleaned
with memory for one document (at most `max_doc_bytes`) plus the stages' indexes.

Three input layouts (`fmt`):

  "blank"  documents separated by one or more blank (whitespace-only) lines
  "line"   one document per line
  "jsonl"  one JSON object per line, the document in its `text_field` (default "text")

What hostile input becomes, each counted in the report under the reader's name:

  - bytes that are not UTF-8: with ``invalid_utf8="drop"`` (the default) the document is
    dropped ("invalid UTF-8"): a mis-decoded page teaches the model mojibake; with
    "replace" each bad byte becomes U+FFFD and the document is kept;
  - a NUL byte: the document is dropped ("NUL byte"): text has none; binary data does;
  - a line or document longer than `max_doc_bytes`: dropped ("longer than N bytes")
    without ever holding more than N bytes of it (the rest of the line is read in chunks
    and thrown away);
  - a JSONL line that is not an object with a string `text_field`: a ValueError naming
    the file and line (a wrong --text-field would otherwise drop every document silently);
  - an empty file: no documents.

The output (`DocumentWriter`) is a text file that ``numpyllm train --data`` reads as it is:
the kept documents, each followed by a blank line ("blank"), or JSONL ("jsonl"). It is
written to a temporary file beside the target and renamed over it only when complete,
so a reader never sees half an output, and a failed run leaves the old one in place.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

__all__ = ["Document", "Rejected", "read_documents", "DocumentWriter", "FORMATS",
           "DEFAULT_MAX_DOC_BYTES"]

FORMATS = ("blank", "line", "jsonl")
DEFAULT_MAX_DOC_BYTES = 16 * 2**20       # 16 MiB: far above any real document


@dataclass
class Document:
    """One document: its text and where it came from (file, 1-based first line, index)."""

    text: str
    source: str
    line: int
    index: int          # 0-based position among the documents of `source`
    nbytes: int         # its size in the input, in bytes (before decoding)


@dataclass
class Rejected:
    """A document the reader could not turn into text, with the reason."""

    source: str
    line: int
    index: int
    nbytes: int
    reason: str


def _decode(raw: bytes, invalid_utf8: str) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace") if invalid_utf8 == "replace" else None


def _lines(f, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """(line without its newline, or None when longer than `limit`; its size in bytes)."""
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            size = len(raw)
            while True:                   # skip the rest of the huge line, chunk by chunk
                chunk = f.readline(1 << 20)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield None, size
            continue
        yield raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw, len(raw)


def read_documents(path, fmt: str = "blank", *, text_field: str = "text",
                   invalid_utf8: str = "drop", max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES
                   ) -> Iterator[Document | Rejected]:
    """Yield the documents of `path` one by one (a `Document`, or a `Rejected` with the
    reason the reader dropped it), reading the file once, line by line.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.txt")
    >>> _ = open(p, "wb").write(b"one\\ntwo\\n\\n\\nthree\\n")
    >>> [d.text for d in read_documents(p, "blank")]
    ['one\\ntwo', 'three']
    >>> [d.text for d in read_documents(p, "line")]
    ['one', 'two', 'three']
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if invalid_utf8 not in ("drop", "replace"):
        raise ValueError(f"invalid_utf8 {invalid_utf8!r}: expected 'drop' or 'replace'")
    if max_doc_bytes < 1:
        raise ValueError(f"max_doc_bytes must be positive, got {max_doc_bytes}")
    path = Path(path)
    source = str(path)
    too_long = f"longer than {max_doc_bytes:,} bytes"
    index = 0

    def finish(raw: bytes | None, line: int, nbytes: int, reason: str | None = None):
        nonlocal index
        index += 1
        if reason is None and raw is not None:
            if b"\0" in raw:
                reason = "NUL byte"
            else:
                text = _decode(raw, invalid_utf8)
                if text is not None:
                    return Document(text, source, line, index - 1, nbytes)
                reason = "invalid UTF-8"
        return Rejected(source, line, index - 1, nbytes, reason or too_long)

    with open(path, "rb") as f:
        if fmt in ("line", "jsonl"):
            for lineno, (raw, size) in enumerate(_lines(f, max_doc_bytes), 1):
                if raw is None:
                    yield finish(None, lineno, size, too_long)
                    continue
                if not raw.strip():
                    continue                       # empty lines separate nothing here
                if fmt == "jsonl":
                    raw = _json_text(raw, source, lineno, text_field, invalid_utf8)
                    if isinstance(raw, str):       # the reader's reason to drop it
                        yield finish(None, lineno, size, raw)
                        continue
                yield finish(raw, lineno, size)
            return
        # "blank": gather lines until a blank one; never more than max_doc_bytes of them
        parts, start, size, oversized = [], 0, 0, False
        for lineno, (raw, nbytes) in enumerate(_lines(f, max_doc_bytes), 1):
            if raw is not None and not raw.strip():
                if parts or oversized:
                    yield finish(None if oversized else b"\n".join(parts), start, size)
                parts, size, oversized = [], 0, False
                continue
            if not parts and not oversized:
                start = lineno
            size += nbytes
            if raw is None or size > max_doc_bytes:
                parts, oversized = [], True        # keep counting its bytes, hold none
            elif not oversized:
                parts.append(raw)
        if parts or oversized:
            yield finish(None if oversized else b"\n".join(parts), start, size)


def _json_text(raw: bytes, source: str, lineno: int, field: str, invalid_utf8: str):
    """The UTF-8 bytes of a JSONL line's `field`; a str is a reason to drop the line."""
    text = _decode(raw, invalid_utf8)
    if text is None:
        return "invalid UTF-8"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}:{lineno}: not JSON ({exc.msg} at column {exc.colno})") \
            from None
    if not isinstance(record, dict):
        raise ValueError(f"{source}:{lineno}: expected a JSON object, got "
                         f"{type(record).__name__}")
    if field not in record:
        raise ValueError(f"{source}:{lineno}: no field {field!r} (fields: "
                         f"{', '.join(map(repr, list(record)[:8])) or 'none'})")
    value = record[field]
    if not isinstance(value, str):
        raise ValueError(f"{source}:{lineno}: field {field!r} is {type(value).__name__}, "
                         "not a string")
    # lone surrogates ("\ud800") are legal JSON but not text
    return value.encode("utf-8", errors="surrogatepass" if invalid_utf8 == "drop" else
                        "replace")


class DocumentWriter:
    """Write documents to `path` atomically: into a temporary file beside it, renamed over
    `path` by `commit()`; `abort()` (or leaving a ``with`` block by an exception) removes
    the temporary file and leaves `path` as it was.

    "blank": each document then a blank line (what ``numpyllm train --data`` reads);
    "jsonl": ``{"text": ...}`` per line.
    """

    def __init__(self, path, fmt: str = "blank", text_field: str = "text"):
        if fmt not in ("blank", "jsonl"):
            raise ValueError(f"output format {fmt!r}: expected 'blank' or 'jsonl'")
        self.path, self.fmt, self.text_field = Path(path), fmt, text_field
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path}: is a directory")
        directory = self.path.parent if str(self.path.parent) else Path(".")
        if not directory.is_dir():
            raise FileNotFoundError(f"{self.path}: directory {directory} does not exist")
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                         dir=directory)
        self._f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.documents = 0
        self.bytes = 0

    def write(self, text: str) -> None:
        if self.fmt == "jsonl":
            out = json.dumps({self.text_field: text}, ensure_ascii=False) + "\n"
        else:
            out = text + "\n\n"
        self._f.write(out)
        self.documents += 1
        self.bytes += len(text.encode("utf-8"))

    def write_record(self, record: dict) -> None:
        """One JSON object on its own line (the log of removed documents)."""
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
