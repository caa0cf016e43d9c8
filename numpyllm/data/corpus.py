"""The default training corpus: the Python standard library's own source text.

Every machine that runs numpyllm has Python, and Python ships its standard library as
source: several megabytes of real text (code, comments, docstrings) that nobody here
wrote, with no download. `default_corpus()` reads a deterministic selection of it: the
``.py`` files under the stdlib directory, skipping test suites and generated tables
(the ``encodings`` codecs), keeping files that are plain ASCII (a small character
vocabulary), in an order fixed by a hash of each file's relative path, until
`max_bytes`. Hashed rather than sorted order, so that the last 10% (the validation
split) is a sample of the same kind of code as the rest, not one package.
"""
from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path

__all__ = ["default_corpus", "stdlib_source_files", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 4_000_000          # what `numpyllm train` without --data reads

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
              "lib2to3", "turtledemo", "ensurepip", "pydoc_data", "encodings", "__phello__"}


def stdlib_source_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The standard library's .py files outside test, vendored and generated directories,
    in a fixed pseudo-random order (by a hash of the relative path)."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in _SKIP_DIRS and not d.startswith("config-"))
        files += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]

    def key(path: Path) -> str:      # the same order on every machine with this Python
        return hashlib.sha256(path.relative_to(root).as_posix().encode()).hexdigest()
    return sorted(files, key=key)


def stdlib_documents(max_bytes: int = DEFAULT_MAX_BYTES, root=None) -> list[str]:
    """The standard-library source files `default_corpus` is made of, one text each (ASCII,
    without tabs), in its order, the last cut so that they hold `max_bytes` in all."""
    parts, total = [], 0
    for path in stdlib_source_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.isascii() or "\t" in text:
            continue
        parts.append(text[:max_bytes - total])
        total += len(parts[-1])
        if total >= max_bytes:
            break
    return parts


def default_corpus(max_bytes: int = DEFAULT_MAX_BYTES, root=None) -> str:
    """About `max_bytes` of standard-library source, the same on every run and machine
    with the same Python. Raises FileNotFoundError (with advice) when the standard
    library's sources are not installed (some minimal images ship only .pyc files)."""
    text = "".join(stdlib_documents(max_bytes, root))
    if len(text) < 100_000:
        raise FileNotFoundError(
            "the Python standard library's source files were not found (this Python ships "
            "only compiled files?): pass --data FILE with a UTF-8 text to train on")
    return text
