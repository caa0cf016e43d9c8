"""Process-level tuning for training speed, applied only when asked.

A training step allocates and frees the same large temporaries (activations, gradients)
every time. With glibc's default settings, blocks above 128 KiB come from `mmap` and go
back to the OS when freed, and the heap is trimmed as it shrinks: each step then maps
its memory again, and every page of it faults in (zero-filled) on first touch. Asking
malloc to keep freed memory lets the next step reuse it warm. This changes nothing but
speed and the process's resident memory (it stays at its peak).

This is process-wide state, so the library never does it on import: the ``numpyllm``
command line calls `keep_freed_memory()` before training, and so can a script.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024     # glibc's ceiling on 64-bit systems


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Tell glibc malloc to serve blocks up to 32 MiB from the heap and to keep up to
    `trim_threshold` bytes of freed memory instead of returning it to the OS.
    Returns True if applied, False where it does not apply (not Linux with glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):          # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    ok &= mallopt(_M_TRIM_THRESHOLD, min(int(trim_threshold), 2**31 - 1))
    return bool(ok)
