"""What each strategy of numpyllm.distributed sends, and what 2 MPI ranks buy on one
machine (issue 18's figures). Figures, not a test: it prints them.

    python benchmarks/bench_distributed.py bytes [--ranks 2] [--shape llama]
    python benchmarks/bench_distributed.py speed [--rounds 3] [--steps 30] [--shape wide]
    python benchmarks/bench_distributed.py paper

**bytes**: the nanoGPT CPU model (4 layers, 4 heads, 128 wide, context 64, batch 12,
65-token vocabulary, float32) trained one step under each strategy on `--ranks` ranks
(mpiexec), then one more step counted: every buffer rank 0 hands to MPI, by operation
(`numpyllm.distributed.CountingComm`), against the formula of docs/distributed.md.
"handed" is the buffer; "sent (ring)" what a ring algorithm puts on the wire from
each rank: an allreduce 2(N-1)/N of its buffer, a reduce-scatter (N-1)/N, an allgather
(N-1) times its share, a point-to-point send all of it. `--shape llama`: a Llama of the
same size (4 query heads sharing 2 key/value heads, SwiGLU of 352 units, tied head)
under dp, tp and pp (ZeRO 3 splits a GPT only).

**speed**: tokens per second of the same model and batches: one process on one thread,
one process with the Trainer's two threads (today's data parallelism), and 2 MPI ranks
(`--parallel dp`, one thread each); each in its own process, alternated over rounds,
medians and ratios. `--shape wide`: the 6-layer, 384-wide model (context 256, batch 8).

**paper**: from the measured bytes and the measured step time, the step time of GPT-2
small (124M weights) under data parallelism over 8 and 64 machines on a 10 Gbit/s
network, and where communication starts to dominate (docs/distributed.md, Figures).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {"nanogpt": (dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128), 12),
          "wide": (dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 8),
          # a Llama of the nanoGPT model's size: grouped-query attention, SwiGLU
          "llama": (dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_kv_head=2,
                         n_embd=128, intermediate_size=352), 12)}
SHAPE, BATCH = SHAPES[os.environ.get("BENCH_SHAPE", "nanogpt")]
STRATEGIES = ["dp", "zero1", "zero2", "zero3", "tp", "pp"]


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


# ---------------------------------------------------------------------- workers
def build():
    """The benchmark's model: a GPT, or (--shape llama) a Llama."""
    from numpyllm.nn import GPT, GPTConfig, Llama, LlamaConfig
    return Llama(LlamaConfig(**SHAPE), rng=0) if "n_kv_head" in SHAPE else \
        GPT(GPTConfig(**SHAPE), rng=0)


def trainer(threads: int = 1):
    from numpyllm.training import TrainConfig, Trainer
    from numpyllm.training.data_parallel import DataParallel
    tokens = np.random.default_rng(0).integers(0, SHAPE["vocab_size"], 200_000)
    model = build()
    t = Trainer(model, tokens, config=TrainConfig(batch_size=BATCH, max_iters=10**6,
                                                   grad_clip=1.0))
    t.parallel = DataParallel(model, threads=threads)
    return t


def attach(t, strategy: str, comm) -> None:
    from numpyllm import distributed as D
    if strategy == "dp":
        t.parallel = D.MPIDataParallel(t.model, comm)
    elif strategy in ("zero1", "zero2"):
        t.parallel = D.ZeRO(t.model, t.optimizer, comm, stage=int(strategy[-1]))
        t.optimizer = t.parallel.optimizer
    elif strategy == "zero3":
        t.parallel = D.ZeRO3(t, comm)
    elif strategy == "tp":
        t.parallel = D.TensorParallel(t, comm, vocab=True)
    elif strategy == "pp":
        t.parallel = D.PipelineParallel(t, comm, micro_batches=4)


def worker_bytes(strategy: str) -> None:
    from numpyllm.distributed import CountingComm, world
    comm = CountingComm(world())
    t = trainer()
    attach(t, strategy, comm)
    t.train_step()
    comm.reset()
    t.train_step()
    rows = comm.gather(dict(comm.counts))
    if comm.rank == 0:
        print(json.dumps(rows))


def worker_speed(mode: str, steps: int) -> None:
    t = trainer(threads=2 if mode == "threads" else 1)
    comm = None
    if mode == "mpi":
        from numpyllm.distributed import world
        comm = world()
        attach(t, "dp", comm)
    for _ in range(3):
        t.train_step()
    if comm is not None:
        comm.Barrier()
    start = time.perf_counter()
    for _ in range(steps):
        t.train_step()
    seconds = time.perf_counter() - start
    if comm is None or comm.rank == 0:
        print(json.dumps({"tokens_per_s": steps * BATCH * SHAPE["block_size"] / seconds,
                          "ms_per_step": 1000 * seconds / steps}))


# ---------------------------------------------------------------------- drivers
def run(command: list) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.exit(done.stdout + done.stderr)
    return done.stdout.strip().splitlines()[-1]


def formula(strategy: str, N: int, P: int, P_blocks: int, b: int = 4) -> float:
    """Bytes rank 0 hands to MPI in a step, from docs/distributed.md (the loss and
    other scalars left out)."""
    L, C, T, V = SHAPE["n_layer"], SHAPE["n_embd"], SHAPE["block_size"], SHAPE["vocab_size"]
    act = BATCH * T * C * b                              # one [B, T, C] activation
    outer = P - P_blocks
    return {"dp": P * b,                                 # the gradient, allreduced
            "zero1": P * b + P * b / N,                  # allreduce + its allgather share
            "zero2": P * b + P * b / N,                  # reduce-scatter + allgather share
            # each block gathered twice (its share) and reduce-scattered once; the outer
            # unit gathered once and reduce-scattered once
            "zero3": 2 * P_blocks * b / N + P_blocks * b + outer * b / N + outer * b,
            # 4 sums a block (2 forward, 2 backward) + the embedding's + the head's, each a
            # reduce of [B, T, C] (and rank 0's broadcast of it)
            "tp": (4 * L + 2) * act * 2,
            # the first stage: its activations forward, and the tied table's gradient
            "pp": act + V * C * b}[strategy]


