"""Running independent slices of one computation on a few threads.

NumPy releases the GIL inside `np.matmul` and ufunc loops, so Python threads can run
NumPy work in parallel. Where a fused op's work splits into independent pieces along
its first axis (attention: every batch element has its own scores) and each piece
is made of many small calls (a [64, 32] @ [32, 64] GEMM per head, a softmax per row),
one thread leaves a core idle: BLAS only parallelises big GEMMs. `for_slices` runs the
pieces on `num_threads()` threads instead.

The results are bit-identical however the work is split: every piece computes exactly
what it would in one thread (one GEMM per matrix, reductions per row).

The pool is a process resource like BLAS's own threads: created on first use, sized
by ``NUMPYLLM_NUM_THREADS`` (default: the number of CPUs), and changeable with
`set_num_threads`; ``set_num_threads(1)`` makes everything serial.

Parallel regions do not nest: a `for_slices` called from inside a piece (attention's
kernels inside `numpyllm.training.data_parallel`'s per-thread forward pass) runs serially in
that piece's thread, as OpenMP does by default. The threads are already busy, and
waiting on the pool from one of its own threads could never finish.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["for_slices", "elementwise", "rowwise", "num_threads", "set_num_threads"]

_lock = threading.Lock()
_region = threading.local()          # .active: this thread is running a piece
_pool: ThreadPoolExecutor | None = None
_threads: int | None = None


def num_threads() -> int:
    """Threads `for_slices` uses (NUMPYLLM_NUM_THREADS, else the number of CPUs)."""
    global _threads
    if _threads is None:
        env = os.environ.get("NUMPYLLM_NUM_THREADS", "")
        _threads = max(1, int(env)) if env.strip().isdigit() else (os.cpu_count() or 1)
    return _threads


def set_num_threads(n: int) -> None:
    """Use `n` threads from now on (1: run every piece in the calling thread)."""
    global _threads, _pool
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads needs a positive integer, got {n!r}")
    with _lock:
        _threads = n
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=num_threads() - 1,
                                       thread_name_prefix="numpyllm")
        return _pool


def for_slices(n: int, work, *, min_work: int = 0, work_per_item: int = 1) -> None:
    """Call ``work(slice)`` over ``range(n)`` cut into contiguous pieces, one per thread
    (the calling thread takes the first). Serial when there is one thread, one item, or
    less than `min_work` in all (`work_per_item` times `n`): threads cost ~10 µs each.
    Exceptions raised by any piece propagate."""
    threads = min(num_threads(), n)
    if threads < 2 or n * work_per_item < min_work or getattr(_region, "active", False):
        work(slice(0, n))
        return
    bounds = [n * i // threads for i in range(threads + 1)]
    pool = _get_pool()
    futures = [pool.submit(_piece, work, slice(lo, hi))
               for lo, hi in zip(bounds[1:-1], bounds[2:])]
    try:
        _piece(work, slice(bounds[0], bounds[1]))
    finally:
        for f in futures:          # wait for every piece, even if ours failed
            f.exception()
    for f in futures:
        f.result()                 # re-raise the first failure of another piece


# below this many elements a fused element- or row-wise op runs whole, on one thread, as
# plain NumPy: its arrays fit in the cache already, and blocks and threads only add their
# overhead (nanoGPT's GELU, 12 x 64 x 512: 1.4 ms a step whole, 2.2 ms in blocks on two
# threads; 2026-11-30)
ELEMENTWISE_MIN = 1 << 20
# and each thread's piece is done in blocks of this many elements, every step of the op
# on one block before the next: a fused op makes several passes over its arrays (GELU
# eight), and a 2^16-element block of each stays in the core's cache between passes
# where a whole [B, T, 4C] array streams from memory at every pass. Measured on GELU's
# forward over 8 x 256 x 1536 float32 (2 cores, 2026-11-30): 6.6 ms whole, 2.8 ms in
# blocks of 2^16 (3.3 at 2^14, 2.6-3.7 at 2^17)
ELEMENTWISE_BLOCK = 1 << 16


def elementwise(work, *arrays, min_work: int | None = None) -> None:
    """Call ``work(*pieces)`` on matching contiguous pieces of `arrays` (C-contiguous,
    one size; None entries are passed through as None), in cache-sized blocks, on the
    threads: for a fused op whose every element is its own (GELU, SiLU, an optimizer's
    update), written in place into output arrays that are among `arrays`. Bit-identical
    on any thread count and block size."""
    flat = []
    for a in arrays:
        if a is not None and not a.flags.c_contiguous:
            raise ValueError("elementwise: arrays must be C-contiguous (a view is written)")
        flat.append(None if a is None else a.reshape(-1))
    n = next(f.size for f in flat if f is not None)
    if n < (ELEMENTWISE_MIN if min_work is None else min_work):
        work(*flat)                                 # small: one call over the whole
        return

    def piece(sl):
        for lo in range(sl.start, sl.stop, ELEMENTWISE_BLOCK):
            sub = slice(lo, min(lo + ELEMENTWISE_BLOCK, sl.stop))
            work(*(None if f is None else f[sub] for f in flat))
    for_slices(n, piece, min_work=ELEMENTWISE_MIN if min_work is None else min_work)


def rowwise(work, n_rows: int, width: int, *, min_work: int | None = None) -> None:
    """Call ``work(rows)`` (a slice) over `n_rows` rows of `width` elements, in blocks of
    about `ELEMENTWISE_BLOCK` elements, on the threads: for a fused op whose every row is
    its own (a layer norm, a softmax). Bit-identical on any thread count and block size
    as long as `work` computes each row alone with the same operations (a BLAS product
    over a block of rows may group them differently from one block size to another:
    equal to rounding, then)."""
    step = max(1, ELEMENTWISE_BLOCK // max(1, width))
    if n_rows * width < (ELEMENTWISE_MIN if min_work is None else min_work):
        work(slice(0, n_rows))                      # small: one call over every row
        return

    def piece(sl):
        for lo in range(sl.start, sl.stop, step):
            work(slice(lo, min(lo + step, sl.stop)))
    for_slices(n_rows, piece, min_work=ELEMENTWISE_MIN if min_work is None else min_work,
               work_per_item=width)


def _piece(work, sl: slice) -> None:
    """``work(sl)`` with this thread marked as inside a parallel region."""
    _region.active = True
    try:
        work(sl)
    finally:
        _region.active = False
