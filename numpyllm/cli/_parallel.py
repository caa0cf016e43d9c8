"""``numpyllm train --parallel dp|zero1|zero2|zero3|tp|pp``: the run on the MPI ranks
`mpiexec` started (numpyllm.distributed, docs/distributed.md). Rank 0 prints, logs and
writes; the others compute with their output sent to /dev/null; a rank that fails ends
every rank with its one-line error, so no rank is left waiting in a collective."""
from __future__ import annotations

import os
import sys

from . import CLIError

STRATEGIES = ["dp", "zero1", "zero2", "zero3", "tp", "pp"]
WHAT = {"dp": "data parallel", "zero1": "ZeRO stage 1 (optimizer state sharded)",
        "zero2": "ZeRO stage 2 (optimizer state and gradients sharded)",
        "zero3": "ZeRO stage 3 (weights, gradients and optimizer state sharded)"}


def add_parallel_options(p) -> None:
    p.add_argument("--parallel", choices=STRATEGIES, default=None,
                   help="train over the MPI ranks mpiexec started: dp = data parallel; "
                   "zero1/zero2/zero3 = data parallel with the optimizer state (and the "
                   "gradients, and the weights) sharded over the ranks; tp = tensor "
                   "parallel (each block's heads and MLP split over the ranks); pp = "
                   "pipeline parallel (the blocks in stages, one per rank); tp and pp split "
                   "a GPT or a Llama (--init-from) (mpiexec -n 2 "
                   "numpyllm train --parallel dp ...; pip install mpi4py mpich)")
    p.add_argument("--micro_batches", "--micro-batches", type=int, default=4, metavar="M",
                   help="with --parallel pp: micro-batches a batch is cut into (default 4)")
    p.add_argument("--schedule", choices=["gpipe", "1f1b"], default="gpipe",
                   help="with --parallel pp: all forwards then all backwards (gpipe), or "
                   "one forward one backward (1f1b: fewer activations alive)")
    p.add_argument("--tp", type=int, default=None, metavar="K",
                   help="with --parallel tp: split each block over K ranks, and train the "
                   "world size / K copies data parallel (default: K = the world size)")


def run_on_ranks(args, run) -> int:
    """``run(args, comm)``: comm None in one process, else this rank's world."""
    if args.tp is not None and args.parallel != "tp":
        raise CLIError("--tp K goes with --parallel tp")
    if args.parallel is None:
        return run(args, None)
    from ..distributed import MPIUnavailable, abort, world
    try:
        comm = world()
    except MPIUnavailable as exc:
        raise CLIError(f"--parallel {args.parallel}: {exc}") from None
    if comm.rank != 0:                         # the other ranks compute, rank 0 reports
        sys.stdout = open(os.devnull, "w")
    try:
        return run(args, comm)
    except (CLIError, Exception) as exc:
        if comm.size > 1:
            abort(comm, f"numpyllm train: error: {exc}")
        raise


def attach(trainer, args, comm, objective: str, train_cfg) -> None:
    """Make ``trainer.parallel`` (and, for the strategies that shard or split it,
    ``trainer.optimizer`` and ``trainer.model``) the chosen strategy's; say what it is."""
    from ..distributed import MPIDataParallel, PipelineParallel, TensorParallel, ZeRO, ZeRO3
    c = trainer.model.config
    share = comm.size // (args.tp or comm.size) if args.parallel == "tp" else \
        1 if args.parallel == "pp" else comm.size
    if train_cfg.batch_size < share:
        raise CLIError(f"--parallel {args.parallel}: --batch_size {train_cfg.batch_size} "
                       f"cannot be shared by {share} ranks")
    try:
        if args.parallel == "dp":
            trainer.parallel = MPIDataParallel(trainer.model, comm)
        elif args.parallel == "tp":
            # next-token prediction: the vocabulary split too (a parallel cross-entropy)
            trainer.parallel = TensorParallel(trainer, comm, tp=args.tp,
                                              vocab=objective == "clm")
        elif args.parallel == "zero3":
            trainer.parallel = ZeRO3(trainer, comm)
        elif args.parallel == "pp":
            trainer.parallel = PipelineParallel(trainer, comm, schedule=args.schedule,
                                                micro_batches=args.micro_batches)
        else:
            trainer.parallel = ZeRO(trainer.model, trainer.optimizer, comm,
                                    stage=int(args.parallel[-1]))
            trainer.optimizer = trainer.parallel.optimizer
    except ValueError as exc:
        raise CLIError(f"--parallel {args.parallel}: {exc}") from None
    if args.parallel == "pp":
        M = min(trainer.parallel.micro_batches, train_cfg.batch_size)
        print(f"pipeline parallel over {comm.size} MPI ranks ({args.schedule}): "
              f"{M} micro-batches a batch; ideal bubble (N-1)/(M+N-1) = "
              f"{(comm.size - 1) / (M + comm.size - 1):.0%}")
    elif args.parallel == "tp":
        tp, dp = trainer.parallel.tp, trainer.parallel.dp
        # a Llama: n_kv_head key/value heads and intermediate_size SwiGLU units
        kv = getattr(c, "n_kv_head", c.n_head)
        units = getattr(c, "intermediate_size", 4 * c.n_embd)
        print(f"tensor parallel over {tp} MPI ranks: {c.n_head // tp} heads"
              + (f" ({kv // tp} key/value)" if kv != c.n_head else "")
              + f" and {units // tp} MLP units of each block per rank"
              + (f", about {c.vocab_size // tp:,} of the {c.vocab_size:,} tokens' rows "
                 "of the table and the head" if objective == "clm" else "")
              + (f"; x data parallel over {dp} groups of {tp}, about "
                 f"{train_cfg.batch_size // dp} rows each" if dp > 1 else
                 "; the whole batch on every rank"))
    else:
        print(f"{WHAT[args.parallel]} over {comm.size} MPI ranks: {train_cfg.batch_size} "
              f"rows a batch, about {train_cfg.batch_size // comm.size} each")
    if args.parallel.startswith("zero"):
        mb = {k: v / 2**20 for k, v in trainer.parallel.memory().items()}
        print(f"per rank: weights {mb['weights']:.2f} MiB, gradients {mb['gradients']:.2f} "
              f"MiB, optimizer state {mb['optimizer']:.2f} MiB"
              + (f", at most {mb['gathered']:.2f} MiB gathered during a step"
                 if "gathered" in mb else ""))


def report_after(trainer, args, comm, train_cfg) -> None:
    """After the run (rank 0): the pipeline's measured bubble next to the ideal one."""
    if args.parallel == "pp":
        M = min(args.micro_batches, train_cfg.batch_size)
        print(f"pipeline bubble: rank 0 waited {trainer.parallel.last_bubble:.0%} of the last "
              f"step (ideal for {comm.size} stages and {M} micro-batches: "
              f"{(comm.size - 1) / (M + comm.size - 1):.0%})")
