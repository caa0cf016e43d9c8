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

__all__ = ["world", "abort", "MPIUnavailable"]

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
    """Print `message` (one line, prefixed with the rank) and end every rank of `comm`."""
    print(f"rank {comm.rank}/{comm.size}: {message}", file=sys.stderr, flush=True)
    comm.Abort(code)
