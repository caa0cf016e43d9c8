"""The autograd engine's cost, as ratios against references run in this same process.

1. Per-op overhead: microseconds for one forward + backward of a single op on small
   tensors, numpyllm against the same forward and backward written in raw NumPy. The
   difference is what the engine adds per op (node, Tensor, topological sort, sum_to).
2. A two-layer MLP training step (forward, backward, SGD update) in numpyllm and in
   PyTorch (when installed), same shapes, float32: the ratio numpyllm / PyTorch.

The machines are shared and noisy: every figure is the median of several repetitions.

    python benchmarks/bench_autograd.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import numpyllm as nl


def median_time(fn, repeat: int, number: int) -> float:
    """Median over `repeat` runs of the mean time of `number` calls, in seconds."""
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


# ------------------------------------------------------------------ per-op overhead
def op_cases(n: int = 8):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    g = np.ones((n, n), dtype=np.float32)
    ta, tb = nl.Tensor(a, requires_grad=True), nl.Tensor(b, requires_grad=True)

    def raw_add():
        _ = a + b
        return g, g

    def raw_mul():
        _ = a * b
        return g * b, g * a

    def raw_matmul():
        _ = a @ b
        return g @ b.T, a.T @ g

    def raw_tanh():
        y = np.tanh(a)
        return g * (1 - y * y)

    def raw_sum():
        _ = a.sum(axis=1)
        return np.broadcast_to(np.ones((n, 1), np.float32), a.shape).copy()

    def raw_reshape():
        _ = a.reshape(-1)
        return g.reshape(a.shape)

    return [
        ("add", raw_add, lambda: (ta + tb).backward(g)),
        ("mul", raw_mul, lambda: (ta * tb).backward(g)),
        ("matmul", raw_matmul, lambda: (ta @ tb).backward(g)),
        ("tanh", raw_tanh, lambda: ta.tanh().backward(g)),
        ("sum(axis=1)", raw_sum, lambda: ta.sum(axis=1).backward(np.ones(n, np.float32))),
        ("reshape", raw_reshape, lambda: ta.reshape(-1).backward(np.ones(n * n, np.float32))),
    ]


def bench_ops(repeat: int) -> None:
    print("per-op forward+backward on [8, 8] float32 (median of %d runs)" % repeat)
    print(f"  {'op':14s} {'raw NumPy us':>13s} {'numpyllm us':>12s} {'overhead us':>12s} {'ratio':>7s}")
    for name, raw, ours in op_cases():
        t_raw = median_time(raw, repeat, 2000) * 1e6
        t_ours = median_time(ours, repeat, 2000) * 1e6
        print(f"  {name:14s} {t_raw:13.2f} {t_ours:12.2f} {t_ours - t_raw:12.2f} {t_ours / t_raw:7.1f}x")


# ------------------------------------------------------------------ MLP training step
def mlp_numpyllm(x, y, params, lr):
    w1, b1, w2, b2 = params

    def step():
        h = (x @ w1 + b1).relu()                   # [B, H]
        out = h @ w2 + b2                          # [B, O]
        loss = ((out - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.data -= lr * p.grad
        return loss
    return step


def mlp_torch(torch, x, y, params, lr):
    w1, b1, w2, b2 = params

    def step():
        h = torch.relu(x @ w1 + b1)
        out = h @ w2 + b2
        loss = ((out - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        return loss
    return step


def bench_mlp(repeat: int, batch: int, d_in: int, hidden: int, d_out: int) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((d_in, hidden)) * 0.05, np.zeros(hidden),
              rng.standard_normal((hidden, d_out)) * 0.05, np.zeros(d_out)]
    arrays = [a.astype(np.float32) for a in arrays]
    x = rng.standard_normal((batch, d_in)).astype(np.float32)
    y = rng.standard_normal((batch, d_out)).astype(np.float32)
    params = [nl.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ours = median_time(mlp_numpyllm(nl.Tensor(x), y, params, 1e-3), repeat, 20)
    print(f"two-layer MLP step [{batch}, {d_in}] -> {hidden} -> {d_out}, float32, SGD "
          f"(median of {repeat} runs of 20 steps)")
    print(f"  numpyllm: {ours * 1e3:8.3f} ms/step")
    try:
        import torch
    except ImportError:
        print("  PyTorch not installed: no reference ratio (pip install torch)")
        return
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    ref = median_time(mlp_torch(torch, torch.tensor(x), torch.tensor(y), tparams, 1e-3), repeat, 20)
    print(f"  PyTorch : {ref * 1e3:8.3f} ms/step  (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")
    print(f"  ratio numpyllm / PyTorch: {ours / ref:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    bench_ops(args.repeat)
    print()
    bench_mlp(args.repeat, batch=64, d_in=256, hidden=512, d_out=10)
    print()
    bench_mlp(args.repeat, batch=8, d_in=32, hidden=64, d_out=4)


if __name__ == "__main__":
    main()
