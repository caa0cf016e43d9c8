"""One GPT training step (forward, backward, AdamW) in numpyllm and in PyTorch, same
model, same weights, same batches, in one process; medians and the ratio.

    python benchmarks/bench_train_step.py                 # nanoGPT's CPU recipe
    python benchmarks/bench_train_step.py --wide          # 6 layers, 6 heads, 384 wide, T 256, B 8
    python benchmarks/bench_train_step.py --steps 40 --profile
    python benchmarks/bench_train_step.py --bias          # GPT-2 style biases in both models
    python benchmarks/bench_train_step.py --serial        # also numpyllm on one Python thread

numpyllm runs its training step as `numpyllm.Trainer` does: data-parallel on threads
(`numpyllm.data_parallel`: each thread takes a slice of the batch through forward and
backward, BLAS on one thread each), so its forward and backward are timed together.
``--serial`` adds the one-Python-thread step (BLAS's own threads on each product),
whose forward and backward are timed apart.

The PyTorch model is nanoGPT's forward written with torch.nn.functional on the very same
weight arrays (GPT-2's [in, out] layout), trained with torch.optim.AdamW. Reported: the
median forward / backward / optimizer / whole-step time of each, the ratio numpyllm /
PyTorch, the achieved GFLOP/s against NumPy's own float32 GEMM peak measured in this
run, and peak memory (Python-heap peak of the numpyllm step via tracemalloc, which
sees NumPy's buffers; the process's peak RSS for each framework run in a child).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from numpyllm.data_parallel import DataParallel
from numpyllm.nn.gpt import GPT, GPTConfig
from numpyllm.optim import AdamW, configure_param_groups

CONFIGS = {
    "nanogpt": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12, vocab=65),
    "wide": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8, vocab=65),
}


def step_flops(c: dict) -> float:
    """Matmul FLOPs of one training step (backward = 2 x forward)."""
    L, C, T, B, V = c["n_layer"], c["n_embd"], c["block_size"], c["batch"], c["vocab"]
    per_token = 2 * 12 * L * C * C + 2 * C * V + 2 * 2 * L * T * C   # blocks, head, attention
    return 3 * per_token * B * T


def gemm_peak(repeat: int = 5) -> float:
    """NumPy float32 GEMM GFLOP/s on 1024 x 1024 matrices (median)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    times = []
    a @ a
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(4):
            a @ a
        times.append((time.perf_counter() - t) / 4)
    return 2 * 1024 ** 3 / statistics.median(times) / 1e9


