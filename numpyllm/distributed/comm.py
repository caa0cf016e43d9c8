"""The communicator: MPI's COMM_WORLD through mpi4py, imported only when asked for.

numpyllm sends nothing itself: every byte between processes goes through an MPI
library's collectives (``Allreduce``, ``Bcast``, ...), which is what real clusters run
and what `mpiexec` starts. `world()` returns the communicator of the processes
`mpiexec -n N` started (a world of one when the script runs alone).

A rank that fails must not leave the others waiting in a collective forever: `abort`
ends every rank of the world at once (``MPI_Abort``), after the failing rank has said
why in one line.
"""
from __future__ import annotations

import sys

__all__ = ["world", "abort", "MPIUnavailable", "CountingComm"]

INSTALL = "pip install mpi4py mpich"


class MPIUnavailable(ImportError):
    """mpi4py (or an MPI library under it) is not installed."""


def world():
    """``MPI.COMM_WORLD``: `.rank`, `.size` and the collectives. Raises `MPIUnavailable`
    naming the pip install that brings MPI when mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:      # also: mpi4py present, libmpi missing (an ImportError)
        raise MPIUnavailable(f"multi-process training needs MPI: {INSTALL} "
                             f"({exc})") from None
    return MPI.COMM_WORLD


def abort(comm, message: str, code: int = 1) -> None:
    """Log `message` (one line, prefixed with the rank, at ERROR on the
    ``numpyllm.distributed`` logger: on stderr unless logging is set up otherwise) and
    end every rank of `comm`."""
    import logging
    import time
    logging.getLogger("numpyllm.distributed").error("rank %d/%d: %s", comm.rank, comm.size,
                                                    message)
    sys.stderr.flush()
    time.sleep(0.5)          # let mpiexec pass the line on before it tears the world down
    comm.Abort(code)


class CountingComm:
    """A communicator that counts what this rank hands to MPI: for each operation, the
    calls and the bytes of the buffer it sends (its contribution; a receive counts
    nothing). `counts` maps ``"Allreduce"`` etc. to ``[calls, bytes]``; `reset` clears
    it. Everything else is the wrapped communicator's; sub-communicators made by `Split`
    count into the same table. For measuring what a strategy sends
    (benchmarks/bench_distributed.py), not for speed."""

    COUNTED = ("Allreduce", "Reduce_scatter_block", "Allgather", "Bcast", "Reduce",
               "Gather", "Gatherv", "Isend", "Send", "Sendrecv", "allreduce", "gather")

    def __init__(self, comm, counts: dict | None = None):
        self._comm = comm
        self.counts = {} if counts is None else counts

    def reset(self) -> None:
        self.counts.clear()

    def __getattr__(self, name):
        attr = getattr(self._comm, name)
        if name == "Split":
            return lambda *a, **k: CountingComm(attr(*a, **k), self.counts)
        if name not in self.COUNTED:
            return attr

        def counted(*args, **kwargs):
            sent = _nbytes(args[0] if args else None)
            if args and _in_place(args[0]):           # the data is in the receive buffer
                sent = _nbytes(args[1])
                if name == "Allgather":               # of which this rank's share is 1/N
                    sent //= self._comm.size
            if name == "Bcast" and kwargs.get("root", args[1] if len(args) > 1 else 0) \
                    != self._comm.rank:
                sent = 0                              # a broadcast's receivers send nothing
            entry = self.counts.setdefault(name, [0, 0])
            entry[0] += 1
            entry[1] += sent
            return attr(*args, **kwargs)
        return counted


def _in_place(buffer) -> bool:
    from mpi4py import MPI
    return buffer is MPI.IN_PLACE


def _nbytes(buffer) -> int:
    import numpy as np
    if isinstance(buffer, np.ndarray):
        return buffer.nbytes
    if isinstance(buffer, (bool, int, float)):
        return 8
    return 0                              # IN_PLACE, None, a Python object (not counted)
