"""The process group: which engine (MPI or NCCL) this rank talks through, and its lifetime.

One group per process (the job's ``MPI.COMM_WORLD``), as in PyTorch's default group. A fault
(a peer failed, a collective timed out, this rank raised) *breaks* the group: later collectives
raise at once, and the process exits with status 1 without ``MPI_Finalize`` (which would wait for
the dead peer forever).
"""

from __future__ import annotations

import atexit
import datetime
import numbers
import os
import sys
import traceback
from typing import Any

import numpy as np

from ._mpi import import_mpi
from .errors import DistributedError, RankFailedError
from .watchdog import TAG_FAILED, Watchdog

BACKENDS = ("auto", "mpi", "nccl")
DEFAULT_TIMEOUT_S = 300.0

_group: "ProcessGroup | None" = None
_hooks_installed = False


class ProcessGroup:
    """State of the initialized group (read it through the module functions).

    Attributes:
        backend: ``"mpi"`` or ``"nccl"`` (what ``"auto"`` resolved to).
        rank, world_size: this process's rank and the number of processes.
        local_rank, local_size: rank and count among the processes of this node (MPI shared-memory split).
        timeout: seconds a collective may wait before it is an error.
        broken: a fault happened; collectives refuse to run.
    """

    def __init__(self, MPI: Any, backend: str, timeout: float):
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank = node.Get_rank()
        self.local_size = node.Get_size()
        node.Free()
        self.timeout = timeout
        self.broken: str | None = None
        self.watchdog = Watchdog(MPI, self.comm, timeout)
        try:
            self.backend = self._agree_on_backend(backend)
            if self.backend == "nccl":
                from .nccl_engine import NcclEngine
                self.engine: Any = NcclEngine(self)
            else:
                from .mpi_engine import MpiEngine
                self.engine = MpiEngine(self)
        except BaseException:
            self.watchdog.stop()  # no group: nothing may talk MPI while the process exits
            raise

    def _agree_on_backend(self, asked: str) -> str:
        """``asked`` resolved the same way on every rank (auto: nccl only if every rank can)."""
        from .nccl_engine import nccl_unavailable_reason
        reason = nccl_unavailable_reason()
        able = np.array([reason is None], dtype=np.int64)
        everyone = np.empty(self.world_size, dtype=np.int64)
        request = self.comm.Iallgather(able, everyone)
        self.watchdog.wait(request.Test, "init_process_group")
        if asked == "auto":
            return "nccl" if everyone.all() else "mpi"
        if asked == "nccl" and not everyone.all():
            unable = [int(r) for r in np.flatnonzero(everyone == 0)]
            mine = f" (here on rank {self.rank}: {reason})" if reason is not None else ""
            raise DistributedError(f"backend='nccl' is unavailable on rank(s) {unavailable_list(unable)}{mine}; "
                                   "use backend='mpi' (or 'auto')")
        return asked

    def require_healthy(self) -> None:
        if self.broken is not None:
            raise DistributedError(f"the process group is broken ({self.broken}); no collective can run "
                                   "any more: let the process exit (it exits with status 1)")

    def wait(self, done: Any, what: str) -> None:
        """The watchdog's wait; a fault breaks the group before the error goes up."""
        try:
            self.watchdog.wait(done, what)
        except DistributedError as error:
            self.broken = str(error)
            raise


def unavailable_list(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)


def _seconds(timeout: Any) -> float:
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds (or a datetime.timedelta), got {timeout!r}")
    return float(timeout)


def init_process_group(backend: str = "auto", timeout: float | datetime.timedelta = DEFAULT_TIMEOUT_S) -> None:
    """Joins this process to the job's process group (every rank of ``mpiexec -n N`` calls it).

    Args:
        backend: ``"mpi"`` (collectives through MPI; arrays of the cupy backend are staged through
            the host), ``"nccl"`` (GPU collectives on a dedicated stream; each rank binds the GPU
            ``local_rank % device_count``) or ``"auto"`` (nccl when the cupy backend is active and
            NCCL loads on every rank, else mpi).
        timeout: seconds (or a timedelta) a collective may wait, and a peer may stay silent,
            before it raises :class:`RankFailedError` / :class:`CollectiveTimeoutError`.

    Raises:
        DistributedError: mpi4py/MPI missing (with the install line), already initialized, or
            ``nccl`` asked where a rank cannot use it.
    """
    global _group
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    seconds = _seconds(timeout)
    if _group is not None:
        raise DistributedError("init_process_group was already called in this process; call "
                               "destroy_process_group first")
    MPI = import_mpi()
    if backend == "auto":
        from ..backend import get_backend
        backend = "auto" if get_backend().capabilities.gpu else "mpi"
    group = ProcessGroup(MPI, backend, seconds)
    _group = group
    _install_hooks()


def group() -> ProcessGroup:
    """The initialized group, or DistributedError saying to initialize it."""
    if _group is None:
        raise DistributedError("the default process group is not initialized: call "
                               "gpuconv.distributed.init_process_group() first (and start the script with "
                               "mpiexec -n N)")
    return _group


def is_initialized() -> bool:
    return _group is not None


def get_rank() -> int:
    """This process's rank in ``[0, world_size)``."""
    return group().rank


def get_world_size() -> int:
    return group().world_size


def get_local_rank() -> int:
    """This process's rank among the processes on its node (from MPI's shared-memory split)."""
    return group().local_rank


def get_backend_name() -> str:
    """``"mpi"`` or ``"nccl"``: what the group's collectives run on."""
    return group().backend


def destroy_process_group() -> None:
    """Leaves the group: waits until every rank gets here (bounded by the timeout), then stops the
    heartbeat and frees the communicators. A broken group is only dropped."""
    global _group
    current = group()
    if current.broken is None:
        request = current.comm.Ibarrier()
        current.wait(request.Test, "destroy_process_group (waiting for every rank to finish)")
        current.engine.close()
    current.watchdog.stop()
    if current.broken is None:
        current.watchdog.comm.Free()
        current.comm.Free()
    _group = None


# ---- process exit ---------------------------------------------------------------------------------
def _install_hooks() -> None:
    """Once per process: uncaught exceptions tell the peers; exit skips MPI_Finalize after a fault."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(kind: type, value: BaseException, tb: Any) -> None:
        current = _group
        if current is not None:
            sys.stderr.write(f"gpuconv.distributed: rank {current.rank} of {current.world_size} failed:\n")
            if current.broken is None and not isinstance(value, RankFailedError):
                summary = "".join(traceback.format_exception_only(kind, value)).strip()
                current.watchdog.announce(TAG_FAILED, summary)
            current.broken = current.broken or f"rank {current.rank} raised {kind.__name__}"
        previous(kind, value, tb)

    sys.excepthook = excepthook
    # Registered after mpi4py's import, so it runs before mpi4py finalizes MPI.
    atexit.register(_at_exit)


def _at_exit() -> None:
    current = _group
    if current is None:
        return
    if current.broken is None:
        try:
            destroy_process_group()
            return
        except DistributedError:
            pass
    # NOTE: MPI_Finalize would wait for the failed peer forever; leave without it, non-zero.
    current.engine.abort()
    current.watchdog.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