def build(c: dict, seed: int = 0):
    cfg = GPTConfig(vocab_size=c["vocab"], block_size=c["block_size"], n_layer=c["n_layer"],
                    n_head=c["n_head"], n_embd=c["n_embd"], bias=c.get("bias", False))
    model = GPT(cfg, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    batches = [rng.integers(0, c["vocab"], size=(2, c["batch"], c["block_size"])) for _ in range(4)]
    return model, batches


# ---------------------------------------------------------------------- numpyllm
def numpyllm_stepper(model, data_parallel: bool = True):
    """A step function returning (forward, backward, optimizer seconds, loss); with
    `data_parallel` forward and backward run together, reported as (both, None, ...)."""
    opt = AdamW(configure_param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    dp = DataParallel(model)

    def step(x, y):
        t0 = time.perf_counter()
        if data_parallel:
            value = dp.forward_backward(x, y)
            t1 = t2 = time.perf_counter()
        else:
            _, loss = model(x, targets=y)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            value = float(loss.item())
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        return t1 - t0, (None if data_parallel else t2 - t1), t3 - t2, value
    return step


# ---------------------------------------------------------------------- PyTorch
def torch_gpt_loss(torch, p: dict, n_layer: int, n_head: int, idx, targets):
    """nanoGPT's forward and loss with torch.nn.functional, on tensors `p` named as
    numpyllm's parameters (GPT-2's [in, out] layout; biases optional)."""
    F = torch.nn.functional
    B, T = idx.shape
    C = p["wte.weight"].shape[1]
    x = p["wte.weight"][idx] + p["wpe.weight"][:T]
    for i in range(n_layer):
        pre = f"h.{i}."

        def lin(h, name):
            y = h @ p[pre + name + ".weight"]
            return y + p[pre + name + ".bias"] if pre + name + ".bias" in p else y
        h = F.layer_norm(x, (C,), p[pre + "ln_1.weight"], p.get(pre + "ln_1.bias"))
        q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2)
                   for t in lin(h, "attn.c_attn").split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + lin(y.transpose(1, 2).reshape(B, T, C), "attn.c_proj")
        h = F.layer_norm(x, (C,), p[pre + "ln_2.weight"], p.get(pre + "ln_2.bias"))
        x = x + lin(F.gelu(lin(h, "mlp.c_fc"), approximate="tanh"), "mlp.c_proj")
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p.get("ln_f.bias"))
    logits = x @ p["wte.weight"].T
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def torch_stepper(torch, model, c: dict):
    params = {n: torch.tensor(p.data.copy(), requires_grad=True) for n, p in model.named_parameters()}
    decay = [p for p in params.values() if p.ndim >= 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))

    def forward(idx, targets):
        return torch_gpt_loss(torch, params, c["n_layer"], c["n_head"], idx, targets)

    def step(x, y):
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        t0 = time.perf_counter()
        loss = forward(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2, float(loss.item())
    return step


# ---------------------------------------------------------------------- measurement
def measure(step, batches, steps: int, warmup: int = 3):
    for i in range(warmup):
        x, y = batches[i % len(batches)]
        step(x, y)
    rows = [step(*batches[i % len(batches)]) for i in range(steps)]
    split = rows[0][1] is not None            # forward and backward timed apart
    return {"forward": statistics.median(r[0] for r in rows) if split else None,
            "backward": statistics.median(r[1] for r in rows) if split else None,
            "fwd+bwd": statistics.median(r[0] + (r[1] or 0.0) for r in rows),
            "optimizer": statistics.median(r[2] for r in rows),
            "step": statistics.median(r[0] + (r[1] or 0.0) + r[2] for r in rows),
            "loss": rows[-1][3]}


def child_peak_rss(framework: str, name: str, steps: int) -> float:
    """Peak RSS (MB) of a fresh process that builds the model and runs `steps` steps."""
    code = (f"import resource, sys; sys.argv=['x']; import benchmarks.bench_train_step as b; "
            f"b._child({framework!r}, {name!r}, {steps})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_root())
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
    except (IndexError, ValueError, KeyError):
        return float("nan")


def _root():
    from pathlib import Path
    return str(Path(__file__).resolve().parents[1])


def _child(framework: str, name: str, steps: int) -> None:
    import resource

    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()
    c = CONFIGS[name]
    model, batches = build(c)
    if framework == "torch":
        import torch
        step = torch_stepper(torch, model, c)
        del model
    else:
        step = numpyllm_stepper(model)
    for i in range(steps):
        step(*batches[i % len(batches)])
    # VmHWM, the peak RSS of this process image: ru_maxrss would carry over the parent's
    # peak across fork + exec on Linux
    with open("/proc/self/status") as f:
        hwm_kb = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
    peak_kb = hwm_kb if hwm_kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wide", action="store_true", help="6 layers, 6 heads, 384 wide, T 256, B 8")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per framework")
    ap.add_argument("--rounds", type=int, default=6,
                    help="the steps are cut into this many rounds, the frameworks taking "
                         "turns, so that machine noise hits both alike")
    ap.add_argument("--profile", action="store_true", help="cProfile the numpyllm steps")
    ap.add_argument("--no-memory", action="store_true", help="skip the child-process RSS runs")
    ap.add_argument("--bias", action="store_true",
                    help="biases in Linear and LayerNorm (GPT-2 style); default off, as "
                         "nanoGPT's train.py and numpyllm train")
    ap.add_argument("--serial", action="store_true",
                    help="also time numpyllm on one Python thread (BLAS threads only)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc settings as they are (see numpyllm/runtime.py)")
    args = ap.parse_args()
    if not args.default_malloc:
        from numpyllm.runtime import keep_freed_memory
        print(f"malloc keeps freed memory (both frameworks): {keep_freed_memory()}")
    name = "wide" if args.wide else "nanogpt"
    c = dict(CONFIGS[name], bias=args.bias)
    peak = gemm_peak()
    flops = step_flops(c)
    print(f"config {name}: {c}; {flops / 1e9:.2f} GFLOP per step; NumPy float32 GEMM peak "
          f"{peak:.0f} GFLOP/s (floor {flops / peak / 1e9 * 1e3:.1f} ms/step)")
    from numpyllm.runtime import blas_core
    chosen = os.environ.get("OPENBLAS_CORETYPE")
    print(f"NumPy's OpenBLAS runs its {blas_core()} kernels"
          + (f" (OPENBLAS_CORETYPE={chosen} in the environment)" if chosen else
             " (its own choice for this CPU)"))
    model, batches = build(c)
    results = {}
    try:
        import torch
        torch_step = torch_stepper(torch, model, c)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        torch_step = None
        print("PyTorch not installed: numpyllm figures only")
    ours = numpyllm_stepper(model)
    steppers = {"numpyllm": ours}
    if args.serial:
        steppers["numpyllm-1"] = numpyllm_stepper(model, data_parallel=False)
    if torch_step:
        steppers["PyTorch"] = torch_step
    if args.profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        results["numpyllm"] = measure(ours, batches, args.steps)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    else:
        # interleave the two frameworks in rounds so machine noise hits both alike
        rounds = {key: [] for key in steppers}
        for _ in range(args.rounds):
            for key, stepper in steppers.items():
                rounds[key].append(measure(stepper, batches, max(1, args.steps // args.rounds)))
        for key, runs in rounds.items():
            results[key] = {k: (None if runs[0][k] is None else statistics.median(r[k] for r in runs))
                            for k in runs[0]}

    def ms(value):
        return f"{'-':>9s}" if value is None else f"{value * 1e3:7.2f}ms"
    print(f"\n{'':10s} {'forward':>9s} {'backward':>9s} {'fwd+bwd':>9s} {'optim':>9s} {'step':>9s} "
          f"{'GFLOP/s':>8s} {'% peak':>7s}")
    for key, r in results.items():
        gf = flops / r["step"] / 1e9
        print(f"{key:10s} {ms(r['forward'])} {ms(r['backward'])} {ms(r['fwd+bwd'])} "
              f"{ms(r['optimizer'])} {ms(r['step'])} {gf:8.1f} {100 * gf / peak:6.0f}%")
    if "PyTorch" in results:
        print(f"\nratio numpyllm / PyTorch (median step): "
              f"{results['numpyllm']['step'] / results['PyTorch']['step']:.2f}")
        if not args.profile:
            per_round = sorted(a["step"] / b["step"]
                               for a, b in zip(rounds["numpyllm"], rounds["PyTorch"]))
            print(f"ratio in each of the {len(per_round)} rounds: "
                  + " ".join(f"{r:.2f}" for r in per_round))
            for key, runs in rounds.items():
                print(f"  {key} step in each round: "
                      + " ".join(f"{r['step'] * 1e3:.1f}" for r in runs) + " ms")
    import tracemalloc
    tracemalloc.start()
    ours(*batches[0])
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"numpyllm peak traced memory during one step: {heap_peak / 2**20:.1f} MB")
    if not args.no_memory:
        rss = {fw: child_peak_rss(fw, name, 5) for fw in ("numpyllm", "torch")}
        print(f"peak RSS of a process running 5 steps: numpyllm {rss['numpyllm']:.0f} MB, "
              f"PyTorch {rss['torch']:.0f} MB")


if __name__ == "__main__":
    main()
