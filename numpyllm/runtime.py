"""Process-level tuning for training speed, applied only when asked.

Two process-wide settings live here: how malloc treats freed memory, and how many
threads numpy's BLAS (OpenBLAS) runs a matrix product on.

**Freed memory.** A training step allocates and frees the same large temporaries (activations, gradients)
every time. With glibc's default settings, blocks above 128 KiB come from `mmap` and go
back to the OS when freed, and the heap is trimmed as it shrinks: each step then maps
its memory again, and every page of it faults in (zero-filled) on first touch. Asking
malloc to keep freed memory lets the next step reuse it warm. This changes nothing but
speed and the process's resident memory (it stays at its peak).

Threads need one more setting. glibc gives each thread that allocates its own arena, built
of 64 MiB heaps, and a heap that becomes wholly free is unmapped whatever the trim
threshold says. A data-parallel thread whose slice's activations pass 64 MiB
(`numpyllm.training.data_parallel`) would then map and fault them in again every step
(~9,600 faults a step at 6 x 384 wide, context 256). One arena for the whole process
keeps them: threads share the main heap, kept like the rest. The cost is a lock taken
per malloc, which is nothing next to the arrays a step allocates. It applies to threads
that allocate for the first time after the call, so it is made before any are started:
by the command line at its start, by `DataParallel` when it is built, and otherwise at
the first backward pass.

This is process-wide state, so the library never does it on import. It does it once,
at a process's first backward pass (`keep_freed_memory_for_training`, called by the
autograd engine): a script that trains gets the speed without knowing the setting, and
one that never calls ``backward()`` is untouched. Opt out with the environment variable
``NUMPYLLM_MALLOC=default`` (then nothing is changed), or undo it with
`restore_malloc_defaults()` (glibc's fixed 128 KiB thresholds; afterwards the engine
leaves malloc alone). The ``numpyllm`` command line calls `keep_freed_memory()` itself.

**BLAS threads.** OpenBLAS splits each large matrix product over its own threads, and
between products its idle threads spin for a while, waiting for the next one. Where
numpyllm runs its own threads (`numpyllm.training.data_parallel`: each thread takes a slice of
the batch through the whole model) BLAS must stay on the calling thread, or the two
kinds of thread fight over the cores. `blas_threads(1)` does that for the length of a
``with`` block and restores the previous count after it. numpy does not expose the
setting, so it is reached through ctypes in the OpenBLAS library numpy has loaded
(``openblas_set_num_threads`` under the names numpy's wheels give it); where there is
none (another BLAS), the functions report that and change nothing. `blas_core()`
names the kernels it runs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from contextlib import contextmanager

import numpy as np

__all__ = ["keep_freed_memory", "keep_freed_memory_for_training", "restore_malloc_defaults",
           "blas_threads", "get_blas_threads", "set_blas_threads", "blas_core"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024     # glibc's ceiling on 64-bit systems


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Tell glibc malloc to serve blocks up to 32 MiB from the heap, to keep up to
    `trim_threshold` bytes of freed memory instead of returning it to the OS, and to
    give threads started from now on the main arena rather than their own (see the
    module doc). Returns True if applied, False where it does not apply (not Linux with
    glibc)."""
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
    ok &= mallopt(_M_ARENA_MAX, 1)
    return bool(ok)


_malloc_settled = False      # the first backward's decision is taken (or was overridden)


def keep_freed_memory_for_training() -> bool:
    """`keep_freed_memory()` once per process, unless ``NUMPYLLM_MALLOC=default`` or
    `restore_malloc_defaults` said otherwise; returns whether it applied now. The
    autograd engine calls it at the first backward pass (see the module doc)."""
    global _malloc_settled
    if _malloc_settled:
        return False
    _malloc_settled = True
    if os.environ.get("NUMPYLLM_MALLOC", "").strip().lower() == "default":
        return False
    return keep_freed_memory()


