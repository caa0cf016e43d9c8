"""The default training corpus: the Python standard library's own source text.

Every machine that runs numpyllm has Python, and Python ships its standard library as
source: several megabytes of real text (code, comments, docstrings) that nobody here
wrote, with no download. `default_corpus()` reads a deterministic selection of it: the
``.py`` files under the stdlib directory in sorted path order, skipping test suites,
keeping files that are plain ASCII (a small character vocabulary), until `max_bytes`.
"""
from __future__ import annotations

import os
import sysconfig
from pathlib import Path

__all__ = ["default_corpus", "stdlib_source_files"]

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
              "lib2to3", "turtledemo", "ensurepip", "pydoc_data"}


def stdlib_source_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The standard library's .py files, sorted, outside test and vendored directories."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        files += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return sorted(files)


def default_corpus(max_bytes: int = 4_000_000, root=None) -> str:
    """About `max_bytes` of standard-library source, the same on every run and machine
    with the same Python. Raises FileNotFoundError (with advice) when the standard
    library's sources are not installed (some minimal images ship only .pyc files)."""
    parts, total = [], 0
    for path in stdlib_source_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.isascii() or "\t" in text:
            continue
        parts.append(text)
        total += len(text)
        if total >= max_bytes:
            break
    if total < 100_000:
        raise FileNotFoundError(
            "the Python standard library's source files were not found (this Python ships "
            "only compiled files?): pass --data FILE with a UTF-8 text to train on")
    return "".join(parts)[:max_bytes]
