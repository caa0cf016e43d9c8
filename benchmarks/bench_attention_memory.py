"""Memory and time of attention's forward + backward: the standard path against the
memory-efficient one (``scaled_dot_product_attention(..., block_size=n)``).

For each sequence length T, one forward + backward of self-attention on q, k, v
``[B, nh, T, hs]`` (float32; causal unless --mask none):

- peak memory: the most memory NumPy held at once during the step, above what the
  inputs already held, measured with tracemalloc (which sees NumPy's buffers). The
  standard path keeps the weights P ``[B, nh, T, T]`` for backward and makes dP and
  dS of that size too: quadratic in T. The blocked path keeps q, k, v, the output and
  one logsumexp per query, and a few ``[B, nh, n, n]`` tiles: linear in T.
  "x per 2T" is the growth from the previous row: 4 for quadratic, 2 for linear.
- time: the median of several runs (tracemalloc off). The blocked path recomputes
  the scores in backward (and, in NumPy, pays Python overhead per tile): the ratio
  blocked / standard is that price. With a causal mask the blocked path also skips
  the tiles above the diagonal, which the standard path computes and then masks.

Nothing is asserted: the machines are shared and noisy. On a loaded machine, BLAS
threads fighting other processes make the times erratic; ``OPENBLAS_NUM_THREADS=1``
(set before Python starts) gives steadier ones. The header prints the load average.

    python benchmarks/bench_attention_memory.py [--lengths 512 1024 2048 4096]
        [--block-size 128] [--mask causal|none] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc

import numpy as np

import numpyllm as nl
from numpyllm.functional import scaled_dot_product_attention

MiB = 2.0 ** 20


def make_step(T: int, args):
    """A function running one forward + backward at length T, for `args.block_size`."""
    rng = np.random.default_rng(0)
    shape = (args.batch, args.heads, T, args.head_size)
    q, k, v = (nl.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
               for _ in range(3))
    g = np.ones(shape, dtype=np.float32)

    def step(block_size):
        for t in (q, k, v):
            t.grad = None
        out = scaled_dot_product_attention(q, k, v, causal=args.mask == "causal",
                                           block_size=block_size)
        out.backward(g)

    return step


def peak_mib(step, block_size) -> float:
    """Peak traced memory above the starting point during one step, in MiB."""
    step(block_size)                                  # warm up (and free the grads' old buffers)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        step(block_size)
        return (tracemalloc.get_traced_memory()[1] - start) / MiB
    finally:
        tracemalloc.stop()


def median_seconds(step, block_sizes, repeat: int) -> list:
    """Median wall time of a step for each block size, the runs interleaved so that a
    burst of load on a shared machine hits both paths alike."""
    times = [[] for _ in block_sizes]
    for _ in range(repeat):
        for block_size, runs in zip(block_sizes, times):
            start = time.perf_counter()
            step(block_size)
            runs.append(time.perf_counter() - start)
    return [statistics.median(runs) for runs in times]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--mask", choices=["causal", "none"], default="causal")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"attention forward + backward, B={args.batch} nh={args.heads} hs={args.head_size} "
          f"float32, mask={args.mask}, block_size={args.block_size}, "
          f"median of {args.repeat} runs, NumPy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = (f"{'T':>5} | {'P [B,nh,T,T]':>12} | {'standard peak':>13} {'x per 2T':>8} | "
              f"{'blocked peak':>12} {'x per 2T':>8} | {'std/blocked':>11} | "
              f"{'standard':>9} {'blocked':>9} {'time ratio':>10}")
    print(header)
    print("-" * len(header))
    previous = None
    for T in args.lengths:
        step = make_step(T, args)
        scores = args.batch * args.heads * T * T * 4 / MiB
        peaks = (peak_mib(step, None), peak_mib(step, args.block_size))
        secs = median_seconds(step, (None, args.block_size), args.repeat)
        growth = ["" if previous is None else f"x{p / pp:.2f}" for p, pp in
                  zip(peaks, previous or peaks)]
        print(f"{T:>5} | {scores:>8.1f} MiB | {peaks[0]:>9.1f} MiB {growth[0]:>8} | "
              f"{peaks[1]:>8.1f} MiB {growth[1]:>8} | {peaks[0] / peaks[1]:>10.1f}x | "
              f"{secs[0] * 1e3:>6.0f} ms {secs[1] * 1e3:>6.0f} ms {secs[1] / secs[0]:>9.2f}x")
        previous = peaks


if __name__ == "__main__":
    main()