def restore_malloc_defaults() -> bool:
    """Undo `keep_freed_memory`: glibc's 128 KiB mmap and trim thresholds (fixed, as any
    explicit setting makes them), its 8 arenas per CPU for threads started from now on,
    and no more changes from the engine. Returns True if applied, False where malloc
    has no such settings."""
    global _malloc_settled
    _malloc_settled = True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 128 * 1024) & mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
                & mallopt(_M_ARENA_MAX, 8 * (os.cpu_count() or 1)))


# ---------------------------------------------------------------------------- BLAS threads
_openblas_api = None          # (get, set) ctypes functions, () when there is no OpenBLAS


def _loaded_openblas_paths() -> list:
    """Files of the OpenBLAS libraries this process may have loaded, numpy's own first
    (scipy and others can bring a second OpenBLAS): on Linux the mapped files whose name
    says openblas; elsewhere the ones bundled with numpy."""
    root = os.path.dirname(os.path.abspath(np.__file__))
    owned = (os.path.join(os.path.dirname(root), "numpy.libs") + os.sep, root + os.sep)
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)     # address perms offset dev inode path
                if len(fields) == 6 and "openblas" in os.path.basename(fields[5]).lower():
                    path = fields[5].strip()
                    if path not in paths:
                        paths.append(path)
    except OSError:
        pass
    if not paths:                                # macOS, Windows: numpy's bundled copies
        for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*", ".libs/*openblas*"):
            paths += sorted(glob.glob(os.path.join(root, pattern)))
    return sorted(paths, key=lambda path: not os.path.abspath(path).startswith(owned))


def _openblas():
    """``(get_num_threads, set_num_threads, get_corename)`` of numpy's OpenBLAS, or ``()``."""
    global _openblas_api
    if _openblas_api is None:
        _openblas_api = ()
        np.dot(np.ones((2, 2)), np.ones((2, 2)))           # make sure BLAS is loaded
        for path in _loaded_openblas_paths():
            try:
                lib = ctypes.CDLL(path)                  # already loaded: the same handle
            except OSError:
                continue
            # numpy >= 2 wheels: scipy_openblas..64_; older wheels: openblas..64_ or plain
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    names = (f"{prefix}_get_num_threads{suffix}",
                             f"{prefix}_set_num_threads{suffix}",
                             f"{prefix}_get_corename{suffix}")
                    get, set_, core = (getattr(lib, name, None) for name in names)
                    if get is not None and set_ is not None and core is not None:
                        get.argtypes, get.restype = [], ctypes.c_int
                        set_.argtypes, set_.restype = [ctypes.c_int], None
                        core.argtypes, core.restype = [], ctypes.c_char_p
                        _openblas_api = (get, set_, core)
                        return _openblas_api
    return _openblas_api


def get_blas_threads() -> int | None:
    """Threads OpenBLAS uses for one product, or None where numpy's BLAS is not OpenBLAS
    (or cannot be reached)."""
    api = _openblas()
    return int(api[0]()) if api else None


def set_blas_threads(n: int) -> bool:
    """Let OpenBLAS use `n` threads per product. Returns False (and changes nothing)
    where numpy's BLAS is not a reachable OpenBLAS."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_blas_threads needs a positive integer, got {n!r}")
    api = _openblas()
    if not api:
        return False
    api[1](n)
    return True


@contextmanager
def blas_threads(n: int):
    """``with blas_threads(1): ...``: OpenBLAS on `n` threads inside the block, the
    previous count restored after it (also on an exception). A no-op without OpenBLAS."""
    before = get_blas_threads()
    changed = before is not None and before != n and set_blas_threads(n)
    try:
        yield
    finally:
        if changed:
            set_blas_threads(before)


def blas_core() -> str | None:
    """The name of the kernels numpy's OpenBLAS runs ("Haswell", "SkylakeX", ...), or None
    where numpy's BLAS is not a reachable OpenBLAS. OpenBLAS picks them for the CPU when
    it loads, unless the environment variable ``OPENBLAS_CORETYPE`` names them."""
    api = _openblas()
    return api[2]().decode() if api else None
