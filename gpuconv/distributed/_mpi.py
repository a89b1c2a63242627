"""The one place that imports mpi4py, with an error that says how to install it."""

from __future__ import annotations

from types import ModuleType

from .errors import INSTALL_LINE, DistributedError


def import_mpi() -> ModuleType:
    """``mpi4py.MPI``, initialized (thread level MULTIPLE: the heartbeat thread talks MPI).

    Raises:
        DistributedError: mpi4py or an MPI library is missing, with the install line.
    """
    try:
        import mpi4py
    except ImportError as error:
        raise DistributedError(f"gpuconv.distributed needs mpi4py and an MPI library; install them with "
                               f"{INSTALL_LINE} ({error})") from None
    mpi4py.rc.threads = True
    mpi4py.rc.thread_level = "multiple"
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as error:
        raise DistributedError(f"mpi4py is installed but cannot load an MPI library ({error}); install one with "
                               f"{INSTALL_LINE}") from None
    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        raise DistributedError("the MPI library was initialized without MPI_THREAD_MULTIPLE (mpi4py was imported "
                               "before gpuconv.distributed with another thread level); gpuconv's failure detection "
                               "needs it: import gpuconv.distributed first or leave mpi4py.rc.thread_level alone")
    return MPI
