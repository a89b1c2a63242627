"""Failure detection: turns a dead, raising or silent peer into an error naming it, never a hang.

MPI collectives wait forever on a peer that died. So every collective is started non-blocking and
polled (:meth:`Watchdog.wait`) against a deadline, and between polls the watchdog looks at what the
peers said on a communicator of its own:

- a heartbeat from every rank to every other rank each ``interval`` seconds, sent by a daemon
  thread, so a rank busy computing still answers; a peer silent for longer than the timeout is
  declared failed (it died, or hangs with the GIL held);
- a notice "rank r raised X" sent by a rank whose main thread dies of an uncaught exception
  (see :mod:`.group`), and "rank r left" sent by :func:`destroy_process_group`;
- MPICH's process manager (hydra, with ``-disable-auto-cleanup``) signals SIGUSR1 to the survivors
  when a process dies; after it, a peer silent for a few intervals is declared failed at once.
  (With hydra's default auto-cleanup, ``mpiexec`` itself kills the whole job and exits non-zero.)

NOTE: heartbeats go from every rank to every other (world_size**2 tiny messages per interval):
right for the tens of ranks this is tested with, not for thousands.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable

from .errors import CollectiveTimeoutError, RankFailedError

TAG_HEARTBEAT = 1
TAG_FAILED = 2
TAG_LEFT = 3
# How many heartbeats a peer may miss after a SIGUSR1 (a process of the job died) before it is named.
MISSED_AFTER_SIGNAL = 4
# Polls of a pending request before the waiting loop starts sleeping (small collectives finish in
# microseconds; sleeping at once would add the scheduler's latency to each).
SPIN_POLLS = 200
MAX_SLEEP_S = 2e-3


class Watchdog:
    """Heartbeats and failure notices between the ranks of ``comm`` (a private duplicate is used).

    Args:
        MPI: the ``mpi4py.MPI`` module.
        comm: the process group's communicator.
        timeout: seconds a collective may wait, and a peer may stay silent, before it is an error.
    """

    def __init__(self, MPI: Any, comm: Any, timeout: float):
        self.MPI = MPI
        self.comm = comm.Dup()
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = float(timeout)
        self.interval = min(1.0, max(0.05, self.timeout / 10))
        self.peers = [p for p in range(self.size) if p != self.rank]
        now = time.monotonic()
        self._last_seen = {p: now for p in self.peers}
        self._failed: dict[int, str] = {}
        self._left: set[int] = set()
        self._signalled = False
        self._sends: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._previous_sigusr1: Any = None
        self._install_sigusr1()
        self._thread = threading.Thread(target=self._run, name="gpuconv-heartbeat", daemon=True)
        self._thread.start()

    # ---- the heartbeat thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._beat()
            self._stop.wait(self.interval)

    def _beat(self) -> None:
        MPI = self.MPI
        with self._lock:
            for peer in self.peers:
                if peer not in self._left:
                    self._sends.append(self.comm.Isend([bytearray(1), MPI.BYTE], dest=peer, tag=TAG_HEARTBEAT))
            # NOTE: a send to a dead peer may never complete; it is kept, not waited for.
            self._sends = [r for r in self._sends if not r.Test()]
        self._drain()

    def _drain(self) -> None:
        MPI = self.MPI
        status = MPI.Status()
        # A matched probe: the heartbeat thread and the waiting main thread both drain, and
        # Improbe hands each message to exactly one of them.
        while (incoming := self.comm.Improbe(MPI.ANY_SOURCE, MPI.ANY_TAG, status)) is not None:
            source, tag, count = status.Get_source(), status.Get_tag(), status.Get_count(MPI.BYTE)
            message = bytearray(max(count, 1))
            incoming.Recv([message, count, MPI.BYTE])
            with self._lock:
                self._last_seen[source] = time.monotonic()
                if tag == TAG_FAILED:
                    self._failed.setdefault(source, message[:count].decode("utf-8", "replace"))
                elif tag == TAG_LEFT:
                    self._left.add(source)

    def _install_sigusr1(self) -> None:
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
            return
        if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None):
            return  # the user's own handler stays

        def on_peer_death(signum: int, frame: Any) -> None:
            self._signalled = True

        self._previous_sigusr1 = signal.signal(signal.SIGUSR1, on_peer_death)

    # ---- what the main thread asks --------------------------------------------------------------
    def check(self, involved: list[int] | None = None) -> None:
        """Raises RankFailedError when a peer (of ``involved``, default all) failed, left or is silent."""
        now = time.monotonic()
        silent_limit = self.timeout
        if self._signalled:
            silent_limit = min(silent_limit, MISSED_AFTER_SIGNAL * self.interval)
        with self._lock:
            for rank in self.peers if involved is None else involved:
                if rank in self._failed:
                    raise RankFailedError(rank, f"rank {rank} failed: {self._failed[rank]}")
                if rank in self._left:
                    raise RankFailedError(rank, f"rank {rank} has left the process group (it called "
                                                "destroy_process_group or exited) while rank "
                                                f"{self.rank} still needs it")
                silent = now - self._last_seen[rank]
                if silent > silent_limit:
                    raise RankFailedError(rank, f"rank {rank} stopped answering: no heartbeat for {silent:.1f} s "
                                                f"(limit {silent_limit:.1f} s); it died, was killed, or hangs "
                                                "holding the GIL")

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Polls ``done()`` until it is true; between polls, :meth:`check` and the deadline.

        Raises:
            RankFailedError: a peer failed (its rank is named).
            CollectiveTimeoutError: ``what`` took longer than the timeout with every peer alive.
        """
        if done():
            return
        deadline = time.monotonic() + self.timeout
        polls = 0
        sleep = 5e-5
        while not done():
            polls += 1
            if polls % 64 == 0 or polls > SPIN_POLLS:
                self._drain()
                self.check()
                if time.monotonic() > deadline:
                    raise CollectiveTimeoutError(
                        f"{what} did not complete within {self.timeout:g} s on rank {self.rank}, although every "
                        "rank still answers: the ranks called different collectives (or with different sizes), "
                        "or one is stuck in other work; raise init_process_group(timeout=...) if it is just slow")
            if polls > SPIN_POLLS:
                time.sleep(sleep)
                sleep = min(2 * sleep, MAX_SLEEP_S)

    def announce(self, tag: int, message: str) -> None:
        """Tells every peer this rank failed (TAG_FAILED) or leaves (TAG_LEFT); waits up to two
        heartbeat intervals for the peers to take the notice (a dead peer never takes its copy)."""
        data = bytearray(message.encode("utf-8")[:4000])
        with self._lock:
            requests = [self.comm.Issend([data, self.MPI.BYTE], dest=p, tag=tag) for p in self.peers
                        if p not in self._left]
        deadline = time.monotonic() + 2 * self.interval + 0.5
        while requests and time.monotonic() < deadline:
            requests = [r for r in requests if not r.Test()]
            time.sleep(1e-3)

    def stop(self) -> None:
        """Stops the heartbeat thread and gives SIGUSR1 back."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        if self._previous_sigusr1 is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._previous_sigusr1)
            self._previous_sigusr1 = None
