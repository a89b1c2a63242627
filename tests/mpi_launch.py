"""Runs a script on N MPI ranks with the ``mpiexec`` installed next to this Python (the mpich
wheel's), for the tests of gpuconv.distributed; skips with the reason where MPI cannot start."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "distributed_workers"
ROOT = Path(__file__).parent.parent


def mpiexec() -> Path:
    return Path(sys.executable).parent / "mpiexec"


def _environment(backend: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["GPUCONV_BACKEND"] = backend
    env["PYTHONUNBUFFERED"] = "1"
    return env


@functools.lru_cache(maxsize=None)
def unavailable_reason() -> str | None:
    """Why 2 MPI ranks cannot start here (None when they can)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'gpuconv[distributed]')"
    if not mpiexec().exists():
        return f"no mpiexec next to {sys.executable} (pip install mpich)"
    probe = "from mpi4py import MPI; assert MPI.COMM_WORLD.Get_size() == 2"
    try:
        result = subprocess.run([str(mpiexec()), "-n", "2", sys.executable, "-c", probe], capture_output=True,
                                text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "mpiexec -n 2 did not start within 60 s"
    if result.returncode != 0:
        return f"mpiexec -n 2 fails here: {result.stderr.strip()[-300:]}"
    return None


def require_mpi() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def run_ranks(script: str, *args: str, ranks: int = 2, backend: str = "numpy", timeout: float = 120,
              launcher_options: tuple[str, ...] = (), per_rank_status: bool = False) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python distributed_workers/<script> args...``; with ``per_rank_status``
    each rank's shell prints ``rank R exit STATUS`` to stderr after its Python exits."""
    require_mpi()
    command = [sys.executable, str(WORKERS / script), *args]
    if per_rank_status:
        quoted = " ".join(f"'{c}'" for c in command)
        # The trap keeps the shell alive through the SIGUSR1 with which hydra tells survivors of a death
        # (Python gets the default disposition back, and gpuconv's handler).
        command = ["sh", "-c", f'trap true USR1; {quoted}; s=$?; echo "rank $PMI_RANK exit $s" >&2; exit $s']
    return subprocess.run([str(mpiexec()), *launcher_options, "-n", str(ranks), *command], capture_output=True,
                          text=True, timeout=timeout, env=_environment(backend), cwd=str(ROOT))


def assert_ok(result: subprocess.CompletedProcess, ranks: int = 2) -> list[int]:
    """Every rank printed ``OK <n> checks on rank <r>`` (or ``OK rank <r>``); returns the check
    counts. Fails with both streams otherwise. (mpiexec may interleave the ranks' lines, so the
    reports are found by pattern, not by line.)"""
    streams = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, f"mpiexec exit {result.returncode}\n{streams}"
    reports = re.findall(r"OK (?:(\d+) checks on )?rank (\d+)", result.stdout)
    assert sorted(int(r) for _, r in reports) == list(range(ranks)), f"expected OK from {ranks} ranks\n{streams}"
    return [int(n or 0) for n, _ in reports]