def bytes_main(args) -> None:
    model = build()
    P = model.num_parameters()
    blocks = model.layers if "n_kv_head" in SHAPE else model.h
    P_blocks = sum(p.data.size for block in blocks for p in block.parameters())
    N = args.ranks
    ring = {"Allreduce": 2 * (N - 1) / N, "Reduce_scatter_block": (N - 1) / N,
            "Allgather": N - 1, "Reduce": (N - 1) / N, "Bcast": 1.0, "Isend": 1.0,
            "Send": 1.0, "Sendrecv": 1.0, "Gather": 1.0, "Gatherv": 1.0, "allreduce": 1.0}
    print(f"model: {P:,} parameters (float32: {4 * P:,} bytes), batch {BATCH} x "
          f"{SHAPE['block_size']}, {N} ranks; one step, rank 0")
    print(f"{'strategy':8} {'calls':>6} {'handed (bytes)':>15} {'sent, ring (bytes)':>19} "
          f"{'formula':>12}   by operation (calls x bytes handed)")
    for strategy in STRATEGIES:
        if "n_kv_head" in SHAPE and strategy not in ("dp", "tp", "pp"):
            continue
        rows = json.loads(run([mpiexec(), "-n", str(N), sys.executable, __file__,
                               "_bytes", strategy]))
        mine = rows[0]
        calls = sum(c for c, _ in mine.values())
        handed = sum(b for _, b in mine.values())
        sent = sum(ring.get(op, 1.0) * b for op, (_, b) in mine.items())
        want = formula(strategy, N, P, P_blocks)
        ops = ", ".join(f"{op} {c}x {b:,}" for op, (c, b) in sorted(mine.items()))
        print(f"{strategy:8} {calls:6d} {handed:15,} {sent:19,.0f} "
              f"{want:12,.0f}   {ops}")


def speed_main(args) -> None:
    modes = {"one thread": [sys.executable, __file__, "_speed", "one", str(args.steps)],
             "two threads": [sys.executable, __file__, "_speed", "threads", str(args.steps)],
             "2 MPI ranks": [mpiexec(), "-n", "2", sys.executable, __file__, "_speed", "mpi",
                             str(args.steps)]}
    results = {m: [] for m in modes}
    for r in range(args.rounds):
        for m, command in modes.items():
            results[m].append(json.loads(run(command))["ms_per_step"])
        print(f"round {r + 1}: " + ", ".join(f"{m} {results[m][-1]:.1f} ms" for m in modes),
              flush=True)
    base = statistics.median(results["one thread"])
    print(f"\nmedians over {args.rounds} rounds ({args.steps} steps each, batch {BATCH} x "
          f"{SHAPE['block_size']}; load average {os.getloadavg()[0]:.2f}):")
    for m in modes:
        med = statistics.median(results[m])
        print(f"  {m:12} {med:7.1f} ms/step  {BATCH * SHAPE['block_size'] / med * 1000:9,.0f} "
              f"tokens/s  {base / med:.2f}x one thread")


def paper_main(args) -> None:
    """Data parallelism of GPT-2 small over a 10 Gbit/s network: the compute per step
    shrinks with the machines (the same global batch), the allreduce does not."""
    P, b = 124_000_000, 4
    link = 10e9 / 8                                        # bytes per second
    compute = args.step_seconds                            # one machine's step, measured
    print(f"GPT-2 small, {P / 1e6:.0f}M float32 weights; one machine's step {compute:.1f} s "
          f"(--step-seconds); 10 Gbit/s links, ring allreduce")
    for N in (1, 2, 8, 64):
        comm = 2 * (N - 1) / N * P * b / link
        step = compute / N + comm
        print(f"  {N:3d} machines: compute {compute / N:7.2f} s + allreduce {comm:5.2f} s = "
              f"{step:7.2f} s a step ({compute / step:5.1f}x one machine)")
    cross = compute / (2 * P * b / link)
    print(f"communication exceeds computation beyond about {cross:.0f} machines "
          f"(compute / N = 2 P b / bandwidth)")


def main() -> None:
    global SHAPE, BATCH
    if len(sys.argv) > 1 and sys.argv[1] == "_bytes":
        return worker_bytes(sys.argv[2])
    if len(sys.argv) > 1 and sys.argv[1] == "_speed":
        from numpyllm.runtime import keep_freed_memory
        keep_freed_memory()                       # as the numpyllm command line does
        return worker_speed(sys.argv[2], int(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["bytes", "speed", "paper"])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--shape", choices=list(SHAPES), default="nanogpt",
                    help="the nanoGPT CPU model, the 6-layer 384-wide one (speed), or a "
                    "Llama of the nanoGPT model's size (bytes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--step-seconds", type=float, default=3.0,
                    help="paper: one machine's GPT-2-small step (benchmarks/bench_lora_memory.py "
                    "measured 2.90 s for B 2 x T 256 here)")
    args = ap.parse_args()
    os.environ["BENCH_SHAPE"] = args.shape          # the workers read it
    SHAPE, BATCH = SHAPES[args.shape]
    {"bytes": bytes_main, "speed": speed_main, "paper": paper_main}[args.what](args)


if __name__ == "__main__":
    main()
