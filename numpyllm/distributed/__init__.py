"""Training across processes and machines, over MPI (mpi4py): an optional extra,
``pip install mpi4py mpich``, never imported by ``import numpyllm``.

  comm.py           the MPI world, and ending every rank when one fails
  data_parallel.py  MPIDataParallel: whole model per rank, the batch shared, gradients
                    summed by bucketed allreduce
  zero.py           ZeRO stages 1 and 2: the optimizer state (1) and the gradients (2)
                    sharded over the ranks, a flat parameter buffer, consolidated
                    checkpoints
  zero3.py          ZeRO stage 3: the weights sharded too, each block gathered for its
                    forward and (recomputed) backward, then dropped
  rank_ops.py       Megatron's f and g operators (autograd nodes) and the sum they make
  tensor_parallel.py  Megatron's tensor parallelism: heads and MLP units split, tensor x
                    data grids, consolidated checkpoints (ALiBi: each head's global slope)
  tensor_parallel_llama.py  the same for a Llama (Qwen2, Mistral): grouped-query heads
                    split with their key/value heads, SwiGLU's units
  vocab_parallel.py the token table and head split over the vocabulary, the parallel
                    cross-entropy
  pipeline.py       GPipe and 1F1B (a GPT or a Llama): stages of consecutive blocks,
                    micro-batches sent point to point, the tied table's gradient
                    summed, the bubble

Launch: ``mpiexec -n 2 numpyllm train --parallel dp ...`` (docs/distributed.md).
"""
from .comm import CountingComm, MPIUnavailable, abort, world
from .data_parallel import MPIDataParallel
from .pipeline import PipelineParallel, PipelineStage
from .tensor_parallel import TensorParallel, tensor_parallel
from .zero import ZeRO
from .zero3 import ZeRO3

__all__ = ["CountingComm", "MPIDataParallel", "MPIUnavailable", "PipelineParallel", "PipelineStage",
           "TensorParallel", "ZeRO", "ZeRO3", "abort", "tensor_parallel", "world"]
