"""One GPT training step (forward, backward, AdamW) in numpyllm and in PyTorch, each
framework in its own fresh process per round, the rounds alternating, the same thread
count on both sides; medians, ranges and ratios.

    python benchmarks/bench_train_step.py                  # nanoGPT's CPU model, 6 rounds
    python benchmarks/bench_train_step.py --wide           # 6 layers, 6 heads, 384 wide, T 256, B 8
    python benchmarks/bench_train_step.py --shape gpt2     # GPT-2 small, T 256, B 4 (3 steps)
    python benchmarks/bench_train_step.py --shape smollm2  # SmolLM2-135M's Llama, T 256, B 4
    python benchmarks/bench_train_step.py --rounds 10 --steps 40
    python benchmarks/bench_train_step.py --threads 1      # one thread on every side
    python benchmarks/bench_train_step.py --malloc         # also the plain loop + keep_freed_memory()
    python benchmarks/bench_train_step.py --profile plain  # cProfile one numpyllm process

What is compared (both sides start from the same weights and see the same batches: the
parent writes them once to a temporary .npz that every worker reads):

(a) **A user's own loop**, as the README writes it:
    ``logits, loss = model(x, targets=y); loss.backward(); opt.step(); opt.zero_grad()``,
    numpyllm in a process that imports only numpyllm and sets nothing (no
    ``keep_freed_memory()``, glibc's malloc as it comes), against the same loop in
    PyTorch (``loss = model(x, y); loss.backward(); opt.step(); opt.zero_grad()``,
    torch.optim.AdamW with the defaults a user gets: foreach/fused unset).
(b) **The trainer's step**, as ``numpyllm train`` runs it: ``runtime.keep_freed_memory()``
    (the command line calls it), then ``Trainer.train_step()`` (lr schedule, forward and
    backward data-parallel on threads, gradient clipping at 1.0, AdamW, zero_grad), the
    Trainer's batch sampler replaced by the shared batches; against nanoGPT's train.py
    step in PyTorch (lr set per group, forward, backward, ``clip_grad_norm_(1.0)``, AdamW,
    ``zero_grad(set_to_none=True)``).

Models: nanoGPT's CPU recipe (4 layers, 4 heads, 128 wide, context 64, batch 12, vocab
65, no biases, dropout 0), ``--wide``, GPT-2 small's shape, or SmolLM2-135M's (a Llama:
the PyTorch side is benchmarks/_torch_llama.py's forward, F.rms_norm, RoPE, grouped-query
sdpa with enable_gqa, SwiGLU, tied head). The PyTorch model is nanoGPT's forward written
with torch.nn.functional (benchmarks/_torch_gpt.py: F.embedding, F.layer_norm, F.linear
on [out, in] weights as nn.Linear stores them, F.scaled_dot_product_attention, tanh GELU,
tied head, F.cross_entropy).

Each worker runs `--warmup` steps, then `--steps` timed steps; a round's figure for a
side is its process's median step. Printed: thread counts and BLAS kernels each process
saw, and how much CPU other processes used meanwhile (a warning when the machine was not
idle); every round's figure, the median over rounds, the range, the ratio of medians and
the ratio within each round; the median forward / backward / optimizer split of the
plain loops; the losses of both sides (same math: they must agree); the minor page
faults per step of each process (glibc's malloc puts numpyllm's plain loop in a fast or
a slow mode per process: this shows which); each process's peak RSS (VmHWM); a float32
GEMM in each process after its steps (what its BLAS gives on this machine). Nothing is
asserted on time.

Run it on an idle machine: when other processes compete for the cores, multithreaded
BLAS and OpenMP wait on descheduled threads, both sides slow down by different factors
and the ratio means little. ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``
measures numpy's OpenBLAS with its own kernel choice when the environment forces one
(what ``pip install numpy`` gives a user; the report names the kernels each side ran).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

CONFIGS = {
    "nanogpt": dict(family="gpt", n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12,
                    vocab=65),
    "wide": dict(family="gpt", n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8,
                 vocab=65),
    # GPT-2 small (124M: biases, tied head, 50,257 tokens), at T 256, B 4
    "gpt2": dict(family="gpt", n_layer=12, n_head=12, n_embd=768, block_size=256, batch=4,
                 vocab=50257, bias=True),
    # SmolLM2-135M's shape: 30 layers, 9 query heads sharing 3 key/value heads, SwiGLU
    # 1536, RMSNorm, RoPE (theta 1e5), tied head, 49,152 tokens; at T 256, B 4
    "smollm2": dict(family="llama", n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
                    intermediate=1536, block_size=256, batch=4, vocab=49152),
}
BIG = ("gpt2", "smollm2")        # default to fewer steps: seconds each
N_BATCHES = 8                    # distinct batches, cycled; step i uses batch i % N_BATCHES
SIDES = {                        # side -> its label in the report
    "numpyllm": "numpyllm, plain loop",
    "pytorch": "PyTorch, plain loop",
    "numpyllm-trainer": "numpyllm Trainer",
    "pytorch-nanogpt": "PyTorch nanoGPT loop",
    "numpyllm-kfm": "numpyllm, plain + keep_freed_memory",
}
PROFILE_SIDES = {"plain": "numpyllm", "kfm": "numpyllm-kfm", "trainer": "numpyllm-trainer"}
PAIRS = {"plain": ("numpyllm", "pytorch"), "trainer": ("numpyllm-trainer", "pytorch-nanogpt")}
LR, MIN_LR, WARMUP_ITERS, DECAY_ITERS = 1e-3, 1e-4, 100, 2000   # TrainConfig's defaults
WEIGHT_DECAY, BETAS, GRAD_CLIP = 0.1, (0.9, 0.99), 1.0


def step_flops(c: dict) -> float:
    """Matmul FLOPs of one training step (backward = 2 x forward)."""
    L, C, T, B, V = c["n_layer"], c["n_embd"], c["block_size"], c["batch"], c["vocab"]
    if c["family"] == "llama":                        # q, o: C x C; k, v: C x kv; 3 MLP
        kv = C * c["n_kv_head"] // c["n_head"]
        weights = 2 * C * C + 2 * C * kv + 3 * C * c["intermediate"]
    else:
        weights = 12 * C * C
    per_token = 2 * L * weights + 2 * C * V + 2 * 2 * L * T * C   # blocks, head, attention
    return 3 * per_token * B * T


def numpyllm_config(c: dict):
    """The numpyllm config of a benchmark model."""
    import numpyllm as nl
    if c["family"] == "llama":
        from numpyllm.nn import LlamaConfig
        return LlamaConfig(vocab_size=c["vocab"], block_size=c["block_size"],
                           n_layer=c["n_layer"], n_head=c["n_head"], n_kv_head=c["n_kv_head"],
                           n_embd=c["n_embd"], intermediate_size=c["intermediate"],
                           rope_theta=100000.0, rms_norm_eps=1e-5)
    return nl.GPTConfig(vocab_size=c["vocab"], block_size=c["block_size"],
                        n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"],
                        bias=c["bias"])


# ====================================================================== workers
def _load(cfg: dict):
    import numpy as np
    data = np.load(cfg["data"])
    params = {k[2:]: data[k] for k in data.files if k.startswith("p:")}
    return params, data["x"], data["y"]


def _numpyllm_model(cfg: dict, params: dict):
    import numpy as np

    import numpyllm as nl
    c = cfg["model"]
    from numpyllm.nn import Llama
    family = Llama if c["family"] == "llama" else nl.GPT
    model = family(numpyllm_config(c), rng=np.random.default_rng(0))
    model.load_state_dict(params)
    return model


def _gemm_gflops(matmul, make) -> float:
    """float32 1024 x 1024 GEMM GFLOP/s (median of 7 timings of 4 products)."""
    a = make()
    matmul(a, a)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(4):
            matmul(a, a)
        times.append((time.perf_counter() - t) / 4)
    return 2 * 1024 ** 3 / statistics.median(times) / 1e9


def _timed_loop(cfg: dict, step, n_total: int):
    """Run `step(i)` n_total times (the first cfg['warmup'] untimed); per-step rows."""
    prof = None
    if cfg.get("profile"):
        import cProfile
        prof = cProfile.Profile()
    import resource
    rows = []
    for i in range(n_total):
        if i == cfg["warmup"]:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if prof is not None:
                prof.enable()
        rows.append(step(i))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    rows[-1]["faults_per_step"] = faults / (n_total - cfg["warmup"])
    if prof is not None:
        prof.disable()
        import pstats
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return rows


def _finish(rows: list, cfg: dict, env: dict, gemm) -> None:
    timed = rows[cfg["warmup"]:]
    out = {"step": [r["step"] for r in timed], "losses": [r["loss"] for r in rows], "env": env,
           "faults_per_step": rows[-1]["faults_per_step"]}
    for key in ("forward", "backward", "optimizer"):
        if key in timed[0]:
            out[key] = [r[key] for r in timed]
    out["peak_rss_mb"] = H.peak_rss_mb()           # before the GEMM's buffers
    out["gemm_gflops"] = gemm()
    H.emit(out)


def worker_numpyllm(cfg: dict, keep_freed: bool = False) -> None:
    """(a): the README's loop, in a process that imports numpyllm and sets nothing."""
    if keep_freed:
        from numpyllm.runtime import keep_freed_memory
        keep_freed_memory()
    import numpy as np

    from numpyllm.optim import AdamW, configure_param_groups
    params, X, Y = _load(cfg)
    model = _numpyllm_model(cfg, params)
    del params                                       # the model holds its own copies
    opt = AdamW(configure_param_groups(model, WEIGHT_DECAY), lr=LR, betas=BETAS)

    def step(i):
        x, y = X[i % len(X)], Y[i % len(X)]
        t0 = time.perf_counter()
        logits, loss = model(x, targets=y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        return {"step": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2,
                "loss": float(loss.item())}

    rows = _timed_loop(cfg, step, cfg["warmup"] + cfg["steps"])
    env = H.numpy_env()
    rng = np.random.default_rng(0)
    _finish(rows, cfg, env, lambda: _gemm_gflops(
        np.matmul, lambda: rng.standard_normal((1024, 1024)).astype(np.float32)))


def worker_numpyllm_trainer(cfg: dict) -> None:
    """(b): what `numpyllm train` runs: the CLI's keep_freed_memory(), then Trainer steps."""
    from numpyllm.runtime import keep_freed_memory
    keep_freed_memory()                              # numpyllm/cli/__init__.py does this
    import numpy as np

    from numpyllm.training import TrainConfig, Trainer
    params, X, Y = _load(cfg)
    model = _numpyllm_model(cfg, params)
    del params                                       # the model holds its own copies
    c = cfg["model"]
    trainer = Trainer(model, X.reshape(-1), None, TrainConfig(
        batch_size=c["batch"], max_iters=10 ** 6, learning_rate=LR, min_lr=MIN_LR,
        warmup_iters=WARMUP_ITERS, lr_decay_iters=DECAY_ITERS, weight_decay=WEIGHT_DECAY,
        beta1=BETAS[0], beta2=BETAS[1], grad_clip=GRAD_CLIP))

    from numpyllm.training.objectives.base import Batch
    seen = [0]

    def shared_batches(data, batch_size, rng):       # the benchmark's batches, in order
        x, y = X[seen[0] % len(X)], Y[seen[0] % len(X)]
        seen[0] += 1
        return Batch({"x": x, "y": y}, np.count_nonzero(y != -100, axis=1), x.size)
    trainer.objective.sample = shared_batches        # in place of the objective's sampler

    def step(i):
        t0 = time.perf_counter()
        info = trainer.train_step()
        return {"step": time.perf_counter() - t0, "loss": info["loss"]}

    rows = _timed_loop(cfg, step, cfg["warmup"] + cfg["steps"])
    env = dict(H.numpy_env(), **{"Trainer threads": trainer.parallel.threads})
    rng = np.random.default_rng(0)
    _finish(rows, cfg, env, lambda: _gemm_gflops(
        np.matmul, lambda: rng.standard_normal((1024, 1024)).astype(np.float32)))


def _nanogpt_lr(it: int) -> float:
    """nanoGPT's get_lr (warmup, cosine decay), with TrainConfig's settings."""
    import math
    if it < WARMUP_ITERS:
        return LR * (it + 1) / (WARMUP_ITERS + 1)
    if it > DECAY_ITERS:
        return MIN_LR
    ratio = (it - WARMUP_ITERS) / (DECAY_ITERS - WARMUP_ITERS)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def worker_pytorch(cfg: dict, nanogpt: bool = False) -> None:
    """(a) the plain loop, or (b) nanoGPT's train.py step, in PyTorch."""
    import torch
    env = H.torch_threads(cfg["threads"])
    params, X, Y = _load(cfg)
    c = cfg["model"]
    if c["family"] == "llama":
        from _torch_llama import TorchLlama
        from bench_llama_generate import _hf_tensors
        model = TorchLlama(_hf_tensors(params), dict(
            n_layer=c["n_layer"], n_head=c["n_head"], n_kv_head=c["n_kv_head"],
            head_dim=c["n_embd"] // c["n_head"], rope_theta=100000.0, rms_norm_eps=1e-5),
            layout=cfg["torch_layout"], requires_grad=True)
    else:
        from _torch_gpt import TorchGPT
        model = TorchGPT(params, c["n_layer"], c["n_head"], layout=cfg["torch_layout"],
                         requires_grad=True)
    del params
    leaves = model.parameters()
    opt = torch.optim.AdamW([{"params": [t for t in leaves if t.ndim >= 2],
                              "weight_decay": WEIGHT_DECAY},
                             {"params": [t for t in leaves if t.ndim < 2],
                              "weight_decay": 0.0}], lr=LR, betas=BETAS)
    X, Y = torch.from_numpy(X), torch.from_numpy(Y)

    def step(i):
        x, y = X[i % len(X)], Y[i % len(X)]
        t0 = time.perf_counter()
        if nanogpt:
            for g in opt.param_groups:
                g["lr"] = _nanogpt_lr(i)
        loss = model.loss(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if nanogpt:
            torch.nn.utils.clip_grad_norm_(leaves, GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"step": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2,
                "loss": float(loss.item())}

    rows = _timed_loop(cfg, step, cfg["warmup"] + cfg["steps"])
    if nanogpt:
        for r in rows:
            del r["forward"], r["backward"], r["optimizer"]
    env["AdamW foreach/fused"] = f"{opt.defaults['foreach']}/{opt.defaults['fused']} (defaults)"
    env["weights"] = {"out_in": "[out, in], F.linear", "in_out": "[in, out], addmm"}[model.layout]
    gen = torch.Generator().manual_seed(0)
    _finish(rows, cfg, env, lambda: _gemm_gflops(
        torch.matmul, lambda: torch.randn(1024, 1024, generator=gen)))


WORKERS = {
    "numpyllm": lambda cfg: worker_numpyllm(cfg),
    "numpyllm-kfm": lambda cfg: worker_numpyllm(cfg, keep_freed=True),
    "numpyllm-trainer": worker_numpyllm_trainer,
    "pytorch": lambda cfg: worker_pytorch(cfg),
    "pytorch-nanogpt": lambda cfg: worker_pytorch(cfg, nanogpt=True),
}


# ====================================================================== parent
def write_data(c: dict, path: str, seed: int = 0) -> None:
    """The shared initial weights (numpyllm's GPT init, seed 0) and batches."""
    import numpy as np

    import numpyllm as nl
    from numpyllm.nn import Llama
    family = Llama if c["family"] == "llama" else nl.GPT
    model = family(numpyllm_config(c), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    seq = rng.integers(0, c["vocab"], size=(N_BATCHES, c["batch"], c["block_size"] + 1))
    np.savez(path, x=seq[..., :-1], y=seq[..., 1:],
             **{"p:" + n: p.data for n, p in model.named_parameters()})


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=tuple(CONFIGS), default="nanogpt",
                    help="nanogpt (4x4x128, T 64, B 12; default), wide (6x6x384, T 256, B 8), "
                         "gpt2 (GPT-2 small, T 256, B 4), smollm2 (SmolLM2-135M's Llama, T 256, "
                         "B 4)")
    ap.add_argument("--wide", action="store_true", help="the same as --shape wide")
    ap.add_argument("--bias", action="store_true",
                    help="biases in Linear and LayerNorm (GPT-2 style); default off, as nanoGPT "
                         "(gpt2 always has them)")
    ap.add_argument("--rounds", type=int, default=6, help="rounds (processes per side), default 6")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps per process (default 30; 8 wide; 3 gpt2, smollm2)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed steps first in each process (default 5; 2 wide; 1 gpt2, "
                         "smollm2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads on every side (default: the number of CPUs, %(default)s, "
                         "which is also each library's own default here)")
    ap.add_argument("--paths", default="plain,trainer",
                    help="comparisons to run: plain (a), trainer (b); default both")
    ap.add_argument("--malloc", action="store_true",
                    help="also run numpyllm's plain loop after keep_freed_memory() (shows what "
                         "glibc's default malloc costs the plain loop)")
    ap.add_argument("--torch-layout", choices=("out_in", "in_out"), default="out_in",
                    help="PyTorch's projection weights: out_in (default: nn.Linear's [out, in] "
                         "and F.linear, as nanoGPT) or in_out (GPT-2's Conv1D: [in, out] and addmm)")
    ap.add_argument("--profile", choices=tuple(PROFILE_SIDES),
                    help="no comparison: cProfile one numpyllm process: the plain loop, the "
                         "plain loop after keep_freed_memory() (kfm), or the Trainer")
    return ap.parse_args()


def main() -> int:
    worker = H.worker_args()
    if worker is not None:
        side, cfg = worker
        WORKERS[side](cfg)
        return 0
    args = parse_args()
    name = "wide" if args.wide else args.shape
    c = dict(CONFIGS[name])
    c["bias"] = c.get("bias", False) or args.bias
    steps = args.steps or {"wide": 8, "gpt2": 3, "smollm2": 3}.get(name, 30)
    warmup = args.warmup if args.warmup is not None else \
        {"wide": 2, "gpt2": 1, "smollm2": 1}.get(name, 5)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    sides = [s for p in paths for s in PAIRS[p]]
    if args.malloc:
        sides.append("numpyllm-kfm")
    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as tmp:
        data = os.path.join(tmp, "data.npz")
        write_data(c, data)
        base = dict(data=data, model=c, steps=steps, warmup=warmup, threads=args.threads,
                    torch_layout=args.torch_layout)
        if args.profile:
            side = PROFILE_SIDES[args.profile]
            res = H.run_worker(__file__, side, dict(base, profile=True), args.threads,
                               show_stderr=True)
            print(f"{SIDES[side]}: median step {statistics.median(res['step']) * 1e3:.1f} ms "
                  f"under cProfile ({args.threads} threads, load {H.load()})")
            return 0
        print(__doc__.split("\n\n")[0].replace("\n", " "))
        results = H.alternate(__file__, sides, args.rounds, lambda s: base, args.threads)
    report(results, c, name, sides, paths, args, steps, warmup)
    return 0


def report(results, c, name, sides, paths, args, steps, warmup) -> None:
    print()
    H.print_setup(args.threads, args.rounds, {SIDES[s]: results[s][0] for s in sides})
    flops = step_flops(c)
    extra = (f", {c['n_kv_head']} key/value heads, SwiGLU {c['intermediate']}, RMSNorm, RoPE"
             if c["family"] == "llama" else f", bias {c['bias']}")
    print(f"model {name}: {c['n_layer']} layers, {c['n_head']} heads, {c['n_embd']} wide, "
          f"context {c['block_size']}, batch {c['batch']}, vocab {c['vocab']}{extra}; "
          f"{flops / 1e9:.2f} GFLOP of matmuls per step")
    print(f"per process: {warmup} warm-up steps, then {steps} timed; a round's figure is the "
          f"process's median step")
    round_median = {s: [statistics.median(r["step"]) for r in results[s]] for s in sides}
    for p in paths:
        a, b = PAIRS[p]
        title = {"plain": "(a) a user's own loop: logits, loss = model(x, targets=y); "
                          "loss.backward(); opt.step(); opt.zero_grad()",
                 "trainer": "(b) numpyllm train's step (keep_freed_memory + Trainer.train_step: "
                            "data-parallel threads, clip 1.0, lr schedule) vs nanoGPT's "
                            "train.py step (clip_grad_norm_ 1.0, lr schedule)"}[p]
        print(f"\n{title}\n  step time (ms)")
        H.report_pair(SIDES[a], round_median[a], SIDES[b], round_median[b])
        if p == "plain":
            print("  median split (ms, medians over rounds of each process's median): "
                  "forward / backward / optimizer")
            for s in [x for x in sides if "forward" in results[x][0]]:
                parts = [statistics.median(statistics.median(r[k]) for r in results[s]) * 1e3
                         for k in ("forward", "backward", "optimizer")]
                print(f"    {SIDES[s]:36s} " + " / ".join(f"{x:.2f}" for x in parts))
        la, lb = results[a][0]["losses"], results[b][0]["losses"]
        print(f"  same math: loss at step 1 {la[0]:.5f} vs {lb[0]:.5f}; at step {len(la)} "
              f"{la[-1]:.5f} vs {lb[-1]:.5f} (largest difference over the steps "
              f"{max(abs(x - y) for x, y in zip(la, lb)):.1e})")
    if "numpyllm-kfm" in sides:
        print("\nnumpyllm's plain loop with and without keep_freed_memory() (step time, ms)")
        H.report_pair(SIDES["numpyllm"], round_median["numpyllm"],
                      SIDES["numpyllm-kfm"], round_median["numpyllm-kfm"])
        if "pytorch" in sides:
            H.report_pair(SIDES["numpyllm-kfm"], round_median["numpyllm-kfm"],
                          SIDES["pytorch"], round_median["pytorch"])
    print("\nminor page faults per timed step, in each round (each is a 4 KiB page the kernel "
          "hands out zero-filled; glibc's malloc returns freed memory to the kernel unless told "
          "not to, and how much depends on the process's allocation history)")
    width = max(len(SIDES[s]) for s in sides)
    for s in sides:
        print(f"  {SIDES[s]:{width}s}  " + " ".join(f"{r['faults_per_step']:.0f}" for r in results[s]))
    print("peak RSS of each process (VmHWM, median over rounds; the framework's import included)")
    print("  " + "; ".join(f"{SIDES[s]} {statistics.median(r['peak_rss_mb'] for r in results[s]):.0f} MB"
                           for s in sides))
    print("float32 GEMM 1024x1024x1024 in each process after its steps (GFLOP/s, median over "
          "rounds): " + "; ".join(f"{SIDES[s]} {statistics.median(r['gemm_gflops'] for r in results[s]):.0f}"
                                  for s in sides))
    print("achieved matmul GFLOP/s per step (from the median step): "
          + "; ".join(f"{SIDES[s]} {flops / statistics.median(round_median[s]) / 1e9:.1f}" for s in sides))
    print(f"load average at end: {H.load()}")


if __name__ == "__main__":
    sys.exit(main())
