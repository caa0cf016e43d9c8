"""Training across processes and machines, over MPI (mpi4py): an optional extra,
``pip install mpi4py mpich``, never imported by ``import numpyllm``.

  comm.py           the MPI world, and ending every rank when one fails
  data_parallel.py  MPIDataParallel: whole model per rank, the batch shared, gradients
                    summed by bucketed allreduce

Launch: ``mpiexec -n 2 numpyllm train --parallel dp ...`` (docs/distributed.md).
"""
from .comm import MPIUnavailable, abort, world
from .data_parallel import MPIDataParallel

__all__ = ["MPIDataParallel", "MPIUnavailable", "abort", "world"]
